//! `parity diff LEFT RIGHT`: two checkpoints, tensor by tensor (SPEC §10).
//!
//! 1. **Setup**, cheap and complete before any data is read: open both
//!    checkpoints (every header and index validated), rename RIGHT's
//!    tensors by `--map`, keep what `--select` and `--layers` choose, pair
//!    by name (two lone unnamed arrays, `a.npy` vs `b.npy`, pair as one), decide each pair's limits, and keep this job's `--partition`.
//! 2. **Comparison**: every pair through the comparer's streaming metric
//!    kernel (the one `check` uses), which also takes each side's content
//!    hash in the same pass. Pairs run in parallel; results are collected in
//!    name order, so the outcome is the same whatever the thread count.
//!
//! A pair is `identical` (same dtype, shape and bytes), `within` (values
//! within the limits), `differs`, `shape_mismatch`, or a tensor is
//! `only_left`/`only_right`. Default limits are exact: values equal after
//! decoding (so F32 vs BF16 is compared by value), NaN where NaN is.

pub mod merge;
pub mod name_map;
pub mod outcome;
pub mod pairing;
pub mod quantization;

use crate::compare::gate::limits_broken;
use crate::compare::metrics::{self, Bytes, Metrics, Stage, CHUNK};
use crate::compare::numbers;
use crate::compare::{Profile, Tolerance};
use crate::error::{Error, Result};
use crate::format::checkpoint::{Checkpoint, Located};
use crate::compare::metrics::json::num;
use crate::select::Selection;
use outcome::{DiffOutcome, Limits, Options, Side, Status, TensorDiff, Transposed, SCHEMA};
use rayon::prelude::*;
use crate::select::LayerRange;
use pairing::{NameMap, Partition};
use std::collections::BTreeMap;
use std::path::Path;

/// A transposed comparison holds RIGHT's tensor in memory, transposed; above
/// this size the layout is reported as a possible transpose without values.
pub const TRANSPOSE_LIMIT: usize = 128 << 20;

/// How tensors are judged.
#[derive(Clone, Debug, Default)]
pub enum Limit {
    /// Values equal after decoding (the default).
    #[default]
    Exact,
    /// `|right − left| ≤ atol + rtol·|left|` for every element (torch.allclose against LEFT).
    AllClose { atol: f64, rtol: f64 },
}

#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// `--select`: substrings, or globs with `*?[`; empty = all.
    pub select: Vec<String>,
    pub layers: Option<LayerRange>,
    /// Applied to RIGHT's names, in order.
    pub maps: Vec<NameMap>,
    /// `--map-preset`/`--map-file`: renames applied to RIGHT's names before
    /// `maps`, and which tensors' rows to put back from RoPE order.
    pub name_map: Option<name_map::MapFile>,
    /// For tensors no `"tensors"` rule of `profile` matches.
    pub limit: Limit,
    /// A tolerance file with a `"tensors"` section.
    pub profile: Option<Profile>,
    pub partition: Option<Partition>,
    /// The N largest divergences per differing tensor.
    pub top_diffs: usize,
    pub progress: bool,
    /// Gather the HTML page's plots of every `differs` pair.
    pub plots: bool,
    /// A quantized RIGHT is `within` when its RMS error is at most this many
    /// times the reference quantizer's (default 2): the profile's
    /// `"quantization": {"margin": m}`.
    pub quantization_margin: Option<f64>,
}

/// One pair (or one-sided tensor) as planned.
struct PairToCompare<'a> {
    name: String,
    right_name: Option<String>,
    left: Option<&'a Located>,
    right: Option<&'a Located>,
    /// RIGHT's rows were permuted for RoPE with this many heads (a name
    /// map's `unpermute_rope`): put them back before comparing.
    unpermute: Option<usize>,
}

