//! Quantization-aware verdicts (issue 25): a quantized RIGHT (a GGUF
//! conversion) can never be `identical` to LEFT; the question is whether
//! it is what a correct quantizer writes, or worse.
//!
//! For a RIGHT tensor stored as ggml blocks, or as F16/BF16 in a GGUF file
//! while LEFT is a wider float, LEFT's values (as f32, as the converter
//! quantizes them) are quantized with ggml's reference quantizer for that
//! type ([`quantize_reference`]: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; F16 and BF16
//! by round-to-nearest-even), and then:
//!
//! * RIGHT's blocks are those bytes → `within`, `matches_reference: true`;
//! * else RIGHT's error against LEFT is at most `margin` × the reference
//!   quantizer's own error (root-mean-square over the finite values; the
//!   noise-floor rule, `margin` 2 unless the tolerance profile's
//!   `"quantization": {"margin": m}` says otherwise) → `within`,
//!   `matches_reference: false`;
//! * else `differs`: "worse than quantization: SQNR x dB where the reference
//!   quantizer gets y dB", and the explainer runs on the dequantized values.
//!
//! K-quants and IQ4 types have no reference quantizer here (llama.cpp's
//! searches scales; the `gguf` package has no twin): their SQNR must reach a
//! per-type floor, [`sqnr_floor_db`].
//!
//! Sums are taken in f64 over positions where LEFT and RIGHT are both
//! finite; a LEFT holding a non-finite value gets no reference (its blocks
//! are undefined in ggml), and the verdict is the SQNR floor's.

use super::outcome::{Status, TensorDiff};
use crate::error::Result;
use crate::format::checkpoint::{Checkpoint, Encoding, Located};
use crate::format::dtype::DType;
use crate::format::gguf::quant::{dequantize, quantize_reference, GgmlType};
use serde::{Deserialize, Serialize};

/// The JSON `quantization` of a pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// RIGHT's stored type (`Q8_0`, `F16`, …).
    #[serde(rename = "type")]
    pub ty: String,
    /// RIGHT's bytes are the reference quantizer's; None without one.
    pub matches_reference: Option<bool>,
    /// RIGHT's SQNR against LEFT, dB.
    pub sqnr_db: f64,
    /// The reference quantizer's SQNR against LEFT, dB; None without one.
    pub reference_sqnr_db: Option<f64>,
    /// The rule applied: `reference` (with `margin`) or `floor` (with `floor_db`).
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub margin: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub floor_db: Option<f64>,
}

/// The SQNR a conversion to a type without a reference quantizer must
/// reach: 6.02 dB per bit of its value code, less 10 dB of slack for the
/// block scales' own rounding and heavy-tailed weights. A correct quantizer
/// clears it by a wide margin on real weights; a wrong layout, a wrong scale
/// or an offset falls far below.
pub fn sqnr_floor_db(ty: GgmlType) -> f64 {
    let bits = match ty {
        GgmlType::Q2K => 2.0,
        GgmlType::Q3K => 3.0,
        GgmlType::Q4K | GgmlType::Iq4Nl | GgmlType::Iq4Xs => 4.0,
        GgmlType::Q5K => 5.0,
        GgmlType::Q6K => 6.0,
        GgmlType::Q8_0 => 8.0,
        GgmlType::Q4_0 | GgmlType::Q4_1 => 4.0,
        GgmlType::Q5_0 | GgmlType::Q5_1 => 5.0,
        _ => 8.0,
    };
    6.02 * bits - 10.0
}

/// Whether a pair gets a quantization verdict: RIGHT is ggml blocks, or a
/// GGUF's F16/BF16 with LEFT a wider float of the same shape.
pub fn applies(right: &Checkpoint, l: &Located, r: &Located) -> bool {
    if l.shape != r.shape || !l.dtype.is_float() {
        return false;
    }
    match r.encoding {
        Some(Encoding::Ggml { .. }) => true,
        None => right.gguf.is_some() && matches!(r.dtype, DType::F16 | DType::BF16) && matches!(l.dtype, DType::F32 | DType::F64),
    }
}

