//! The comparer's numbers as JSON, shared by every command that writes JSON
//! (`check`, `diff`). JSON has no infinity or NaN: those are written as the
//! strings "inf", "-inf" and "NaN". Integer tensors' `max_abs` and top
//! divergences are JSON integers, exact (a u64 / i64; a reader that parses
//! them as f64 rounds them, as it would any integer above 2⁵³).
//!
//! [`MetricsRecord`] is that JSON as a type: `diff` keeps it in its outcome,
//! writes it, and `merge-results` reads it back, so every renderer reads a
//! field, never a string key. Floats round-trip exactly (serde_json writes
//! the shortest decimal that parses back to the same f64 and is built with
//! `float_roundtrip`), which is what keeps a merge byte-identical.

use super::{Metrics, NonFiniteCounts};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A float as JSON: a number, or "NaN" / "inf" / "-inf".
pub fn num(x: f64) -> Value {
    if x.is_nan() {
        Value::from("NaN")
    } else if x.is_infinite() {
        Value::from(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        Value::from(x)
    }
}

/// An f64 that is written as [`num`] writes it and read back from either
/// form (a JSON number, or one of the three strings).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JsonF64(pub f64);

impl Serialize for JsonF64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        if x.is_nan() {
            s.serialize_str("NaN")
        } else if x.is_infinite() {
            s.serialize_str(if x > 0.0 { "inf" } else { "-inf" })
        } else {
            s.serialize_f64(x)
        }
    }
}

impl<'de> Deserialize<'de> for JsonF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(f64),
            Word(String),
        }
        match Form::deserialize(d)? {
            Form::Number(x) => Ok(JsonF64(x)),
            Form::Word(w) => match w.as_str() {
                "NaN" => Ok(JsonF64(f64::NAN)),
                "inf" => Ok(JsonF64(f64::INFINITY)),
                "-inf" => Ok(JsonF64(f64::NEG_INFINITY)),
                other => Err(serde::de::Error::custom(format!("expected a number, \"NaN\", \"inf\" or \"-inf\", got {other:?}"))),
            },
        }
    }
}

/// A value that is exact for integer tensors and a float otherwise. The
/// integer forms come first: serde_json reads `3` as an integer and `3.0`
/// as a float, so the form written is the form read back.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Exactness {
    /// An integer tensor's value or |difference| as a u64 (it needs 64 bits
    /// unsigned: |i64::MIN − i64::MAX| does not fit an i64).
    Unsigned(u64),
    /// An integer tensor's (negative) value.
    Signed(i64),
    Float(JsonF64),
}

impl Exactness {
    /// The nearest f64 (an integer above 2⁵³ rounds, as limits do).
    pub fn as_f64(self) -> f64 {
        match self {
            Exactness::Unsigned(u) => u as f64,
            Exactness::Signed(i) => i as f64,
            Exactness::Float(x) => x.0,
        }
    }

    /// The exact integer, when this is one and fits a u64.
    pub fn exact_u64(self) -> Option<u64> {
        match self {
            Exactness::Unsigned(u) => Some(u),
            _ => None,
        }
    }

    fn int(i: i64) -> Self {
        u64::try_from(i).map_or(Exactness::Signed(i), Exactness::Unsigned)
    }
}

/// Non-finite counts of one side, as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountsRecord {
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
}

impl From<&NonFiniteCounts> for CountsRecord {
    fn from(c: &NonFiniteCounts) -> Self {
        CountsRecord { nan: c.nan, pos_inf: c.pos_inf, neg_inf: c.neg_inf }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NonFiniteRecord {
    pub left: CountsRecord,
    pub right: CountsRecord,
    pub mismatched: u64,
    pub first_mismatch_index: Option<Vec<usize>>,
}

/// One of the largest divergences, as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DivergenceRecord {
    pub index: Vec<usize>,
    pub left: Exactness,
    pub right: Exactness,
    pub abs_diff: Exactness,
}

/// Every metric of a stage pair as JSON writes it; field order is key order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    pub numel: u64,
    pub compared: u64,
    /// Integers: the exact u64 (a JSON integer), not its rounded f64.
    pub max_abs: Exactness,
    pub max_abs_index: Option<Vec<usize>>,
    pub mean_abs: JsonF64,
    pub rms: JsonF64,
    pub max_rel: JsonF64,
    pub max_rel_index: Option<Vec<usize>>,
    pub cosine: JsonF64,
    pub nmse: JsonF64,
    pub sqnr_db: JsonF64,
    pub max_ulp: Option<u64>,
    pub not_bit_equal: Option<u64>,
    pub bytes_equal: bool,
    pub over_max_abs: u64,
    pub outside_allclose: Option<u64>,
    pub non_finite: NonFiniteRecord,
    pub top_diffs: Vec<DivergenceRecord>,
}

