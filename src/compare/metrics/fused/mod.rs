//! The fused pass: one whole block of f32 or bf16 pairs (the same dtype on
//! both sides), measured straight from the stored bits, without f64 buffers,
//! masks or divisions. It gives exactly the numbers of the general pass
//! ([`super::general_block`]): the same f64 operations on the same values,
//! summed in the same [`LANES`] lanes in the same order. It declines (returns
//! false, having changed nothing) a block holding a NaN or an inf; the
//! general pass then measures it.
//!
//! Each kernel exists three times: portable Rust, which is the definition
//! (no intrinsics: it compiles for every target), and two x86-64 paths chosen
//! at run time ([`SimdPath`]): AVX-512, one `__m512d` per accumulator, and
//! AVX2, two `__m256d` (lanes 0–3 and 4–7) per accumulator. Every path adds
//! the same values into the same lane in the same order, and none contracts
//! `a * b + c` into an FMA (Rust never does; the AVX2 path, though compiled
//! with FMA enabled, uses no FMA intrinsic), so IEEE arithmetic gives every
//! path the same bits (tested with [`force_kernels`]).
//!
//! The path is the process's SIMD path ([`crate::numeric::simd`]: the best
//! one the CPU has, unless `PARITY_SIMD` forces one), which every other
//! SIMD kernel follows too; [`force_kernels`] overrides it here, for tests.
//!
//! A bit-identical pair of blocks — common: copied inputs, element-wise
//! stages computed alike — only needs `Σleft²`: every difference is 0, and
//! `Σleft·right = Σright² = Σleft²` term by term.

use super::{lane_max, lane_sum, BlockSums, Candidate, Codec, Limits, Partial, BLOCK, LANES};
pub use crate::numeric::simd::{simd_choice, simd_path, SimdChoice, SimdPath};
use std::sync::atomic::{AtomicU8, Ordering};

/// The magnitude bits of an f32 (bf16 blocks are widened to f32 bits first).
const MAG: u32 = 0x7fff_ffff;
/// Magnitudes at or above this are ±inf or NaN.
const INF_BITS: u32 = 0x7f80_0000;

/// What `parity doctor` prints: the CPU, its SIMD features, the paths it can
/// run, and the one in use and why.
pub fn simd_report() -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut out = String::new();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, m)| m.trim().to_string()));
    out += &format!("cpu          {} ({})\n", model.as_deref().unwrap_or("unknown model"), std::env::consts::ARCH);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let features = [
            ("avx512f", has!("avx512f")),
            ("avx512dq", has!("avx512dq")),
            ("avx512bw", has!("avx512bw")),
            ("avx512vl", has!("avx512vl")),
            ("avx512bf16", has!("avx512bf16")),
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("sha", has!("sha")),
        ];
        let list: Vec<String> = features.iter().map(|(n, b)| format!("{n} {}", yes(*b))).collect();
        out += &format!("features     {}\n", list.join(", "));
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        out += "features     not x86-64: the portable path only\n";
    }
    let paths: Vec<String> = SimdPath::ALL.iter().map(|p| format!("{} {}", p.name(), yes(p.supported()))).collect();
    out += &format!("paths        {}\n", paths.join(", "));
    out += &match simd_choice() {
        Ok(SimdChoice { path, forced: true }) => format!("active       {} (forced by PARITY_SIMD={})\n", path.name(), path.name()),
        Ok(SimdChoice { path, forced: false }) => {
            format!("active       {} (detected: the best path this CPU has; PARITY_SIMD=avx512|avx2|portable forces one)\n", path.name())
        }
        Err(e) => format!("active       none: {e}\n"),
    };
    out += "             (the path of every SIMD kernel: the comparer's block metrics, codecs, casts, element-wise ops, merges;\n";
    out += "             results are the same bits on every path)\n";
    out
}

/// Which kernels measure whole f32/bf16 blocks (see [`force_kernels`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The process's [`simd_path`]: the default.
    Best = 0,
    /// The portable fused kernels.
    Portable = 1,
    /// No fused pass: every block takes the general one.
    General = 2,
    /// The AVX2 fused kernels.
    Avx2 = 3,
    /// The AVX-512 fused kernels.
    Avx512 = 4,
}

