//! The limits of one stage's gate.
//!
//! A gate passes iff `max_abs ≤ max_abs` **and** `mean_abs ≤ mean_abs` (SPEC
//! §3) and every optional limit that is set also holds. The optional limits
//! are what a reviewer reaches for when absolute limits do not say enough:
//! a cosine floor for direction, a ULP ceiling for low-precision outputs, and
//! an allclose rule (`|l − r| ≤ atol + rtol·|l|`) with an allowed fraction of
//! elements that may break it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    /// A required stage must be present on both sides and decides
    /// `--strict-stage-tolerances`; an optional one is reported only.
    pub required: bool,
    pub max_abs: f64,
    pub mean_abs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cosine: Option<f64>,
    /// Max distance in units in the last place of the stage's own dtype.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ulp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtol: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atol: Option<f64>,
    /// With rtol/atol: the fraction of elements allowed to break the allclose
    /// rule (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mismatch_fraction: Option<f64>,
    /// `--noise-floor`: RIGHT's error against the f64 reference may be at
    /// most `m` times LEFT's, plus `ε` (None: [`NOISE_FLOOR_M`], [`NOISE_FLOOR_EPS`]).
    #[serde(default, rename = "noise_floor_m", skip_serializing_if = "Option::is_none")]
    pub noise_m: Option<f64>,
    #[serde(default, rename = "noise_floor_eps", skip_serializing_if = "Option::is_none")]
    pub noise_eps: Option<f64>,
    /// A logits stage (`check --logits`): the fraction of positions whose
    /// top-1 tokens must agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_top1: Option<f64>,
    /// A logits stage: the largest mean KL divergence (nats) of
    /// softmax(right) from softmax(left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_kl: Option<f64>,
}

/// The default `m` of the noise-floor rule: torch's dynamo accuracy check
/// allows a compiled model twice the eager model's RMS error against fp64.
pub const NOISE_FLOOR_M: f64 = 2.0;
/// The default `ε`: none beyond the rounding floor every stage gets (one
/// ULP of its dtype on a few elements: see `check::noise_floor`).
pub const NOISE_FLOOR_EPS: f64 = 0.0;

impl Tolerance {
    /// The noise-floor rule's `m` and `ε` for this stage.
    pub fn noise_floor(&self) -> (f64, f64) {
        (self.noise_m.unwrap_or(NOISE_FLOOR_M), self.noise_eps.unwrap_or(NOISE_FLOOR_EPS))
    }
    /// A required stage with absolute limits only.
    pub const fn gate(max_abs: f64, mean_abs: f64) -> Tolerance {
        Tolerance {
            required: true,
            max_abs,
            mean_abs,
            min_cosine: None,
            max_ulp: None,
            rtol: None,
            atol: None,
            max_mismatch_fraction: None,
            noise_m: None,
            noise_eps: None,
            min_top1: None,
            max_kl: None,
        }
    }
    /// No limit at all (a required gate that every finite pair passes; NaN
    /// and inf positions must still agree). The base that a tolerance file's
    /// `"tensors"` entries are merged over.
    pub const fn unlimited() -> Tolerance {
        Tolerance::gate(f64::INFINITY, f64::INFINITY)
    }
    /// Bit-for-bit: for stages that only move or copy values.
    pub const fn exact() -> Tolerance {
        Tolerance { max_ulp: Some(0), ..Tolerance::gate(0.0, 0.0) }
    }
    pub const fn optional(self) -> Tolerance {
        Tolerance { required: false, ..self }
    }
    pub const fn with_max_ulp(self, ulp: u64) -> Tolerance {
        Tolerance { max_ulp: Some(ulp), ..self }
    }
    pub const fn with_min_cosine(self, c: f64) -> Tolerance {
        Tolerance { min_cosine: Some(c), ..self }
    }
    pub const fn with_allclose(self, rtol: f64, atol: f64, max_mismatch_fraction: f64) -> Tolerance {
        Tolerance { rtol: Some(rtol), atol: Some(atol), max_mismatch_fraction: Some(max_mismatch_fraction), ..self }
    }
}
