//! JSON read strictly: an object that holds one key twice is refused.
//!
//! serde_json (like most parsers) keeps the last of two equal keys without a
//! word, so `{"max_abs": 1e-3, …, "max_abs": 10}` in a hand-edited profile,
//! or a report two tools wrote into, would silently mean whatever came last.
//! Every JSON file a person or another tool writes for parity (reports,
//! tolerance profiles, plans, checkpoint indexes, diff results) goes through
//! [`parse`], which builds the same `Value` and names the repeated key by its
//! path (`tensors[0].stages.final_f32.sha256`).

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;

/// `bytes` as a JSON value, or serde_json's error (line and column
/// included), a repeated key named by its path.
pub fn parse(bytes: &[u8]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict { path: String::new() }.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// A YAML document (a surgery plan) as the same JSON value, read as
/// strictly: a mapping that holds one key twice is refused, named by its
/// path. Read straight into a `serde_json::Value`, serde_yaml_ng kept the
/// last of two keys in a flow mapping (`{factor: 2.0, factor: 3.0}` scaled
/// by 3) while a JSON plan was refused.
pub fn parse_yaml(bytes: &[u8]) -> Result<Value, serde_yaml_ng::Error> {
    Strict { path: String::new() }.deserialize(serde_yaml_ng::Deserializer::from_slice(bytes))
}

/// A value at `path` (empty at the top).
struct Strict {
    path: String,
}

impl Strict {
    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so a parsed f64 is always a Number.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict { path: format!("{}[{}]", self.path, out.len()) })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            let path = self.key(&k);
            if !seen.insert(k.clone()) {
                return Err(de::Error::custom(format!("key '{path}' appears twice")));
            }
            let v = map.next_value_seed(Strict { path })?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}
