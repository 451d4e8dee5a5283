//! A plan resolved against its inputs' headers: every step expanded into one
//! action per matched tensor, every input reference found, every parameter
//! validated against its operation's declaration, and every shape and dtype
//! that can be known without data predicted and held to `expect`. This is
//! all `--dry-run` does, and the first thing a real run does: a bad plan
//! fails before any weight is read.

use super::{Assert, LoadedPlan, Step};
use crate::select::{layer_number, LayerRange};
use crate::error::{Error, Result};
use crate::format::checkpoint::Checkpoint;
use crate::format::dtype::DType;
use crate::format::stages::Params;
use crate::ops::{Operation, StageDtype};
use indexmap::IndexMap;
use std::collections::BTreeMap;

/// Where a tensor of the working model comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A tensor of an input file, as stored.
    Input { input: String, name: String },
    /// Written by an earlier action (its index).
    Computed(usize),
}

/// A tensor of the working model, as far as headers tell.
#[derive(Clone, Debug)]
pub struct Entry {
    pub source: Source,
    /// None when only a run can tell.
    pub dtype: Option<DType>,
    pub shape: Option<Vec<usize>>,
}

/// What one action does.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A catalog operation; `inputs` maps each of its inputs to a source.
    Operation { op: &'static Operation, inputs: Vec<(String, Source)>, params: Params, write: String },
    /// `copy` and `rename`: the same bytes under another name (rename drops the old).
    Copy { from: Source, rename: bool },
    Delete,
    /// `merge_missing`: a tensor of another checkpoint the model lacked.
    Take { from: Source },
    Assert { sources: Vec<(String, Source)>, spec: Box<Assert>, equal_to: Vec<Option<Source>> },
}

#[derive(Clone, Debug)]
pub struct Action {
    pub step: String,
    /// The target tensor (for an assert: its pattern).
    pub tensor: String,
    /// The tensor written, if any.
    pub output: Option<String>,
    pub kind: Kind,
    pub dtype: Option<DType>,
    pub shape: Option<Vec<usize>>,
    pub expect: Option<super::Expect>,
}

/// The plan, resolved.
pub struct Resolved {
    pub inputs: IndexMap<String, Checkpoint>,
    pub actions: Vec<Action>,
    /// An assert or expectation that headers already show to fail: (step,
    /// message). Resolution stops there; the run fails with exit 1.
    pub failure: Option<(String, String)>,
    /// The output model: name → entry, in name order.
    pub model: BTreeMap<String, Entry>,
}