/// The top-level entry point of `parity diff`.
pub fn diff(left_path: &Path, right_path: &Path, opts: &DiffOptions) -> Result<DiffOutcome> {
    let left = Checkpoint::open(left_path)?;
    let right = Checkpoint::open(right_path)?;

    // RIGHT's names after --map; two of them landing on one name is an error.
    let mut right_by_name: BTreeMap<String, (&str, &Located)> = BTreeMap::new();
    for (name, loc) in right.tensors() {
        let preset = opts.name_map.as_ref().map_or_else(|| name.to_string(), |f| f.rename(name));
        let mapped = opts.maps.iter().fold(preset, |n, m| m.apply(&n));
        if let Some((other, _)) = right_by_name.insert(mapped.clone(), (name, loc)) {
            return Err(Error::tensor(
                &right.path,
                name,
                None,
                format!("--map renames both '{other}' and '{name}' to '{mapped}'"),
            ));
        }
    }
    // Two lone arrays whose names are only their file names (a.npy vs
    // f16.npy) are the pair the user asked about: pair them under LEFT's
    // name, RIGHT's own name recorded as a --map rename is.
    if let (Some(l), Some(_)) = (left.single_unnamed(), right.single_unnamed()) {
        let (_, only) = std::mem::take(&mut right_by_name).into_iter().next().expect("RIGHT holds one array");
        right_by_name.insert(l.to_string(), only);
    }
    let mut names: Vec<&str> = left.names().collect();
    names.extend(right_by_name.keys().map(String::as_str).filter(|n| left.get(n).is_none()));
    names.sort_unstable();
    let names: Vec<&str> = names.into_iter().filter(|n| opts.layers.is_none_or(|l| l.keeps(n))).collect();
    if names.is_empty() && opts.layers.is_some() {
        return Err(Error::Usage(format!("--layers {}: no tensor in that range", opts.layers.unwrap())));
    }
    let chosen = Selection::new(&opts.select)?.apply(&names, |n: &&str| *n)?;

    let mut planned: Vec<PairToCompare> = chosen
        .into_iter()
        .map(|&name| {
            let r = right_by_name.get(name);
            let unpermute = match (r, &opts.name_map) {
                (Some((rn, loc)), Some(f)) => f.heads_key(name).map(|key| rope_heads(&right, rn, loc, key, f)).transpose()?,
                _ => None,
            };
            Ok(PairToCompare {
                name: name.to_string(),
                right_name: r.filter(|(rn, _)| *rn != name).map(|(rn, _)| rn.to_string()),
                left: left.get(name),
                right: r.map(|(_, loc)| *loc),
                unpermute,
            })
        })
        .collect::<Result<_>>()?;

    let options = Options {
        tolerance: match (&opts.profile, &opts.limit) {
            (Some(p), l) => format!("{} (tensors no rule matches: {})", p.origin(), limit_name(l)),
            (None, l) => limit_name(l),
        },
        select: opts.select.clone(),
        layers: opts.layers.map(|l| l.to_string()),
        map: opts.maps.iter().map(|m| m.rule.clone()).collect(),
        top_diffs: Some(opts.top_diffs),
    };
    let side = |c: &Checkpoint, p: &Path| Side {
        path: p.display().to_string(),
        layout: c.layout_name().to_string(),
        files: c.shards().len(),
        tensors: c.len(),
        bytes: c.total_bytes(),
    };
    let (left_side, right_side) = (side(&left, left_path), side(&right, right_path));
    let run = fingerprint(&left, &right, &left_side, &right_side, &options);

    if let Some(p) = opts.partition {
        let items: Vec<(&str, u64)> = planned
            .iter()
            .map(|t| (t.name.as_str(), t.left.map_or(0, |l| l.len as u64) + t.right.map_or(0, |r| r.len as u64)))
            .collect();
        let parts = pairing::assign(&items, p.n);
        let mut i = 0;
        planned.retain(|_| {
            i += 1;
            parts[i - 1] == p.k
        });
    }

    let total: u64 = planned.iter().map(|t| t.left.map_or(0, |l| l.len as u64) + t.right.map_or(0, |r| r.len as u64)).sum();
    let bar = crate::progress::bytes_bar(opts.progress, total, "diff");
    // A differing pair is explained as soon as it is found when no other
    // pair is being explained (one at a time: a decoded pair can take
    // hundreds of MiB), so the explanation overlaps the other pairs'
    // reading — on a cold disk it then costs next to nothing. Pairs found
    // while the slot was taken are explained after the pass. Either way the
    // explanation is the same: it depends on the pair alone.
    let slot = std::sync::Mutex::new(());
    let tensors: Vec<Result<(TensorDiff, bool)>> = planned
        .par_iter()
        .map(|t| {
            let mut d = compare_pair(&left, &right, t, opts)?;
            bar.inc(t.left.map_or(0, |l| l.len as u64) + t.right.map_or(0, |r| r.len as u64));
            let explained = d.status == Status::Differs && {
                match slot.try_lock() {
                    Ok(_turn) => {
                        explain_pair(&left, &right, t, &mut d, opts)?;
                        true
                    }
                    Err(_) => false,
                }
            };
            Ok((d, explained))
        })
        .collect();
    bar.finish_and_clear();
    let mut tensors = tensors.into_iter().collect::<Result<Vec<_>>>()?;
    for (t, (d, explained)) in planned.iter().zip(tensors.iter_mut()) {
        if d.status == Status::Differs && !*explained {
            explain_pair(&left, &right, t, d, opts)?;
        }
    }
    let tensors: Vec<TensorDiff> = tensors.into_iter().map(|(d, _)| d).collect();

    let mut outcome = DiffOutcome {
        schema: SCHEMA.to_string(),
        left: left_side,
        right: right_side,
        options,
        run,
        partition: opts.partition,
        tensors,
        summary: Default::default(),
        result: String::new(),
    };
    outcome.settle();
    Ok(outcome)
}

