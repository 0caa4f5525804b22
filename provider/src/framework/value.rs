//! Terraform values as the provider sees them: known, unknown or null, with
//! typed accessors so that resources never handle wire encodings.

use std::collections::BTreeMap;

/// A Terraform value. Lists, sets and tuples are all `List`; maps and
/// objects are both `Map`: the schema's [`Type`](super::types::Type) tells
/// them apart when the value is encoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    /// Not known until apply (Terraform's unknown value, refined or not).
    Unknown,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

static NULL: Value = Value::Null;

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn number(n: impl Into<f64>) -> Value {
        Value::Number(n.into())
    }

    pub fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
        Value::List(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    pub fn object<I: IntoIterator<Item = (K, Value)>, K: Into<String>>(fields: I) -> Value {
        Value::Map(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(items) => items.iter().all(Value::is_wholly_known),
            Value::Map(fields) => fields.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    /// The attribute `name` of an object, or null when absent.
    pub fn get(&self, name: &str) -> &Value {
        match self {
            Value::Map(fields) => fields.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// Sets attribute `name`, turning a null value into an object first.
    pub fn set(&mut self, name: &str, value: Value) {
        if !matches!(self, Value::Map(_)) {
            *self = Value::Map(BTreeMap::new());
        }
        if let Value::Map(fields) = self {
            fields.insert(name.to_string(), value);
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The number as an integer, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(*n as i64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> &[Value] {
        match self {
            Value::List(items) => items,
            _ => &[],
        }
    }

    /// The string elements of a list of strings, skipping nulls and unknowns.
    pub fn as_strings(&self) -> Vec<String> {
        self.as_list()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// The string attribute `name`, or `""` when null or unknown.
    pub fn str_or_empty(&self, name: &str) -> &str {
        self.get(name).as_str().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_set_on_objects() {
        let mut v = Value::Null;
        v.set("a", Value::string("x"));
        assert_eq!(v.get("a").as_str(), Some("x"));
        assert!(v.get("missing").is_null());
        assert!(Value::string("s").get("a").is_null());
    }

    #[test]
    fn known_ness_is_deep() {
        let v = Value::object([("a", Value::List(vec![Value::Unknown]))]);
        assert!(!v.is_wholly_known());
        assert!(Value::object([("a", Value::Null)]).is_wholly_known());
    }

    #[test]
    fn integers_and_fractions() {
        assert_eq!(Value::number(3.0).as_i64(), Some(3));
        assert_eq!(Value::number(3.5).as_i64(), None);
        assert_eq!(Value::number(3.5).as_f64(), Some(3.5));
    }
}
