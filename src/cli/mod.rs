//! The command line: parse flags, call the library, print, map to an outcome.

pub mod flags;

use clap::Parser;

use flags::{Cli, Command};
use parity::check::{CheckOptions, DefaultTolerance, Modes};
use parity::error::{Error, Result};
use parity::diff::{DiffOptions, Limit};
use parity::replay::ReplayOptions;
use std::io::Write;

/// How a run that could be made ended: the gates held, or parity is broken.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    ParityBroken,
}

impl Outcome {
    fn of(passed: bool) -> Outcome {
        if passed {
            Outcome::Pass
        } else {
            Outcome::ParityBroken
        }
    }
}

/// The top-level entry point: everything `main` does besides exiting.
pub fn try_main() -> Result<Outcome> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are answers, not errors.
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error is one line like every other error (clap's own
        // rendering adds a usage block and a hint on further lines).
        Err(e) => {
            let text = e.render().to_string();
            let mut lines = text.lines();
            let mut first = lines.next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_string();
            // "the following required arguments were not provided:" names
            // them on the lines below: keep them on the one line.
            if first.ends_with(':') {
                let named: Vec<&str> = lines.take_while(|l| l.starts_with(' ')).map(str::trim).collect();
                first = format!("{first} {}", named.join(", "));
            }
            let first = first.as_str();
            let tips: Vec<&str> = text.lines().map(str::trim).filter(|l| l.starts_with("tip:")).collect();
            let line = std::iter::once(first).chain(tips).collect::<Vec<_>>().join("; ");
            return Err(Error::Usage(format!("{line} (see --help)")));
        }
    };
    // A PARITY_SIMD path this CPU lacks is refused before any work (doctor reports it).
    if !matches!(cli.command, Command::Doctor) {
        parity::compare::metrics::simd_choice().map_err(Error::Usage)?;
    }
    match cli.command {
        Command::Check(args) => check(args),
        Command::Replay(args) => replay(args),
        Command::Gate(args) => gate(args),
        Command::Diff(args) => diff(args),
        Command::MergeResults(args) => merge_results(args),
        Command::Apply(args) => apply(args),
        Command::Inspect(args) => inspect(args),
        Command::Ops(args) => ops(args),
        Command::Doctor => doctor(),
    }
}

/// `parity doctor`: the CPU's SIMD features and the path in use.
fn doctor() -> Result<Outcome> {
    print_stdout(&parity::compare::metrics::simd_report())?;
    parity::compare::metrics::simd_choice().map_err(Error::Usage)?;
    Ok(Outcome::Pass)
}

/// `parity inspect`: one checkpoint, its statistics and checks.
fn inspect(args: flags::InspectArgs) -> Result<Outcome> {
    use parity::render::Format;
    if matches!(args.format, Format::Junit | Format::Html) {
        return Err(Error::Usage(format!("parity inspect --format {}: inspect writes text, json or markdown", args.format.name())));
    }
    if args.headers && args.check.is_some() {
        return Err(Error::Usage(
            "parity inspect --headers --check: --headers reads no tensor data and every check needs it (drop one of the two)".into(),
        ));
    }
    if let Some(out) = &args.output.file {
        let mut inputs = vec![(args.path.clone(), "the checkpoint being inspected")];
        inputs.extend(report_files(&args.path));
        refuse_inputs(out, &inputs, "the result")?;
    }
    let opts = parity::inspect::InspectOptions {
        select: args.select.patterns,
        layers: args.layers.range,
        headers_only: args.headers,
        checks: args.check.unwrap_or_default(),
        progress: true,
    };
    let outcome = parity::inspect::inspect(&args.path, &opts)?;
    emit(&parity::render::inspect::render(&outcome, args.format), args.output.file.as_deref())?;
    Ok(Outcome::of(outcome.failures.is_empty()))
}

