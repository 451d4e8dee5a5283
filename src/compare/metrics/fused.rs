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

/// The AVX-512 kernels: sixteen pairs per step, as two sets of the eight
/// lanes (pairs 0–7, then 8–15: the portable order). bf16 is widened to the
/// f32 bits of the same value (a 16-bit shift) on load.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Bounds, Codec, Lanes, BLOCK, LANES, MAG};
    use std::arch::x86_64::*;

    const _: () = assert!(LANES == 8 && BLOCK.is_multiple_of(16));

    /// The bytes of sixteen elements: 64 for f32, 32 for bf16.
    #[inline(always)]
    fn bytes16<C: Codec>() -> usize {
        if C::ULP_SHIFT == 16 {
            32
        } else {
            64
        }
    }

    /// Sixteen elements at `p`, as the bits of the f32 with the same value.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn load16<C: Codec>(p: *const u8) -> __m512i {
        if C::ULP_SHIFT == 16 {
            _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast())))
        } else {
            _mm512_loadu_si512(p.cast())
        }
    }

    /// The two halves of sixteen f32 bits, widened exactly to f64.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn widen(x: __m512i) -> [__m512d; 2] {
        let lo = _mm512_castsi512_si256(x);
        let hi = _mm512_extracti64x4_epi64::<1>(x);
        [_mm512_cvtps_pd(_mm256_castsi256_ps(lo)), _mm512_cvtps_pd(_mm256_castsi256_ps(hi))]
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn lanes_f64(v: __m512d) -> [f64; LANES] {
        let mut o = [0.0; LANES];
        _mm512_storeu_pd(o.as_mut_ptr(), v);
        o
    }

    /// [`super::equal_portable`].
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn equal<C: Codec>(bytes: &[u8]) -> ([f64; LANES], u32) {
        let step = bytes16::<C>();
        let (mut ll, mut mag) = (_mm512_setzero_pd(), _mm512_setzero_si512());
        let mag_bits = _mm512_set1_epi32(MAG as i32);
        for i in (0..bytes.len()).step_by(step) {
            let x = load16::<C>(bytes.as_ptr().add(i));
            mag = _mm512_max_epu32(mag, _mm512_and_si512(x, mag_bits));
            for v in widen(x) {
                ll = _mm512_add_pd(ll, _mm512_mul_pd(v, v));
            }
        }
        (lanes_f64(ll), _mm512_reduce_max_epu32(mag))
    }

    /// [`super::values_portable`].
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn values<C: Codec, const CLOSE: bool>(lbytes: &[u8], rbytes: &[u8], bounds: Bounds) -> Lanes {
        let step = bytes16::<C>();
        let [max_abs, rel_floor, rtol, atol] = bounds.map(|b| _mm512_set1_pd(b));
        let zd = _mm512_setzero_pd();
        let zi = _mm512_setzero_si512();
        let mag_bits = _mm512_set1_epi32(MAG as i32);
        let (mut abs, mut sq, mut dot, mut ll, mut rr, mut max) = (zd, zd, zd, zd, zd, zd);
        let (mut mag, mut ulp) = (zi, zi);
        let (mut equal, mut over, mut outside, mut hit) = (0u64, 0u64, 0u64, 0u8);
        for i in (0..lbytes.len()).step_by(step) {
            let x = load16::<C>(lbytes.as_ptr().add(i));
            let y = load16::<C>(rbytes.as_ptr().add(i));
            equal += _mm512_cmpeq_epi32_mask(x, y).count_ones() as u64;
            let (mx, my) = (_mm512_and_si512(x, mag_bits), _mm512_and_si512(y, mag_bits));
            mag = _mm512_max_epu32(mag, _mm512_max_epu32(mx, my));
            // Negative values' keys are −magnitude: 0 − m where the sign bit is set.
            let kx = _mm512_mask_sub_epi32(mx, _mm512_movepi32_mask(x), zi, mx);
            let ky = _mm512_mask_sub_epi32(my, _mm512_movepi32_mask(y), zi, my);
            ulp = _mm512_max_epu32(ulp, _mm512_sub_epi32(_mm512_max_epi32(kx, ky), _mm512_min_epi32(kx, ky)));
            let (xs, ys) = (widen(x), widen(y));
            for h in 0..2 {
                let (lv, rv) = (xs[h], ys[h]);
                let d = _mm512_sub_pd(rv, lv);
                let a = _mm512_abs_pd(d);
                abs = _mm512_add_pd(abs, a);
                sq = _mm512_add_pd(sq, _mm512_mul_pd(d, d));
                dot = _mm512_add_pd(dot, _mm512_mul_pd(lv, rv));
                ll = _mm512_add_pd(ll, _mm512_mul_pd(lv, lv));
                rr = _mm512_add_pd(rr, _mm512_mul_pd(rv, rv));
                // maxpd(a, m) is `if a > m { a } else { m }`.
                max = _mm512_max_pd(a, max);
                over += _mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, max_abs).count_ones() as u64;
                let la = _mm512_abs_pd(lv);
                hit |= _mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, _mm512_mul_pd(rel_floor, la));
                if CLOSE {
                    let bound = _mm512_add_pd(atol, _mm512_mul_pd(rtol, la));
                    outside += _mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, bound).count_ones() as u64;
                }
            }
        }
        Lanes {
            abs: lanes_f64(abs),
            sq: lanes_f64(sq),
            dot: lanes_f64(dot),
            ll: lanes_f64(ll),
            rr: lanes_f64(rr),
            max_abs: lanes_f64(max),
            over,
            outside,
            rel_hit: hit != 0,
            equal,
            max_mag: _mm512_reduce_max_epu32(mag),
            max_ulp: _mm512_reduce_max_epu32(ulp),
        }
    }

    /// [`super::find_abs`].
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn find_abs<C: Codec>(lbytes: &[u8], rbytes: &[u8], target: f64) -> Option<usize> {
        let step = bytes16::<C>();
        let t = _mm512_set1_pd(target);
        for (s, i) in (0..lbytes.len()).step_by(step).enumerate() {
            let xs = widen(load16::<C>(lbytes.as_ptr().add(i)));
            let ys = widen(load16::<C>(rbytes.as_ptr().add(i)));
            for h in 0..2 {
                let a = _mm512_abs_pd(_mm512_sub_pd(ys[h], xs[h]));
                let m = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(a, t);
                if m != 0 {
                    return Some(16 * s + 8 * h + m.trailing_zeros() as usize);
                }
            }
        }
        None
    }

    /// [`super::max_rel`]: the maximum first (maxpd skips NaN, as `>` does),
    /// then its first index.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn max_rel<C: Codec>(lbytes: &[u8], rbytes: &[u8]) -> (f64, usize) {
        let step = bytes16::<C>();
        let mut m = _mm512_setzero_pd();
        for i in (0..lbytes.len()).step_by(step) {
            for h in 0..2 {
                m = _mm512_max_pd(rel::<C>(lbytes, rbytes, i, h), m);
            }
        }
        let best = _mm512_reduce_max_pd(m);
        if best <= 0.0 {
            return (0.0, 0);
        }
        let t = _mm512_set1_pd(best);
        for (s, i) in (0..lbytes.len()).step_by(step).enumerate() {
            for h in 0..2 {
                let hit = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(rel::<C>(lbytes, rbytes, i, h), t);
                if hit != 0 {
                    return (best, 16 * s + 8 * h + hit.trailing_zeros() as usize);
                }
            }
        }
        unreachable!("the block's maximum ratio occurs in the block")
    }

    /// `|right − left| / |left|` of half `h` of the sixteen pairs at byte `i`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn rel<C: Codec>(lbytes: &[u8], rbytes: &[u8], i: usize, h: usize) -> __m512d {
        let (xs, ys) = (widen(load16::<C>(lbytes.as_ptr().add(i))), widen(load16::<C>(rbytes.as_ptr().add(i))));
        _mm512_div_pd(_mm512_abs_pd(_mm512_sub_pd(ys[h], xs[h])), _mm512_abs_pd(xs[h]))
    }

}

