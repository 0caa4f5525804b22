//! Translation between the wire messages and the framework's types.

use crate::framework::codec;
use crate::framework::diagnostics::{Diagnostic, PathStep, Severity};
use crate::framework::schema::{Mode, Nesting};
use crate::framework::{AttributePath, Block, Diagnostics, Schema, Type, Value};

use super::proto::tfplugin6 as pb;

pub fn diagnostics(diags: Diagnostics) -> Vec<pb::Diagnostic> {
    diags.0.into_iter().map(diagnostic).collect()
}

fn diagnostic(d: Diagnostic) -> pb::Diagnostic {
    let severity = match d.severity {
        Severity::Error => pb::diagnostic::Severity::Error,
        Severity::Warning => pb::diagnostic::Severity::Warning,
    };
    pb::Diagnostic {
        severity: severity as i32,
        summary: d.summary,
        detail: d.detail,
        attribute: d.path.map(|p| attribute_path(&p)),
    }
}

pub fn attribute_path(path: &AttributePath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    let steps = path
        .0
        .iter()
        .map(|step| pb::attribute_path::Step {
            selector: Some(match step {
                PathStep::Attribute(name) => Selector::AttributeName(name.clone()),
                PathStep::Index(i) => Selector::ElementKeyInt(*i),
                PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
            }),
        })
        .collect();
    pb::AttributePath { steps }
}

pub fn schema(schema: &Schema) -> pb::Schema {
    pb::Schema {
        version: schema.version,
        block: Some(block(&schema.block)),
    }
}

fn block(b: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        description: b.description.to_string(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: false,
        attributes: b
            .attributes
            .iter()
            .map(|a| pb::schema::Attribute {
                name: a.name.to_string(),
                r#type: a.ty.to_json().to_string().into_bytes(),
                description: a.description.to_string(),
                required: a.mode == Mode::Required,
                optional: matches!(a.mode, Mode::Optional | Mode::OptionalComputed),
                computed: matches!(a.mode, Mode::Computed | Mode::OptionalComputed),
                sensitive: a.sensitive,
                write_only: a.write_only,
                description_kind: pb::StringKind::Markdown as i32,
                deprecated: false,
            })
            .collect(),
        block_types: b
            .blocks
            .iter()
            .map(|n| pb::schema::NestedBlock {
                type_name: n.name.to_string(),
                block: Some(block(&n.block)),
                nesting: match n.nesting {
                    Nesting::Single => pb::schema::nested_block::NestingMode::Single,
                    Nesting::List => pb::schema::nested_block::NestingMode::List,
                } as i32,
                min_items: n.min_items,
                max_items: n.max_items,
            })
            .collect(),
    }
}

/// Decodes a `DynamicValue` (msgpack preferred, JSON accepted); a missing
/// value is null. Errors become a diagnostic naming `what`.
pub fn decode(
    value: Option<&pb::DynamicValue>,
    ty: &Type,
    what: &str,
) -> Result<Value, Diagnostics> {
    let Some(value) = value else {
        return Ok(Value::Null);
    };
    let decoded = if !value.msgpack.is_empty() {
        codec::decode_msgpack(&value.msgpack, ty)
    } else if !value.json.is_empty() {
        codec::decode_json(&value.json, ty)
    } else {
        Ok(Value::Null)
    };
    decoded.map_err(|e| {
        let mut diags = Diagnostics::default();
        diags.error(format!("Could not decode the {what}"), e.to_string());
        diags
    })
}

pub fn encode(value: &Value, ty: &Type) -> pb::DynamicValue {
    pb::DynamicValue {
        msgpack: codec::encode_msgpack(value, ty),
        json: Vec::new(),
    }
}