impl Kernels {
    /// Whether this CPU can run these kernels.
    pub fn supported(self) -> bool {
        match self {
            Kernels::Avx512 => SimdPath::Avx512.supported(),
            Kernels::Avx2 => SimdPath::Avx2.supported(),
            Kernels::Best | Kernels::Portable | Kernels::General => true,
        }
    }
}

static KERNELS: AtomicU8 = AtomicU8::new(Kernels::Best as u8);

/// Make every later measurement use the given kernels. For tests that hold
/// them all to the same bits; results never depend on it. Panics on kernels
/// this CPU cannot run (see [`Kernels::supported`]).
#[doc(hidden)]
pub fn force_kernels(k: Kernels) {
    assert!(k.supported(), "force_kernels({k:?}): this CPU cannot run them");
    KERNELS.store(k as u8, Ordering::Relaxed);
}

/// The kernels in use, resolved: never [`Kernels::Best`]. Only ever a path
/// the CPU has: [`force_kernels`] and [`simd_path`] refuse any other.
#[inline(always)]
fn current() -> Kernels {
    match KERNELS.load(Ordering::Relaxed) {
        0 => match crate::numeric::simd::kernel_path() {
            SimdPath::Avx512 => Kernels::Avx512,
            SimdPath::Avx2 => Kernels::Avx2,
            SimdPath::Portable => Kernels::Portable,
        },
        1 => Kernels::Portable,
        2 => Kernels::General,
        3 => Kernels::Avx2,
        _ => Kernels::Avx512,
    }
}

/// Whether whole f32/bf16 blocks take the fused pass.
#[inline(always)]
pub(super) fn enabled() -> bool {
    current() != Kernels::General
}

/// Which compilation of the general chunk code runs (see `chunk_avx2`):
/// the path of the kernels in use, so `PARITY_SIMD=portable` measures what
/// a CPU without AVX2 would run, and forcing the portable or general
/// kernels in tests runs the portable chunk code.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn chunk_path() -> SimdPath {
    match current() {
        Kernels::Avx512 => SimdPath::Avx512,
        Kernels::Avx2 => SimdPath::Avx2,
        Kernels::Portable => SimdPath::Portable,
        Kernels::Best | Kernels::General => crate::numeric::simd::kernel_path(),
    }
}

/// What a block contributes, as lanes (sums, maxima) and totals (counts).
#[derive(Default, Debug)]
struct Lanes {
    abs: [f64; LANES],
    sq: [f64; LANES],
    dot: [f64; LANES],
    ll: [f64; LANES],
    rr: [f64; LANES],
    max_abs: [f64; LANES],
    /// Pairs with `|d|` above the tolerance's `max_abs`.
    over: u64,
    /// Pairs outside the allclose rule.
    outside: u64,
    /// Some pair may beat the chunk's `max_rel` so far.
    rel_hit: bool,
    /// Pairs with equal stored bits.
    equal: u64,
    /// The largest magnitude bits on either side (≥ [`INF_BITS`]: not finite).
    max_mag: u32,
    /// The largest ULP distance, in f32 units.
    max_ulp: u32,
}

/// The limits the per-element counts and flags use: `[max_abs, rel_floor, rtol, atol]`.
type Bounds = [f64; 4];