/// Open every input and resolve every step.
pub fn resolve(plan: &LoadedPlan) -> Result<Resolved> {
    let mut inputs = IndexMap::new();
    for name in plan.plan.inputs.keys() {
        inputs.insert(name.clone(), Checkpoint::open(&plan.input_path(name))?);
    }
    let mut model: BTreeMap<String, Entry> = inputs["base"]
        .tensors()
        .map(|(n, l)| {
            (n.to_string(), Entry { source: Source::Input { input: "base".into(), name: n.into() }, dtype: Some(l.dtype), shape: Some(l.shape.clone()) })
        })
        .collect();
    let mut actions = Vec::new();
    let mut failure = None;
    'steps: for step in &plan.plan.steps {
        let err = |m: String| Error::json(&plan.path, format!("step '{}': {m}", step.id));
        if let Some(spec) = &step.assert {
            let targets = match matching(&model, &spec.pattern, spec.layers.as_deref()) {
                Ok(t) => t,
                // Matching nothing is what `exists: false` / `count: 0` ask for.
                Err(_) if spec.exists == Some(false) || spec.count == Some(0) => Vec::new(),
                Err(m) if spec.exists == Some(true) || spec.count.is_some() => {
                    failure = Some((step.id.clone(), m));
                    break 'steps;
                }
                Err(m) => return Err(err(m)),
            };
            if let Err(m) = check_assert_headers(spec, &targets, &model) {
                failure = Some((step.id.clone(), m));
                break 'steps;
            }
            let mut equal_to = Vec::new();
            for t in &targets {
                equal_to.push(match &spec.equal {
                    Some(e) => Some(reference(plan, &inputs, &model, &e.to, t, step)?.0),
                    None => None,
                });
            }
            let sources = targets.iter().map(|t| (t.clone(), model[t].source.clone())).collect();
            actions.push(Action {
                step: step.id.clone(),
                tensor: spec.pattern.clone(),
                output: None,
                kind: Kind::Assert { sources, spec: Box::new(spec.clone()), equal_to },
                dtype: None,
                shape: None,
                expect: None,
            });
            continue;
        }
        let op_name = step.operation.as_deref().expect("checked on load");
        if op_name == "merge_missing" {
            let extra = step.inputs.get("extra").ok_or_else(|| err("merge_missing needs inputs: {extra: INPUT}".into()))?;
            let extra = extra.trim_end_matches(':').to_string();
            let ck = inputs.get(&extra).ok_or_else(|| err(format!("no input named '{extra}'")))?;
            for (name, loc) in ck.tensors() {
                if model.contains_key(name) {
                    continue;
                }
                let from = Source::Input { input: extra.clone(), name: name.into() };
                actions.push(Action {
                    step: step.id.clone(),
                    tensor: name.into(),
                    output: Some(name.into()),
                    kind: Kind::Take { from: from.clone() },
                    dtype: Some(loc.dtype),
                    shape: Some(loc.shape.clone()),
                    expect: None,
                });
                model.insert(name.into(), Entry { source: Source::Computed(actions.len() - 1), dtype: Some(loc.dtype), shape: Some(loc.shape.clone()) });
            }
            continue;
        }
        let target = step.target.as_ref().expect("checked on load");
        let targets = matching(&model, &target.pattern, target.layers.as_deref()).map_err(err)?;
        for t in targets {
            let entry = model[&t].clone();
            let out_name = match &step.output {
                Some(tpl) => template(tpl, &t).map_err(&err)?,
                None => t.clone(),
            };
            let action = match op_name {
                "delete" => {
                    model.remove(&t);
                    Action { step: step.id.clone(), tensor: t.clone(), output: None, kind: Kind::Delete, dtype: None, shape: None, expect: None }
                }
                "copy" | "rename" => {
                    if out_name != t && model.contains_key(&out_name) {
                        return Err(err(format!("{op_name} of '{t}' would overwrite '{out_name}'")));
                    }
                    Action {
                        step: step.id.clone(),
                        tensor: t.clone(),
                        output: Some(out_name.clone()),
                        kind: Kind::Copy { from: entry.source.clone(), rename: op_name == "rename" },
                        dtype: entry.dtype,
                        shape: entry.shape.clone(),
                        expect: step.expect.clone(),
                    }
                }
                _ => operation_action(plan, &inputs, &model, step, &t, &out_name)?,
            };
            if let Some(e) = &action.expect {
                if let Err(m) = check_expect(e, action.dtype, action.shape.as_deref()) {
                    failure = Some((step.id.clone(), format!("tensor '{t}': expect: {m}")));
                    break 'steps;
                }
            }
            let index = actions.len();
            if let (Kind::Copy { rename: true, .. }, true) = (&action.kind, true) {
                model.remove(&t);
            }
            if let Some(o) = &action.output {
                model.insert(o.clone(), Entry { source: Source::Computed(index), dtype: action.dtype, shape: action.shape.clone() });
            }
            actions.push(action);
        }
    }
    Ok(Resolved { inputs, actions, failure, model })
}

