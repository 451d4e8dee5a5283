//! The page's plot data (SPEC §12): the same whether a stage is summarised
//! in memory or streamed piece by piece — pieces that split rows included —
//! and the heatmap and profiles hold the values worked out by hand.

mod proptest_support;
use parity::compare::metrics::Stage;
use parity::compare::plots::{gather, gather_in_pieces, StagePlots};
use parity::format::dtype::DType;
use parity::format::tensor::Tensor;
use parity::numeric::round::f32_to_bf16_bits;
use proptest::prelude::*;

fn in_memory(l: &Tensor, r: &Tensor) -> StagePlots {
    let (lv, rv) = (l.view(), r.view());
    let n = l.to_f64_vec().len();
    let raw = (lv.dtype == rv.dtype).then_some((lv.dtype, lv.data, rv.data));
    assert_eq!(n, r.to_f64_vec().len());
    gather(lv.shape, &l.to_f64_vec(), &r.to_f64_vec(), raw)
}

fn streamed(l: &Tensor, r: &Tensor, piece: usize) -> StagePlots {
    gather_in_pieces(Stage::from(l.view()), Stage::from(r.view()), piece).unwrap()
}

#[test]
fn cells_and_profiles_by_hand_whatever_the_pieces() {
    // 3 × 4: |diff| 0.5 at (1, 2), inf at (2, 0) (a NaN on one side), 0 elsewhere.
    let l = vec![0.0f32; 12];
    let mut r = l.clone();
    r[6] = 0.5;
    r[8] = f32::NAN;
    let (l, r) = (Tensor::from_f32(vec![3, 4], &l), Tensor::from_f32(vec![3, 4], &r));
    let inf = f64::INFINITY;
    for piece in 1..=13 {
        let p = streamed(&l, &r, piece);
        let h = p.heatmap.as_ref().unwrap();
        assert_eq!((h.grid_rows, h.grid_cols), (3, 4), "piece {piece}");
        assert_eq!(h.cells, vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, inf, 0.0, 0.0, 0.0], "piece {piece}");
        assert_eq!(p.row_profile.as_ref().unwrap().points, vec![0.0, 0.5, inf], "piece {piece}");
        assert_eq!(p.column_profile.as_ref().unwrap().points, vec![inf, 0.0, 0.5, 0.0], "piece {piece}");
        assert_eq!((p.histogram.zero, p.histogram.non_finite, p.histogram.total()), (10, 1, 12), "piece {piece}");
        let u = p.ulp.as_ref().unwrap();
        assert_eq!((u.buckets[0], u.non_finite, u.total()), (10, 1, 12), "piece {piece}");
        assert_eq!(p, in_memory(&l, &r), "piece {piece}");
    }
}

#[test]
fn a_large_grid_downsamples_to_maxima_per_cell() {
    // 130 × 200 on a 64 × 64 grid: cell (g, h) covers rows i with i·64/130 = g.
    let (rows, cols) = (130, 200);
    let l = vec![1.0f32; rows * cols];
    let mut r = l.clone();
    r[129 * cols + 199] = 3.0; // the last row and column: cell (63, 63)
    r[2 * cols + 3] = 1.25; // row 2 → 2·64/130 = 0, column 3 → 3·64/200 = 0
    r[3 * cols + 4] = 1.5; // row 3 → 1, column 4 → 1
    let (l, r) = (Tensor::from_f32(vec![rows, cols], &l), Tensor::from_f32(vec![rows, cols], &r));
    let p = streamed(&l, &r, 777);
    let h = p.heatmap.as_ref().unwrap();
    assert_eq!((h.grid_rows, h.grid_cols), (64, 64));
    let mut expected = vec![0.0; 64 * 64];
    expected[63 * 64 + 63] = 2.0;
    expected[0] = 0.25;
    expected[64 + 1] = 0.5;
    assert_eq!(h.cells, expected);
    assert_eq!(p, in_memory(&l, &r));
}

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -4.0f32..4.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(1e-40f32),
    ]
}

proptest! {
    #![proptest_config(proptest_support::cases(200))]

    #[test]
    fn streaming_gives_the_in_memory_plots(
        dims in prop::collection::vec(1usize..9, 1..4),
        seed in prop::collection::vec(value(), 512),
        noise in prop::collection::vec(value(), 512),
        piece in 1usize..40,
        bf16_left: bool, bf16_right: bool,
    ) {
        let n: usize = dims.iter().product();
        let l: Vec<f32> = seed[..n].to_vec();
        let r: Vec<f32> = l.iter().zip(&noise).enumerate().map(|(k, (&a, &b))| if k % 3 == 0 { a } else { a + b * 1e-3 }).collect();
        let tensor = |v: &[f32], bf16: bool| if bf16 {
            Tensor::from_u16_bits(DType::BF16, dims.clone(), &v.iter().map(|&x| f32_to_bf16_bits(x)).collect::<Vec<_>>())
        } else {
            Tensor::from_f32(dims.clone(), v)
        };
        let (lt, rt) = (tensor(&l, bf16_left), tensor(&r, bf16_right));
        let want = in_memory(&lt, &rt);
        prop_assert_eq!(want.ulp.is_some(), bf16_left == bf16_right);
        prop_assert_eq!(want.histogram.total(), n as u64);
        prop_assert_eq!(streamed(&lt, &rt, piece), want);
    }
}
