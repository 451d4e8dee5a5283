//! Stages in pipeline order, and an operation's parameters: what an
//! implementation produces and what a report records of a call. Both the
//! catalog (which produces them) and the report writer (which stores them)
//! use these, so they live below both.

use super::tensor::Tensor;

/// An operation's parameters as a report or plan gives them (JSON values,
/// in the order written). The catalog validates them against its declarations.
pub type Params = serde_json::Map<String, serde_json::Value>;

/// Stages in pipeline order.
#[derive(Debug, Default, Clone)]
pub struct Stages(pub Vec<(String, Tensor)>);

impl Stages {
    pub fn push(&mut self, name: &str, t: Tensor) {
        self.0.push((name.to_string(), t));
    }
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