fn operation_action(
    plan: &LoadedPlan,
    inputs: &IndexMap<String, Checkpoint>,
    model: &BTreeMap<String, Entry>,
    step: &Step,
    target: &str,
    out_name: &str,
) -> Result<Action> {
    let op = crate::ops::find(step.operation.as_deref().unwrap()).expect("checked on load");
    let err = |m: String| Error::json(&plan.path, format!("step '{}': tensor '{target}': {m}", step.id));
    let mut srcs = Vec::new();
    let mut shapes: BTreeMap<String, Option<Vec<usize>>> = BTreeMap::new();
    let mut dtypes: BTreeMap<String, Option<DType>> = BTreeMap::new();
    for (name, reference_text) in &step.inputs {
        if !op.inputs.iter().any(|i| i.name == name) {
            let known: Vec<&str> = op.inputs.iter().map(|i| i.name).collect();
            return Err(err(format!("'{name}' is not an input of {} (its inputs: {})", op.name, known.join(", "))));
        }
        let (src, dtype, shape) = reference(plan, inputs, model, reference_text, target, step)?;
        srcs.push((name.clone(), src));
        shapes.insert(name.clone(), shape);
        dtypes.insert(name.clone(), dtype);
    }
    // The dtypes the operation declares, checked from headers: a dry run
    // refuses what the run would (an I64 position_ids reached by `cast *`).
    for i in op.inputs {
        if let Some(Some(d)) = dtypes.get(i.name) {
            if !i.accepts.allows(*d) {
                return Err(err(format!("input '{}' ('{}') is {d}; {} takes {} there", i.name, step.inputs[i.name], op.name, i.accepts.describe())));
            }
        }
    }
    for i in op.inputs.iter().filter(|i| !i.optional) {
        if !step.inputs.contains_key(i.name) {
            return Err(err(format!("input '{}' of {} is not given (inputs: {{{}: \"INPUT:NAME\"}})", i.name, op.name, i.name)));
        }
    }
    let mut params = step.params.clone();
    // A parameter derivable from the target may be omitted: svf_apply's
    // final_shape is the source's shape, or its transpose with transpose: true.
    if op.name == "svf_apply" && !params.contains_key("final_shape") {
        if let Some(Some(s)) = shapes.get("source") {
            let mut s = s.clone();
            if params.get("transpose").and_then(|v| v.as_bool()) == Some(true) {
                s.reverse();
            }
            params.insert("final_shape".into(), serde_json::json!(s));
        }
    }
    // The operation's own check names the operation and tensor; a plan's
    // reader also needs the step that holds the parameter.
    crate::ops::params::validate(op.name, target, op.params, &params).map_err(|e| match e {
        Error::Parameter { op, key, problem, .. } => err(format!("{op}: parameter '{key}': {problem}")),
        other => other.in_file(&plan.path),
    })?;
    let write = match &step.write {
        Some(w) => {
            if op.stage(w).is_none() {
                let known: Vec<&str> = op.stages.iter().map(|s| s.name).collect();
                return Err(err(format!("write: '{w}' is not a stage of {} (its stages: {})", op.name, known.join(", "))));
            }
            w.clone()
        }
        None => op.final_stage().to_string(),
    };
    let stage = op.stage(&write).expect("checked");
    let dtype = match stage.dtype {
        StageDtype::Fixed(d) => Some(d),
        StageDtype::FromInput(i) => dtypes.get(i).cloned().flatten(),
        StageDtype::FromParam(p) => params.get(p).and_then(|v| v.as_str()).and_then(DType::parse),
    };
    let shape = infer_shape(op, &write, &shapes, &params);
    Ok(Action {
        step: step.id.clone(),
        tensor: target.to_string(),
        output: Some(out_name.to_string()),
        kind: Kind::Operation { op, inputs: srcs, params, write },
        dtype,
        shape,
        expect: step.expect.clone(),
    })
}

/// The written stage's shape where headers tell it: element-wise and casting
/// operations keep their input's shape; svf_apply's final stages take
/// `final_shape`. Other operations' shapes are known after the run.
fn infer_shape(op: &Operation, write: &str, shapes: &BTreeMap<String, Option<Vec<usize>>>, params: &Params) -> Option<Vec<usize>> {
    let of = |i: &str| shapes.get(i).cloned().flatten();
    match (op.name, write) {
        ("svf_apply", "final_f32" | "final_bf16") => params.get("final_shape").and_then(|v| serde_json::from_value(v.clone()).ok()),
        ("svf_apply", "source_f32" | "matmul_pre_norm" | "zero_source_f32" | "adapted_source_f32") => of("source"),
        ("identity" | "cast" | "scale" | "clamp" | "fill", _) => of("x"),
        ("add" | "subtract", _) => of("a"),
        ("lowrank_reconstruct", "output") => of("base"),
        _ => None,
    }
}

/// Resolve `INPUT:NAME` for `target`. `base:` names the working model (so a
/// later step sees earlier steps' results); other inputs name their files.
fn reference(
    plan: &LoadedPlan,
    inputs: &IndexMap<String, Checkpoint>,
    model: &BTreeMap<String, Entry>,
    text: &str,
    target: &str,
    step: &Step,
) -> Result<(Source, Option<DType>, Option<Vec<usize>>)> {
    let err = |m: String| Error::json(&plan.path, format!("step '{}': tensor '{target}': {m}", step.id));
    let (input, tpl) = text.split_once(':').expect("checked on load");
    let name = template(tpl, target).map_err(err)?;
    if input == "base" {
        let e = model.get(&name).ok_or_else(|| err(format!("'{text}' → base:{name}: no such tensor in the model (at this step)")))?;
        return Ok((e.source.clone(), e.dtype, e.shape.clone()));
    }
    let ck = &inputs[input];
    let loc = ck.get(&name).ok_or_else(|| {
        Error::tensor(&ck.path, &name, None, format!("named by step '{}' ('{text}' for '{target}') but not in this file", step.id))
    })?;
    Ok((Source::Input { input: input.into(), name }, Some(loc.dtype), Some(loc.shape.clone())))
}