/// Name the porting bug behind a `differs` pair, when one fits, and for
/// the page gather its plots from the same read. This is the one extra pass
/// over what differs (each pair in parallel inside); a pair above the
/// explainer's element limit gets no explanation, and its plots come from a
/// streaming read.
fn explain_pair(left: &Checkpoint, right: &Checkpoint, t: &PairToCompare, d: &mut TensorDiff, opts: &DiffOptions) -> Result<()> {
    let (Some(l), Some(r)) = (t.left, t.right) else { return Ok(()) };
    let (_, tol) = limits_for(&t.name, opts);
    if let Some(heads) = t.unpermute {
        if let Some(e) = wrong_rope_heads(left, right, l, r, heads, d, opts)? {
            d.explanation = Some(e);
            return Ok(());
        }
    }
    let (lh, rh) = (left.gathered(l)?, right_held(right, r, t.unpermute)?);
    let ls = Stage { dtype: l.dtype, shape: &l.shape, bytes: bytes_of(left, l, &lh) };
    let rs = Stage { dtype: r.dtype, shape: &r.shape, bytes: bytes_of(right, r, &rh) };
    let (explanation, plots) = crate::compare::explain::examine(ls, rs, &tol, opts.plots)?;
    d.explanation = explanation.map(|e| e.json());
    d.plots = plots;
    // No porting bug fits a quantized pair that is worse than the
    // reference quantizer: that is the explanation.
    if d.explanation.is_none() && d.quantization.is_some() {
        if let Some(why) = d.failures.first() {
            d.explanation = Some(serde_json::json!({"bug": "worse_than_quantization", "summary": why}));
        }
    }
    Ok(())
}

/// Whether RIGHT's rows were RoPE-permuted with another head count than the
/// one the metadata names (convert_hf_to_gguf permuting K of a GQA model with
/// the query head count, say): put back with each other count that splits
/// the rows, does the pair pass? The explanation names the count that fits.
fn wrong_rope_heads(
    left: &Checkpoint,
    right: &Checkpoint,
    l: &Located,
    r: &Located,
    heads: usize,
    d: &TensorDiff,
    opts: &DiffOptions,
) -> Result<Option<serde_json::Value>> {
    let rows = r.shape[0];
    let left_values = f32_values(l, left.gathered(l)?.map_or_else(|| read_whole(left, l), Ok)?);
    let file_values = read_whole(right, r)?;
    let mut raw = vec![0u8; r.stored_bytes() as usize];
    right.stored_region(r).read_at(0, &mut raw)?;
    for other in (1..=rows / 2).filter(|&h| h != heads && rows % (2 * h) == 0) {
        let values = name_map::unpermute_rows(&file_values, rows, other, r.len / rows);
        let fits = if quantization::applies(right, l, r) {
            let mut trial = d.clone();
            let sums = quantization_sums(left, right, l, r, Some(other), None, Some(&raw))?;
            quantization::judge(&mut trial, r, &sums, opts.quantization_margin.unwrap_or(2.0));
            trial.status == Status::Within
        } else {
            f32_values(r, values).iter().zip(&left_values).all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
        };
        if fits {
            return Ok(Some(serde_json::json!({
                "bug": "rope_head_count",
                "summary": format!(
                    "as convert_hf_to_gguf permutes Q/K for RoPE, with the wrong head count: RIGHT's rows match LEFT's when put back with {other} heads, not the {heads} its metadata gives"
                ),
                "params": {"heads_metadata": heads, "heads_fitting": other},
            })));
        }
    }
    Ok(None)
}

