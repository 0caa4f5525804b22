//! Encoding and decoding of values in the two wire forms Terraform uses:
//! msgpack (plans, state, config) and JSON (stored state to upgrade).
//!
//! Decoding never panics: malformed input becomes a [`DecodeError`] naming
//! the path where it went wrong (the decoder is fuzzed, see `fuzz/`).

use std::collections::BTreeMap;
use std::fmt;

use super::diagnostics::{AttributePath, PathStep};
use super::types::Type;
use super::value::Value;

/// How deep msgpack input may nest before it is refused.
const MAX_DEPTH: usize = 64;
/// msgpack extension codes cty uses for unknown values.
const EXT_UNKNOWN: i8 = 0;
const EXT_REFINED_UNKNOWN: i8 = 0x0c;

#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub path: AttributePath,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.0.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for DecodeError {}

fn fail<T>(path: &AttributePath, message: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError {
        path: path.clone(),
        message: message.into(),
    })
}

/// Decodes a msgpack value of type `ty`. Empty input is a null value.
pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let root = AttributePath::default();
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let mut reader = bytes;
    let raw = rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH)
        .or_else(|e| fail(&root, format!("malformed msgpack: {e}")))?;
    from_msgpack(raw, ty, &root)
}

fn from_msgpack(raw: rmpv::Value, ty: &Type, path: &AttributePath) -> Result<Value, DecodeError> {
    use rmpv::Value as M;
    match raw {
        M::Nil => return Ok(Value::Null),
        M::Ext(code, body) => {
            return match (code, body.len()) {
                (_, 0 | 1) | (EXT_REFINED_UNKNOWN, _) => Ok(Value::Unknown),
                _ => fail(
                    path,
                    format!(
                        "unsupported msgpack extension {code} of length {}",
                        body.len()
                    ),
                ),
            }
        }
        _ => {}
    }
    match (ty, raw) {
        (Type::Bool, M::Boolean(b)) => Ok(Value::Bool(b)),
        (Type::String, M::String(s)) => match s.into_str() {
            Some(s) => Ok(Value::String(s)),
            None => fail(path, "string is not valid UTF-8"),
        },
        (Type::Number, M::Integer(i)) => Ok(Value::Number(i.as_f64().unwrap_or_default())),
        (Type::Number, M::F32(f)) => Ok(Value::Number(f as f64)),
        (Type::Number, M::F64(f)) => Ok(Value::Number(f)),
        (Type::Number, M::String(s)) => match s.as_str().and_then(|s| s.parse::<f64>().ok()) {
            Some(n) => Ok(Value::Number(n)),
            None => fail(path, "number is not a valid decimal"),
        },
        (Type::List(e) | Type::Set(e), M::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| from_msgpack(item, e, &path.index(i)))
            .collect::<Result<_, _>>()
            .map(Value::List),
        (Type::Tuple(types), M::Array(items)) => {
            if types.len() != items.len() {
                return fail(
                    path,
                    format!("tuple needs {} elements, got {}", types.len(), items.len()),
                );
            }
            items
                .into_iter()
                .zip(types)
                .enumerate()
                .map(|(i, (item, t))| from_msgpack(item, t, &path.index(i)))
                .collect::<Result<_, _>>()
                .map(Value::List)
        }
        (Type::Map(e), M::Map(entries)) => {
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let Some(key) = k.as_str().map(str::to_string) else {
                    return fail(path, "map key is not a string");
                };
                let child = AttributePath(
                    path.0
                        .iter()
                        .cloned()
                        .chain([PathStep::Key(key.clone())])
                        .collect(),
                );
                out.insert(key, from_msgpack(v, e, &child)?);
            }
            Ok(Value::Map(out))
        }
        (Type::Object(attrs), M::Map(entries)) => {
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let Some(key) = k.as_str().map(str::to_string) else {
                    return fail(path, "object attribute name is not a string");
                };
                let Some(attr_ty) = attrs.get(&key) else {
                    return fail(path, format!("unsupported attribute {key:?}"));
                };
                out.insert(
                    key.clone(),
                    from_msgpack(v, attr_ty, &path.attribute(&key))?,
                );
            }
            for name in attrs.keys() {
                out.entry(name.clone()).or_insert(Value::Null);
            }
            Ok(Value::Map(out))
        }
        (ty, raw) => fail(
            path,
            format!("expected {}, got msgpack {}", type_name(ty), raw_kind(&raw)),
        ),
    }
}

