//! SPEC §3 promises about `svf_apply`, one test each, for both implementations.

use parity::format::dtype::DType;
use parity::ops::svf_apply::SVF_APPLY;
use parity::ops::{Implementation, Inputs, Params, Stages};
use parity::format::tensor::Tensor;
use serde_json::json;

fn inputs(m: usize, n: usize, u: &[f32], s: &[f32], v: &[f32], offsets: &[f32]) -> Inputs {
    let k = s.len();
    let source: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.25).collect();
    let mut x = Inputs::new();
    x.insert("source".into(), Tensor::from_f32(vec![m, n], &source));
    x.insert("u".into(), Tensor::from_f32(vec![m, k], u));
    x.insert("s".into(), Tensor::from_f32(vec![k], s));
    x.insert("v".into(), Tensor::from_f32(vec![n, k], v));
    x.insert("offsets".into(), Tensor::from_f32(vec![k], offsets));
    x
}

fn params(v: serde_json::Value) -> Params {
    v.as_object().unwrap().clone()
}

/// Run both implementations (reference narrowed to the declared dtypes).
fn both(inputs: &Inputs, params: &Params) -> [parity::Result<Stages>; 2] {
    [SVF_APPLY.run(Implementation::Fast, "w", inputs, params), SVF_APPLY.run(Implementation::Reference, "w", inputs, params)]
}

fn f32s(stages: &Stages, name: &str) -> Vec<f32> {
    stages.get(name).unwrap().to_f32_vec()
}

/// A 2×3 weight with rank 2: u = I-ish, v picks columns — every product exact.
fn small() -> Inputs {
    let u = [1.0, 0.0, 0.0, 1.0]; // [2, 2]
    let v = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5]; // [3, 2]
    inputs(2, 3, &u, &[2.0, 4.0], &v, &[0.5, -0.25])
}

#[test]
fn every_stage_is_emitted_in_pipeline_order_with_its_declared_dtype() {
    for out in both(&small(), &params(json!({"final_shape": [2, 3]}))) {
        let out = out.unwrap();
        let names: Vec<&str> = out.0.iter().map(|(n, _)| n.as_str()).collect();
        let declared: Vec<&str> = SVF_APPLY.stages.iter().map(|s| s.name).collect();
        assert_eq!(names, declared);
        for (name, t) in &out.0 {
            let want = if name == "final_bf16" { DType::BF16 } else { DType::F32 };
            assert_eq!(t.dtype, want, "{name}");
        }
        assert_eq!(out.get("normalization").unwrap().shape, vec![1]);
    }
}

#[test]
fn stages_follow_the_formulas_of_the_spec() {
    // scaled_s = [3, 3]; normalization = 6 / 6 = 1; matmul = u_scaled @ vᵀ.
    for out in both(&small(), &params(json!({"final_shape": [2, 3]}))) {
        let out = out.unwrap();
        assert_eq!(f32s(&out, "scaled_s"), vec![3.0, 3.0]);
        assert_eq!(f32s(&out, "normalization"), vec![1.0]);
        assert_eq!(f32s(&out, "u_scaled"), vec![3.0, 0.0, 0.0, 3.0]);
        assert_eq!(f32s(&out, "matmul_pre_norm"), vec![3.0, 0.0, 1.5, 0.0, 3.0, 1.5]);
        assert_eq!(f32s(&out, "zero_source_f32"), vec![2.0, 0.0, 1.0, 0.0, 4.0, 2.0]);
        assert_eq!(f32s(&out, "final_f32"), vec![3.0, 0.0, 1.5, 0.0, 3.0, 1.5]);
    }
}

#[test]
fn final_shape_n_by_m_transposes_a_non_square_weight() {
    for out in both(&small(), &params(json!({"final_shape": [3, 2]}))) {
        let out = out.unwrap();
        assert_eq!(out.get("final_f32").unwrap().shape, vec![3, 2]);
        assert_eq!(f32s(&out, "final_f32"), vec![3.0, 0.0, 0.0, 3.0, 1.5, 1.5]);
        // adapted_source_f32 stays in source orientation.
        assert_eq!(out.get("adapted_source_f32").unwrap().shape, vec![2, 3]);
    }
}

