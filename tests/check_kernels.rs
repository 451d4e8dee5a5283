//! The comparer's block kernels — every SIMD path this machine runs
//! (AVX-512, AVX2; forced whatever `PARITY_SIMD` says), the portable fused
//! kernels and the general pass — give the same bits, and those bits agree
//! with a plain computation written here. Tensors span several whole blocks
//! (the fused pass takes only whole blocks) mixing the block kinds a real
//! check meets: bit-identical blocks, blocks a few ULPs apart, unrelated
//! blocks (any finite bits: subnormals, −0, huge values), blocks holding
//! NaN or ±inf, and blocks of ties (pairs whose difference or ratio repeats,
//! or sits exactly on a tolerance), in f32 and in bf16.
//!
//! The kernel switch is process-wide, so this file holds the only tests that
//! flip it (each test binary is its own process).

mod proptest_support;
use parity::compare::metrics::{block_kernels, force_kernels, measure, Kernels, Metrics, BLOCK};
use parity::compare::tolerance::Tolerance;
use parity::format::dtype::DType;
use parity::format::tensor::Tensor;
use proptest::prelude::*;
use std::sync::Mutex;

/// Serialises the tests of this file around the process-wide switch.
static SWITCH: Mutex<()> = Mutex::new(());

/// One block's worth of pairs, as f32 bits.
#[derive(Clone, Debug)]
enum BlockKind {
    /// Both sides the same bits.
    Same(Vec<u32>),
    /// The right side `steps[i]` ULPs away from the left (wrapping through signs).
    Near(Vec<u32>, Vec<i32>),
    /// Unrelated values.
    Apart(Vec<u32>, Vec<u32>),
    /// Small values against ones ~2^10 larger: each `d` needs ~34 bits, so
    /// `d²` is rounded, and the squares are of one size, so how each is
    /// rounded reaches the sums (an FMA on one path shows).
    Wide(Vec<u32>, Vec<u32>),
    /// Mostly near, with a NaN or an inf on one or both sides somewhere.
    NonFinite(Vec<u32>, usize, u32, bool),
    /// Mostly near, with one exact pair (left, right) repeated at some
    /// positions: equal differences and ratios, or on a tolerance exactly.
    Ties(Vec<u32>, Vec<i32>, Vec<usize>, (f32, f32)),
}

/// The kernels this machine runs, each forced in turn: `Best` is whatever
/// the process chose (`PARITY_SIMD` or the CPU), the others explicitly.
fn kernels() -> Vec<Kernels> {
    [Kernels::Best, Kernels::Avx512, Kernels::Avx2, Kernels::Portable, Kernels::General]
        .into_iter()
        .filter(|k| k.supported())
        .collect()
}

/// Pairs exact in f32 and in bf16 whose differences are powers of two
/// (ties with the tolerances below), or whose left side is ±0 (ratio inf).
const TIES: [(f32, f32); 8] = [
    (1.0, 1.0 + 1.0 / 1024.0),
    (-1.0, -1.0 - 1.0 / 1024.0),
    (1.0, 1.0 + 1.0 / 128.0),
    (-0.5, -0.5 + 1.0 / 256.0),
    (0.0, 1.0 / 1024.0),
    (-0.0, -1.0 / 128.0),
    (1.0, 1.5 + 1.0 / 128.0),
    (2.0, 3.0 + 1.0 / 1024.0),
];

fn value_bits() -> impl Strategy<Value = u32> {
    prop_oneof![
        8 => (-4.0f32..4.0).prop_map(f32::to_bits),
        1 => Just(0u32),
        1 => Just(0x8000_0000u32),
        1 => (1u32..0x0080_0000).prop_map(|m| m | 0x8000_0000 * (m & 1)), // subnormals of both signs
        1 => (-1e30f32..1e30).prop_map(f32::to_bits),
        // Any finite bits (an inf or NaN exponent loses its low bit).
        1 => any::<u32>().prop_map(|b| if b & 0x7f80_0000 == 0x7f80_0000 { b & !0x0080_0000 } else { b }),
    ]
}