/// Measure one whole block; false when it holds a NaN or an inf.
///
/// `max_rel` costs a multiplication here: a pair whose `|d| / |left|` could
/// beat the chunk's maximum so far only raises a flag, and a flagged block is
/// looked at again with the exact division (rare once the maximum settles).
#[inline(always)]
pub(super) fn block<C: Codec, const CLOSE: bool>(
    c: C,
    p: &mut Partial,
    b0: usize,
    lbytes: &[u8],
    rbytes: &[u8],
    lim: &Limits,
) -> bool {
    debug_assert!(C::FAST && lbytes.len() == BLOCK * c.size() && rbytes.len() == lbytes.len());
    let (rtol, atol) = lim.allclose.unwrap_or((0.0, 0.0));
    // A zero difference breaks no non-negative limit, so a bit-identical
    // block changes nothing but the sums and `compared`.
    let zero_passes = lim.max_abs >= 0.0 && rtol >= 0.0 && atol >= 0.0;
    let k = current();
    if zero_passes && lbytes == rbytes {
        // SAFETY (both x86 arms): `current()` names a path only when the CPU
        // has its features (`force_kernels` and `simd_path` refuse any
        // other). Memory: `lbytes` is one whole block, BLOCK · size bytes, a
        // whole number of the kernels' steps (8 or 16 elements), so every
        // load reads inside it.
        let (ll, max_mag) = match k {
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx512 => unsafe { avx512::equal::<C>(lbytes) },
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => unsafe { avx2::equal::<C>(lbytes) },
            _ => equal_portable(c, lbytes),
        };
        if max_mag >= INF_BITS {
            return false;
        }
        let s = lane_sum(&ll);
        // The lanes of Σ|d| and Σd² stay +0, and lane_sum(+0…) is +0.
        p.blocks.push(BlockSums { abs: 0.0, sq: 0.0, dot: s, ll: s, rr: s });
        p.tally.compared += BLOCK as u64;
        return true;
    }

    // fl(a / b) > M implies a > M·b exactly; lowering M by 2^-20 relative
    // absorbs the rounding of fl(M'·b), so no pair that beats M is missed
    // (differences of f32 values are 0 or ≥ 2^-149, far above underflow).
    // M = inf gives inf·b ≥ a or NaN: never flagged, and rightly so.
    let rel_floor = p.tally.max_rel * (1.0 - 1.0 / (1u64 << 20) as f64);
    let bounds = [lim.max_abs, rel_floor, rtol, atol];
    // SAFETY: as above; `rbytes` has the length of `lbytes`.
    let f = match k {
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx512 => unsafe { avx512::values::<C, CLOSE>(lbytes, rbytes, bounds) },
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx2 => unsafe { avx2::values::<C, CLOSE>(lbytes, rbytes, bounds) },
        _ => values_portable::<C, CLOSE>(c, lbytes, rbytes, bounds),
    };
    if f.max_mag >= INF_BITS {
        return false;
    }

    p.blocks.push(BlockSums {
        abs: lane_sum(&f.abs),
        sq: lane_sum(&f.sq),
        dot: lane_sum(&f.dot),
        ll: lane_sum(&f.ll),
        rr: lane_sum(&f.rr),
    });
    p.tally.compared += BLOCK as u64;
    p.tally.over_max_abs += f.over;
    p.tally.outside_allclose += f.outside;
    p.tally.not_bit_equal += BLOCK as u64 - f.equal;
    p.tally.max_ulp = p.tally.max_ulp.max((f.max_ulp >> C::ULP_SHIFT) as u64);

    // A second look, only where this block changes an index.
    let block_max_abs = lane_max(&f.max_abs);
    if block_max_abs > p.tally.max_abs {
        // The same operations on the same values give the same bits, so the
        // lanes' maximum is found again exactly (first occurrence).
        if let Some(j) = find_abs(k, c, lbytes, rbytes, block_max_abs) {
            (p.tally.max_abs, p.tally.max_abs_at) = (block_max_abs, Some(b0 + j));
        }
    }
    if f.rel_hit {
        // The first occurrence of the block's largest exact ratio, taken
        // only if strictly greater: what a scan in index order finds.
        let (m, j) = max_rel(k, c, lbytes, rbytes);
        if m > p.tally.max_rel {
            (p.tally.max_rel, p.tally.max_rel_at) = (m, Some(b0 + j));
        }
    }
    if block_max_abs > p.top.floor {
        for j in 0..BLOCK {
            let (lv, rv) = value_at(c, lbytes, rbytes, j);
            let a = (rv - lv).abs();
            if a > p.top.floor {
                p.top.offer(Candidate { key: a, key_int: 0, index: b0 + j, left: lv, right: rv, exact: None });
            }
        }
    }
    true
}

