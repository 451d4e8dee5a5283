//! The command line: parse flags, call the library, print, map to an outcome.

pub mod flags;

use crate::compare::{self, CheckOptions, Format, Modes, Profile, StageSelection};
use crate::error::{Error, Result};
use crate::replay::{self, Implementation, ReplayOptions};
use clap::Parser;
use flags::{Cli, Command, FormatArg, ImplArg};
use std::io::Write;

/// How a successful run ended: the gates held, or parity is broken.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    ParityBroken,
}

/// The top-level entry point: everything `main` does besides exiting.
pub fn try_main() -> Result<Outcome> {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check(args),
        Command::Replay(args) => replay(args),
        Command::Gate(args) => gate(args),
        Command::Ops(args) => ops(args),
    }
}

/// `parity check`: compare two reports and decide by the chosen modes.
fn check(args: flags::CheckArgs) -> Result<Outcome> {
    let profile = match &args.tolerances {
        Some(path) => Profile::load(path)?,
        None => Profile::builtin(),
    };
    let stages = if args.stages == "all" {
        StageSelection::All
    } else {
        StageSelection::Named(args.stages.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    };
    let opts = CheckOptions {
        modes: Modes {
            strict_stage_tolerances: args.strict_stage_tolerances,
            strict_hash: args.strict_hash,
            strict_historical_hash: args.strict_historical_hash,
        },
        profile,
        select: args.select,
        stages,
        top_diffs: args.top_diffs,
        allow_outside_paths: args.allow_outside_paths,
        progress: true,
        verify_hashes: args.verify_hashes,
    };
    let outcome = compare::check(&args.left, &args.right, &opts)?;
    let format = match args.format {
        FormatArg::Text => Format::Text,
        FormatArg::Json => Format::Json,
        FormatArg::Junit => Format::Junit,
        FormatArg::Markdown => Format::Markdown,
    };
    let rendered = compare::render(&outcome, format);
    match &args.output {
        Some(path) => crate::atomic::write_bytes(path, rendered.as_bytes())?,
        None => print_stdout(&rendered)?,
    }
    Ok(if outcome.passed() { Outcome::Pass } else { Outcome::ParityBroken })
}

/// `parity replay`: run our implementation on a report's components.
fn replay(args: flags::ReplayArgs) -> Result<Outcome> {
    let implementation = match args.implementation {
        ImplArg::Fast => Implementation::Fast,
        ImplArg::Reference => Implementation::Reference,
        ImplArg::ReferenceF64 => Implementation::ReferenceWide,
    };
    let opts = ReplayOptions { implementation, select: args.select, allow_outside_paths: args.allow_outside_paths, progress: true };
    let report = replay::replay(&args.report, &args.out, &opts)?;
    print_stdout(&format!(
        "replayed {} tensor(s) with the {} implementation → {} ({})\n",
        report.tensors.len(),
        implementation.name(),
        args.out.display(),
        report.stage_bundle
    ))?;
    Ok(Outcome::Pass)
}

/// `parity gate`: the golden cases, as CI runs them.
fn gate(args: flags::GateArgs) -> Result<Outcome> {
    let outcome = crate::golden::gate(&args.dir, &args.case)?;
    print_stdout(&outcome.render())?;
    Ok(if outcome.passed() { Outcome::Pass } else { Outcome::ParityBroken })
}

/// `parity ops`: the catalog.
fn ops(args: flags::OpsArgs) -> Result<Outcome> {
    let text = if args.json { crate::ops::catalog::to_json() } else { crate::ops::catalog::to_text() };
    print_stdout(&text)?;
    Ok(Outcome::Pass)
}

/// Print to stdout; a closed pipe (`parity check … | head`) ends quietly.
fn print_stdout(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::Usage(format!("cannot write to standard output: {e}"))),
    }
}