/// Small steps in ULPs, mostly none.
fn steps() -> impl Strategy<Value = Vec<i32>> {
    prop::collection::vec(prop_oneof![4 => Just(0i32), 2 => -3i32..4, 1 => -70000i32..70000], BLOCK)
}

fn block_kind() -> impl Strategy<Value = BlockKind> {
    let v = || prop::collection::vec(value_bits(), BLOCK);
    prop_oneof![
        3 => v().prop_map(BlockKind::Same),
        3 => (v(), steps()).prop_map(|(l, s)| BlockKind::Near(l, s)),
        2 => (v(), v()).prop_map(|(l, r)| BlockKind::Apart(l, r)),
        2 => (
            prop::collection::vec((-4.0f32..4.0).prop_map(f32::to_bits), BLOCK),
            prop::collection::vec(prop_oneof![(1000.0f32..2000.0), (-2000.0f32..-1000.0)].prop_map(f32::to_bits), BLOCK),
        )
            .prop_map(|(l, r)| BlockKind::Wide(l, r)),
        // NaNs of both signs and payloads (0x7f80_0001 is an inf once cut to bf16), ±inf.
        1 => (v(), 0..BLOCK, prop::sample::select(vec![0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0x7fc0_0001, 0x7f80_0000, 0xff80_0000]), any::<bool>())
            .prop_map(|(l, at, bits, both)| BlockKind::NonFinite(l, at, bits, both)),
        // Small values, so the tied pairs hold the block's largest differences.
        2 => (
            prop::collection::vec((-4.0f32..4.0).prop_map(f32::to_bits), BLOCK),
            steps().prop_map(|s| s.into_iter().map(|s| s.clamp(-3, 3)).collect()),
            prop::collection::vec(0..BLOCK, 1..6),
            prop::sample::select(TIES.to_vec()),
        )
            .prop_map(|(l, s, at, pair)| BlockKind::Ties(l, s, at, pair)),
    ]
}

/// Step `bits` by `s` ULPs on the ordered line (−0 and +0 share a point).
fn step(bits: u32, s: i32) -> u32 {
    let key = if bits & 0x8000_0000 != 0 { -((bits & 0x7fff_ffff) as i64) } else { bits as i64 };
    let k = (key + s as i64).clamp(-0x7f7f_ffff, 0x7f7f_ffff);
    if k < 0 {
        (-k) as u32 | 0x8000_0000
    } else {
        k as u32
    }
}

/// The two sides' f32 bits: whole blocks, then a partial one.
fn sides(kinds: &[BlockKind], tail: &[(u32, u32)]) -> (Vec<u32>, Vec<u32>) {
    let (mut l, mut r) = (Vec::new(), Vec::new());
    for k in kinds {
        match k {
            BlockKind::Same(v) => {
                l.extend(v);
                r.extend(v);
            }
            BlockKind::Near(v, s) => {
                l.extend(v);
                r.extend(v.iter().zip(s).map(|(&b, &s)| step(b, s)));
            }
            BlockKind::Apart(a, b) | BlockKind::Wide(a, b) => {
                l.extend(a);
                r.extend(b);
            }
            BlockKind::NonFinite(v, at, bits, both) => {
                let mut lv = v.clone();
                let mut rv: Vec<u32> = v.iter().map(|&b| step(b, 1)).collect();
                rv[*at] = *bits;
                if *both {
                    lv[*at] = *bits;
                }
                l.extend(lv);
                r.extend(rv);
            }
            BlockKind::Ties(v, s, at, (a, b)) => {
                let mut lv = v.clone();
                let mut rv: Vec<u32> = v.iter().zip(s).map(|(&b, &s)| step(b, s)).collect();
                for &j in at {
                    (lv[j], rv[j]) = (a.to_bits(), b.to_bits());
                }
                l.extend(lv);
                r.extend(rv);
            }
        }
    }
    for &(a, b) in tail {
        l.push(a);
        r.push(b);
    }
    (l, r)
}