/// `{name}`, `{key}` (every character outside [A-Za-z0-9_] → `_`), `{layer}`.
pub fn template(tpl: &str, name: &str) -> std::result::Result<String, String> {
    let mut out = tpl.replace("{name}", name).replace("{key}", &crate::format::bundle::safe_key(name));
    if out.contains("{layer}") {
        let l = layer_number(name).ok_or_else(|| format!("'{tpl}' uses {{layer}} but '{name}' has no layer number"))?;
        out = out.replace("{layer}", &l.to_string());
    }
    if let Some(i) = out.find('{') {
        if out[i..].contains('}') {
            return Err(format!("'{tpl}': unknown placeholder (known: {{name}}, {{key}}, {{layer}})"));
        }
    }
    Ok(out)
}

/// The working model's names a target matches, in name order; none is an error.
fn matching(model: &BTreeMap<String, Entry>, pattern: &str, layers: Option<&str>) -> std::result::Result<Vec<String>, String> {
    let layers: Option<LayerRange> = layers.map(|l| l.parse().map_err(|e: Error| e.to_string())).transpose()?;
    let keep = |n: &str| layers.is_none_or(|l| l.keeps(n));
    let names: Vec<String> = if let Some(re) = pattern.strip_prefix("re:") {
        let re = regex::Regex::new(re).map_err(|e| format!("target '{pattern}': invalid regex: {}", e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")))?;
        model.keys().filter(|n| re.is_match(n) && keep(n)).cloned().collect()
    } else if pattern.contains(['*', '?', '[']) {
        let g = glob::Pattern::new(pattern).map_err(|e| format!("target '{pattern}': bad glob: {e}"))?;
        model.keys().filter(|n| g.matches(n) && keep(n)).cloned().collect()
    } else {
        model.keys().filter(|n| *n == pattern && keep(n)).cloned().collect()
    };
    if names.is_empty() {
        let layer_note = layers.map(|l| format!(" in layers {l}")).unwrap_or_default();
        return Err(format!("target '{pattern}' matches no tensor{layer_note}"));
    }
    Ok(names)
}

/// The asserts headers can decide: exists, count, shape, dtype.
fn check_assert_headers(a: &Assert, targets: &[String], model: &BTreeMap<String, Entry>) -> std::result::Result<(), String> {
    if a.exists == Some(false) && !targets.is_empty() {
        return Err(format!("'{}' matches {} tensor(s), expected none", a.pattern, targets.len()));
    }
    if let Some(c) = a.count {
        if targets.len() != c {
            return Err(format!("'{}' matches {} tensor(s), expected {c}", a.pattern, targets.len()));
        }
    }
    for t in targets {
        let e = &model[t];
        if let (Some(want), Some(got)) = (&a.shape, &e.shape) {
            if want != got {
                return Err(format!("'{t}' has shape {got:?}, expected {want:?}"));
            }
        }
        if let (Some(want), Some(got)) = (&a.dtype, e.dtype) {
            if !want.eq_ignore_ascii_case(got.name()) {
                return Err(format!("'{t}' is {got}, expected {want}"));
            }
        }
    }
    Ok(())
}

fn check_expect(e: &super::Expect, dtype: Option<DType>, shape: Option<&[usize]>) -> std::result::Result<(), String> {
    if let (Some(want), Some(got)) = (&e.dtype, dtype) {
        if !want.eq_ignore_ascii_case(got.name()) {
            return Err(format!("dtype {got}, expected {want}"));
        }
    }
    if let (Some(want), Some(got)) = (&e.shape, shape) {
        if want.as_slice() != got {
            return Err(format!("shape {got:?}, expected {want:?}"));
        }
    }
    Ok(())
}

pub(crate) fn check_expect_known(e: &super::Expect, dtype: DType, shape: &[usize], sha256: &str) -> std::result::Result<(), String> {
    check_expect(e, Some(dtype), Some(shape))?;
    if let Some(want) = &e.sha256 {
        if !want.eq_ignore_ascii_case(sha256) {
            return Err(format!("sha256 {sha256}, expected {want}"));
        }
    }
    Ok(())
}