fn type_name(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::Number => "number",
        Type::String => "string",
        Type::List(_) => "list",
        Type::Set(_) => "set",
        Type::Map(_) => "map",
        Type::Object(_) => "object",
        Type::Tuple(_) => "tuple",
    }
}

fn raw_kind(raw: &rmpv::Value) -> &'static str {
    use rmpv::Value as M;
    match raw {
        M::Nil => "nil",
        M::Boolean(_) => "bool",
        M::Integer(_) | M::F32(_) | M::F64(_) => "number",
        M::String(_) => "string",
        M::Binary(_) => "binary",
        M::Array(_) => "array",
        M::Map(_) => "map",
        M::Ext(..) => "extension",
    }
}

/// Encodes `value` as msgpack of type `ty`, in the form Terraform reads.
pub fn encode_msgpack(value: &Value, ty: &Type) -> Vec<u8> {
    let mut out = Vec::new();
    write_msgpack(&mut out, value, ty);
    out
}

fn write_msgpack(out: &mut Vec<u8>, value: &Value, ty: &Type) {
    use rmp::encode;
    // Writes into a Vec cannot fail, so the results below are ignored.
    match (value, ty) {
        (Value::Null, _) => encode::write_nil(out).unwrap_or_default(),
        (Value::Unknown, _) => out.extend_from_slice(&[0xd4, EXT_UNKNOWN as u8, 0]),
        (Value::Bool(b), _) => encode::write_bool(out, *b).unwrap_or_default(),
        (Value::Number(n), _) => {
            if n.fract() == 0.0 && n.abs() < 9.2e18 {
                let _ = encode::write_sint(out, *n as i64);
            } else {
                let _ = encode::write_f64(out, *n);
            }
        }
        (Value::String(s), _) => {
            let _ = encode::write_str(out, s);
        }
        (Value::List(items), Type::List(e) | Type::Set(e)) => {
            let _ = encode::write_array_len(out, items.len() as u32);
            for item in items {
                write_msgpack(out, item, e);
            }
        }
        (Value::List(items), Type::Tuple(types)) => {
            let _ = encode::write_array_len(out, types.len() as u32);
            for (i, t) in types.iter().enumerate() {
                write_msgpack(out, items.get(i).unwrap_or(&Value::Null), t);
            }
        }
        (Value::Map(fields), Type::Map(e)) => {
            let _ = encode::write_map_len(out, fields.len() as u32);
            for (k, v) in fields {
                let _ = encode::write_str(out, k);
                write_msgpack(out, v, e);
            }
        }
        (Value::Map(fields), Type::Object(attrs)) => {
            let _ = encode::write_map_len(out, attrs.len() as u32);
            for (name, attr_ty) in attrs {
                let _ = encode::write_str(out, name);
                write_msgpack(out, fields.get(name).unwrap_or(&Value::Null), attr_ty);
            }
        }
        // A value that does not fit its type is a provider bug; null keeps
        // the encoding well-formed and Terraform reports the inconsistency.
        _ => encode::write_nil(out).unwrap_or_default(),
    }
}

/// Decodes a JSON value (stored state) of type `ty`.
pub fn decode_json(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let root = AttributePath::default();
    let raw: serde_json::Value =
        serde_json::from_slice(bytes).or_else(|e| fail(&root, format!("malformed JSON: {e}")))?;
    from_json(&raw, ty, &root)
}