fn f32_pair(l: &[u32], r: &[u32]) -> (Tensor, Tensor) {
    let f = |v: &[u32]| Tensor::from_f32(vec![v.len()], &v.iter().map(|&b| f32::from_bits(b)).collect::<Vec<_>>());
    (f(l), f(r))
}

/// The same pairs cut to bf16 (top halves): RNE does not matter here, any
/// bf16 bits will do.
fn bf16_pair(l: &[u32], r: &[u32]) -> (Tensor, Tensor) {
    let f = |v: &[u32]| Tensor::from_u16_bits(DType::BF16, vec![v.len()], &v.iter().map(|&b| (b >> 16) as u16).collect::<Vec<_>>());
    (f(l), f(r))
}

fn with_kernels(k: Kernels, l: &Tensor, r: &Tensor, tol: &Tolerance, top: usize) -> Metrics {
    force_kernels(k);
    let m = measure(l.view(), r.view(), tol, top);
    force_kernels(Kernels::Best);
    m
}

fn tolerances() -> impl Strategy<Value = Tolerance> {
    prop_oneof![
        Just(Tolerance::gate(1e-3, 1e-5)),
        Just(Tolerance::gate(0.0, 0.0)),
        Just(Tolerance::gate(1e-3, 1e-5).with_allclose(1e-3, 1e-6, 0.0)),
        // Limits the tied pairs meet exactly (|d| = max_abs, |d| = atol + rtol·|left|).
        Just(Tolerance::gate(1.0 / 1024.0, 1e-5).with_allclose(0.5, 1.0 / 1024.0, 0.0)),
        Just(Tolerance::gate(1.0 / 128.0, 1e-5).with_allclose(0.5, 1.0 / 128.0, 0.0)),
    ]
}

/// The plain computation: one loop, f64, no lanes, no blocks.
struct Plain {
    compared: u64,
    max_abs: f64,
    max_abs_at: Option<usize>,
    max_rel: f64,
    max_rel_at: Option<usize>,
    sum_abs: f64,
    sum_sq: f64,
    dot: f64,
    ll: f64,
    rr: f64,
    max_ulp: u64,
    not_bit_equal: u64,
    over: u64,
    nf_mismatched: u64,
}

