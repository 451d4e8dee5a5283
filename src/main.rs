//! The `parity` binary: a thin shell over the library.
//!
//! Three outcomes, as in ripgrep: 0 every enabled gate holds, 1 parity is
//! broken (a gate failed), 2 the comparison could not be made (usage or
//! setup error — a file missing or malformed, a required stage missing, the
//! two sides disagreeing about what they describe).

mod cli;

use cli::Outcome;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::try_main() {
        Ok(Outcome::Pass) => ExitCode::from(0),
        Ok(Outcome::ParityBroken) => ExitCode::from(1),
        Err(err) => {
            eprintln!("parity: error: {err}");
            ExitCode::from(2)
        }
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