/// `parity apply`: a surgery plan over a checkpoint.
fn apply(args: flags::ApplyArgs) -> Result<Outcome> {
    // apply runs independent actions side by side on every core; the GEMM's
    // own threads on top of that only contend (measured on the SVF-all plan,
    // 2 cores: 0.46–0.61 s with them, 0.38–0.43 s without). matrixmultiply
    // reads this once, at its first product; its results are the same bits
    // at any thread count (it never splits the k dimension). Set here, while
    // the process has one thread, unless the user chose a count.
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        // SAFETY (std: set_var must not race other threads' environment
        // reads): no thread has been started yet in this process.
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    let opts = parity::apply::ApplyOptions {
        out: args.out,
        implementation: args.implementation,
        dry_run: args.dry_run,
        force: args.force,
        save_stages: args.save_stages,
        stages: match args.stages {
            None | Some(parity::select::StageSelection::All) => Vec::new(),
            Some(parity::select::StageSelection::Named(n)) => n,
        },
        stage_layers: args.layers,
        allow_outside_paths: args.outside.allowed,
        progress: true,
    };
    let outcome = parity::apply::apply(&args.plan, &opts)?;
    print_stdout(&parity::render::apply::text(&outcome))?;
    Ok(Outcome::of(outcome.failure.is_none()))
}

/// `parity diff`: two checkpoints, tensor by tensor.
fn diff(args: flags::DiffArgs) -> Result<Outcome> {
    let limit = match allclose(&args.allclose)? {
        None => Limit::Exact,
        Some((atol, rtol)) => Limit::AllClose { atol: atol.unwrap_or(0.0), rtol: rtol.unwrap_or(0.0) },
    };
    let profile = match &args.tolerances {
        Some(path) => {
            let p = parity::ops::builtin_profile().merge_file(path)?;
            if !p.has_tensor_rules() {
                return Err(Error::json(path, "no \"tensors\" section: parity diff judges whole tensors by glob (\"tensors\": {\"GLOB\": {\"max_abs\": …}})"));
            }
            Some(p)
        }
        None => None,
    };
    // The largest divergences are a JSON list; no other format shows them,
    // so asking for them elsewhere would be silently ignored.
    if args.top_diffs > 0 && args.format != parity::render::Format::Json {
        return Err(Error::Usage(format!(
            "parity diff --top-diffs {}: the largest divergences are listed with --format json only (not {})",
            args.top_diffs,
            args.format.name()
        )));
    }
    if let Some(out) = &args.output.file {
        let mut inputs = vec![(args.left.clone(), "the left checkpoint"), (args.right.clone(), "the right checkpoint")];
        inputs.extend(args.tolerances.clone().map(|t| (t, "the tolerance profile")));
        inputs.extend(args.map_file.clone().map(|t| (t, "the name-map file")));
        refuse_inputs(out, &inputs, "the result")?;
    }
    let name_map = match (&args.map_preset, &args.map_file) {
        (Some(p), _) => Some(parity::diff::name_map::MapFile::preset(p)?),
        (None, Some(f)) => Some(parity::diff::name_map::MapFile::load(f)?),
        (None, None) => None,
    };
    let opts = DiffOptions {
        select: args.select.patterns,
        layers: args.layers.range,
        maps: args.map.maps,
        name_map,
        quantization_margin: profile.as_ref().and_then(|p| p.quantization_margin()),
        limit,
        profile,
        partition: args.partition,
        top_diffs: args.top_diffs,
        progress: true,
        plots: args.format == parity::render::Format::Html,
    };
    let outcome = parity::diff::diff(&args.left, &args.right, &opts)?;
    emit(&parity::render::diff::render(&outcome, args.format), args.output.file.as_deref())?;
    Ok(Outcome::of(outcome.passed()))
}

/// `--atol/--rtol`, refused unless numbers ≥ 0 (None when neither is given).
fn allclose(f: &flags::AllcloseFlags) -> Result<Option<(Option<f64>, Option<f64>)>> {
    if f.atol.is_none() && f.rtol.is_none() {
        return Ok(None);
    }
    let (atol, rtol) = (f.atol.unwrap_or(0.0), f.rtol.unwrap_or(0.0));
    // Also refuses NaN: it compares false.
    if !(atol >= 0.0 && rtol >= 0.0) {
        return Err(Error::Usage(format!("--atol {atol} --rtol {rtol}: both must be numbers ≥ 0")));
    }
    Ok(Some((f.atol, f.rtol)))
}

/// `parity merge-results`: the partitions of one diff, combined.
fn merge_results(args: flags::MergeArgs) -> Result<Outcome> {
    if let Some(out) = &args.output.file {
        let inputs: Vec<_> = args.results.iter().map(|r| (r.clone(), "a partition's result")).collect();
        refuse_inputs(out, &inputs, "the merged result")?;
    }
    let outcome = parity::diff::merge::merge(&args.results)?;
    emit(&parity::render::diff::render(&outcome, args.format), args.output.file.as_deref())?;
    Ok(Outcome::of(outcome.passed()))
}

