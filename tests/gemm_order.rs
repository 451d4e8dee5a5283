//! The fast GEMM's bits are the same on every CPU with FMA, because its
//! summation order is fixed: this file states that order and holds
//! `matmul --impl fast` to it bit for bit.
//!
//! The order (matrixmultiply 0.3's sgemm, which every fast operation that
//! multiplies matrices goes through): k is cut into blocks of 256
//! (`S_KC`); inside a block each output element is one chain of fused
//! multiply-adds from 0, in k order; the blocks' partial sums are added to
//! the output in block order, one rounding each. Its AVX-512 kernel (16×16
//! tiles, chosen on this project's AVX-512 CPU) and its AVX2+FMA kernel
//! (8×8 tiles, chosen on an AVX2-only CPU such as a Zen 2/3 EPYC) both
//! compute exactly that; the tile size decides which elements are computed
//! together, never the order of one element's sum; threads split the
//! output rows, never k. Measured as well, not only argued: a build whose
//! GEMM is held to the AVX2+FMA kernel (`MMTEST_FEATURE=avx,avx2,fma`)
//! writes the same bytes as the default build for every golden case, the
//! README's plan and its random SVF demo (docs in docs/numerics.md).
//!
//! What this does *not* cover, and docs/numerics.md says so: a CPU without FMA
//! (matrixmultiply's AVX-only or plain-Rust kernel rounds the product and
//! the sum separately, two roundings instead of one), where GEMM-derived
//! stages differ in their low bits; a build of that kind fails this test.
//! The other fast kernels (casts, element-wise operations, merges, codecs,
//! the comparer) are the same bits on every SIMD path: tests/simd_paths.rs.

use parity::format::tensor::Tensor;
use parity::ops::{matmul::MATMUL, Implementation, Inputs, Params};
use proptest::prelude::*;

/// matrixmultiply's `S_KC` for f32 (its `archparam_defaults`), the k block.
const KC: usize = 256;

/// `a @ b` summed in the order stated at the top, written out with
/// `f32::mul_add` (one rounding per multiply-add, like an FMA instruction)
/// and `+` (one rounding per block): the expectation, computed without the
/// code under test.
fn in_the_stated_order(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut total = 0f32;
            for (block, start) in (0..k).step_by(KC).enumerate() {
                let mut acc = 0f32;
                for l in start..(start + KC).min(k) {
                    acc = a[i * k + l].mul_add(b[l * n + j], acc);
                }
                // The first block is stored as it is (1 · acc, exact), later
                // ones are added to what is there.
                total = if block == 0 { acc } else { total + acc };
            }
            c[i * n + j] = total;
        }
    }
    c
}

fn fast_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut inputs = Inputs::new();
    inputs.insert("a".into(), Tensor::from_f32(vec![m, k], a));
    inputs.insert("b".into(), Tensor::from_f32(vec![k, n], b));
    let stages = MATMUL.run(Implementation::Fast, "w", &inputs, &Params::new()).expect("matmul runs");
    stages.get("output").expect("an output stage").to_f32_vec()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Values whose products and sums round: random mantissas over a few
/// binades of both signs, with zeros, −0 and subnormals among them.
/// (Finite only: with NaN inputs IEEE leaves the result's payload open.)
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -4.0f32..4.0,
        1 => prop::sample::select(vec![0.0f32, -0.0, 1e-40, -1e-40, f32::MIN_POSITIVE, 1.0, -1.0, 3.0e-3]),
    ]
}

fn case(max_mn: usize, max_k: usize) -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>)> {
    (1..max_mn, 0..max_k, 1..max_mn).prop_flat_map(|(m, k, n)| {
        (Just(m), Just(k), Just(n), prop::collection::vec(value(), m * k), prop::collection::vec(value(), k * n))
    })
}

/// `in_the_stated_order` for one element, with the multiply-add and the
/// blocking each switchable: the orders a GEMM might use instead.
fn one_dot(a: &[f32], b: &[f32], fused: bool, blocked: bool) -> f32 {
    let block = if blocked { KC } else { usize::MAX };
    let mut total = 0f32;
    for (i, start) in (0..a.len()).step_by(block.min(a.len().max(1))).enumerate() {
        let mut acc = 0f32;
        for l in start..start.saturating_add(block).min(a.len()) {
            acc = if fused { a[l].mul_add(b[l], acc) } else { acc + a[l] * b[l] };
        }
        total = if i == 0 { acc } else { total + acc };
    }
    total
}

#[test]
fn one_element_spanning_three_k_blocks_is_summed_in_the_stated_order() {
    // k = 600 crosses two block boundaries (256, 512). Fixed pseudo-random
    // values (an LCG) whose products are inexact, so that each other order —
    // no FMA, no blocks, neither — comes out different here (asserted), and
    // the test tells the stated order from each of them.
    let k = 600;
    let mut state = 0x2545_f491u32;
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
    };
    let a: Vec<f32> = (0..k).map(|_| next()).collect();
    let b: Vec<f32> = (0..k).map(|_| next()).collect();
    let want = in_the_stated_order(&a, &b, 1, k, 1);
    assert_eq!(want[0].to_bits(), one_dot(&a, &b, true, true).to_bits(), "the two writings of the stated order agree");
    for (fused, blocked) in [(false, true), (true, false), (false, false)] {
        assert_ne!(one_dot(&a, &b, fused, blocked).to_bits(), want[0].to_bits(), "fused {fused}, blocked {blocked}: the data must tell the orders apart");
    }
    let got = fast_matmul(&a, &b, 1, k, 1);
    assert_eq!(bits(&got), bits(&want), "got {got:?}, the stated order gives {want:?}");
}

proptest! {
    // Each case is deterministic (no statistics): a single differing bit
    // fails it, and nothing can pass by chance.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Shapes across tile edges (1..40 rows and columns: partial 8×8 and
    /// 16×16 tiles) and k across the block edges (0..700: empty, one, two
    /// and three blocks).
    #[test]
    fn fast_matmul_is_the_stated_summation_order_bit_for_bit((m, k, n, a, b) in case(40, 700)) {
        let got = fast_matmul(&a, &b, m, k, n);
        let want = in_the_stated_order(&a, &b, m, k, n);
        prop_assert_eq!(bits(&got), bits(&want), "[{}, {}] @ [{}, {}]", m, k, k, n);
    }
}