fn square() -> Inputs {
    // u = [[1, 2], [0, 1]], s = [1, 1], v = I: W = u, not symmetric.
    inputs(2, 2, &[1.0, 2.0, 0.0, 1.0], &[1.0, 1.0], &[1.0, 0.0, 0.0, 1.0], &[0.0, 0.0])
}

#[test]
fn a_square_weight_is_transposed_only_when_transpose_says_so() {
    for out in both(&square(), &params(json!({"final_shape": [2, 2]}))) {
        assert_eq!(f32s(&out.unwrap(), "final_f32"), vec![1.0, 2.0, 0.0, 1.0]);
    }
    for out in both(&square(), &params(json!({"final_shape": [2, 2], "transpose": true}))) {
        assert_eq!(f32s(&out.unwrap(), "final_f32"), vec![1.0, 0.0, 2.0, 1.0]);
    }
}

#[test]
fn an_explicit_transpose_false_keeps_the_layout() {
    for out in both(&small(), &params(json!({"final_shape": [2, 3], "transpose": false}))) {
        assert_eq!(out.unwrap().get("final_f32").unwrap().shape, vec![2, 3]);
    }
}

#[test]
fn transpose_disagreeing_with_final_shape_is_an_error() {
    for p in [json!({"final_shape": [2, 3], "transpose": true}), json!({"final_shape": [3, 2], "transpose": false})] {
        for out in both(&small(), &params(p.clone())) {
            let msg = out.unwrap_err().to_string();
            assert!(msg.contains("disagrees with final_shape"), "{msg}");
            assert!(msg.contains("svf_apply: tensor 'w'"), "{msg}");
        }
    }
}

#[test]
fn any_other_final_shape_is_an_error() {
    for p in [json!({"final_shape": [6, 1]}), json!({"final_shape": [2, 3, 1]}), json!({"final_shape": "2x3"}), json!({})] {
        for out in both(&small(), &params(p.clone())) {
            assert!(out.is_err(), "{p} must be refused");
        }
    }
}

#[test]
fn inputs_with_inconsistent_shapes_are_refused_with_the_reason() {
    let mut x = small();
    x.insert("v".into(), Tensor::from_f32(vec![2, 3], &[0.0; 6])); // Vᵀ given instead of V
    for out in both(&x, &params(json!({"final_shape": [2, 3]}))) {
        assert!(out.unwrap_err().to_string().contains("torch.svd layout"));
    }
    let mut x = small();
    x.insert("offsets".into(), Tensor::from_f32(vec![3], &[0.0; 3]));
    for out in both(&x, &params(json!({"final_shape": [2, 3]}))) {
        assert!(out.unwrap_err().to_string().contains("offsets has shape"));
    }
}

#[test]
fn offsets_of_minus_one_zero_their_singular_values() {
    let x = inputs(2, 3, &[1.0, 0.0, 0.0, 1.0], &[2.0, 4.0], &[1.0, 0.0, 0.0, 1.0, 0.5, 0.5], &[-1.0, 0.0]);
    for out in both(&x, &params(json!({"final_shape": [2, 3]}))) {
        let out = out.unwrap();
        assert_eq!(f32s(&out, "scaled_s"), vec![0.0, 4.0]);
        assert_eq!(f32s(&out, "normalization"), vec![1.5]);
        assert_eq!(f32s(&out, "final_f32"), vec![0.0, 0.0, 0.0, 0.0, 6.0, 3.0]);
    }
}

