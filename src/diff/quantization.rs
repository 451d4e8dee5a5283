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

/// The sums a verdict is made of, accumulated chunk by chunk (whole blocks,
/// in order: the f64 sums are the same whatever the chunking of one run).
#[derive(Default)]
pub struct Sums {
    signal: f64,
    err_right: f64,
    err_ref: f64,
    /// Every chunk's reference blocks equalled RIGHT's.
    matches: bool,
    /// LEFT held a non-finite value: no reference quantization (ggml's
    /// blocks are undefined there); the verdict is the SQNR floor's.
    non_finite: bool,
    started: bool,
}

/// What RIGHT stores, for the reference: its ggml type, or F16/BF16 values.
fn stored_type(r: &Located) -> (Option<GgmlType>, String) {
    match r.encoding {
        Some(Encoding::Ggml { ggml_type, .. }) => (Some(ggml_type), ggml_type.name().to_string()),
        None => (None, r.dtype.name().to_string()),
    }
}

impl Sums {
    /// The sums of a pair whose verdict is the SQNR floor (a ggml type with
    /// no reference quantizer here: the K-quants, IQ4_NL, IQ4_XS), taken
    /// from the comparer's own pass — Σleft² and Σ(right − left)² over the
    /// finite pairs, which is all the floor rule weighs — instead of a
    /// second read of both sides. Only for LEFT in f32, f16 or bf16, whose
    /// values the comparer holds exactly as the verdict would (an f64 LEFT
    /// is rounded to f32 first, as a converter does: that takes the pass).
    pub fn from_comparison(l: &Located, r: &Located, m: &crate::compare::metrics::Metrics) -> Option<Sums> {
        let (ty, _) = stored_type(r);
        let floor_rule = ty.is_some_and(|t| !crate::format::gguf::quant::has_reference_quantizer(t));
        if !floor_rule || !matches!(l.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return None;
        }
        let nf = &m.non_finite.left;
        Some(Sums {
            signal: m.signal_sq,
            err_right: m.error_sq,
            err_ref: 0.0,
            matches: false,
            non_finite: nf.nan + nf.pos_inf + nf.neg_inf > 0,
            started: true,
        })
    }

    /// Add a chunk: LEFT's values (as f32) and RIGHT's stored bytes for
    /// them (whole blocks, in LEFT's row order).
    pub fn add(&mut self, r: &Located, left: &[f32], right_raw: &[u8]) {
        if !self.started {
            self.matches = true;
            self.started = true;
        }
        let (ty, _) = stored_type(r);
        let mut right = vec![0f32; left.len()];
        let mut reference = vec![0f32; left.len()];
        let finite = left.iter().all(|v| v.is_finite());
        self.non_finite |= !finite;
        match ty {
            Some(t) => {
                dequantize(t, right_raw, &mut right);
                match quantize_reference(t, left).filter(|_| finite) {
                    Some(raw) => {
                        self.matches &= raw.as_slice() == right_raw;
                        dequantize(t, &raw, &mut reference);
                    }
                    None => self.matches = false,
                }
            }
            None => {
                // F16 / BF16: round-to-nearest-even from f32 (`half`'s from_f32).
                let f16 = r.dtype == DType::F16;
                for (k, (&l, b)) in left.iter().zip(right_raw.chunks_exact(2)).enumerate() {
                    let bits = u16::from_le_bytes([b[0], b[1]]);
                    let (got, want_bits, want) = if f16 {
                        let w = half::f16::from_f32(l);
                        (half::f16::from_bits(bits).to_f32(), w.to_bits(), w.to_f32())
                    } else {
                        let w = half::bf16::from_f32(l);
                        (half::bf16::from_bits(bits).to_f32(), w.to_bits(), w.to_f32())
                    };
                    right[k] = got;
                    reference[k] = want;
                    self.matches &= want_bits == bits;
                }
            }
        }
        let [signal, err_right, err_ref] = error_sums(left, &right, &reference);
        self.signal += signal;
        self.err_right += err_right;
        self.err_ref += err_ref;
    }
}

