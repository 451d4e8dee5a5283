//! How many cases a property test runs, and from which seed.
//!
//! CI must not pass or fail by luck: `scripts/test` (what CI runs) sets
//! `PROPTEST_RNG_SEED` to a fixed value unless one is given, and proptest
//! builds every config from it (`ProptestConfig::default()` reads it), so
//! each run draws the same cases. Exploring is the opposite: more cases from
//! a fresh seed, and every failure found kept (proptest writes it to the
//! test's `.proptest-regressions` file; keep it, and add a named test).
//!
//! ```sh
//! bash scripts/explore-proptests 20    # random seed, 20× the cases, every proptest
//! ```
//!
//! [`cases`] is each test's case count times `PARITY_PROPTEST_SCALE`
//! (default 1).

use proptest::test_runner::Config;

/// A config for `n` cases (times `PARITY_PROPTEST_SCALE`).
pub fn cases(n: u32) -> Config {
    let scale: u32 = std::env::var("PARITY_PROPTEST_SCALE").ok().and_then(|s| s.parse().ok()).filter(|&s| s >= 1).unwrap_or(1);
    Config::with_cases(n.saturating_mul(scale))
}
