//! Terraform's value types (cty types) and their JSON encoding in schemas.

use std::collections::BTreeMap;

use serde_json::json;

/// A Terraform type. The provider's schemas use every one of these; the
/// "dynamic" pseudo-type is not used and is rejected when decoding.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Bool,
    Number,
    String,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(element: Type) -> Type {
        Type::List(Box::new(element))
    }

    pub fn set(element: Type) -> Type {
        Type::Set(Box::new(element))
    }

    pub fn map(element: Type) -> Type {
        Type::Map(Box::new(element))
    }

    /// The JSON form Terraform expects in `Schema.Attribute.type`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Type::Bool => json!("bool"),
            Type::Number => json!("number"),
            Type::String => json!("string"),
            Type::List(e) => json!(["list", e.to_json()]),
            Type::Set(e) => json!(["set", e.to_json()]),
            Type::Map(e) => json!(["map", e.to_json()]),
            Type::Object(attrs) => {
                let fields: serde_json::Map<String, serde_json::Value> = attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                json!(["object", fields])
            }
            Type::Tuple(elems) => {
                json!(["tuple", elems.iter().map(Type::to_json).collect::<Vec<_>>()])
            }
        }
    }

    /// Parses the JSON form of a type, as found in a dynamically typed value.
    pub fn from_json(value: &serde_json::Value) -> Result<Type, String> {
        match value {
            serde_json::Value::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                other => Err(format!("unsupported type {other:?}")),
            },
            serde_json::Value::Array(parts) if parts.len() == 2 => {
                let kind = parts[0].as_str().unwrap_or_default();
                match kind {
                    "list" => Ok(Type::list(Type::from_json(&parts[1])?)),
                    "set" => Ok(Type::set(Type::from_json(&parts[1])?)),
                    "map" => Ok(Type::map(Type::from_json(&parts[1])?)),
                    "object" => {
                        let fields = parts[1]
                            .as_object()
                            .ok_or("object type needs a map of attributes")?;
                        let mut attrs = BTreeMap::new();
                        for (k, t) in fields {
                            attrs.insert(k.clone(), Type::from_json(t)?);
                        }
                        Ok(Type::Object(attrs))
                    }
                    "tuple" => {
                        let elems = parts[1]
                            .as_array()
                            .ok_or("tuple type needs a list of types")?;
                        Ok(Type::Tuple(
                            elems
                                .iter()
                                .map(Type::from_json)
                                .collect::<Result<_, _>>()?,
                        ))
                    }
                    other => Err(format!("unsupported type kind {other:?}")),
                }
            }
            other => Err(format!("malformed type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_of_nested_types() {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), Type::String);
        attrs.insert("ports".to_string(), Type::list(Type::Number));
        attrs.insert("tags".to_string(), Type::map(Type::Bool));
        let ty = Type::set(Type::Object(attrs));
        let encoded = ty.to_json();
        assert_eq!(
            encoded.to_string(),
            r#"["set",["object",{"name":"string","ports":["list","number"],"tags":["map","bool"]}]]"#
        );
        assert_eq!(Type::from_json(&encoded).unwrap(), ty);
    }

    #[test]
    fn dynamic_is_rejected() {
        assert!(Type::from_json(&json!("dynamic")).is_err());
    }
}