/// The head count RIGHT's tensor `name` was RoPE-permuted with, from RIGHT's
/// GGUF metadata (`key`, `{arch}` its architecture); its rows must split
/// into that many heads of two halves.
fn rope_heads(right: &Checkpoint, name: &str, loc: &Located, key: &str, f: &name_map::MapFile) -> Result<usize> {
    let bad = |m: String| Error::tensor(&right.path, name, None, m);
    let Some(h) = &right.gguf else {
        return Err(bad(format!("{} puts this tensor's rows back from RoPE order, which needs RIGHT to be the GGUF file", f.origin)));
    };
    let arch = match h.get("general.architecture") {
        Some(crate::format::gguf::Value::Str(a)) => a.clone(),
        _ => String::new(),
    };
    let key = key.replace("{arch}", &arch);
    let heads = h
        .get(&key)
        .and_then(crate::format::gguf::Value::as_u64)
        .ok_or_else(|| bad(format!("{} needs the head count '{key}', which the GGUF metadata does not hold", f.origin)))?;
    let rows = loc.shape.first().copied().unwrap_or(0) as u64;
    if heads == 0 || rows % (2 * heads) != 0 {
        return Err(bad(format!("{rows} rows do not split into {key} = {heads} heads of two halves")));
    }
    Ok(heads as usize)
}

/// RIGHT's values for a comparison that reads them whole: its rows put back
/// from RoPE order when the pair asks for it, a strided view gathered, or
/// None (stream it from the file).
fn right_held(right: &Checkpoint, r: &Located, unpermute: Option<usize>) -> Result<Option<Vec<u8>>> {
    let Some(heads) = unpermute else { return right.gathered(r) };
    let mut bytes = vec![0u8; r.len];
    right.region(r).read_at(0, &mut bytes)?;
    let rows = r.shape[0];
    Ok(Some(name_map::unpermute_rows(&bytes, rows, heads, r.len / rows.max(1))))
}

/// The sums of a quantization verdict (see [`quantization`]). With RIGHT's
/// rows to put back from RoPE order, whole tensors are held (its raw bytes
/// may be given, read once by the caller); otherwise both sides are streamed
/// in chunks of whole blocks, a few MiB at a time.
fn quantization_sums(
    left: &Checkpoint,
    right: &Checkpoint,
    l: &Located,
    r: &Located,
    unpermute: Option<usize>,
    left_held: Option<&[u8]>,
    right_raw: Option<&[u8]>,
) -> Result<quantization::Sums> {
    let mut sums = quantization::Sums::default();
    if let Some(heads) = unpermute {
        let left_bytes = match left_held {
            Some(b) => b.to_vec(),
            None => read_whole(left, l)?,
        };
        let raw = match right_raw {
            Some(b) => b.to_vec(),
            None => {
                let mut raw = vec![0u8; r.stored_bytes() as usize];
                right.stored_region(r).read_at(0, &mut raw)?;
                raw
            }
        };
        let rows = r.shape[0];
        let raw = name_map::unpermute_rows(&raw, rows, heads, raw.len() / rows.max(1));
        sums.add(r, &f32_values(l, left_bytes), &raw);
        return Ok(sums);
    }
    let (block, size) = match r.encoding {
        Some(crate::format::checkpoint::Encoding::Ggml { ggml_type, .. }) => ggml_type.block(),
        None => (1, r.dtype.size() as u64),
    };
    let (block, size) = (block as usize, size as usize);
    let numel = r.len / r.dtype.size();
    // Values per chunk: whole blocks, 256 KiB of f32 (buffers the allocator
    // reuses, not fresh pages each time).
    let per = ((64usize << 10) / block).max(1) * block;
    let (lsize, left_region, right_region) = (l.dtype.size(), left.region(l), right.stored_region(r));
    let mut at = 0;
    while at < numel {
        let n = per.min(numel - at);
        let mut lb = vec![0u8; n * lsize];
        match left_held {
            Some(h) => lb.copy_from_slice(&h[at * lsize..(at + n) * lsize]),
            None => left_region.read_at(at * lsize, &mut lb)?,
        }
        let mut rb = vec![0u8; n / block * size];
        right_region.read_at(at / block * size, &mut rb)?;
        sums.add(r, &f32_values(l, lb), &rb);
        at += n;
    }
    Ok(sums)
}