#[test]
fn all_offsets_minus_one_gives_the_ieee_result_not_a_panic() {
    // sum(scaled_s) == 0: normalization = 6/0 = +inf; adapted = 0·inf = NaN,
    // exactly what a torch pipeline produces. The defined result is IEEE's.
    let x = inputs(2, 3, &[1.0, 0.0, 0.0, 1.0], &[2.0, 4.0], &[1.0, 0.0, 0.0, 1.0, 0.5, 0.5], &[-1.0, -1.0]);
    for out in both(&x, &params(json!({"final_shape": [2, 3]}))) {
        let out = out.unwrap();
        assert_eq!(f32s(&out, "normalization"), vec![f32::INFINITY]);
        assert!(f32s(&out, "final_f32").iter().all(|v| v.is_nan()));
        let bf16 = out.get("final_bf16").unwrap().as_u16_bits();
        assert!(bf16.iter().all(|b| b & 0x7F80 == 0x7F80 && b & 0x7F != 0), "NaN stays NaN in bf16");
    }
}

#[test]
fn empty_tensors_give_defined_empty_stages() {
    for (m, n, k) in [(0, 3, 0), (3, 0, 0), (0, 0, 0)] {
        let x = inputs(m, n, &vec![0.0; m * k], &vec![0.0; k], &vec![0.0; n * k], &vec![0.0; k]);
        for out in both(&x, &params(json!({"final_shape": [m, n]}))) {
            let out = out.unwrap();
            assert_eq!(out.get("final_bf16").unwrap().shape, vec![m, n]);
            assert_eq!(out.get("final_bf16").unwrap().numel(), 0);
            // 0/0: the IEEE result.
            assert!(f32s(&out, "normalization")[0].is_nan());
        }
    }
}

#[test]
fn k_smaller_than_min_m_n_is_a_truncated_reconstruction() {
    // Rank-1 reconstruction of a 3×2 weight.
    let x = inputs(3, 2, &[1.0, 2.0, 3.0], &[2.0], &[1.0, -1.0], &[0.0]);
    for out in both(&x, &params(json!({"final_shape": [3, 2]}))) {
        assert_eq!(f32s(&out.unwrap(), "final_f32"), vec![2.0, -2.0, 4.0, -4.0, 6.0, -6.0]);
    }
}

#[test]
fn final_bf16_is_the_rne_rounding_of_final_f32_at_ties() {
    // k = 1, s = 1, offsets = 0: final = u·vᵀ exactly. u holds bf16 ties.
    let tie_down = 1.0 + 2f32.powi(-8); // → 1.0 (even)
    let tie_up = 1.0 + 3.0 * 2f32.powi(-8); // → 1 + 2^-6 (even)
    let x = inputs(2, 2, &[tie_down, tie_up], &[1.0], &[1.0, -0.5], &[0.0]);
    for out in both(&x, &params(json!({"final_shape": [2, 2]}))) {
        let bits = out.unwrap().get("final_bf16").unwrap().as_u16_bits();
        assert_eq!(bits, vec![0x3F80, 0xBF00, 0x3F82, 0xBF02]);
    }
}

#[test]
fn the_reference_rounds_its_f64_result_once_to_f32() {
    // u·s·v = 0.1f32 · 3 · 0.1f32 is exact in f64 and not in f32: the
    // reference keeps it wide, then rounds once to the nearest f32.
    let x = inputs(1, 1, &[0.1], &[3.0], &[0.1], &[0.0]);
    let p = params(json!({"final_shape": [1, 1]}));
    let wide = SVF_APPLY.run(Implementation::ReferenceWide, "w", &x, &p).unwrap();
    assert_eq!(wide.get("final_f32").unwrap().dtype, DType::F64, "the reference's stages are wide before narrowing");
    let exact = 0.1f32 as f64 * 3.0 * 0.1f32 as f64;
    assert_eq!(wide.get("final_f32").unwrap().to_f64_vec(), vec![exact]);
    let narrow = SVF_APPLY.run(Implementation::Reference, "w", &x, &p).unwrap();
    assert_eq!(f32s(&narrow, "final_f32"), vec![exact as f32]);
    assert_eq!(narrow.get("final_f32").unwrap().dtype, DType::F32);
}