/// Judge the pair: set `d.quantization`, its status and failures.
/// `left_values` are LEFT's values as f32 (row-major), `right_raw` RIGHT's
/// stored bytes in LEFT's row order (its blocks, or its F16/BF16 values),
/// `right_values` RIGHT's values as f32.
pub fn judge(d: &mut TensorDiff, r: &Located, left_values: &[f32], right_raw: &[u8], right_values: &[f32], margin: f64) -> Result<()> {
    let (ty_name, reference): (String, Option<(Vec<u8>, Vec<f32>)>) = match r.encoding {
        Some(Encoding::Ggml { ggml_type, .. }) => {
            let finite = left_values.iter().all(|v| v.is_finite());
            let reference = finite.then(|| quantize_reference(ggml_type, left_values)).flatten().map(|raw| {
                let mut values = vec![0f32; left_values.len()];
                dequantize(ggml_type, &raw, &mut values);
                (raw, values)
            });
            (ggml_type.name().to_string(), reference)
        }
        None => {
            // F16 / BF16: round-to-nearest-even from f32 (`half`'s from_f32).
            let (raw, values): (Vec<u8>, Vec<f32>) = if r.dtype == DType::F16 {
                let h: Vec<half::f16> = left_values.iter().map(|&v| half::f16::from_f32(v)).collect();
                (h.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(), h.iter().map(|x| x.to_f32()).collect())
            } else {
                let h: Vec<half::bf16> = left_values.iter().map(|&v| half::bf16::from_f32(v)).collect();
                (h.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(), h.iter().map(|x| x.to_f32()).collect())
            };
            (r.dtype.name().to_string(), Some((raw, values)))
        }
    };
    let sqnr = |err: f64, signal: f64| if err == 0.0 { f64::INFINITY } else { 10.0 * (signal / err).log10() };
    let (signal, err_right) = errors(left_values, right_values);
    let right_db = sqnr(err_right, signal);
    let verdict = match &reference {
        Some((raw, values)) => {
            let matches = raw.as_slice() == right_raw;
            let (_, err_ref) = errors(left_values, values);
            let ref_db = sqnr(err_ref, signal);
            // RMS ratio ≤ margin ⇔ sum of squares ≤ margin² × the reference's.
            let ok = matches || err_right <= margin * margin * err_ref;
            if !ok {
                d.failures = vec![format!(
                    "worse than quantization: SQNR {} dB where the reference {ty_name} quantizer gets {} dB (allowed: {margin}× its RMS error)",
                    crate::compare::numbers::short(right_db),
                    crate::compare::numbers::short(ref_db)
                )];
            }
            (Verdict { ty: ty_name, matches_reference: Some(matches), sqnr_db: right_db, reference_sqnr_db: Some(ref_db), rule: "reference".into(), margin: Some(margin), floor_db: None }, ok)
        }
        None => {
            let ty = match r.encoding {
                Some(Encoding::Ggml { ggml_type, .. }) => ggml_type,
                None => GgmlType::F16,
            };
            let floor = sqnr_floor_db(ty);
            let ok = right_db >= floor;
            if !ok {
                d.failures = vec![format!(
                    "worse than quantization: SQNR {} dB, below the {} dB floor for {ty_name} (no reference quantizer for this type)",
                    crate::compare::numbers::short(right_db),
                    crate::compare::numbers::short(floor)
                )];
            }
            (Verdict { ty: ty_name, matches_reference: None, sqnr_db: right_db, reference_sqnr_db: None, rule: "floor".into(), margin: None, floor_db: Some(floor) }, ok)
        }
    };
    let (v, ok) = verdict;
    if ok {
        d.failures.clear();
        d.status = Status::Within;
    } else {
        d.status = Status::Differs;
    }
    d.quantization = Some(v);
    Ok(())
}

/// (Σ left², Σ (right − left)²) in f64 over positions where both are finite.
fn errors(left: &[f32], right: &[f32]) -> (f64, f64) {
    let mut signal = 0f64;
    let mut err = 0f64;
    for (&l, &r) in left.iter().zip(right) {
        if l.is_finite() && r.is_finite() {
            let (l, r) = (l as f64, r as f64);
            signal += l * l;
            err += (r - l) * (r - l);
        }
    }
    (signal, err)
}