/// A tensor's values, read whole.
fn read_whole(ck: &Checkpoint, loc: &Located) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; loc.len];
    ck.region(loc).read_at(0, &mut bytes)?;
    Ok(bytes)
}

/// Values as f32, as a converter quantizes them: every float dtype narrower
/// than f64 widens exactly; f64 rounds to nearest even.
fn f32_values(loc: &Located, bytes: Vec<u8>) -> Vec<f32> {
    use crate::format::dtype::DType;
    match loc.dtype {
        DType::F32 => return bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4"))).collect(),
        // half's slice conversions use the CPU's F16C instructions where it has them: exact either way.
        DType::F16 => {
            let h: Vec<half::f16> = bytes.chunks_exact(2).map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]]))).collect();
            let mut out = vec![0f32; h.len()];
            half::slice::HalfFloatSliceExt::convert_to_f32_slice(&h[..], &mut out);
            return out;
        }
        DType::BF16 => return bytes.chunks_exact(2).map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)).collect(),
        _ => {}
    }
    let mut wide = vec![0f64; bytes.len() / loc.dtype.size()];
    loc.dtype.decode_into(&bytes, &mut wide);
    wide.into_iter().map(|v| v as f32).collect()
}

/// A tensor's bytes for a streamed comparison: from its file, or from
/// memory when it is a strided view gathered once ([`Checkpoint::gathered`]).
fn bytes_of<'a>(ck: &'a Checkpoint, loc: &'a Located, held: &'a Option<Vec<u8>>) -> Bytes<'a> {
    match held {
        Some(b) => Bytes::Memory(b),
        None => Bytes::File(ck.region(loc)),
    }
}

fn limit_name(l: &Limit) -> String {
    match l {
        Limit::Exact => "exact".into(),
        Limit::AllClose { atol, rtol } => format!("allclose(rtol={}, atol={})", numbers::short(*rtol), numbers::short(*atol)),
    }
}

/// The limits of one tensor: the tolerance file's first matching `"tensors"`
/// rule, else `--atol/--rtol`, else exact.
fn limits_for(name: &str, opts: &DiffOptions) -> (String, Tolerance) {
    if let Some((glob, tol)) = opts.profile.as_ref().and_then(|p| p.tensor_tolerance(name)) {
        return (format!("tensors.\"{glob}\""), tol);
    }
    match opts.limit {
        Limit::Exact => ("exact".into(), Tolerance::gate(0.0, 0.0)),
        Limit::AllClose { atol, rtol } => {
            ("--atol/--rtol".into(), Tolerance::unlimited().with_allclose(rtol, atol, 0.0))
        }
    }
}

fn limits_json(source: String, t: &Tolerance) -> Limits {
    Limits {
        source,
        max_abs: num(t.max_abs),
        mean_abs: num(t.mean_abs),
        rtol: t.rtol,
        atol: t.atol,
        max_mismatch_fraction: t.max_mismatch_fraction,
        min_cosine: t.min_cosine,
        max_ulp: t.max_ulp,
    }
}

