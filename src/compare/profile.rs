//! Tolerance profiles: per operation, per stage, whether the stage is
//! required and the limits of its gate.
//!
//! A profile starts from *declarations*: operations whose stages, in
//! pipeline order, each come with a tolerance. The comparer knows no
//! operation itself — the catalog hands it its declarations
//! (`ops::builtin_profile`), and a user profile file (`parity check
//! --tolerances FILE`) is merged over them.
//!
//! # The tolerance file, `parity.tolerances.v1`
//!
//! ```json
//! {
//!   "schema": "parity.tolerances.v1",
//!   "description": "optional free text: why these limits",
//!   "operations": {
//!     "svf_apply": {
//!       "final_bf16": {"required": true, "max_ulp": 1},
//!       "matmul_pre_norm": {"max_abs": 5e-4, "min_cosine": 0.999999},
//!       "*": {"mean_abs": 1e-5}
//!     },
//!     "my_rmsnorm": {
//!       "*": {"required": true, "max_abs": 1e-5, "mean_abs": 1e-7},
//!       "output_bf16": {"max_abs": 1e-2, "mean_abs": 1e-3, "max_ulp": 1}
//!     }
//!   }
//! }
//! ```
//!
//! * `schema` must be `"parity.tolerances.v1"`; unknown fields anywhere are
//!   errors (a misspelt limit must not be silently ignored).
//! * `operations` maps an operation name to its stages; each stage entry may
//!   set any of:
//!
//!   | field | meaning |
//!   |---|---|
//!   | `required` | bool: the stage must exist on both sides and decides `--strict-stage-tolerances`; an optional stage is reported, not gated |
//!   | `max_abs` | the gate passes only if max \|right − left\| ≤ this |
//!   | `mean_abs` | … and mean \|right − left\| ≤ this |
//!   | `min_cosine` | … and cosine similarity ≥ this |
//!   | `max_ulp` | … and no element is more than this many ULPs (of the stage's dtype) apart |
//!   | `rtol`, `atol` | … and at most `max_mismatch_fraction` (default 0) of the elements break \|right − left\| ≤ atol + rtol·\|left\| (a missing one of the two counts as 0) |
//!   | `max_mismatch_fraction` | the share of elements (0..1) allowed to break the rtol/atol rule |
//!   | `noise_floor_m`, `noise_floor_eps` | with `--noise-floor`: RIGHT's RMS error against the f64 reference ≤ m · LEFT's + ε (defaults 2 and 0) |
//!   | `min_top1`, `max_kl` | a stage `check --logits` names: the share of positions (0..1) whose top-1 tokens agree ≥ this, and the mean KL divergence (nats) of softmax(right) from softmax(left) ≤ this |
//!   | `why` | free text, a string or one string per limit: where the numbers came from (`--suggest-tolerances` writes it); no verdict depends on it |
//!
//!   The optional limits (`min_cosine`, `max_ulp`, `rtol`, `atol`,
//!   `max_mismatch_fraction`) can be set to `null` to remove a built-in one.
//! * **Merging, field by field.** A stage the registry knows starts from its
//!   built-in tolerance and takes only the fields the file gives, so
//!   `{"final_bf16": {"required": true}}` only makes `final_bf16` required.
//! * **`"*"`** is the entry for the operation's stages the file does not
//!   list: for a registry operation it is merged over each unlisted stage's
//!   built-in tolerance; for other stages it is their tolerance, and a listed
//!   stage the registry does not know is merged over it.
//! * **Operations parity does not know** (ports of your own operations) are
//!   allowed: their stages are compared in the order of LEFT's report, and
//!   each one needs a complete tolerance (`required`, `max_abs`, `mean_abs`),
//!   from its own entry, from `"*"`, or from both merged. A stage of such an
//!   operation with no tolerance at all is a setup error naming it.
//! * A stage name the registry does not list for a registry operation is an
//!   error (a typo catch); give extra stages a tolerance with `"*"`.
//! * Limits must be non-negative numbers; `min_cosine` lies in [-1, 1],
//!   `max_mismatch_fraction` and `min_top1` in [0, 1].

