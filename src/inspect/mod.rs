//! `parity inspect PATH`: what is in one checkpoint (or stage bundle), and
//! whether it is sane — streamed, with a CI exit code.
//!
//! Per tensor, in one pass over its bytes: min, max, mean, std, max |x|, and
//! the counts of NaN, +inf, −inf, zeros and subnormals; with `--check fits=F`
//! also how many values would overflow (or, for fp8 e4m3fn, saturate to NaN)
//! if cast to F, and the largest; with `--check unique` each tensor's content
//! hash, to find tied or duplicated tensors across shards. `--headers` reads
//! no data at all.
//!
//! Speed and determinism: a tensor is cut into fixed 1 Mi-element pieces
//! measured in parallel (tensors too), each read into the worker thread's
//! reused buffer. A float piece is measured block by block by one
//! vectorised kernel ([`moments`]: the same bits on every SIMD path, no
//! division per value); blocks and pieces are merged in index order by
//! Chan et al.'s pairwise update, so the figures depend neither on the
//! thread count nor on the CPU. Integers keep an exact pass of their own
//! for their extremes.

use crate::compare::metrics::content_hash;
use crate::error::{Error, Result};
use crate::format::checkpoint::Checkpoint;
use crate::format::dtype::DType;
use crate::numeric::round::{self, MiniFloat};
use crate::select::Selection;
pub mod moments;

use moments::Moments;
use rayon::prelude::*;
use serde::Serialize;
use std::cell::RefCell;
use std::path::Path;

const PIECE: usize = 1 << 20;

/// `--check` items.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checks {
    pub finite: bool,
    pub nonzero: bool,
    pub fits: Vec<DType>,
    pub unique: bool,
}

impl std::str::FromStr for Checks {
    type Err = Error;
    fn from_str(s: &str) -> Result<Checks> {
        let mut c = Checks::default();
        for item in s.split(',').map(str::trim) {
            match item {
                "finite" => c.finite = true,
                "nonzero" => c.nonzero = true,
                "unique" => c.unique = true,
                f if f.starts_with("fits=") => {
                    let d = DType::parse(&f[5..]).filter(|d| matches!(d, DType::F16 | DType::BF16 | DType::F8E4M3 | DType::F8E5M2));
                    c.fits.push(d.ok_or_else(|| Error::Usage(format!("--check '{f}': fits= takes F16, BF16, F8_E4M3 or F8_E5M2")))?);
                }
                other => {
                    let hint = crate::error::did_you_mean(other, ["finite", "nonzero", "unique"].into_iter()).map(|n| format!(" (did you mean '{n}'?)")).unwrap_or_default();
                    return Err(Error::Usage(format!("--check '{other}': expected finite, nonzero, fits=F16|BF16|F8_E4M3|F8_E5M2 or unique{hint}")));
                }
            }
        }
        Ok(c)
    }
}

#[derive(Clone, Debug, Default)]
pub struct InspectOptions {
    pub select: Vec<String>,
    pub layers: Option<crate::select::LayerRange>,
    pub headers_only: bool,
    pub checks: Checks,
    pub progress: bool,
}

/// A figure that is one of the tensor's values (min, max) or magnitudes
/// (|x| max): for an integer dtype the integer itself, exactly (an I64
/// beyond 2⁵³ has no f64; |i64::MIN| = 2⁶³ needs a u64), else the float.
/// JSON: an integer, or a float.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Extreme {
    Int(i64),
    Magnitude(u64),
    Float(f64),
}

impl Extreme {
    /// For people: an integer in full, a float in three significant digits.
    pub fn text(self) -> String {
        match self {
            Extreme::Int(i) => i.to_string(),
            Extreme::Magnitude(u) => u.to_string(),
            Extreme::Float(x) => crate::compare::numbers::short(x),
        }
    }
}