fn compare_pair(left: &Checkpoint, right: &Checkpoint, t: &PairToCompare, opts: &DiffOptions) -> Result<TensorDiff> {
    let mut d = TensorDiff {
        name: t.name.clone(),
        right_name: t.right_name.clone(),
        status: Status::OnlyLeft,
        dtype_left: t.left.map(|l| l.dtype.name().to_string()),
        dtype_right: t.right.map(|r| r.dtype.name().to_string()),
        shape_left: t.left.map(|l| l.shape.clone()),
        shape_right: t.right.map(|r| r.shape.clone()),
        bytes_left: t.left.map(|l| l.len as u64),
        bytes_right: t.right.map(|r| r.len as u64),
        content_hash_left: None,
        content_hash_right: None,
        limits: None,
        metrics: None,
        failures: Vec::new(),
        transposed: None,
        explanation: None,
        quantization: None,
        plots: None,
    };
    let (l, r) = match (t.left, t.right) {
        (Some(l), Some(r)) => (l, r),
        (Some(_), None) => return Ok(d),
        (None, _) => {
            d.status = Status::OnlyRight;
            return Ok(d);
        }
    };
    let (source, tol) = limits_for(&t.name, opts);
    d.limits = Some(limits_json(source, &tol));
    let (l_held, r_held) = (left.gathered(l)?, right_held(right, r, t.unpermute)?);
    let ls = Stage { dtype: l.dtype, shape: &l.shape, bytes: bytes_of(left, l, &l_held) };
    let rs = Stage { dtype: r.dtype, shape: &r.shape, bytes: bytes_of(right, r, &r_held) };
    if l.shape != r.shape {
        d.status = Status::ShapeMismatch;
        d.failures.push(format!("shape {} (left) vs {} (right)", numbers::shape(&l.shape), numbers::shape(&r.shape)));
        if l.shape.len() == 2 && l.shape[0] == r.shape[1] && l.shape[1] == r.shape[0] {
            d.transposed = Some(transposed(ls, right, r, &tol, opts.top_diffs)?);
        }
        return Ok(d);
    }
    let m = metrics::measure_stages_hashed(ls, rs, &tol, opts.top_diffs, CHUNK, true, &|_| {})?;
    let (lh, rh) = m.content_hash.expect("asked for");
    d.content_hash_left = Some(format!("{lh:032x}"));
    d.content_hash_right = Some(format!("{rh:032x}"));
    d.failures = limits_broken(&m, &tol);
    d.status = if m.bytes_equal {
        Status::Identical
    } else if d.failures.is_empty() {
        Status::Within
    } else {
        Status::Differs
    };
    d.metrics = Some((&m).into());
    if d.status != Status::Identical && quantization::applies(right, l, r) {
        let sums = match quantization::Sums::from_comparison(l, r, &m) {
            Some(s) => s,
            None => quantization_sums(left, right, l, r, t.unpermute, l_held.as_deref(), None)?,
        };
        quantization::judge(&mut d, r, &sums, opts.quantization_margin.unwrap_or(2.0));
    }
    Ok(d)
}

/// LEFT against RIGHT read transposed (RIGHT is [n, m] where LEFT is [m, n]).
fn transposed(ls: Stage, right: &Checkpoint, r: &Located, tol: &Tolerance, top_diffs: usize) -> Result<Transposed> {
    if r.len > TRANSPOSE_LIMIT {
        return Ok(Transposed {
            matches: false,
            metrics: None,
            failures: vec![format!(
                "RIGHT's shape is LEFT's transposed; values not compared transposed ({} > the {} MiB limit)",
                numbers::thousands(r.len as u64),
                TRANSPOSE_LIMIT >> 20
            )],
        });
    }
    let (rows, cols) = (r.shape[0], r.shape[1]);
    let size = r.dtype.size();
    let mut bytes = vec![0u8; r.len];
    right.region(r).read_at(0, &mut bytes)?;
    // out[j][i] = in[i][j]: element copies, no arithmetic, so no rounding.
    let mut out = vec![0u8; r.len];
    for i in 0..rows {
        for j in 0..cols {
            let from = (i * cols + j) * size;
            let to = (j * rows + i) * size;
            out[to..to + size].copy_from_slice(&bytes[from..from + size]);
        }
    }
    let rs = Stage { dtype: r.dtype, shape: ls.shape, bytes: Bytes::Memory(&out) };
    let m: Metrics = metrics::measure_stages(ls, rs, tol, top_diffs, CHUNK, &|_| {})?;
    let failures = limits_broken(&m, tol);
    Ok(Transposed { matches: failures.is_empty(), metrics: Some((&m).into()), failures })
}

/// sha256 over what decides a run: both sides' tensor headers (name, dtype,
/// shape, size) and the options. Partitions of one run share it.
fn fingerprint(left: &Checkpoint, right: &Checkpoint, ls: &Side, rs: &Side, options: &Options) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for c in [left, right] {
        for (name, loc) in c.tensors() {
            h.update(format!("{name}\0{}\0{:?}\0{}\n", loc.dtype.name(), loc.shape, loc.len).as_bytes());
        }
        h.update(b"\x01");
    }
    h.update(serde_json::to_vec(&(ls, rs, options)).expect("serialises"));
    crate::format::tensor::hex(&h.finalize())
}
