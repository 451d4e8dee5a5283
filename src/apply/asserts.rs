//! The assert steps' checks on data: shape and dtype from a header, finite,
//! zero and equality from the values (integers compared as integers).

use crate::format::tensor::Tensor;


/// shape and dtype asserts from a header.
pub(super) fn check_header_assert(spec: &crate::plan::Assert, name: &str, dtype: crate::format::dtype::DType, shape: &[usize]) -> Option<String> {
    if let Some(want) = &spec.shape {
        if want.as_slice() != shape {
            return Some(format!("'{name}' has shape {shape:?}, expected {want:?}"));
        }
    }
    if let Some(want) = &spec.dtype {
        if !want.eq_ignore_ascii_case(dtype.name()) {
            return Some(format!("'{name}' is {dtype}, expected {want}"));
        }
    }
    None
}

/// max |a − b| of two integer tensors of the same shape, exactly; None
/// unless both dtypes are integers.
pub(super) fn int_max_abs(a: &Tensor, b: &Tensor) -> Option<u64> {
    if !(a.dtype.is_integer() && b.dtype.is_integer()) {
        return None;
    }
    let int = |t: &Tensor, i: usize| t.dtype.int(&t.data, i).expect("an integer dtype");
    Some((0..a.numel()).map(|i| crate::numeric::int::abs_diff(int(a, i), int(b, i))).max().unwrap_or(0))
}

/// The asserts that need data: finite, iszero, equal.
pub(super) fn check_assert_data(spec: &crate::plan::Assert, name: &str, t: &Tensor, to: Option<&Tensor>) -> Option<String> {
    // Shape and dtype again: headers could not tell them for every operation.
    if let Some(m) = check_header_assert(spec, name, t.dtype, &t.shape) {
        return Some(m);
    }
    let float = t.dtype.is_float();
    let values = || t.to_f64_vec();
    if let Some(want) = spec.finite {
        let all = !float || values().iter().all(|v| v.is_finite());
        if all != want {
            return Some(format!("'{name}': finite is {all}, expected {want}"));
        }
    }
    if let Some(want) = spec.iszero {
        // -0.0 == 0.0: a zero tensor may hold negative zeros.
        let all = values().iter().all(|v| *v == 0.0);
        if all != want {
            return Some(format!("'{name}': iszero is {all}, expected {want}"));
        }
    }
    if let (Some(e), Some(other)) = (&spec.equal, to) {
        if other.shape != t.shape {
            return Some(format!("'{name}': shape {:?} vs {:?} of '{}'", t.shape, other.shape, e.to));
        }
        if let Some(worst) = int_max_abs(t, other) {
            // Integers as integers: f64 would call 2⁶² and 2⁶² + 1 equal.
            if crate::numeric::int::exceeds(worst, e.max_abs) {
                let (w, l) = crate::compare::numbers::versus_int(worst, e.max_abs);
                return Some(format!("'{name}': max |diff| {w} against '{}' > {l}", e.to));
            }
            return None;
        }
        let (a, b) = (values(), other.to_f64_vec());
        // Non-finite values compare by position and sign (SPEC §3): NaN with
        // NaN and an infinity with the same infinity are no difference; any
        // other pairing with a non-finite value is an infinite one.
        let gap = |x: f64, y: f64| {
            if x.is_finite() && y.is_finite() {
                (x - y).abs()
            } else if (x.is_nan() && y.is_nan()) || x == y {
                0.0
            } else {
                f64::INFINITY
            }
        };
        let worst = a.iter().zip(&b).map(|(x, y)| gap(*x, *y)).fold(0.0, f64::max);
        if !(worst <= e.max_abs) {
            return Some(format!("'{name}': max |diff| {worst:e} against '{}' > {:e}", e.to, e.max_abs));
        }
    }
    None
}
