//! Parameters as an operation declares them, and the one place where a
//! call's parameters are held to that declaration.
//!
//! A report or plan gives parameters as JSON. Before any implementation runs,
//! [`validate`] refuses an unknown key (naming the nearest known one: a
//! `tranpose` that is silently ignored makes a square `svf_apply` skip its
//! transpose), a missing required key, and a value of the wrong JSON type. What
//! a value means for the inputs at hand (a rank within min(m, n), a shape
//! with the same element count) is the operation's own check, made where it
//! reads the parameter.

use crate::error::{did_you_mean, Error, ParamProblem, Result};
use crate::format::stages::Params;
use serde_json::Value;

/// One declared parameter.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    pub doc: &'static str,
    pub required: bool,
}

/// The JSON shape a parameter's value must have. An optional parameter may
/// also be `null`, which means the same as leaving it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Bool,
    Number,
    /// A number or a bool (fill's value, for BOOL tensors).
    Scalar,
    /// A whole number, possibly negative (axes count from the end).
    Integer,
    /// A list of whole numbers ≥ 0 (a shape, a block size).
    Sizes,
    /// A list of whole numbers, possibly negative (axes, a shape with -1).
    Integers,
    /// A list of numbers.
    Numbers,
    /// A list of `[start, stop, step]` lists of integers or nulls.
    Ranges,
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

impl ParamKind {
    /// What the value must be, for error messages and `parity ops`.
    pub fn describe(self) -> String {
        match self {
            ParamKind::Bool => "true or false".into(),
            ParamKind::Number => "a number".into(),
            ParamKind::Scalar => "a number or true/false".into(),
            ParamKind::Integer => "a whole number".into(),
            ParamKind::Sizes => "a list of whole numbers ≥ 0".into(),
            ParamKind::Integers => "a list of whole numbers".into(),
            ParamKind::Numbers => "a list of numbers".into(),
            ParamKind::Ranges => "a list of [start, stop, step] lists (integers or null)".into(),
            ParamKind::OneOf(names) => format!("one of {}", names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")),
        }
    }

    fn accepts(self, v: &Value) -> bool {
        let integer = |v: &Value| v.as_i64().is_some() || v.as_u64().is_some();
        let list = |v: &Value, each: &dyn Fn(&Value) -> bool| v.as_array().is_some_and(|a| a.iter().all(each));
        match self {
            ParamKind::Bool => v.is_boolean(),
            ParamKind::Number => v.is_number(),
            ParamKind::Scalar => v.is_number() || v.is_boolean(),
            ParamKind::Integer => integer(v),
            ParamKind::Sizes => list(v, &|x| x.as_u64().is_some()),
            ParamKind::Integers => list(v, &integer),
            ParamKind::Numbers => list(v, &Value::is_number),
            ParamKind::Ranges => list(v, &|r| r.as_array().is_some_and(|r| r.len() <= 3) && list(r, &|x| x.is_null() || integer(x))),
            ParamKind::OneOf(names) => v.as_str().is_some_and(|s| names.contains(&s)),
        }
    }
}

/// Hold `params` to `declared`: every key known, every required key present,
/// every value of its kind. Errors name the operation, the tensor and the key.
pub fn validate(op: &str, tensor: &str, declared: &[Param], params: &Params) -> Result<()> {
    let problem = |key: &str, problem: ParamProblem| Error::Parameter {
        path: None,
        op: op.to_string(),
        tensor: tensor.to_string(),
        key: key.to_string(),
        problem,
    };
    for key in params.keys() {
        if !declared.iter().any(|p| p.name == key) {
            let known: Vec<String> = declared.iter().map(|p| p.name.to_string()).collect();
            let suggestion = did_you_mean(key, declared.iter().map(|p| p.name));
            return Err(problem(key, ParamProblem::Unknown { known, suggestion }));
        }
    }
    for p in declared {
        match params.get(p.name) {
            None if p.required => return Err(problem(p.name, ParamProblem::Missing)),
            None => {}
            Some(Value::Null) if !p.required => {}
            Some(v) if p.kind.accepts(v) => {}
            Some(v) => {
                let mut got = v.to_string();
                if got.len() > 60 {
                    got = format!("{}…", &got[..got.char_indices().nth(60).map_or(got.len(), |(i, _)| i)]);
                }
                return Err(problem(p.name, ParamProblem::WrongType { expected: p.kind.describe(), got }));
            }
        }
    }
    Ok(())
}