use super::tolerance::Tolerance;
use crate::error::{did_you_mean, Error, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA: &str = "parity.tolerances.v1";

/// A tolerance for every stage of every operation parity can compare.
#[derive(Clone, Debug)]
pub struct Profile {
    ops: BTreeMap<String, OpProfile>,
    /// The `"tensors"` section: (glob, limits) in file order, for `parity diff`.
    tensors: Vec<(String, glob::Pattern, Tolerance)>,
    origin: String,
    /// `"quantization": {"margin": m}`: how many times the reference
    /// quantizer's RMS error a quantized RIGHT may have (`parity diff`).
    quantization_margin: Option<f64>,
}

#[derive(Clone, Debug, Default)]
struct OpProfile {
    /// Resolved tolerances of the stages the registry or a file names.
    stages: IndexMap<String, Tolerance>,
    /// The `"*"` entry: the tolerance of stages not named above.
    star: Option<Override>,
    /// Declared (a catalog operation): the stage order and names are fixed,
    /// else they come from LEFT's report.
    registry: bool,
}

impl Profile {
    /// A profile over declared operations: each with its stages, in
    /// pipeline order, and their tolerances.
    pub fn declared<'a, S>(origin: &str, ops: impl IntoIterator<Item = (&'a str, S)>) -> Profile
    where
        S: IntoIterator<Item = (&'a str, Tolerance)>,
    {
        let ops = ops
            .into_iter()
            .map(|(op, stages)| {
                let stages = stages.into_iter().map(|(s, t)| (s.to_string(), t)).collect();
                (op.to_string(), OpProfile { stages, star: None, registry: true })
            })
            .collect();
        Profile { ops, tensors: Vec::new(), origin: origin.into(), quantization_margin: None }
    }

    /// This profile with a tolerance file merged over it.
    pub fn merge_file(self, path: &Path) -> Result<Profile> {
        let text = crate::format::file::read_small(path, crate::format::file::MAX_JSON)?;
        self.merge_json(path, &text)
    }

    /// This profile with a tolerance file's text merged over it; `path` only
    /// names the file in errors.
    pub fn merge_json(mut self, path: &Path, text: &[u8]) -> Result<Profile> {
        let value: serde_json::Value =
            crate::format::strict_json::parse(text).map_err(|e| Error::json(path, format!("malformed JSON: {e}")))?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => return Err(Error::json(path, format!("unknown schema '{other}' (expected '{SCHEMA}')"))),
            None => {
                return Err(Error::json(path, format!("not a tolerance profile: no \"schema\": \"{SCHEMA}\" field")))
            }
        }
        let file = File::deserialize(&value).map_err(|e| Error::json(path, format!("invalid tolerance profile: {}{e}", where_invalid(&value))))?;
        if let Some(q) = &file.quantization {
            if !(q.margin.is_finite() && q.margin >= 1.0) {
                return Err(Error::json(path, format!("quantization.margin: {} is not a number ≥ 1 (1: no worse than the reference quantizer)", q.margin)));
            }
            self.quantization_margin = Some(q.margin);
        }
        for (op_name, entries) in file.operations {
            if !self.ops.contains_key(&op_name) {
                let declared = self.ops.iter().filter(|(_, o)| o.registry).map(|(n, _)| n.as_str());
                if let Some(near) = did_you_mean(&op_name, declared) {
                    return Err(Error::json(
                        path,
                        format!("operations.{op_name}: not a catalog operation — did you mean '{near}'? (an operation of your own needs a name no catalog operation is one typo away from)"),
                    ));
                }
            }
            let op = self.ops.entry(op_name.clone()).or_default();
            let star = entries.get("*").copied();
            if op.registry {
                for name in entries.keys().filter(|n| *n != "*") {
                    if !op.stages.contains_key(name) {
                        let known: Vec<&str> = op.stages.keys().map(String::as_str).collect();
                        return Err(Error::json(
                            path,
                            format!(
                                "operations.{op_name}: '{name}' is not a stage of {op_name} (its stages: {}); use \"*\" for stages of your own",
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
            // Stages already known (registry or an earlier file): listed ones
            // take their entry, unlisted ones the "*" entry.
            for (name, tol) in op.stages.iter_mut() {
                if let Some(o) = entries.get(name).or(star.as_ref()) {
                    *tol = o.over(tol);
                    validate(path, &op_name, name, tol)?;
                }
            }
            // Stages new to the profile: their entry over "*".
            for (name, o) in entries.iter().filter(|(n, _)| *n != "*") {
                if op.stages.contains_key(name) {
                    continue;
                }
                let base = match (star, op.star) {
                    (Some(s), Some(old)) => s.over_partial(&old),
                    (s, old) => s.or(old).unwrap_or_default(),
                };
                let tol = o.over_partial(&base).complete().ok_or_else(|| {
                    Error::json(
                        path,
                        format!(
                            "operations.{op_name}.{name}: incomplete tolerance: {} missing (give them here or in \"*\")",
                            o.over_partial(&base).missing().join(", ")
                        ),
                    )
                })?;
                validate(path, &op_name, name, &tol)?;
                op.stages.insert(name.clone(), tol);
            }
            if let Some(s) = star {
                let merged = s.over_partial(&op.star.unwrap_or_default());
                if let Some(t) = merged.complete() {
                    validate(path, &op_name, "*", &t)?;
                }
                op.star = Some(merged);
            }
        }
        for (pattern, o) in file.tensors {
            let glob = glob::Pattern::new(&pattern)
                .map_err(|e| Error::json(path, format!("tensors.\"{pattern}\": not a glob: {e}")))?;
            let tol = o.over(&Tolerance::unlimited());
            validate(path, "tensors", &pattern, &tol)?;
            // A later file's entry for the same glob replaces an earlier one.
            self.tensors.retain(|(p, _, _)| *p != pattern);
            self.tensors.push((pattern, glob, tol));
        }
        self.origin = format!("{} + {}", self.origin, path.display());
        Ok(self)
    }

    /// Rename the profile (how outputs name where the tolerances came from).
    /// The profile's `"quantization": {"margin": m}`, when it has one.
    pub fn quantization_margin(&self) -> Option<f64> {
        self.quantization_margin
    }

    pub fn named(mut self, origin: impl Into<String>) -> Profile {
        self.origin = origin.into();
        self
    }

    /// Where the tolerances came from: `built-in`, `built-in + tight.json`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tolerance of one stage, if the profile has one: the stage's own,
    /// else the operation's complete `"*"` entry.
    pub fn tolerance(&self, operation: &str, stage: &str) -> Option<Tolerance> {
        let op = self.ops.get(operation)?;
        op.stages.get(stage).copied().or_else(|| op.star.and_then(|s| s.complete()))
    }

    /// The limits of a whole tensor (`parity diff`): the first entry of the
    /// `"tensors"` section whose glob matches the name, with that glob. An
    /// entry's unspecified limits are unlimited: `{"max_abs": 1e-3}` limits
    /// only the largest difference.
    pub fn tensor_tolerance(&self, name: &str) -> Option<(&str, Tolerance)> {
        self.tensors.iter().find(|(_, g, _)| g.matches(name)).map(|(p, _, t)| (p.as_str(), *t))
    }

    /// Whether the file gave a `"tensors"` section.
    pub fn has_tensor_rules(&self) -> bool {
        !self.tensors.is_empty()
    }

    /// The limits an operation's `"*"` entry lacks to stand for a stage on
    /// its own (`required`, `max_abs`, `mean_abs`), when it has one that is
    /// incomplete; None when it has none or a complete one.
    pub fn star_missing(&self, operation: &str) -> Option<Vec<&'static str>> {
        let star = self.ops.get(operation)?.star.as_ref()?;
        let missing = star.missing();
        (!missing.is_empty()).then_some(missing)
    }

    /// Whether the profile has anything for this operation.
    pub fn knows(&self, operation: &str) -> bool {
        self.ops.contains_key(operation)
    }

    /// The stages the profile names for an operation, in its order (the
    /// registry's pipeline order for registry operations).
    pub fn stages(&self, operation: &str) -> Vec<&str> {
        self.ops.get(operation).map(|op| op.stages.keys().map(String::as_str).collect()).unwrap_or_default()
    }

    /// Whether this operation's stage order is the registry's.
    pub fn has_registry_order(&self, operation: &str) -> bool {
        self.ops.get(operation).is_some_and(|op| op.registry)
    }
}

/// The entry of a tolerance file serde refuses, as `operations.OP.STAGE: `
/// (or `tensors.GLOB: `): serde's own message names only the field.
fn where_invalid(value: &serde_json::Value) -> String {
    let entries = |section: &str| value.get(section).and_then(|s| s.as_object()).into_iter().flatten();
    for (op, stages) in entries("operations") {
        for (stage, o) in stages.as_object().into_iter().flatten() {
            if Override::deserialize(o).is_err() {
                return format!("operations.{op}.{stage}: ");
            }
        }
    }
    for (glob, o) in entries("tensors") {
        if Override::deserialize(o).is_err() {
            return format!("tensors.\"{glob}\": ");
        }
    }
    String::new()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[allow(dead_code)]
    schema: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    operations: IndexMap<String, IndexMap<String, Override>>,
    #[serde(default)]
    tensors: IndexMap<String, Override>,
    #[serde(default)]
    quantization: Option<QuantizationSection>,
}

/// `"quantization": {"margin": 2}` (see `diff::quantization`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantizationSection {
    margin: f64,
}

/// One stage entry of a file: every field optional. For the optional limits,
/// absent keeps the base's value and `null` removes it.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    required: Option<bool>,
    max_abs: Option<f64>,
    mean_abs: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    min_cosine: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    max_ulp: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    rtol: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    atol: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    max_mismatch_fraction: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    noise_floor_m: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    noise_floor_eps: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    min_top1: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    max_kl: Option<Option<f64>>,
    /// Free text on where the limits came from; checked for shape, then dropped.
    #[serde(default)]
    #[allow(dead_code)]
    why: Why,
}

/// A stage entry's `why`: a string, or one string per limit. No verdict
/// depends on it; anything else there is still an error, like any misspelt key.
#[derive(Clone, Copy, Debug, Default)]
struct Why;

impl<'de> Deserialize<'de> for Why {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Why, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Text {
            One(String),
            PerLimit(BTreeMap<String, String>),
        }
        Text::deserialize(d).map(|_| Why).map_err(|_| serde::de::Error::custom("`why` must be a string or an object of strings"))
    }
}

/// Tells a `null` (Some(None)) from an absent field (None, via `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl Override {
    /// This entry's fields over a complete tolerance.
    fn over(&self, base: &Tolerance) -> Tolerance {
        Tolerance {
            required: self.required.unwrap_or(base.required),
            max_abs: self.max_abs.unwrap_or(base.max_abs),
            mean_abs: self.mean_abs.unwrap_or(base.mean_abs),
            min_cosine: self.min_cosine.unwrap_or(base.min_cosine),
            max_ulp: self.max_ulp.unwrap_or(base.max_ulp),
            rtol: self.rtol.unwrap_or(base.rtol),
            atol: self.atol.unwrap_or(base.atol),
            max_mismatch_fraction: self.max_mismatch_fraction.unwrap_or(base.max_mismatch_fraction),
            noise_m: self.noise_floor_m.unwrap_or(base.noise_m),
            noise_eps: self.noise_floor_eps.unwrap_or(base.noise_eps),
            min_top1: self.min_top1.unwrap_or(base.min_top1),
            max_kl: self.max_kl.unwrap_or(base.max_kl),
        }
    }

    /// This entry's fields over another entry.
    fn over_partial(&self, base: &Override) -> Override {
        Override {
            required: self.required.or(base.required),
            max_abs: self.max_abs.or(base.max_abs),
            mean_abs: self.mean_abs.or(base.mean_abs),
            min_cosine: self.min_cosine.or(base.min_cosine),
            max_ulp: self.max_ulp.or(base.max_ulp),
            rtol: self.rtol.or(base.rtol),
            atol: self.atol.or(base.atol),
            max_mismatch_fraction: self.max_mismatch_fraction.or(base.max_mismatch_fraction),
            noise_floor_m: self.noise_floor_m.or(base.noise_floor_m),
            noise_floor_eps: self.noise_floor_eps.or(base.noise_floor_eps),
            min_top1: self.min_top1.or(base.min_top1),
            max_kl: self.max_kl.or(base.max_kl),
            why: Why,
        }
    }

    fn complete(&self) -> Option<Tolerance> {
        Some(Tolerance {
            required: self.required?,
            max_abs: self.max_abs?,
            mean_abs: self.mean_abs?,
            min_cosine: self.min_cosine.flatten(),
            max_ulp: self.max_ulp.flatten(),
            rtol: self.rtol.flatten(),
            atol: self.atol.flatten(),
            max_mismatch_fraction: self.max_mismatch_fraction.flatten(),
            noise_m: self.noise_floor_m.flatten(),
            noise_eps: self.noise_floor_eps.flatten(),
            min_top1: self.min_top1.flatten(),
            max_kl: self.max_kl.flatten(),
        })
    }

    fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.required.is_none() {
            m.push("required");
        }
        if self.max_abs.is_none() {
            m.push("max_abs");
        }
        if self.mean_abs.is_none() {
            m.push("mean_abs");
        }
        m
    }
}