/// The files a report names (its stage bundle, its components), each with
/// what it is, when `path` is a readable report: files a run reads besides
/// the report itself. Nothing when it is not one (the run then says why).
fn report_files(path: &std::path::Path) -> Vec<(std::path::PathBuf, &'static str)> {
    let Ok(loaded) = parity::format::report::LoadedReport::load(path) else { return Vec::new() };
    let mut files = Vec::new();
    if let Ok(b) = loaded.stage_bundle_path(true) {
        files.push((b, "a report's stage bundle"));
    }
    if let Ok(c) = loaded.components_path(true) {
        files.push((c, "a report's components"));
    }
    files
}

/// Whether two output paths land on the same file (links followed, the
/// directory compared by identity).
fn same_destination(a: &std::path::Path, b: &std::path::Path) -> bool {
    let key = |p: &std::path::Path| -> Option<(std::path::PathBuf, std::ffi::OsString)> {
        let d = parity::format::atomic::resolve(p).ok()?;
        let path = d.path();
        let dir = std::fs::canonicalize(parity::format::atomic::dir_of(path)).ok()?;
        Some((dir, path.file_name()?.to_os_string()))
    };
    matches!((key(a), key(b)), (Some(x), Some(y)) if x == y)
}

/// Refuse an output that would land on one of the run's inputs, before any
/// work is done (see `atomic::refuse_input`).
fn refuse_inputs(output: &std::path::Path, inputs: &[(std::path::PathBuf, &'static str)], written: &str) -> Result<()> {
    let inputs: Vec<(&std::path::Path, &str)> = inputs.iter().map(|(p, w)| (p.as_path(), *w)).collect();
    parity::format::atomic::refuse_input(output, &inputs, written)
}

/// Write a rendered result to `--output` (atomically) or standard output.
fn emit(rendered: &str, output: Option<&std::path::Path>) -> Result<()> {
    match output {
        Some(path) => parity::format::atomic::write_bytes(path, rendered.as_bytes()),
        None => print_stdout(rendered),
    }
}

/// `parity check`: compare two reports and decide by the chosen modes.
fn check(args: flags::CheckArgs) -> Result<Outcome> {
    let profile = match &args.tolerances {
        Some(path) => parity::ops::builtin_profile().merge_file(path)?,
        None => parity::ops::builtin_profile(),
    };
    let (atol, rtol) = allclose(&args.allclose)?.unwrap_or_default();
    let default_tolerance = DefaultTolerance { atol, rtol, torch_dtype_defaults: args.dtype_defaults == Some(flags::DtypeDefaults::Torch) };
    // Not `> 1.0` alone: NaN must be refused too.
    if let Some(f) = args.min_top1.filter(|f| !(0.0..=1.0).contains(f)) {
        return Err(Error::Usage(format!("--min-top1 {f}: must be a share of positions in [0, 1]")));
    }
    if let Some(k) = args.max_kl.filter(|k| !(*k >= 0.0)) {
        return Err(Error::Usage(format!("--max-kl {k}: must be a number of nats ≥ 0")));
    }
    if !(args.onset_factor > 1.0 && args.onset_factor.is_finite()) {
        return Err(Error::Usage(format!("--onset-factor {}: must be a number > 1 (a stage is the onset when its relative error exceeds F × the typical error before it)", args.onset_factor)));
    }
    let opts = CheckOptions {
        modes: Modes {
            // A tolerance given is a tolerance enforced.
            strict_stage_tolerances: args.strict_stage_tolerances || default_tolerance.is_set(),
            strict_hash: args.strict_hash,
            strict_historical_hash: args.strict_historical_hash,
        },
        profile,
        select: args.select.patterns,
        stages: args.stages,
        top_diffs: args.top_diffs,
        allow_outside_paths: args.outside.allowed,
        progress: true,
        verify_hashes: args.verify_hashes,
        explain: true,
        plots: args.format == parity::render::Format::Html,
        plot_stages: args
            .plot_stages
            .iter()
            .map(|g| glob::Pattern::new(g).map_err(|e| Error::Usage(format!("--plot-stages '{g}': not a glob: {e}"))))
            .collect::<Result<Vec<_>>>()?,
        default_tolerance,
        map: args.map.maps,
        onset_factor: args.onset_factor,
        fail_on_onset: args.fail_on_onset,
        logits: args
            .logits
            .iter()
            .map(|g| glob::Pattern::new(g).map_err(|e| Error::Usage(format!("--logits '{g}': not a glob: {e}"))))
            .collect::<Result<Vec<_>>>()?,
        logit_limits: parity::check::LogitLimits { min_top1: args.min_top1, max_kl: args.max_kl },
    };
    if !args.plot_stages.is_empty() && args.format != parity::render::Format::Html {
        return Err(Error::Usage("--plot-stages: plots are drawn only with --format html".into()));
    }
    {
        let mut inputs = vec![(args.left.clone(), "the left report"), (args.right.clone(), "the right report")];
        inputs.extend(report_files(&args.left));
        inputs.extend(report_files(&args.right));
        inputs.extend(args.tolerances.clone().map(|t| (t, "the tolerance profile")));
        if let Some(out) = &args.output.file {
            refuse_inputs(out, &inputs, "the result")?;
        }
        if let Some(s) = &args.suggest_tolerances {
            refuse_inputs(s, &inputs, "the suggested tolerances")?;
            if args.output.file.as_deref().is_some_and(|out| same_destination(s, out)) {
                return Err(Error::Usage(format!("{}: is both --output and --suggest-tolerances: one would overwrite the other", s.display())));
            }
        }
    }
    let suggest = parity::check::suggest::SuggestOptions { margin: args.tolerance_margin, allow_looser: args.allow_looser };
    if args.suggest_tolerances.is_some() {
        // Refuse a bad margin before the comparison, not after it.
        parity::check::suggest::validate(&suggest)?;
    }
    let outcome = parity::check::check(&args.left, &args.right, &opts)?;
    if let Some(path) = &args.suggest_tolerances {
        let s = parity::check::suggest::suggest(&outcome, &parity::ops::builtin_profile(), &suggest)?;
        parity::format::atomic::write_bytes(path, s.json.as_bytes())?;
        for note in &s.notes {
            eprintln!("suggest-tolerances: {note}");
        }
    }
    let listing = if args.verbose { parity::render::Listing::Every } else { parity::render::Listing::Auto };
    let mut rendered = parity::render::render_listing(&outcome, args.format, listing);
    let mut passed = outcome.passed();
    if args.noise_floor {
        let floor = parity::check::noise_floor::noise_floor(&args.left, &args.right, &opts)?;
        rendered = parity::render::noise_floor::with_check(rendered, &floor, passed, args.format);
        passed &= floor.passed();
    }
    emit(&rendered, args.output.file.as_deref())?;
    Ok(Outcome::of(passed))
}

/// `parity replay`: run our implementation on a report's components.
fn replay(args: flags::ReplayArgs) -> Result<Outcome> {
    let opts = ReplayOptions {
        implementation: args.implementation,
        select: args.select.patterns,
        allow_outside_paths: args.outside.allowed,
        progress: true,
    };
    let report = parity::replay::replay(&args.report, &args.out, &opts)?;
    print_stdout(&format!(
        "replayed {} tensor(s) with the {} implementation → {} ({})\n",
        report.tensors.len(),
        args.implementation.name(),
        args.out.display(),
        report.stage_bundle
    ))?;
    Ok(Outcome::Pass)
}

/// `parity gate`: the golden cases, as CI runs them.
fn gate(args: flags::GateArgs) -> Result<Outcome> {
    let outcome = parity::golden::gate(&args.dir, &args.case)?;
    print_stdout(&parity::render::gate::render(&outcome))?;
    Ok(Outcome::of(outcome.passed()))
}

/// `parity ops`: the catalog.
fn ops(args: flags::OpsArgs) -> Result<Outcome> {
    let text = if args.json { parity::ops::catalog::to_json() } else { parity::ops::catalog::to_text() };
    print_stdout(&text)?;
    Ok(Outcome::Pass)
}

/// Print to stdout. A closed pipe (`parity check … | head`) ends the output
/// quietly, but never the verdict: the caller still returns the outcome, so
/// the exit code is the gate's even when nobody reads the rest.
fn print_stdout(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io(std::path::Path::new("<standard output>"), e)),
    }
}
