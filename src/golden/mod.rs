//! `parity gate`: the golden stage bundles, checked as CI checks them.
//!
//! A golden directory holds `MANIFEST.sha256` (every file's sha256) and one
//! folder per case, each with the oracle's components and two reports:
//! `oracle_f32.json` (a torch-like f32 pipeline) and `oracle_f64.json` (the
//! same computation in f64, F32 stages stored as F64). For every case the gate
//!
//! 1. verifies the manifest (a changed, missing or unlisted file is a setup
//!    error: the evidence itself is in doubt);
//! 2. replays the **fast** implementation and checks it against the f32
//!    oracle with the built-in profile, `--strict-stage-tolerances`;
//! 3. replays the **reference** with its stages kept in f64 and checks it
//!    against the f64 oracle with [`reference_profile`], far tighter than any
//!    f32 tolerance;
//!
//! and prints a matrix of case × implementation × verdict.

use crate::check::{self, CheckOptions, Modes};
use crate::select::StageSelection;
use crate::compare::{Profile, Tolerance};
use crate::error::{Error, Result};
use crate::ops::{Implementation, StageDtype};
use crate::replay::{self, ReplayOptions};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub mod diff_case;
pub mod plan_case;

pub const MANIFEST: &str = "MANIFEST.sha256";

/// Limits for the f64 reference against the f64 oracle. Both compute the same
/// formulas in f64 from the same f32 components, differing only in summation
/// order (nalgebra vs numpy/BLAS): for k-term dot products of O(1) values
/// that is ≲ k·2⁻⁵³ ≈ 4e-14 at k = 384. 1e-12 absolute leaves room for
/// values up to ~10 without letting an f32-sized error (≳ 1e-8) through.
/// Every other stage keeps its built-in tolerance: exact stages (copies,
/// layouts) stay bit-exact and required, and narrow outputs (bf16, fp8) are
/// derived from the f32-rounded value on both sides, so the f32 profile's
/// limits are the meaningful ones for them.
pub fn reference_profile() -> Profile {
    crate::ops::profile_mapped(|_op, stage| match stage.dtype {
        StageDtype::Fixed(crate::format::dtype::DType::F32) => Tolerance { required: stage.tolerance.required, ..Tolerance::gate(1e-12, 1e-14) },
        _ => stage.tolerance,
    })
}

/// One row of the matrix: one implementation (or one `diff` run) of one case.
pub struct GateRow {
    pub case: String,
    pub implementation: String,
    pub against: String,
    pub tensors: usize,
    pub passed: bool,
    /// The closest call, or the first failure, in one phrase.
    pub summary: String,
    /// What a failing row found, for its full report (None when it passed).
    pub failure: Option<GateFailure>,
}

/// A failing row's evidence: the disagreements with the oracle, then the
/// outcomes of the commands that ran (rendered as those commands render them).
pub struct GateFailure {
    pub problems: Vec<String>,
    pub check: Option<Box<crate::check::CheckOutcome>>,
    pub diff: Option<Box<crate::diff::outcome::DiffOutcome>>,
}

pub struct GateOutcome {
    pub dir: PathBuf,
    pub files_verified: usize,
    pub rows: Vec<GateRow>,
}

impl GateOutcome {
    pub fn passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.passed)
    }
}

/// What kind of golden case a folder holds.
enum CaseKind {
    /// `oracle_f32.json` + `oracle_f64.json`: replay both implementations.
    Operation,
    /// `diff_case.json`: `parity diff` runs with numpy's expected statuses.
    Diff,
    /// `plan_case.json`: `parity apply` against the oracle's run of the plan.
    Plan,
}

fn case_kind(dir: &Path) -> Result<CaseKind> {
    // A plan case holds an oracle_f32.json too (its stage report): look for
    // its own file first.
    if dir.join(plan_case::FILE).is_file() {
        Ok(CaseKind::Plan)
    } else if dir.join("oracle_f32.json").is_file() {
        Ok(CaseKind::Operation)
    } else if dir.join(diff_case::FILE).is_file() {
        Ok(CaseKind::Diff)
    } else {
        Err(Error::ManifestMismatch {
            path: dir.to_path_buf(),
            message: format!("a folder of the golden directory that is no case: it has none of oracle_f32.json, {}, {}", diff_case::FILE, plan_case::FILE),
        })
    }
}