fn plain(l: &[f64], r: &[f64], lbits: &[u32], rbits: &[u32], ulp_shift: u32, max_abs_tol: f64) -> Plain {
    let key = |b: u32| if b & 0x8000_0000 != 0 { -((b & 0x7fff_ffff) as i64) } else { b as i64 };
    let mut p = Plain {
        compared: 0,
        max_abs: 0.0,
        max_abs_at: None,
        max_rel: 0.0,
        max_rel_at: None,
        sum_abs: 0.0,
        sum_sq: 0.0,
        dot: 0.0,
        ll: 0.0,
        rr: 0.0,
        max_ulp: 0,
        not_bit_equal: 0,
        over: 0,
        nf_mismatched: 0,
    };
    for i in 0..l.len() {
        p.not_bit_equal += (lbits[i] != rbits[i]) as u64;
        let (x, y) = (l[i], r[i]);
        if !(x.is_finite() && y.is_finite()) {
            let class = |v: f64| if v.is_nan() { 1 } else if v.is_infinite() { 2 + (v < 0.0) as u8 } else { 0 };
            p.nf_mismatched += (class(x) != class(y)) as u64;
            continue;
        }
        p.compared += 1;
        p.max_ulp = p.max_ulp.max(key(lbits[i]).abs_diff(key(rbits[i])) >> ulp_shift);
        let d = y - x;
        let a = d.abs();
        if a > p.max_abs {
            (p.max_abs, p.max_abs_at) = (a, Some(i));
        }
        let rel = a / x.abs();
        if rel > p.max_rel {
            (p.max_rel, p.max_rel_at) = (rel, Some(i));
        }
        p.over += (a > max_abs_tol) as u64;
        p.sum_abs += a;
        p.sum_sq += d * d;
        p.dot += x * y;
        p.ll += x * x;
        p.rr += y * y;
    }
    p
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// One block's stored bytes: f32, or the top halves as bf16.
fn block_bytes(bits: &[u32], bf16: bool) -> Vec<u8> {
    if bf16 {
        bits.iter().flat_map(|&b| ((b >> 16) as u16).to_le_bytes()).collect()
    } else {
        bits.iter().flat_map(|&b| b.to_le_bytes()).collect()
    }
}

/// `[max_abs, rel_floor, rtol, atol]` as the fused pass gets them: exact
/// powers of two the tied pairs meet, decimals, 0 and inf.
fn bounds() -> impl Strategy<Value = [f64; 4]> {
    let b = |v: Vec<f64>| prop::sample::select(v);
    (
        b(vec![0.0, 1e-3, 1.0 / 1024.0, 1.0 / 128.0, f64::INFINITY]),
        b(vec![0.0, 1e-3, 0.5, 1.0 / 1024.0, f64::INFINITY]),
        b(vec![0.0, 1e-3, 0.5]),
        b(vec![0.0, 1e-6, 1.0 / 1024.0, 1.0 / 128.0]),
    )
        .prop_map(|(m, r, rt, at)| [m, r, rt, at])
}

proptest! {
    #![proptest_config(proptest_support::cases(64))]

    /// Below the metrics: every lane, count and index the fused kernels
    /// give for one block, path against path. (A one-ULP difference in one
    /// lane can vanish in the lanes' sum, so the metrics alone may miss it.)
    #[test]
    fn every_path_gives_the_same_lanes(kind in block_kind(), bounds in bounds(), bf16 in any::<bool>()) {
        let (lb, rb) = sides(&[kind], &[]);
        let (l, r) = (block_bytes(&lb, bf16), block_bytes(&rb, bf16));
        let portable = block_kernels(Kernels::Portable, bf16, &l, &r, bounds);
        for k in [Kernels::Avx512, Kernels::Avx2].into_iter().filter(|k| k.supported()) {
            let got = block_kernels(k, bf16, &l, &r, bounds);
            prop_assert_eq!(&got, &portable, "{:?} vs Portable", k);
        }
    }

    #[test]
    fn every_kernel_gives_the_same_bits(
        kinds in prop::collection::vec(block_kind(), 1..5),
        tail in prop::collection::vec((value_bits(), value_bits()), 0..40),
        tol in tolerances(),
        top in prop::sample::select(vec![0usize, 3]),
        bf16 in any::<bool>(),
    ) {
        let _g = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
        let (lb, rb) = sides(&kinds, &tail);
        let (l, r) = if bf16 { bf16_pair(&lb, &rb) } else { f32_pair(&lb, &rb) };
        // Bit-identical, NaN-safe: compare the debug forms, each path
        // against the portable one (the definition).
        let portable = format!("{:?}", with_kernels(Kernels::Portable, &l, &r, &tol, top));
        for k in kernels() {
            let m = format!("{:?}", with_kernels(k, &l, &r, &tol, top));
            prop_assert_eq!(&m, &portable, "{:?} vs Portable", k);
        }
    }

    #[test]
    fn the_kernels_agree_with_a_plain_computation(
        kinds in prop::collection::vec(block_kind(), 1..5),
        tail in prop::collection::vec((value_bits(), value_bits()), 0..40),
        bf16 in any::<bool>(),
    ) {
        let _g = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
        let (mut lb, mut rb) = sides(&kinds, &tail);
        if bf16 {
            // The bf16 values are the f32s with the low half cleared.
            for b in lb.iter_mut().chain(rb.iter_mut()) {
                *b &= 0xffff_0000;
            }
        }
        let (l, r) = if bf16 { bf16_pair(&lb, &rb) } else { f32_pair(&lb, &rb) };
        let tol = Tolerance::gate(1.0 / 1024.0, 1e-5);
        let lv: Vec<f64> = lb.iter().map(|&b| f32::from_bits(b) as f64).collect();
        let rv: Vec<f64> = rb.iter().map(|&b| f32::from_bits(b) as f64).collect();
        let p = plain(&lv, &rv, &lb, &rb, if bf16 { 16 } else { 0 }, tol.max_abs);
        let n = p.compared as f64;
        for k in kernels() {
            let m = with_kernels(k, &l, &r, &tol, 0);
            prop_assert_eq!(m.compared, p.compared, "{:?}", k);
            prop_assert_eq!(m.max_abs, p.max_abs, "{:?}", k);
            prop_assert_eq!(&m.max_abs_index, &p.max_abs_at.map(|i| vec![i]), "{:?}", k);
            prop_assert_eq!(m.max_rel, p.max_rel, "{:?}", k);
            prop_assert_eq!(&m.max_rel_index, &p.max_rel_at.map(|i| vec![i]), "{:?}", k);
            prop_assert_eq!(m.max_ulp, Some(p.max_ulp), "{:?}", k);
            prop_assert_eq!(m.not_bit_equal, Some(p.not_bit_equal), "{:?}", k);
            prop_assert_eq!(m.over_max_abs, p.over, "{:?}", k);
            prop_assert_eq!(m.non_finite.mismatched, p.nf_mismatched, "{:?}", k);
            if p.compared > 0 {
                prop_assert!(close(m.mean_abs, (p.sum_abs / n).min(p.max_abs)), "{:?}: mean_abs {} vs {}", k, m.mean_abs, p.sum_abs / n);
                prop_assert!(close(m.rms, (p.sum_sq / n).sqrt().min(p.max_abs)), "{:?}: rms {} vs {}", k, m.rms, (p.sum_sq / n).sqrt());
                if p.ll > 0.0 && p.rr > 0.0 {
                    let cos = (p.dot / (p.ll.sqrt() * p.rr.sqrt())).clamp(-1.0, 1.0);
                    prop_assert!((m.cosine - cos).abs() <= 1e-12, "{:?}: cosine {} vs {}", k, m.cosine, cos);
                    prop_assert!(close(m.nmse, p.sum_sq / p.ll), "{:?}: nmse {} vs {}", k, m.nmse, p.sum_sq / p.ll);
                }
            }
        }
    }
}

/// A whole block of equal bits next to one that differs: the shortcut for
/// equal blocks must not hide the other block's numbers.
#[test]
fn an_equal_block_beside_a_different_one_keeps_the_differences() {
    let _g = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let l: Vec<f32> = (0..2 * BLOCK).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut r = l.clone();
    r[BLOCK + 5] += 0.25;
    let (lt, rt) = (Tensor::from_f32(vec![2 * BLOCK], &l), Tensor::from_f32(vec![2 * BLOCK], &r));
    for k in kernels() {
        let m = with_kernels(k, &lt, &rt, &Tolerance::gate(1e-3, 1e-5), 0);
        assert_eq!(m.not_bit_equal, Some(1), "{k:?}");
        assert_eq!(m.max_abs_index, Some(vec![BLOCK + 5]), "{k:?}");
        assert!((m.max_abs - 0.25).abs() < 1e-6, "{k:?}");
        assert_eq!(m.over_max_abs, 1, "{k:?}");
        let ll: f64 = l.iter().map(|&v| v as f64 * v as f64).sum();
        assert!((m.nmse - m.max_abs * m.max_abs / ll).abs() <= 1e-12 * m.nmse, "{k:?}");
    }
}