/// The AVX2 kernels: eight pairs per step, each accumulator two `__m256d`
/// (lanes 0–3, then 4–7), so lane `k` adds pair `8s + k` at step `s`, as the
/// portable loop does (`values` takes the two halves in turn). bf16 is widened to the f32 bits of the same value (a
/// 16-bit shift) on load. Counts are kept per lane in vectors (subtracting
/// a comparison's mask, −1 where true, adds 1) and summed at the end:
/// integers, so in any order.
///
/// Compiled with FMA enabled (the path is chosen on AVX2+FMA CPUs) but no
/// FMA intrinsic is used, and Rust never contracts `a * b + c`: every
/// product is rounded before its sum, as on the other paths.
///
/// Every function here is `unsafe` for one reason, the caller's to uphold:
/// the CPU has AVX2 and FMA. Memory safety is argued inside: loads read only
/// `[i, i + step)` with `i + step ≤ len`.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Bounds, Codec, Lanes, BLOCK, LANES, MAG};
    use std::arch::x86_64::*;

    const _: () = assert!(LANES == 8 && BLOCK.is_multiple_of(8));

    /// The bytes of eight elements: 32 for f32, 16 for bf16.
    #[inline(always)]
    fn bytes8<C: Codec>() -> usize {
        debug_assert!(C::FAST);
        if C::ULP_SHIFT == 16 {
            16
        } else {
            32
        }
    }

    /// Eight elements at `p`, as the bits of the f32 with the same value.
    /// The caller guarantees `bytes8::<C>()` readable bytes at `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load8<C: Codec>(p: *const u8) -> __m256i {
        // SAFETY: unaligned loads of exactly `bytes8::<C>()` bytes.
        unsafe {
            if C::ULP_SHIFT == 16 {
                _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())))
            } else {
                _mm256_loadu_si256(p.cast())
            }
        }
    }

    /// Eight f32 bits widened exactly to f64: lanes 0–3 and 4–7.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn widen(x: __m256i) -> [__m256d; 2] {
        let f = _mm256_castsi256_ps(x);
        [_mm256_cvtps_pd(_mm256_castps256_ps128(f)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(f))]
    }

    /// `|v|`: the sign bit cleared, as `f64::abs`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn abs(v: __m256d) -> __m256d {
        _mm256_andnot_pd(_mm256_set1_pd(-0.0), v)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn lanes_f64(v: [__m256d; 2]) -> [f64; LANES] {
        let mut o = [0.0; LANES];
        let (lo, hi) = o.split_at_mut(4);
        // SAFETY: each half of `o` holds four f64, the 32 bytes stored.
        unsafe {
            _mm256_storeu_pd(lo.as_mut_ptr(), v[0]);
            _mm256_storeu_pd(hi.as_mut_ptr(), v[1]);
        }
        o
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn words(v: __m256i) -> [u32; 8] {
        let mut o = [0u32; 8];
        // SAFETY: `o` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), v) };
        o
    }

    /// The sum of four u64 counts.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn count64(v: __m256i) -> u64 {
        let w = words(v);
        (0..4).map(|i| w[2 * i] as u64 | (w[2 * i + 1] as u64) << 32).sum()
    }

    /// [`super::equal_portable`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn equal<C: Codec>(bytes: &[u8]) -> ([f64; LANES], u32) {
        let step = bytes8::<C>();
        debug_assert!(bytes.len().is_multiple_of(step));
        let mut ll = [_mm256_setzero_pd(); 2];
        let mut mag = _mm256_setzero_si256();
        let mag_bits = _mm256_set1_epi32(MAG as i32);
        for i in (0..bytes.len()).step_by(step) {
            // SAFETY: i < len and len is a multiple of step, so
            // [i, i + step) lies inside `bytes`.
            let x = unsafe { load8::<C>(bytes.as_ptr().add(i)) };
            mag = _mm256_max_epu32(mag, _mm256_and_si256(x, mag_bits));
            let v = widen(x);
            for h in 0..2 {
                ll[h] = _mm256_add_pd(ll[h], _mm256_mul_pd(v[h], v[h]));
            }
        }
        (lanes_f64(ll), words(mag).into_iter().max().unwrap_or(0))
    }

    /// Four elements at `p` (lanes `4h..4h + 4` of a step), widened exactly
    /// to f64. The caller guarantees `bytes8::<C>() / 2` readable bytes at `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load4_f64<C: Codec>(p: *const u8) -> __m256d {
        // SAFETY: unaligned loads of exactly half a step: 8 bytes (bf16) or 16 (f32).
        unsafe {
            if C::ULP_SHIFT == 16 {
                let w = _mm_slli_epi32::<16>(_mm_cvtepu16_epi32(_mm_loadl_epi64(p.cast())));
                _mm256_cvtps_pd(_mm_castsi128_ps(w))
            } else {
                _mm256_cvtps_pd(_mm_loadu_ps(p.cast()))
            }
        }
    }

    /// [`super::values_portable`], in three passes over the block (it is in
    /// L1): the bit-level facts eight pairs at a time, then lanes 0–3, then
    /// lanes 4–7. Each lane still adds pair `8s + k` at step `s`, in order
    /// of `s`: the portable order. (Sixteen AVX2 registers cannot hold the
    /// twelve f64 accumulators of both halves and the counters at once;
    /// one half at a time they stay in registers instead of spilling.)
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn values<C: Codec, const CLOSE: bool>(lbytes: &[u8], rbytes: &[u8], bounds: Bounds) -> Lanes {
        let step = bytes8::<C>();
        debug_assert!(lbytes.len().is_multiple_of(step) && rbytes.len() == lbytes.len());
        let zi = _mm256_setzero_si256();
        let mag_bits = _mm256_set1_epi32(MAG as i32);
        // Per lane: equal pairs (i32, at most BLOCK / 8), the largest
        // magnitude and ULP distance (u32).
        let (mut equal, mut mag, mut ulp) = (zi, zi, zi);
        for i in (0..lbytes.len()).step_by(step) {
            // SAFETY: i < len, len a multiple of step, both sides len bytes.
            let (x, y) = unsafe { (load8::<C>(lbytes.as_ptr().add(i)), load8::<C>(rbytes.as_ptr().add(i))) };
            equal = _mm256_sub_epi32(equal, _mm256_cmpeq_epi32(x, y));
            let (mx, my) = (_mm256_and_si256(x, mag_bits), _mm256_and_si256(y, mag_bits));
            mag = _mm256_max_epu32(mag, _mm256_max_epu32(mx, my));
            // Keys: −magnitude where the sign bit is set (x < 0 as i32), the
            // magnitude otherwise (where x is 0 the magnitude is 0 anyway).
            let (kx, ky) = (_mm256_sign_epi32(mx, x), _mm256_sign_epi32(my, y));
            ulp = _mm256_max_epu32(ulp, _mm256_sub_epi32(_mm256_max_epi32(kx, ky), _mm256_min_epi32(kx, ky)));
        }
        let [max_abs, rel_floor, rtol, atol] = bounds.map(|b| _mm256_set1_pd(b));
        let zd = [_mm256_setzero_pd(); 2];
        let (mut sum_abs, mut sq, mut dot, mut ll, mut rr, mut max) = (zd, zd, zd, zd, zd, zd);
        // Per lane: pairs over max_abs and outside allclose (u64).
        let (mut over, mut outside) = (zi, zi);
        let mut hit = _mm256_setzero_pd();
        let half = step / 2;
        for h in 0..2 {
            let (mut s_abs, mut s_sq, mut s_dot, mut s_ll, mut s_rr, mut s_max) = (zd[h], zd[h], zd[h], zd[h], zd[h], zd[h]);
            for i in (h * half..lbytes.len()).step_by(step) {
                // SAFETY: i + half ≤ len: i = s·step + h·half with s·step < len.
                let (lv, rv) = unsafe { (load4_f64::<C>(lbytes.as_ptr().add(i)), load4_f64::<C>(rbytes.as_ptr().add(i))) };
                let d = _mm256_sub_pd(rv, lv);
                let a = abs(d);
                s_abs = _mm256_add_pd(s_abs, a);
                s_sq = _mm256_add_pd(s_sq, _mm256_mul_pd(d, d));
                s_dot = _mm256_add_pd(s_dot, _mm256_mul_pd(lv, rv));
                s_ll = _mm256_add_pd(s_ll, _mm256_mul_pd(lv, lv));
                s_rr = _mm256_add_pd(s_rr, _mm256_mul_pd(rv, rv));
                // maxpd(a, m) is `if a > m { a } else { m }`.
                s_max = _mm256_max_pd(a, s_max);
                over = _mm256_sub_epi64(over, _mm256_castpd_si256(_mm256_cmp_pd::<_CMP_GT_OQ>(a, max_abs)));
                let la = abs(lv);
                hit = _mm256_or_pd(hit, _mm256_cmp_pd::<_CMP_GT_OQ>(a, _mm256_mul_pd(rel_floor, la)));
                if CLOSE {
                    let bound = _mm256_add_pd(atol, _mm256_mul_pd(rtol, la));
                    outside = _mm256_sub_epi64(outside, _mm256_castpd_si256(_mm256_cmp_pd::<_CMP_GT_OQ>(a, bound)));
                }
            }
            (sum_abs[h], sq[h], dot[h], ll[h], rr[h], max[h]) = (s_abs, s_sq, s_dot, s_ll, s_rr, s_max);
        }
        Lanes {
            abs: lanes_f64(sum_abs),
            sq: lanes_f64(sq),
            dot: lanes_f64(dot),
            ll: lanes_f64(ll),
            rr: lanes_f64(rr),
            max_abs: lanes_f64(max),
            over: count64(over),
            outside: count64(outside),
            rel_hit: _mm256_movemask_pd(hit) != 0,
            equal: words(equal).iter().map(|&e| e as u64).sum(),
            max_mag: words(mag).into_iter().max().unwrap_or(0),
            max_ulp: words(ulp).into_iter().max().unwrap_or(0),
        }
    }

    /// `|right − left|` of the eight pairs at byte `i`, as lanes 0–3, 4–7.
    /// The caller guarantees `i + bytes8::<C>() ≤ len` on both sides.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn abs_diff<C: Codec>(lbytes: &[u8], rbytes: &[u8], i: usize) -> ([__m256d; 2], [__m256d; 2]) {
        // SAFETY: the caller's bound.
        let (x, y) = unsafe { (load8::<C>(lbytes.as_ptr().add(i)), load8::<C>(rbytes.as_ptr().add(i))) };
        let (xs, ys) = (widen(x), widen(y));
        ([abs(_mm256_sub_pd(ys[0], xs[0])), abs(_mm256_sub_pd(ys[1], xs[1]))], xs)
    }

    /// [`super::find_abs`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn find_abs<C: Codec>(lbytes: &[u8], rbytes: &[u8], target: f64) -> Option<usize> {
        let step = bytes8::<C>();
        debug_assert!(lbytes.len().is_multiple_of(step) && rbytes.len() == lbytes.len());
        let t = _mm256_set1_pd(target);
        for (s, i) in (0..lbytes.len()).step_by(step).enumerate() {
            // SAFETY: i < len, len a multiple of step, both sides len bytes.
            let (a, _) = unsafe { abs_diff::<C>(lbytes, rbytes, i) };
            for (h, a) in a.into_iter().enumerate() {
                let m = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(a, t));
                if m != 0 {
                    return Some(8 * s + 4 * h + m.trailing_zeros() as usize);
                }
            }
        }
        None
    }

    /// [`super::max_rel`]: the maximum first (maxpd skips NaN, as `>` does),
    /// then its first index.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn max_rel<C: Codec>(lbytes: &[u8], rbytes: &[u8]) -> (f64, usize) {
        let step = bytes8::<C>();
        debug_assert!(lbytes.len().is_multiple_of(step) && rbytes.len() == lbytes.len());
        // SAFETY (both loops): i < len, len a multiple of step, both sides len bytes.
        let rel = |i: usize| {
            let (a, xs) = unsafe { abs_diff::<C>(lbytes, rbytes, i) };
            [_mm256_div_pd(a[0], abs(xs[0])), _mm256_div_pd(a[1], abs(xs[1]))]
        };
        let mut m = _mm256_setzero_pd();
        for i in (0..lbytes.len()).step_by(step) {
            for r in rel(i) {
                m = _mm256_max_pd(r, m);
            }
        }
        let best = lanes_f64([m, m])[..4].iter().fold(0.0f64, |b, &v| if v > b { v } else { b });
        if best <= 0.0 {
            return (0.0, 0);
        }
        let t = _mm256_set1_pd(best);
        for (s, i) in (0..lbytes.len()).step_by(step).enumerate() {
            for (h, r) in rel(i).into_iter().enumerate() {
                let hit = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(r, t));
                if hit != 0 {
                    return (best, 8 * s + 4 * h + hit.trailing_zeros() as usize);
                }
            }
        }
        unreachable!("the block's maximum ratio occurs in the block")
    }
}