/// The figures of one tensor.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub min: Option<Extreme>,
    pub max: Option<Extreme>,
    /// Mean and standard deviation in f64 (of integers too: each value is
    /// rounded to f64, relative error ≤ 2⁻⁵³, before the moments are taken;
    /// they are real-valued figures and no check is decided on them).
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub abs_max: Option<Extreme>,
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
    pub zeros: u64,
    pub subnormals: u64,
    /// Per `fits=` format: (values that would overflow or saturate, the largest |x| among them).
    pub overflow: Vec<Overflow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Overflow {
    pub format: String,
    pub count: u64,
    pub largest: Option<Extreme>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: u64,
    pub file: String,
    pub offset: u64,
    pub layer: Option<u64>,
    /// How a GGUF quantized tensor is stored (`Q4_K`…): `dtype` is then its
    /// dequantized values' (F32), `bytes` its blocks'.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_as: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_per_weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Layer {
    /// None: tensors without a layer number.
    pub layer: Option<u64>,
    pub tensors: usize,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InspectOutcome {
    pub schema: &'static str,
    pub path: String,
    pub layout: String,
    pub files: usize,
    pub headers_only: bool,
    pub tensors: Vec<TensorInfo>,
    pub layers: Vec<Layer>,
    pub total_bytes: u64,
    /// Non-tensor values of a PyTorch checkpoint (an epoch, a learning
    /// rate, a string), skipped.
    pub skipped_values: u64,
    /// A GGUF file's metadata, key → value (arrays shortened), in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<(String, String)>,
    /// Groups of byte-identical tensors (with `--check unique`, or always when hashed).
    pub identical_groups: Vec<Vec<String>>,
    /// Every failed check, one phrase each (`--check`): exit 1 when any.
    pub failures: Vec<String>,
}

/// The top-level entry point of `parity inspect`.
pub fn inspect(path: &Path, opts: &InspectOptions) -> Result<InspectOutcome> {
    let path = resolve_report(path)?;
    let ck = Checkpoint::open(&path)?;
    let names: Vec<&str> = ck.names().filter(|n| opts.layers.is_none_or(|l| l.keeps(n))).collect();
    let chosen: Vec<&str> = Selection::new(&opts.select)?.apply(&names, |n: &&str| *n)?.into_iter().copied().collect();
    let total: u64 = chosen.iter().map(|n| ck.get(n).unwrap().len as u64).sum();
    let bar = crate::progress::bytes_bar(opts.progress && !opts.headers_only, total, "inspect");
    let hashing = opts.checks.unique && !opts.headers_only;
    let tensors: Vec<Result<TensorInfo>> = chosen
        .par_iter()
        .map(|name| {
            let loc = ck.get(name).expect("listed");
            let mut info = TensorInfo {
                name: name.to_string(),
                dtype: loc.dtype.name().into(),
                shape: loc.shape.clone(),
                bytes: loc.stored_bytes(),
                file: ck.shard_path(loc).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                offset: loc.offset,
                layer: crate::select::layer_number(name),
                stored_as: match loc.encoding {
                    Some(crate::format::checkpoint::Encoding::Ggml { ggml_type, .. }) => Some(ggml_type.name().into()),
                    None => None,
                },
                bits_per_weight: match loc.encoding {
                    Some(crate::format::checkpoint::Encoding::Ggml { ggml_type, .. }) => Some(ggml_type.bits_per_weight()),
                    None => None,
                },
                stats: None,
                content_hash: None,
            };
            if !opts.headers_only {
                let (stats, hash) = measure(&ck, loc, &opts.checks.fits, hashing)?;
                info.stats = Some(stats);
                info.content_hash = hash.map(|h| format!("{h:032x}"));
                bar.inc(loc.len as u64);
            }
            Ok(info)
        })
        .collect();
    bar.finish_and_clear();
    let tensors = tensors.into_iter().collect::<Result<Vec<_>>>()?;

    let mut layers: Vec<Layer> = Vec::new();
    let mut by_layer = std::collections::BTreeMap::<Option<u64>, (usize, u64)>::new();
    for t in &tensors {
        let e = by_layer.entry(t.layer).or_default();
        e.0 += 1;
        e.1 += t.bytes;
    }
    for (layer, (n, b)) in by_layer {
        layers.push(Layer { layer, tensors: n, bytes: b });
    }
    let mut identical_groups = Vec::new();
    if hashing {
        let mut groups = std::collections::BTreeMap::<(&str, &Vec<usize>, &str), Vec<String>>::new();
        for t in &tensors {
            groups.entry((t.dtype.as_str(), &t.shape, t.content_hash.as_deref().unwrap())).or_default().push(t.name.clone());
        }
        identical_groups = groups.into_values().filter(|g| g.len() > 1 && !g.is_empty()).collect();
        identical_groups.retain(|g| tensors.iter().find(|t| t.name == g[0]).is_some_and(|t| t.bytes > 0));
    }
    let failures = if opts.headers_only { Vec::new() } else { judge(&tensors, &identical_groups, &opts.checks) };
    Ok(InspectOutcome {
        schema: "parity.inspect.v1",
        path: path.display().to_string(),
        layout: ck.layout_name().into(),
        files: ck.shards().len(),
        headers_only: opts.headers_only,
        total_bytes: tensors.iter().map(|t| t.bytes).sum(),
        skipped_values: ck.skipped_leaves,
        metadata: ck.gguf.as_ref().map(|h| h.metadata.iter().map(|(k, v)| (k.clone(), v.short())).collect()).unwrap_or_default(),
        tensors,
        layers,
        identical_groups,
        failures,
    })
}

/// A report names its stage bundle: inspect that.
fn resolve_report(path: &Path) -> Result<std::path::PathBuf> {
    if path.extension().is_some_and(|e| e == "json") && path.is_file() {
        let loaded = crate::format::report::LoadedReport::load(path)?;
        return loaded.stage_bundle_path(false);
    }
    Ok(path.to_path_buf())
}

fn judge(tensors: &[TensorInfo], groups: &[Vec<String>], c: &Checks) -> Vec<String> {
    let mut out = Vec::new();
    for t in tensors {
        let Some(s) = &t.stats else { continue };
        if c.finite && s.nan + s.pos_inf + s.neg_inf > 0 {
            out.push(format!("{}: not finite: {} NaN, {} +inf, {} -inf", t.name, s.nan, s.pos_inf, s.neg_inf));
        }
        let numel: u64 = t.shape.iter().map(|&d| d as u64).product();
        if c.nonzero && numel > 0 && s.zeros == numel {
            out.push(format!("{}: all {numel} values are zero", t.name));
        }
        for o in &s.overflow {
            if o.count > 0 {
                out.push(format!(
                    "{}: {} value(s) do not fit {} (largest |x| {})",
                    t.name,
                    o.count,
                    o.format,
                    o.largest.map(Extreme::text).unwrap_or_default()
                ));
            }
        }
    }
    if c.unique {
        for g in groups {
            out.push(format!("byte-identical tensors (tied or duplicated): {}", g.join(", ")));
        }
    }
    out
}

/// What a piece contributes: its moments and counts, and the rest.
#[derive(Clone, Default)]
struct Part {
    moments: Moments,
    over: Vec<(u64, f64)>,
    /// Integer dtypes: min, max, max |x| and the largest |x| over each
    /// `fits=` threshold, exactly (the moments hold their roundings).
    int: IntExtremes,
    digests: Vec<u128>,
}

#[derive(Clone)]
struct IntExtremes {
    min: i64,
    max: i64,
    abs_max: u64,
    over: Vec<u64>,
}

impl Default for IntExtremes {
    fn default() -> IntExtremes {
        IntExtremes { min: i64::MAX, max: i64::MIN, abs_max: 0, over: Vec::new() }
    }
}

impl Part {
    fn new(fits: usize) -> Part {
        let int = IntExtremes { over: vec![0; fits], ..IntExtremes::default() };
        Part { over: vec![(0, 0.0); fits], int, ..Part::default() }
    }
    /// Add a later piece (Chan et al. for the moments: [`Moments::merge`]).
    fn merge(&mut self, o: Part) {
        self.moments.merge(&o.moments);
        for (a, b) in self.over.iter_mut().zip(o.over) {
            a.0 += b.0;
            a.1 = a.1.max(b.1);
        }
        self.int.min = self.int.min.min(o.int.min);
        self.int.max = self.int.max.max(o.int.max);
        self.int.abs_max = self.int.abs_max.max(o.int.abs_max);
        for (a, b) in self.int.over.iter_mut().zip(o.int.over) {
            *a = (*a).max(b);
        }
        self.digests.extend(o.digests);
    }
}

thread_local! {
    /// The worker thread's piece buffer, reused from piece to piece and
    /// tensor to tensor.
    static PIECE_BYTES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The moments of a piece of a float dtype: decoded block by block into an
/// L1-resident f64 buffer (exact), each block measured by the vectorised
/// [`moments::block_moments`], the blocks merged in order.
fn measure_floats(dtype: DType, bytes: &[u8], min_normal: f64, part: &mut Part) {
    let size = dtype.size();
    let mut wide = [0f64; moments::BLOCK];
    for block in bytes.chunks(moments::BLOCK * size) {
        let wide = &mut wide[..block.len() / size];
        dtype.decode_into(block, wide);
        part.moments.merge(&moments::block_moments(wide, min_normal));
    }
}

/// `fits=` over a piece of a float dtype: the finite values that would
/// overflow each format, and the largest of them.
fn count_overflows(dtype: DType, bytes: &[u8], formats: &[MiniFloat], part: &mut Part) {
    for i in 0..bytes.len() / dtype.size() {
        let x = dtype.decode(bytes, i);
        if !x.is_finite() {
            continue;
        }
        for (k, &f) in formats.iter().enumerate() {
            if overflows(f, x) {
                part.over[k].0 += 1;
                part.over[k].1 = part.over[k].1.max(x.abs());
            }
        }
    }
}

/// A piece of an integer dtype: the exact extremes (and `fits=`) value by
/// value, the moments of the values rounded to f64 as for floats.
fn measure_integers(dtype: DType, bytes: &[u8], formats: &[MiniFloat], part: &mut Part) {
    let size = dtype.size();
    for i in 0..bytes.len() / size {
        // The exact value for min/max/|x| max, and its nearest f64 for the
        // `fits=` test. That test stays exact: rounding is monotone and
        // every threshold is an f64, either below 2⁵³ (where integers are
        // exact) or, for BF16, beyond the range of i64.
        let v = dtype.int(bytes, i).expect("an integer dtype");
        let e = &mut part.int;
        (e.min, e.max, e.abs_max) = (e.min.min(v), e.max.max(v), e.abs_max.max(v.unsigned_abs()));
        for (k, &f) in formats.iter().enumerate() {
            let x = dtype.decode(bytes, i);
            if overflows(f, x) {
                e.over[k] = e.over[k].max(v.unsigned_abs());
                part.over[k].0 += 1;
                part.over[k].1 = part.over[k].1.max(x.abs());
            }
        }
    }
    measure_floats(dtype, bytes, 0.0, part);
}

/// The format a `fits=` check rounds into, as `cast` describes it
/// ([`crate::numeric::round`]): one rule for both, so `fits=F` flags exactly
/// the values that parity's `cast` (and ml_dtypes, from f32, f16 or bf16)
/// turns into ±inf, or NaN for e4m3fn. Its overflow threshold is the tie
/// between the largest finite value and the next code, and RNE breaks that
/// tie to the even one: away from the largest finite for f16, bf16 and e5m2
/// (whose largest finite has an odd last mantissa bit: 65520, 0x7F7F8000
/// and 61440 overflow), but *to* it for e4m3fn (448 = 1.110·2⁸ is even: 464
/// rounds to 448, only values above 464 become NaN).
fn format_of(d: DType) -> Option<MiniFloat> {
    match d {
        DType::F16 => Some(round::F16),
        DType::BF16 => Some(round::BF16),
        DType::F8E4M3 => Some(round::F8E4M3FN),
        DType::F8E5M2 => Some(round::F8E5M2),
        _ => None,
    }
}

/// Whether the finite `x` leaves `f`'s finite range when cast to it. Only
/// values beyond the largest finite are rounded (a cheap test first: in a
/// checkpoint that fits, no value is).
fn overflows(f: MiniFloat, x: f64) -> bool {
    x.abs() > f.max_finite() && !f.decode(f.encode(x)).is_finite()
}

fn measure(ck: &Checkpoint, loc: &crate::format::checkpoint::Located, fits: &[DType], hash: bool) -> Result<(Stats, Option<u128>)> {
    let size = loc.dtype.size();
    let numel = loc.len / size.max(1);
    let pieces = numel.div_ceil(PIECE);
    let region = ck.region(loc);
    // A strided view (PyTorch) is gathered once, not once per piece.
    let held = ck.gathered(loc)?;
    let formats: Vec<MiniFloat> = fits.iter().map(|&d| format_of(d).expect("fits= takes only the formats format_of knows")).collect();
    let float = loc.dtype.is_float();
    let min_normal = min_normal(loc.dtype);
    // Only a piece holding a value beyond the smallest of the formats'
    // largest finite values is looked at again for `fits=`.
    let lowest_max = formats.iter().map(|f| f.max_finite()).fold(f64::INFINITY, f64::min);
    let parts: Vec<Result<Part>> = (0..pieces)
        .into_par_iter()
        .map(|p| {
            let (a, b) = (p * PIECE, ((p + 1) * PIECE).min(numel));
            PIECE_BYTES.with(|cell| {
                // Never re-entered: measuring a piece starts no parallel work.
                let buf = &mut *cell.borrow_mut();
                if buf.len() < (b - a) * size {
                    // Grown once per thread to a piece's size, then reused:
                    // fresh pages cost more than the read itself.
                    buf.resize((b - a) * size, 0);
                }
                let buf = &mut buf[..(b - a) * size];
                match &held {
                    Some(h) => buf.copy_from_slice(&h[a * size..b * size]),
                    None => region.read_at(a * size, buf)?,
                }
                let mut part = Part::new(fits.len());
                if float {
                    measure_floats(loc.dtype, buf, min_normal, &mut part);
                    if part.moments.abs_max > lowest_max {
                        count_overflows(loc.dtype, buf, &formats, &mut part);
                    }
                } else {
                    measure_integers(loc.dtype, buf, &formats, &mut part);
                }
                if hash {
                    part.digests = buf.chunks(crate::compare::metrics::BLOCK * size).map(xxhash_rust::xxh3::xxh3_128).collect();
                }
                Ok(part)
            })
        })
        .collect();
    let mut total = Part::new(fits.len());
    for p in parts {
        total.merge(p?);
    }
    // Non-finite values of the source also do not fit any format but stay what they are.
    let m = &total.moments;
    let any = m.n > 0;
    let int = loc.dtype.is_integer();
    let (min, max, abs_max) = if int {
        (Extreme::Int(total.int.min), Extreme::Int(total.int.max), Extreme::Magnitude(total.int.abs_max))
    } else {
        (Extreme::Float(m.min), Extreme::Float(m.max), Extreme::Float(m.abs_max))
    };
    let stats = Stats {
        min: any.then_some(min),
        max: any.then_some(max),
        mean: any.then_some(m.mean),
        std: any.then(|| (m.m2 / m.n as f64).sqrt()),
        abs_max: any.then_some(abs_max),
        nan: m.nan,
        pos_inf: m.pos_inf,
        neg_inf: m.neg_inf,
        zeros: m.zeros,
        subnormals: m.subnormals,
        overflow: fits
            .iter()
            .zip(total.over.iter().zip(&total.int.over))
            .map(|(d, ((c, l), il))| Overflow {
                format: d.name().into(),
                count: *c,
                largest: (*c > 0).then_some(if int { Extreme::Magnitude(*il) } else { Extreme::Float(*l) }),
            })
            .collect(),
    };
    let digest = hash.then(|| {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for d in &total.digests {
            h.update(&d.to_le_bytes());
        }
        content_hash(loc.dtype, &loc.shape, h.digest128())
    });
    Ok((stats, digest))
}

/// The dtype's smallest normal magnitude: non-zero values below it are
/// subnormal (0 for integers: none are).
fn min_normal(d: DType) -> f64 {
    match d {
        DType::F64 => f64::MIN_POSITIVE,
        DType::F32 => f32::MIN_POSITIVE as f64,
        DType::BF16 => f32::MIN_POSITIVE as f64,
        DType::F16 => 2f64.powi(-14),
        DType::F8E4M3 => 2f64.powi(-6),
        DType::F8E5M2 => 2f64.powi(-14),
        _ => 0.0,
    }
}
