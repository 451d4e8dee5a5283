//! Command-line flags, apart from the work they configure. Each flag is
//! parsed once, into the library's own type (`ValueEnum` on `Format` and
//! `Implementation`, `FromStr` of `StageSelection`).

use clap::{Args, Parser, Subcommand};
use parity::diff::pairing::{NameMap, Partition};
use parity::select::{LayerRange, StageSelection};
use parity::inspect::Checks;
use parity::ops::Implementation;
use parity::render::Format;
use std::path::PathBuf;
use std::str::FromStr;

/// What each exit code means, per command: 0 and 2 are the same everywhere,
/// 1 is what that command calls a failure.
macro_rules! exit_codes {
    ($zero:literal, $one:literal) => {
        concat!(
            "Exit codes:\n  0  ",
            $zero,
            "\n  1  ",
            $one,
            "\n  2  the run could not be made: usage or setup error (a file missing or\n     malformed, a required stage missing, the two sides describing different things)"
        )
    };
}

const EXIT_CODES: &str = exit_codes!("every enabled gate holds", "a gate failed: parity is broken");
const DIFF_EXIT_CODES: &str = exit_codes!(
    "every pair is identical or within its limit",
    "a pair differs, a shape or dtype does not match, or a tensor is on one side only"
);
const INSPECT_EXIT_CODES: &str = exit_codes!("every --check holds (always, without --check)", "a --check failed (the failing tensors are listed)");
const APPLY_EXIT_CODES: &str = exit_codes!(
    "the plan ran (or --dry-run resolved) and every assert and expectation held",
    "an assert or expectation failed (its step is named; nothing after it ran)"
);

