//! The cast, fp8 and linear-algebra golden cases, held to more than the gate
//! (`tests/golden_gate.rs`) asks: casts reproduce ml_dtypes bit for bit (strict hash); the
//! f64 reference and the f64 oracle agree on *every* stage, required or not —
//! the narrow ones (cast outputs, fp8 codes) bit for bit, since both round the
//! same exact value once, and the SVD's vectors (nalgebra vs LAPACK's dgesdd)
//! to ~1e-14, since the cases' singular values are well separated.

use parity::check::{self, CheckOptions, CheckOutcome, Modes, StageSelection};
use parity::compare::Profile;
use parity::format::dtype::DType;
use parity::ops::StageDtype;
use parity::ops::Implementation;
use parity::replay::{self, ReplayOptions};
use std::path::{Path, PathBuf};

const CASES: [&str; 7] = [
    "cast_edge_values",
    "fp8_block_quantize_ragged",
    "fp8_block_dequantize_ragged",
    "matmul_small",
    "svd_well_separated",
    "phlora_rank3",
    "lowrank_reconstruct_with_base",
];

fn golden_dir() -> PathBuf {
    // PARITY_GOLDEN_DIR points the test at a freshly generated tree.
    std::env::var_os("PARITY_GOLDEN_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("golden"))
}

fn run(case: &str, implementation: Implementation, oracle: &str, profile: Profile, strict_hash: bool) -> CheckOutcome {
    let oracle = golden_dir().join(case).join(oracle);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join(format!("{case}.{}.json", implementation.name()));
    let opts = ReplayOptions { implementation, select: vec![], allow_outside_paths: false, progress: false };
    replay::replay(&oracle, &out, &opts).unwrap_or_else(|e| panic!("{case}: replay {}: {e}", implementation.name()));
    let check = CheckOptions {
        modes: Modes { strict_stage_tolerances: true, strict_hash, strict_historical_hash: false },
        profile,
        select: vec![],
        stages: StageSelection::All,
        top_diffs: 3,
        verify_hashes: true,
        ..CheckOptions::default()
    };
    let outcome = check::check(&oracle, &out, &check).unwrap_or_else(|e| panic!("{case}: check: {e}"));
    assert!(
        outcome.passed(),
        "{case}: {} vs {} failed\n{}",
        implementation.name(),
        oracle.display(),
        parity::render::render(&outcome, parity::render::Format::Text)
    );
    outcome
}

#[test]
fn casts_reproduce_ml_dtypes_bit_for_bit() {
    run("cast_edge_values", Implementation::Fast, "oracle_f32.json", parity::ops::builtin_profile(), true);
}

#[test]
fn f64_reference_agrees_with_the_f64_oracle_to_1e_12() {
    let mut worst: Vec<(String, f64)> = Vec::new();
    for case in CASES {
        let outcome = run(case, Implementation::ReferenceWide, "oracle_f64.json", parity::golden::reference_profile(), false);
        for t in &outcome.tensors {
            for st in &t.stages {
                // Not only the gated stages: every stage (fp8 codes, cast
                // outputs, SVD vectors) must agree, and does, bit for bit or to ~1e-15.
                let m = st.metrics.as_ref().unwrap_or_else(|| panic!("{case}/{}/{}: not compared", t.name, st.stage));
                assert!(st.passed(), "{case}/{}/{}: {:?}", t.name, st.stage, st.failures);
                assert_eq!(m.non_finite.mismatched, 0, "{case}/{}/{}", t.name, st.stage);
                let op = parity::ops::find(&t.operation).unwrap();
                if op.stage(&st.stage).unwrap().dtype != StageDtype::Fixed(DType::F32) {
                    assert_eq!(m.not_bit_equal, Some(0), "{case}/{}/{}: not bit-equal", t.name, st.stage);
                }
            }
        }
        // The bound reached, for the record (cargo test -- --nocapture).
        let (case_worst, stages) = per_stage(&outcome);
        println!("{case:<30} reference-f64 vs oracle_f64: max_abs {case_worst:.2e} ({stages})");
        worst.push((case.to_string(), case_worst));
    }
    let svd_bound = worst.iter().filter(|(c, _)| c.starts_with("svd") || c.starts_with("phlora")).map(|(_, w)| *w).fold(0.0, f64::max);
    assert!(svd_bound < 1e-13, "SVD cases agree only to {svd_bound:e}");
}

/// The largest max_abs over all stages, and per stage ("s 2.7e-15, u 4.8e-15").
fn per_stage(outcome: &CheckOutcome) -> (f64, String) {
    let mut by_stage: Vec<(String, f64)> = Vec::new();
    for st in outcome.tensors.iter().flat_map(|t| &t.stages) {
        let w = st.metrics.as_ref().map_or(0.0, |m| m.max_abs);
        match by_stage.iter_mut().find(|(s, _)| *s == st.stage) {
            Some((_, old)) => *old = old.max(w),
            None => by_stage.push((st.stage.clone(), w)),
        }
    }
    let worst = by_stage.iter().map(|(_, w)| *w).fold(0.0, f64::max);
    (worst, by_stage.iter().map(|(s, w)| format!("{s} {w:.1e}")).collect::<Vec<_>>().join(", "))
}