fn validate(path: &Path, op: &str, stage: &str, t: &Tolerance) -> Result<()> {
    let bad = |field: &str, rule: &str, v: f64| {
        Err(Error::json(path, format!("operations.{op}.{stage}.{field}: must be {rule}, got {v}")))
    };
    for (field, v) in [("max_abs", Some(t.max_abs)), ("mean_abs", Some(t.mean_abs)), ("rtol", t.rtol), ("atol", t.atol)]
    {
        if let Some(v) = v {
            if v.is_nan() || v < 0.0 {
                return bad(field, "a number ≥ 0", v);
            }
        }
    }
    if let Some(c) = t.min_cosine {
        if !(-1.0..=1.0).contains(&c) {
            return bad("min_cosine", "in [-1, 1]", c);
        }
    }
    for (field, v) in [("max_mismatch_fraction", t.max_mismatch_fraction), ("min_top1", t.min_top1)] {
        if let Some(f) = v {
            if !(0.0..=1.0).contains(&f) {
                return bad(field, "in [0, 1]", f);
            }
        }
    }
    if let Some(v) = t.max_kl {
        if v.is_nan() || v < 0.0 {
            return bad("max_kl", "a number ≥ 0", v);
        }
    }
    for (field, v) in [("noise_floor_m", t.noise_m), ("noise_floor_eps", t.noise_eps)] {
        if let Some(v) = v {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(field, "a finite number ≥ 0", v);
            }
        }
    }
    Ok(())
}