#[derive(Parser, Debug)]
#[command(
    name = "parity",
    version,
    about = "Prove a port of an ML tensor pipeline is numerically right, stage by stage.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compare two reports stage by stage (LEFT = baseline, RIGHT = candidate).
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
    /// Run parity's own implementation on the components a report names.
    #[command(after_help = EXIT_CODES)]
    Replay(ReplayArgs),
    /// Check every golden case: integrity, replay of both implementations, verdicts.
    #[command(after_help = EXIT_CODES)]
    Gate(GateArgs),
    /// Compare two checkpoints tensor by tensor (safetensors file, HF sharded directory, shards, .npy/.npz, PyTorch .pt/.bin).
    #[command(after_help = DIFF_EXIT_CODES)]
    Diff(DiffArgs),
    /// Combine the JSON results of every `diff --partition K/N` job into the unpartitioned result.
    #[command(name = "merge-results", after_help = DIFF_EXIT_CODES)]
    MergeResults(MergeArgs),
    /// Run a surgery plan (parity.plan.v1, JSON or YAML) over a checkpoint; write the model and a manifest.
    #[command(after_help = APPLY_EXIT_CODES)]
    Apply(ApplyArgs),
    /// What is in one checkpoint or stage bundle, and is it sane (statistics, checks).
    #[command(after_help = INSPECT_EXIT_CODES)]
    Inspect(InspectArgs),
    /// List every operation with its inputs, parameters, stages and default tolerances.
    Ops(OpsArgs),
    /// This CPU's SIMD features and the kernel path in use, and why (detected, or PARITY_SIMD=avx512|avx2|portable).
    Doctor,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A checkpoint (any layout `diff` reads), a stage bundle, or a report (its bundle is inspected).
    pub path: PathBuf,
    /// Names, dtypes, shapes, offsets and files only: no tensor data is read.
    #[arg(long)]
    pub headers: bool,
    /// Checks that set exit 1 when they fail: finite, nonzero, fits=F16|BF16|F8_E4M3|F8_E5M2, unique.
    #[arg(long, value_name = "LIST", value_parser = Checks::from_str)]
    pub check: Option<Checks>,
    #[command(flatten)]
    pub select: SelectFlag,
    #[command(flatten)]
    pub layers: LayersFlag,
    /// text, json (parity.inspect.v1) or markdown.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub output: OutputFlag,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The plan (.json, .yaml or .yml).
    pub plan: PathBuf,
    /// The output directory (overrides the plan's output.path).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Which implementation runs the catalog operations.
    #[arg(long = "impl", value_enum, default_value_t = Implementation::Fast)]
    pub implementation: Implementation,
    /// Resolve every target, input, parameter and expectation from headers; read no weights, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rewrite everything, even work an earlier run's manifest records (or that no longer verifies).
    #[arg(long)]
    pub force: bool,
    /// Also write a stage bundle and a parity.report.v1: one report tensor per applied (step, tensor).
    #[arg(long, value_name = "REPORT.json")]
    pub save_stages: Option<PathBuf>,
    /// With --save-stages: `all` (the default), or the stages to keep; each
    /// must be a stage of some step's operation.
    #[arg(long, value_parser = StageSelection::from_str, requires = "save_stages")]
    pub stages: Option<StageSelection>,
    /// With --save-stages: only tensors of layers A..B (END exclusive).
    #[arg(long, value_name = "A..B", value_parser = LayerRange::from_str, requires = "save_stages")]
    pub layers: Option<LayerRange>,
    #[command(flatten)]
    pub outside: OutsidePathsFlag,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The baseline checkpoint: a .safetensors file, a directory with
    /// model.safetensors.index.json, a directory of shards, a .npy/.npz, a
    /// PyTorch .pt/.bin (read without running its pickle) or a directory
    /// with pytorch_model.bin.index.json.
    pub left: PathBuf,
    /// The candidate checkpoint, in any of the same layouts.
    pub right: PathBuf,
    /// A tolerance profile (parity.tolerances.v1) whose "tensors" section maps
    /// globs to limits; the first matching glob applies.
    #[arg(long, value_name = "FILE")]
    pub tolerances: Option<PathBuf>,
    #[command(flatten)]
    pub allclose: AllcloseFlags,
    #[command(flatten)]
    pub select: SelectFlag,
    #[command(flatten)]
    pub layers: LayersFlag,
    #[command(flatten)]
    pub map: MapFlag,
    /// Rename RIGHT's tensors by a built-in name map before pairing, and put back the rows a
    /// converter permuted: `llama` (GGUF names from llama.cpp's convert_hf_to_gguf → Hugging Face
    /// Llama names; Q/K rows from RoPE order, head counts from the GGUF metadata).
    #[arg(long, value_name = "NAME", conflicts_with = "map_file")]
    pub map_preset: Option<String>,
    /// A name-map file (parity.name_map.v1: a copy of presets/llama.json, edited) used as --map-preset is.
    #[arg(long, value_name = "FILE")]
    pub map_file: Option<PathBuf>,
    /// Compare only the K-th of N byte-balanced parts of the pairs (for a CI matrix).
    #[arg(long, value_name = "K/N", value_parser = Partition::from_str)]
    pub partition: Option<Partition>,
    /// List the N largest divergences per differing tensor (with --format json only).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub top_diffs: usize,
    /// Who reads the result: text, json (parity.diff.v1), junit (one testcase per tensor), markdown,
    /// html (one self-contained page with plots of every differing tensor).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub output: OutputFlag,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The JSON output of every partition (`parity diff --partition K/N --format json`).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub output: OutputFlag,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The baseline report (e.g. the Python side).
    pub left: PathBuf,
    /// The candidate report (e.g. the port).
    pub right: PathBuf,
    /// Fail if any required stage of a selected tensor fails its gate (or nothing was checked).
    #[arg(long)]
    pub strict_stage_tolerances: bool,
    /// Fail unless every selected tensor's final_sha256 is byte-equal between the sides.
    #[arg(long, visible_alias = "strict-current-python")]
    pub strict_hash: bool,
    /// Fail unless both sides' final hashes equal the historical hash LEFT records.
    #[arg(long, visible_alias = "strict-reference")]
    pub strict_historical_hash: bool,
    /// A tolerance profile (parity.tolerances.v1 JSON), merged over the built-in one.
    #[arg(long, value_name = "FILE")]
    pub tolerances: Option<PathBuf>,
    #[command(flatten)]
    pub allclose: AllcloseFlags,
    /// Per-dtype limits for the stages no tolerance profile names (with --atol/--rtol,
    /// those win); gated as with --strict-stage-tolerances.
    #[arg(long, value_enum, value_name = "WHOSE")]
    pub dtype_defaults: Option<DtypeDefaults>,
    #[command(flatten)]
    pub map: MapFlag,
    /// The onset is the first stage whose relative error ‖right − left‖/‖left‖ exceeds F × the
    /// median of the stages before it (and F × its dtype's unit roundoff); F > 1.
    #[arg(long, value_name = "F", default_value_t = parity::check::DEFAULT_ONSET_FACTOR)]
    pub onset_factor: f64,
    /// Exit 1 when an onset is found, even if every gate passes (without it, a warning).
    #[arg(long)]
    pub fail_on_onset: bool,
    /// Token metrics for these stages (a glob over TENSOR or TENSOR.STAGE, comma-separated):
    /// per position over the last axis, top-1 agreement, top-5 overlap, and the KL divergence of
    /// softmax(right) from softmax(left); gated by a profile's min_top1 and max_kl.
    #[arg(long, value_name = "GLOB,…", value_delimiter = ',')]
    pub logits: Vec<String>,
    /// With --logits: the share of positions (0..1) whose top-1 tokens must agree (over a
    /// profile's min_top1).
    #[arg(long, value_name = "F", requires = "logits")]
    pub min_top1: Option<f64>,
    /// With --logits: the largest mean KL divergence in nats of softmax(right) from
    /// softmax(left) (over a profile's max_kl).
    #[arg(long, value_name = "NATS", requires = "logits")]
    pub max_kl: Option<f64>,
    /// Text and Markdown: list every tensor and every reason (beyond 32 tensors, passing
    /// ones are otherwise counted, and reasons that repeat are grouped).
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub select: SelectFlag,
    /// `all`, or a comma-separated list of stages to compare.
    #[arg(long, default_value = "all", value_parser = StageSelection::from_str)]
    pub stages: StageSelection,
    /// Show the N largest divergences per stage.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub top_diffs: usize,
    /// Who reads the result: text (terminals), json (scripts, parity.check.v1),
    /// junit (CI test viewers, one testcase per tensor), markdown (CI step summaries),
    /// html (one self-contained page: the verdict table, plots of each failing stage).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub output: OutputFlag,
    #[command(flatten)]
    pub outside: OutsidePathsFlag,
    /// Re-hash every stage and refuse a bundle its report does not describe
    /// (by default only the final stage, whose hash the hash modes use, is re-hashed).
    #[arg(long)]
    pub verify_hashes: bool,
    /// Write a tolerance profile (parity.tolerances.v1) that what was observed
    /// passes: per stage, the largest max_abs, mean_abs and ULP distance ×
    /// the margin, rounded up to one significant digit, each with a `why`.
    #[arg(long, value_name = "FILE")]
    pub suggest_tolerances: Option<PathBuf>,
    /// With --suggest-tolerances: the factor observed values are multiplied by (≥ 1).
    #[arg(long, value_name = "X", default_value_t = 2.0, requires = "suggest_tolerances")]
    pub tolerance_margin: f64,
    /// With --suggest-tolerances: write limits looser than the built-in
    /// profile's (without it they are kept, and each is named on stderr).
    #[arg(long, requires = "suggest_tolerances")]
    pub allow_looser: bool,
    /// Also replay the f64 reference on LEFT's inputs (its components) and
    /// gate each stage by RMS(RIGHT − ref) ≤ m · RMS(LEFT − ref) + ε: "no
    /// worse than the code it is checked against" (m, ε: the profile's
    /// noise_floor_m and noise_floor_eps, defaults 2 and 0).
    #[arg(long)]
    pub noise_floor: bool,
    /// With --format html: also plot the stages whose names match one of
    /// these globs (comma-separated, e.g. 'final_*'), passing ones included;
    /// failing stages are always plotted.
    #[arg(long, value_name = "GLOB,…", value_delimiter = ',')]
    pub plot_stages: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The report whose components to replay.
    pub report: PathBuf,
    /// Where to write the new report (its bundle goes next to it).
    #[arg(long, value_name = "OUT.json")]
    pub out: PathBuf,
    /// Which implementation replays.
    #[arg(long = "impl", value_enum, default_value_t = Implementation::Fast)]
    pub implementation: Implementation,
    #[command(flatten)]
    pub select: SelectFlag,
    #[command(flatten)]
    pub outside: OutsidePathsFlag,
}