/// Eight interleaved f64 accumulators (value `i` in lane `i % 8`), added
/// in a fixed tree: the same bits on every SIMD path, and no serial chain
/// of additions to wait on.
const LANES: usize = 8;

/// Eight pairs into the eight lanes of each sum, with selects, not
/// branches, so the step vectorises.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lane by lane is what vectorises
fn error_step(acc: &mut [[f64; LANES]; 3], l: &[f32; LANES], r: &[f32; LANES], q: &[f32; LANES]) {
    for i in 0..LANES {
        let (l, r, q) = (l[i] as f64, r[i] as f64, q[i] as f64);
        let ok = l.is_finite() & r.is_finite();
        let (dr, dq) = (r - l, q - l);
        acc[0][i] += if ok { l * l } else { 0.0 };
        acc[1][i] += if ok { dr * dr } else { 0.0 };
        acc[2][i] += if ok & q.is_finite() { dq * dq } else { 0.0 };
    }
}

crate::simd_kernel! {
    /// Σl², Σ(r − l)² and Σ(q − l)² over the pairs where LEFT and RIGHT are
    /// finite (the reference's term only where it is finite too), in f64:
    /// each f32 widens exactly, each square and sum rounds once. The tail
    /// is padded with NaN, which no sum takes.
    fn error_sums(left: &[f32], right: &[f32], reference: &[f32]) -> [f64; 3] {
        let mut acc = [[0f64; LANES]; 3];
        let (l, lt) = left.as_chunks::<LANES>();
        let (r, rt) = right.as_chunks::<LANES>();
        let (q, qt) = reference.as_chunks::<LANES>();
        for ((l, r), q) in l.iter().zip(r).zip(q) {
            error_step(&mut acc, l, r, q);
        }
        let pad = |t: &[f32]| {
            let mut p = [f32::NAN; LANES];
            p[..t.len()].copy_from_slice(t);
            p
        };
        error_step(&mut acc, &pad(lt), &pad(rt), &pad(qt));
        acc.map(|a| ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])))
    }
}

/// Judge the pair from its sums: set `d.quantization`, its status and
/// failures.
pub fn judge(d: &mut TensorDiff, r: &Located, sums: &Sums, margin: f64) {
    let (ty, ty_name) = stored_type(r);
    let has_reference = !sums.non_finite && ty.is_none_or(crate::format::gguf::quant::has_reference_quantizer);
    let sqnr = |err: f64| if err == 0.0 { f64::INFINITY } else { 10.0 * (sums.signal / err).log10() };
    let right_db = sqnr(sums.err_right);
    let (verdict, ok) = if has_reference {
        let ref_db = sqnr(sums.err_ref);
        // RMS ratio ≤ margin ⇔ sum of squares ≤ margin² × the reference's.
        let ok = sums.matches || sums.err_right <= margin * margin * sums.err_ref;
        if !ok {
            d.failures = vec![format!(
                "worse than quantization: SQNR {} dB where the reference {ty_name} quantizer gets {} dB (allowed: {margin}× its RMS error)",
                crate::compare::numbers::short(right_db),
                crate::compare::numbers::short(ref_db)
            )];
        }
        (Verdict { ty: ty_name, matches_reference: Some(sums.matches), sqnr_db: right_db, reference_sqnr_db: Some(ref_db), rule: "reference".into(), margin: Some(margin), floor_db: None }, ok)
    } else {
        let floor = sqnr_floor_db(ty.unwrap_or(GgmlType::F16));
        let ok = right_db >= floor;
        if !ok {
            d.failures = vec![format!(
                "worse than quantization: SQNR {} dB, below the {} dB floor for {ty_name} (no reference quantizer for it here)",
                crate::compare::numbers::short(right_db),
                crate::compare::numbers::short(floor)
            )];
        }
        (Verdict { ty: ty_name, matches_reference: None, sqnr_db: right_db, reference_sqnr_db: None, rule: "floor".into(), margin: None, floor_db: Some(floor) }, ok)
    };
    if ok {
        d.failures.clear();
        d.status = Status::Within;
    } else {
        d.status = Status::Differs;
    }
    d.quantization = Some(verdict);
}