#[inline(always)]
fn value_at<C: Codec>(c: C, lbytes: &[u8], rbytes: &[u8], j: usize) -> (f64, f64) {
    let s = c.size();
    (c.value(&lbytes[j * s..j * s + s]), c.value(&rbytes[j * s..j * s + s]))
}

/// The first index whose `|right − left|` is `target`.
fn find_abs<C: Codec>(k: Kernels, c: C, lbytes: &[u8], rbytes: &[u8], target: f64) -> Option<usize> {
    // SAFETY: as in `block`: `k` is a path the CPU has, and both sides are
    // one whole block.
    match k {
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx512 => return unsafe { avx512::find_abs::<C>(lbytes, rbytes, target) },
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx2 => return unsafe { avx2::find_abs::<C>(lbytes, rbytes, target) },
        _ => {}
    }
    (0..BLOCK).find(|&j| {
        let (lv, rv) = value_at(c, lbytes, rbytes, j);
        (rv - lv).abs() == target
    })
}

/// The block's largest `|right − left| / |left|` and its first index
/// (0/0 is NaN and never wins; x/0 is inf, "infinitely relative").
fn max_rel<C: Codec>(k: Kernels, c: C, lbytes: &[u8], rbytes: &[u8]) -> (f64, usize) {
    // SAFETY: as in `find_abs`.
    match k {
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx512 => return unsafe { avx512::max_rel::<C>(lbytes, rbytes) },
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx2 => return unsafe { avx2::max_rel::<C>(lbytes, rbytes) },
        _ => {}
    }
    let (mut m, mut at) = (0.0f64, 0);
    for j in 0..BLOCK {
        let (lv, rv) = value_at(c, lbytes, rbytes, j);
        let rel = (rv - lv).abs() / lv.abs();
        if rel > m {
            (m, at) = (rel, j);
        }
    }
    (m, at)
}

/// Every number one path's kernels give for one whole block of f32 (or of
/// bf16 when `bf16`) pairs, as text that differs wherever a bit does (f64s
/// print as their shortest round trip): `equal` on the left side, `values`
/// with and without the allclose counts under `bounds` (`[max_abs,
/// rel_floor, rtol, atol]`), `find_abs` of the largest difference, and
/// `max_rel`. Blocks holding NaN or inf are welcome: the kernels run on them
/// before the block is declined. For tests that hold the paths to the same
/// bits below the metrics, where a one-ULP lane difference may not survive
/// the lanes' sum. Panics on `Best`, `General` or a path this CPU lacks.
#[doc(hidden)]
pub fn block_kernels(k: Kernels, bf16: bool, lbytes: &[u8], rbytes: &[u8], bounds: [f64; 4]) -> String {
    assert!(k.supported() && !matches!(k, Kernels::Best | Kernels::General), "block_kernels({k:?})");
    if bf16 {
        kernels_text(k, super::Bf16Codec, lbytes, rbytes, bounds)
    } else {
        kernels_text(k, super::F32Codec, lbytes, rbytes, bounds)
    }
}

fn kernels_text<C: Codec>(k: Kernels, c: C, lbytes: &[u8], rbytes: &[u8], bounds: Bounds) -> String {
    assert!(lbytes.len() == BLOCK * c.size() && rbytes.len() == lbytes.len(), "one whole block a side");
    // SAFETY: `k` is a path the CPU has (asserted by the caller), and both
    // sides are one whole block (asserted above).
    let (ll, mag) = match k {
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx512 => unsafe { avx512::equal::<C>(lbytes) },
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx2 => unsafe { avx2::equal::<C>(lbytes) },
        _ => equal_portable(c, lbytes),
    };
    let values = |close: bool| match (k, close) {
        #[cfg(target_arch = "x86_64")]
        (Kernels::Avx512, true) => unsafe { avx512::values::<C, true>(lbytes, rbytes, bounds) },
        #[cfg(target_arch = "x86_64")]
        (Kernels::Avx512, false) => unsafe { avx512::values::<C, false>(lbytes, rbytes, bounds) },
        #[cfg(target_arch = "x86_64")]
        (Kernels::Avx2, true) => unsafe { avx2::values::<C, true>(lbytes, rbytes, bounds) },
        #[cfg(target_arch = "x86_64")]
        (Kernels::Avx2, false) => unsafe { avx2::values::<C, false>(lbytes, rbytes, bounds) },
        (_, true) => values_portable::<C, true>(c, lbytes, rbytes, bounds),
        (_, false) => values_portable::<C, false>(c, lbytes, rbytes, bounds),
    };
    let (with, without) = (values(true), values(false));
    let found = find_abs(k, c, lbytes, rbytes, lane_max(&with.max_abs));
    format!("equal {ll:?} {mag}\nclose {with:?}\nplain {without:?}\nfind_abs {found:?}\nmax_rel {:?}", max_rel(k, c, lbytes, rbytes))
}