/// Check every case under `dir` (only those whose name contains one of
/// `cases`, when given).
pub fn gate(dir: &Path, cases: &[String]) -> Result<GateOutcome> {
    let files_verified = verify_manifest(dir)?;
    let mut case_dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            cases.is_empty() || cases.iter().any(|c| name.contains(c.as_str()))
        })
        .collect();
    case_dirs.sort();
    if case_dirs.is_empty() {
        return Err(Error::Usage(format!("{}: no golden case (a folder with oracle_f32.json or {}) found", dir.display(), diff_case::FILE)));
    }

    let work = tempfile::tempdir().map_err(|e| Error::io(dir, e))?;
    let mut rows = Vec::new();
    for case_dir in &case_dirs {
        let case = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        match case_kind(case_dir)? {
            CaseKind::Diff => {
                rows.extend(diff_case::gate(case_dir, &case)?);
                continue;
            }
            CaseKind::Plan => {
                rows.extend(plan_case::gate(case_dir, &case, work.path())?);
                continue;
            }
            CaseKind::Operation => {}
        }
        let runs: [(Implementation, &str, Profile); 2] = [
            (Implementation::Fast, "oracle_f32.json", crate::ops::builtin_profile()),
            (Implementation::ReferenceWide, "oracle_f64.json", reference_profile()),
        ];
        for (implementation, oracle_file, profile) in runs {
            let oracle = case_dir.join(oracle_file);
            if !oracle.is_file() {
                return Err(Error::Usage(format!("{}: missing (every case needs both oracle reports)", oracle.display())));
            }
            let out = work.path().join(format!("{case}.{}.json", implementation.name()));
            let opts = ReplayOptions { implementation, select: vec![], allow_outside_paths: false, progress: false };
            replay::replay(&oracle, &out, &opts)?;
            let check = CheckOptions {
                modes: Modes { strict_stage_tolerances: true, strict_hash: false, strict_historical_hash: false },
                profile,
                select: vec![],
                stages: StageSelection::All,
                top_diffs: 3,
                verify_hashes: true,
                ..CheckOptions::default()
            };
            let outcome = check::check(&oracle, &out, &check)?;
            let against = crate::format::report::LoadedReport::load(&oracle)?.report.producer.implementation;
            let (tensors, passed, summary) = (outcome.tensor_count(), outcome.passed(), outcome.tightest_summary());
            rows.push(GateRow {
                case: case.clone(),
                implementation: implementation.name().to_string(),
                against,
                tensors,
                passed,
                summary,
                failure: (!passed).then(|| GateFailure { problems: Vec::new(), check: Some(Box::new(outcome)), diff: None }),
            });
        }
    }
    Ok(GateOutcome { dir: dir.to_path_buf(), files_verified, rows })
}

/// Verify `MANIFEST.sha256` ("<sha256>  <path>" per line, paths relative to
/// the golden directory): every listed file matches, and every file is listed.
pub fn verify_manifest(dir: &Path) -> Result<usize> {
    let manifest_path = dir.join(MANIFEST);
    let bytes = crate::format::file::read_small(&manifest_path, 64 << 20)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::json(&manifest_path, "not UTF-8 text"))?;
    let mut listed = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (hash, rel) = line.split_once("  ").ok_or_else(|| {
            Error::json(&manifest_path, format!("line {}: expected '<sha256>  <path>'", n + 1))
        })?;
        let escapes = std::path::Path::new(rel).components().any(|c| !matches!(c, std::path::Component::Normal(_)));
        if escapes {
            return Err(Error::PathEscapes {
                path: manifest_path.clone(),
                field: format!("line {}", n + 1),
                target: rel.to_string(),
                container: "manifest",
            });
        }
        let path = dir.join(rel);
        if sha256_of_golden_file(dir, rel)? != hash {
            return Err(Error::ManifestMismatch { path: path.clone(), message: format!("sha256 differs from {MANIFEST}: the golden file changed or is corrupt") });
        }
        listed.insert(rel.to_string());
    }
    for file in walk(dir)? {
        let rel = file.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
        if rel != MANIFEST && !listed.contains(&rel) {
            return Err(Error::ManifestMismatch {
                path: file.clone(),
                message: format!("not covered by {MANIFEST}: regenerate the manifest with `python3 -m parity_oracle make-golden`"),
            });
        }
    }
    Ok(listed.len())
}

/// The sha256 of a file the manifest lists, read only if it is a regular
/// file reached without a symbolic link: a link would let the manifest vouch
/// for files outside the golden directory, and a FIFO would block forever.
fn sha256_of_golden_file(dir: &Path, rel: &str) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut at = dir.to_path_buf();
    for part in Path::new(rel).components() {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::ManifestMismatch {
                path: at,
                message: "is a symbolic link: golden files must be regular files inside the golden directory".into(),
            });
        }
    }
    let (mut file, _) = crate::format::file::open_regular(&at)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(&at, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::format::tensor::hex(&h.finalize()))
}

/// Every file below `dir` (symbolic links included, never followed),
/// skipping hidden entries and Python caches.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy();
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