/// Converts an already parsed JSON value of type `ty`.
pub fn from_json(
    raw: &serde_json::Value,
    ty: &Type,
    path: &AttributePath,
) -> Result<Value, DecodeError> {
    use serde_json::Value as J;
    match (ty, raw) {
        (_, J::Null) => Ok(Value::Null),
        (Type::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
        (Type::String, J::String(s)) => Ok(Value::String(s.clone())),
        (Type::Number, J::Number(n)) => Ok(Value::Number(n.as_f64().unwrap_or_default())),
        (Type::Number, J::String(s)) => match s.parse::<f64>() {
            Ok(n) => Ok(Value::Number(n)),
            Err(_) => fail(path, "number is not a valid decimal"),
        },
        (Type::List(e) | Type::Set(e), J::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| from_json(item, e, &path.index(i)))
            .collect::<Result<_, _>>()
            .map(Value::List),
        (Type::Tuple(types), J::Array(items)) if types.len() == items.len() => items
            .iter()
            .zip(types)
            .enumerate()
            .map(|(i, (item, t))| from_json(item, t, &path.index(i)))
            .collect::<Result<_, _>>()
            .map(Value::List),
        (Type::Map(e), J::Object(entries)) => entries
            .iter()
            .map(|(k, v)| Ok((k.clone(), from_json(v, e, path)?)))
            .collect::<Result<_, _>>()
            .map(Value::Map),
        (Type::Object(attrs), J::Object(entries)) => {
            let mut out = BTreeMap::new();
            for (name, attr_ty) in attrs {
                let v = entries.get(name).unwrap_or(&J::Null);
                out.insert(name.clone(), from_json(v, attr_ty, &path.attribute(name))?);
            }
            Ok(Value::Map(out))
        }
        (ty, _) => fail(path, format!("expected {}", type_name(ty))),
    }
}

/// Encodes a wholly known value as JSON (used for stored state upgrades).
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null | Value::Unknown => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => J::from(*n as i64),
        Value::Number(n) => serde_json::Number::from_f64(*n)
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::String(s) => J::String(s.clone()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object_type() -> Type {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), Type::String);
        attrs.insert("hours".to_string(), Type::Number);
        attrs.insert("ratio".to_string(), Type::Number);
        attrs.insert("on".to_string(), Type::Bool);
        attrs.insert("tags".to_string(), Type::map(Type::String));
        attrs.insert("hosts".to_string(), Type::set(Type::String));
        attrs.insert(
            "pair".to_string(),
            Type::Tuple(vec![Type::String, Type::Number]),
        );
        Type::Object(attrs)
    }

    #[test]
    fn msgpack_round_trip_keeps_every_kind_of_value() {
        let ty = object_type();
        let value = Value::object([
            ("name", Value::string("e1")),
            ("hours", Value::number(87600.0)),
            ("ratio", Value::number(0.25)),
            ("on", Value::Unknown),
            ("tags", Value::object([("k", Value::string("v"))])),
            ("hosts", Value::strings(["a", "b"])),
            (
                "pair",
                Value::List(vec![Value::string("x"), Value::number(-3.0)]),
            ),
        ]);
        let bytes = encode_msgpack(&value, &ty);
        assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), value);
    }

    #[test]
    fn unknown_is_encoded_as_cty_does() {
        assert_eq!(
            encode_msgpack(&Value::Unknown, &Type::String),
            vec![0xd4, 0, 0]
        );
    }

    #[test]
    fn refined_unknown_from_newer_terraform_decodes_as_unknown() {
        // ext 0x0c holding {1: false} ("definitely not null") and a prefix.
        let bytes = [0xc7, 0x06, 0x0c, 0x82, 0x01, 0xc2, 0x02, 0xa1, b'h'];
        assert_eq!(
            decode_msgpack(&bytes, &Type::String).unwrap(),
            Value::Unknown
        );
    }

    #[test]
    fn big_numbers_may_arrive_as_strings() {
        let mut bytes = Vec::new();
        rmp::encode::write_str(&mut bytes, "0.1").unwrap();
        assert_eq!(
            decode_msgpack(&bytes, &Type::Number).unwrap(),
            Value::number(0.1)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &[0x81][..],
            &[0x92, 0x01][..],
            &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
            &[0xa3, b'a'][..],
        ] {
            assert!(decode_msgpack(bytes, &object_type()).is_err(), "{bytes:?}");
        }
        let err = decode_msgpack(
            &encode_msgpack(&Value::object([("hours", Value::string("x"))]), &{
                let mut a = BTreeMap::new();
                a.insert("hours".to_string(), Type::String);
                Type::Object(a)
            }),
            &object_type(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("hours"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let ty = (0..200).fold(Type::String, |t, _| Type::list(t));
        let mut bytes = vec![0x91; 200];
        bytes.push(0xc0);
        assert!(decode_msgpack(&bytes, &ty).is_err());
    }

    #[test]
    fn json_state_decodes_with_missing_attributes_as_null() {
        let v = decode_json(br#"{"name":"e1","hours":2.5}"#, &object_type()).unwrap();
        assert_eq!(v.get("hours").as_f64(), Some(2.5));
        assert!(v.get("tags").is_null());
        assert_eq!(to_json(&v)["name"], "e1");
    }
}