#[derive(Args, Debug)]
pub struct GateArgs {
    /// The golden directory.
    #[arg(default_value = "golden")]
    pub dir: PathBuf,
    /// Only cases whose name contains PAT; repeatable.
    #[arg(long, value_name = "PAT")]
    pub case: Vec<String>,
}

#[derive(Args, Debug)]
pub struct OpsArgs {
    /// Print as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

// Flags several commands share, each defined once and flattened into the
// commands that take it (so its help text is the same everywhere).

/// `--atol X --rtol Y`: torch.testing's per-element rule.
#[derive(Args, Debug)]
pub struct AllcloseFlags {
    /// Limits as torch.testing.assert_close: every element |right − left| ≤ atol + rtol·|left|
    /// (diff: default exact; check: for the stages no tolerance profile names, gated as with
    /// --strict-stage-tolerances). A missing one of the two is 0.
    #[arg(long, value_name = "X")]
    pub atol: Option<f64>,
    /// See --atol.
    #[arg(long, value_name = "Y")]
    pub rtol: Option<f64>,
}

/// `--map REGEX=REPLACEMENT`.
#[derive(Args, Debug)]
pub struct MapFlag {
    /// Rename RIGHT's tensors before pairing (regex, applied in order; $1 refers to a group); repeatable.
    #[arg(long = "map", id = "map", value_name = "REGEX=REPLACEMENT", value_parser = NameMap::from_str)]
    pub maps: Vec<NameMap>,
}

/// `--dtype-defaults`: whose per-dtype tolerances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DtypeDefaults {
    /// torch.testing.assert_close's: f64 1e-7/1e-7, f32 1.3e-6/1e-5, f16 1e-3/1e-5,
    /// bf16 1.6e-2/1e-5 (rtol/atol); integers exact.
    Torch,
}

/// `--select PAT`.
#[derive(Args, Debug)]
pub struct SelectFlag {
    /// Only tensors whose name contains PAT (or matches it as a glob); repeatable.
    #[arg(long = "select", id = "select", value_name = "PAT")]
    pub patterns: Vec<String>,
}

/// `--layers A..B` as a filter on the tensors compared or inspected.
#[derive(Args, Debug)]
pub struct LayersFlag {
    /// Only layers A to B (END exclusive); tensors with no layer number are kept.
    #[arg(long = "layers", id = "layers", value_name = "A..B", value_parser = LayerRange::from_str)]
    pub range: Option<LayerRange>,
}

/// `--output FILE`.
#[derive(Args, Debug)]
pub struct OutputFlag {
    /// Write the result here instead of standard output: replaced atomically (a
    /// symbolic link is followed; a device or FIFO is written through). Never an input.
    #[arg(long = "output", id = "output", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `--allow-outside-paths`.
#[derive(Args, Debug)]
pub struct OutsidePathsFlag {
    /// Allow paths a report or plan names that are absolute or leave its directory.
    #[arg(long = "allow-outside-paths", id = "allow_outside_paths")]
    pub allowed: bool,
}