impl From<&Metrics> for MetricsRecord {
    fn from(m: &Metrics) -> Self {
        MetricsRecord {
            numel: m.numel,
            compared: m.compared,
            max_abs: m.max_abs_int.map_or(Exactness::Float(JsonF64(m.max_abs)), Exactness::Unsigned),
            max_abs_index: m.max_abs_index.clone(),
            mean_abs: JsonF64(m.mean_abs),
            rms: JsonF64(m.rms),
            max_rel: JsonF64(m.max_rel),
            max_rel_index: m.max_rel_index.clone(),
            cosine: JsonF64(m.cosine),
            nmse: JsonF64(m.nmse),
            sqnr_db: JsonF64(m.sqnr_db),
            max_ulp: m.max_ulp,
            not_bit_equal: m.not_bit_equal,
            bytes_equal: m.bytes_equal,
            over_max_abs: m.over_max_abs,
            outside_allclose: m.outside_allclose,
            non_finite: NonFiniteRecord {
                left: (&m.non_finite.left).into(),
                right: (&m.non_finite.right).into(),
                mismatched: m.non_finite.mismatched,
                first_mismatch_index: m.non_finite.first_mismatch.clone(),
            },
            top_diffs: m
                .top
                .iter()
                .map(|d| match d.exact {
                    // Integers as JSON integers, exactly.
                    Some((l, r)) => DivergenceRecord {
                        index: d.index.clone(),
                        left: Exactness::int(l),
                        right: Exactness::int(r),
                        abs_diff: Exactness::Unsigned(crate::numeric::int::abs_diff(l, r)),
                    },
                    None => DivergenceRecord {
                        index: d.index.clone(),
                        left: Exactness::Float(JsonF64(d.left)),
                        right: Exactness::Float(JsonF64(d.right)),
                        abs_diff: Exactness::Float(JsonF64(d.abs_diff)),
                    },
                })
                .collect(),
        }
    }
}

/// Every metric of a stage pair, as a JSON value (`check`'s report).
pub fn metrics(m: &Metrics) -> Value {
    serde_json::to_value(MetricsRecord::from(m)).expect("a metrics record is plain data")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a merge relies on: a record written and read back is written as
    /// the same bytes, for every special value a metric can hold.
    #[test]
    fn a_record_read_back_is_written_as_the_same_bytes() {
        for x in [0.0, -0.0, 0.1, 5e-324, f64::MIN_POSITIVE, f64::MAX, 1e300, 3.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let floats = DivergenceRecord {
                index: vec![1, 2],
                left: Exactness::Float(JsonF64(x)),
                right: Exactness::Float(JsonF64(-x)),
                abs_diff: Exactness::Float(JsonF64(x.abs())),
            };
            let ints = DivergenceRecord {
                index: vec![0],
                left: Exactness::Signed(i64::MIN),
                right: Exactness::Unsigned(i64::MAX as u64),
                abs_diff: Exactness::Unsigned(u64::MAX),
            };
            let r = MetricsRecord {
                numel: 7,
                compared: 6,
                max_abs: Exactness::Float(JsonF64(x)),
                max_abs_index: Some(vec![3]),
                mean_abs: JsonF64(x),
                rms: JsonF64(x),
                max_rel: JsonF64(x),
                max_rel_index: None,
                cosine: JsonF64(x),
                nmse: JsonF64(x),
                sqnr_db: JsonF64(x),
                max_ulp: Some(u64::MAX),
                not_bit_equal: None,
                bytes_equal: false,
                over_max_abs: 1,
                outside_allclose: Some(0),
                non_finite: NonFiniteRecord {
                    left: CountsRecord { nan: 1, pos_inf: 2, neg_inf: 3 },
                    right: CountsRecord { nan: 0, pos_inf: 0, neg_inf: 0 },
                    mismatched: 1,
                    first_mismatch_index: Some(vec![0]),
                },
                top_diffs: vec![floats, ints],
            };
            let once = serde_json::to_string(&r).unwrap();
            let back: MetricsRecord = serde_json::from_str(&once).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), once, "{x:e}");
            // NaN != NaN: compare the bits of what came back.
            assert_eq!(back.mean_abs.0.to_bits(), x.to_bits(), "{x:e}");
            assert_eq!(back.top_diffs[1].abs_diff, Exactness::Unsigned(u64::MAX));
            assert_eq!(back.top_diffs[1].left, Exactness::Signed(i64::MIN));
        }
    }

    /// An integer tensor's max_abs stays an integer (exact), a float's a float,
    /// even when the float is integral (3.0 is written "3.0").
    #[test]
    fn integers_and_integral_floats_keep_their_form() {
        let int: Exactness = serde_json::from_str("3").unwrap();
        let float: Exactness = serde_json::from_str("3.0").unwrap();
        assert_eq!(int, Exactness::Unsigned(3));
        assert_eq!(float, Exactness::Float(JsonF64(3.0)));
        assert_eq!(serde_json::to_string(&float).unwrap(), "3.0");
        assert!(serde_json::from_str::<JsonF64>("\"infinity\"").is_err());
    }
}
