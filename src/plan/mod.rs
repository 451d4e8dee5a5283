//! Surgery plans, `parity.plan.v1` (SPEC §11): the file, read from JSON or
//! YAML and checked for everything that can be checked without a model.
//!
//! A plan names its inputs (the `base` checkpoint it edits, components files,
//! other checkpoints), an output, and ordered steps. A step has a unique `id`
//! and exactly one of `operation` (a catalog operation or a structural one:
//! `copy`, `rename`, `delete`, `merge_missing`) or `assert`. Everything that
//! needs the model — targets, input tensors, shapes — is resolved by
//! [`resolve`] from headers alone.

pub mod resolve;

use crate::error::{Error, Result};
use crate::format::stages::Params;
use indexmap::IndexMap;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

pub const SCHEMA: &str = "parity.plan.v1";

/// Operations a plan can run besides the catalog's.
pub const STRUCTURAL: &[&str] = &["copy", "rename", "delete", "merge_missing"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub schema: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Input name → path (relative to the plan's directory).
    pub inputs: IndexMap<String, String>,
    #[serde(default)]
    pub output: Output,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub layout: OutputLayout,
    /// Bytes per shard: a number, or "4GiB", "500MB", …
    #[serde(default)]
    pub shard_size: Option<serde_json::Value>,
    /// Copy base's non-tensor files (config.json, tokenizer, …) verbatim.
    #[serde(default = "yes")]
    pub copy_files: bool,
}

fn yes() -> bool {
    true
}

impl Default for Output {
    fn default() -> Self {
        Output { path: None, layout: OutputLayout::Sharded, shard_size: None, copy_files: true }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputLayout {
    /// `model-0000i-of-0000N.safetensors` + `model.safetensors.index.json`.
    #[default]
    Sharded,
    /// `model.safetensors`.
    Single,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub assert: Option<Assert>,
    #[serde(default)]
    pub target: Option<Target>,
    /// The operation's input → `INPUT:NAME` with `{name}`, `{key}`, `{layer}`.
    #[serde(default)]
    pub inputs: IndexMap<String, String>,
    #[serde(default)]
    pub params: Params,
    /// Which stage becomes the written tensor (default: the last).
    #[serde(default)]
    pub write: Option<String>,
    /// The written tensor's name (default `{name}`: in place).
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub expect: Option<Expect>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// An exact name, a glob (`*?[`), or `re:REGEX`.
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(default)]
    pub layers: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub shape: Option<Vec<usize>>,
    #[serde(default)]
    pub dtype: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// BrainSurgery's asserts; every one given must hold for every matched tensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assert {
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(default)]
    pub layers: Option<String>,
    /// The pattern matches at least one tensor (true) or none (false).
    #[serde(default)]
    pub exists: Option<bool>,
    /// The pattern matches exactly this many tensors.
    #[serde(default)]
    pub count: Option<usize>,
    #[serde(default)]
    pub shape: Option<Vec<usize>>,
    #[serde(default)]
    pub dtype: Option<String>,
    /// Every value finite (true), or at least one not (false).
    #[serde(default)]
    pub finite: Option<bool>,
    /// Every value zero (true), or at least one not (false).
    #[serde(default)]
    pub iszero: Option<bool>,
    #[serde(default)]
    pub equal: Option<Equal>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Equal {
    /// `INPUT:NAME`, templated like step inputs.
    pub to: String,
    #[serde(default)]
    pub max_abs: f64,
}

/// A plan file, read and checked.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub plan: Plan,
    /// sha256 of the file's bytes.
    pub sha256: String,
}

impl LoadedPlan {
    /// Read a plan (YAML when the file ends in .yaml/.yml, else JSON) and
    /// check it: schema, unique step ids, one kind per step, known
    /// operations, inputs that stay in the plan's directory.
    pub fn load(path: &Path, allow_outside_paths: bool) -> Result<LoadedPlan> {
        let bytes = crate::format::checkpoint::read_small(path, 64 << 20)?;
        Self::parse(path, &bytes, allow_outside_paths)
    }

    /// [`LoadedPlan::load`] of bytes already read from `path` (which decides
    /// YAML or JSON by its extension and names the plan in errors).
    pub fn parse(path: &Path, bytes: &[u8], allow_outside_paths: bool) -> Result<LoadedPlan> {
        let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        let value: serde_json::Value = if yaml {
            crate::format::strict_json::parse_yaml(bytes).map_err(|e| Error::yaml(path, e.to_string()))?
        } else {
            crate::format::strict_json::parse(bytes).map_err(|e| Error::json(path, format!("not JSON: {e}")))?
        };
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => return Err(Error::json(path, format!("schema '{other}', expected '{SCHEMA}'"))),
            None => return Err(Error::json(path, format!("not a plan: no \"schema\": \"{SCHEMA}\""))),
        }
        let plan: Plan = serde_json::from_value(value).map_err(|e| Error::json(path, format!("invalid plan: {e}")))?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| ".".into());
        let sha256 = crate::format::tensor::sha256_hex(bytes);
        let loaded = LoadedPlan { path: path.to_path_buf(), dir, plan, sha256 };
        loaded.check(allow_outside_paths)?;
        Ok(loaded)
    }

    fn step_error(&self, step: &str, message: impl Into<String>) -> Error {
        Error::json(&self.path, format!("step '{step}': {}", message.into()))
    }

    fn check(&self, allow_outside_paths: bool) -> Result<()> {
        let p = &self.plan;
        if !p.inputs.contains_key("base") {
            return Err(Error::json(&self.path, "inputs: no 'base' (the checkpoint the plan edits)"));
        }
        for (name, rel) in &p.inputs {
            let escapes = Path::new(rel).is_absolute() || Path::new(rel).components().any(|c| matches!(c, Component::ParentDir));
            if escapes && !allow_outside_paths {
                return Err(Error::PathEscapes { path: self.path.clone(), field: format!("inputs.{name}"), target: rel.clone(), container: "plan" });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &p.steps {
            if !seen.insert(s.id.as_str()) {
                return Err(self.step_error(&s.id, "duplicate step id"));
            }
            match (&s.operation, &s.assert) {
                (Some(_), Some(_)) => return Err(self.step_error(&s.id, "has both 'operation' and 'assert'")),
                (None, None) => return Err(self.step_error(&s.id, "needs one of 'operation' or 'assert'")),
                (Some(op), None) => {
                    let known = STRUCTURAL.contains(&op.as_str()) || crate::ops::find(op).is_some();
                    if !known {
                        let names = crate::ops::REGISTRY.iter().map(|o| o.name).chain(STRUCTURAL.iter().copied());
                        let hint = crate::error::did_you_mean(op, names).map(|n| format!(" — did you mean '{n}'?")).unwrap_or_default();
                        return Err(self.step_error(&s.id, format!("unknown operation '{op}'{hint} (see `parity ops`; structural: copy, rename, delete, merge_missing)")));
                    }
                    if op != "merge_missing" && s.target.is_none() {
                        return Err(self.step_error(&s.id, format!("{op} needs a 'target'")));
                    }
                    if matches!(op.as_str(), "copy" | "rename") && s.output.is_none() {
                        return Err(self.step_error(&s.id, format!("{op} needs an 'output' name template")));
                    }
                }
                (None, Some(_)) => {}
            }
            if s.operation.as_deref() == Some("merge_missing") {
                match s.inputs.get("extra") {
                    Some(input) if p.inputs.contains_key(input.trim_end_matches(':')) && s.inputs.len() == 1 => continue,
                    _ => return Err(self.step_error(&s.id, format!("merge_missing takes inputs: {{extra: INPUT}}, INPUT one of {}", p.inputs.keys().cloned().collect::<Vec<_>>().join(", ")))),
                }
            }
            // Every `INPUT:NAME` the step names: its inputs and an assert's
            // `equal.to` (resolution looks the input up without checking).
            let equal_to = s.assert.as_ref().and_then(|a| a.equal.as_ref()).map(|e| &e.to);
            for reference in s.inputs.values().chain(equal_to) {
                let (input, _) = reference.split_once(':').ok_or_else(|| {
                    self.step_error(&s.id, format!("input reference '{reference}': expected INPUT:NAME (e.g. base:{{name}})"))
                })?;
                if !p.inputs.contains_key(input) {
                    return Err(self.step_error(&s.id, format!("input reference '{reference}': no input named '{input}' (inputs: {})", p.inputs.keys().cloned().collect::<Vec<_>>().join(", "))));
                }
            }
        }
        Ok(())
    }

    /// An input's path, resolved against the plan's directory.
    pub fn input_path(&self, name: &str) -> PathBuf {
        self.dir.join(&self.plan.inputs[name])
    }

    /// Bytes per shard (default 5 GB, as transformers' `save_pretrained`).
    pub fn shard_size(&self) -> Result<u64> {
        match &self.plan.output.shard_size {
            None => Ok(5_000_000_000),
            Some(serde_json::Value::Number(n)) => n.as_u64().filter(|&n| n > 0).ok_or_else(|| Error::json(&self.path, "output.shard_size: a positive whole number of bytes")),
            Some(serde_json::Value::String(s)) => parse_size(s).ok_or_else(|| Error::json(&self.path, format!("output.shard_size '{s}': expected e.g. 4GiB, 500MB or a byte count"))),
            Some(v) => Err(Error::json(&self.path, format!("output.shard_size: {v} is not a size"))),
        }
    }
}

/// "4GiB", "500MB", "1024" → bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    let bytes = (n * mult as f64).round();
    (bytes >= 1.0).then_some(bytes as u64)
}