/// The portable definition of [`avx512::equal`] and [`avx2::equal`]: `Σleft²` in lanes, and the
/// largest magnitude.
fn equal_portable<C: Codec>(c: C, bytes: &[u8]) -> ([f64; LANES], u32) {
    let (mut ll, mut mag) = ([0.0f64; LANES], 0u32);
    for b in bytes.chunks_exact(LANES * c.size()) {
        let x = c.load8(b);
        for k in 0..LANES {
            mag = mag.max(x[k] & MAG);
            let v = f32::from_bits(x[k]) as f64;
            ll[k] += v * v;
        }
    }
    (ll, mag)
}

/// The portable definition of [`avx512::values`] and [`avx2::values`]: every lane and count of a
/// block, eight pairs (one per lane) at a time.
#[allow(clippy::needless_range_loop)] // index loops over lanes are what vectorises
fn values_portable<C: Codec, const CLOSE: bool>(c: C, lbytes: &[u8], rbytes: &[u8], bounds: Bounds) -> Lanes {
    let [max_abs, rel_floor, rtol, atol] = bounds;
    let mut f = Lanes::default();
    let step = LANES * c.size();
    for (lx, rx) in lbytes.chunks_exact(step).zip(rbytes.chunks_exact(step)) {
        let (x, y) = (c.load8(lx), c.load8(rx));
        for k in 0..LANES {
            f.equal += (x[k] == y[k]) as u64;
            let (mx, my) = (x[k] & MAG, y[k] & MAG);
            f.max_mag = f.max_mag.max(mx).max(my);
            // Sign-magnitude → monotone integer (−0 and +0 both 0), as
            // `DType::ordered_key`; the distance of two finite f32 keys is
            // below 2^32, so max − min wraps into the right u32.
            let kx = if (x[k] as i32) < 0 { (mx as i32).wrapping_neg() } else { mx as i32 };
            let ky = if (y[k] as i32) < 0 { (my as i32).wrapping_neg() } else { my as i32 };
            f.max_ulp = f.max_ulp.max(kx.max(ky).wrapping_sub(kx.min(ky)) as u32);
        }
        // f32 → f64 is exact.
        let lv: [f64; LANES] = std::array::from_fn(|k| f32::from_bits(x[k]) as f64);
        let rv: [f64; LANES] = std::array::from_fn(|k| f32::from_bits(y[k]) as f64);
        for k in 0..LANES {
            let d = rv[k] - lv[k];
            let a = d.abs();
            f.abs[k] += a;
            f.sq[k] += d * d;
            f.dot[k] += lv[k] * rv[k];
            f.ll[k] += lv[k] * lv[k];
            f.rr[k] += rv[k] * rv[k];
            f.max_abs[k] = if a > f.max_abs[k] { a } else { f.max_abs[k] };
            f.over += (a > max_abs) as u64;
            f.rel_hit |= a > rel_floor * lv[k].abs();
            if CLOSE {
                f.outside += (a > atol + rtol * lv[k].abs()) as u64;
            }
        }
    }
    f
}

/// The AVX-512 kernels (`avx512.rs`).
#[cfg(target_arch = "x86_64")]
mod avx512;

/// The AVX2 kernels (`avx2.rs`).
#[cfg(target_arch = "x86_64")]
mod avx2;
