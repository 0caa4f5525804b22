//! Declarative schemas: what a resource's attributes and blocks are, and the
//! plan rules that follow from them (defaults, computed values, replacement).

use std::collections::BTreeMap;

use super::diagnostics::AttributePath;
use super::types::Type;
use super::value::Value;

/// How an attribute gets its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The user must set it.
    Required,
    /// The user may set it; null when unset.
    Optional,
    /// The user may set it; the provider fills in a default or computes it.
    OptionalComputed,
    /// Only the provider sets it.
    Computed,
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: &'static str,
    pub ty: Type,
    pub description: &'static str,
    pub mode: Mode,
    pub sensitive: bool,
    /// Value planned when the user leaves an `OptionalComputed` attribute unset.
    pub default: Option<Value>,
    /// A change of this attribute replaces the resource.
    pub replace_on_change: bool,
    /// Sent by Terraform (1.11+) in the configuration only: never planned,
    /// never stored in state or plan files.
    pub write_only: bool,
}

impl Attribute {
    fn new(name: &'static str, ty: Type, mode: Mode, description: &'static str) -> Attribute {
        Attribute {
            name,
            ty,
            description,
            mode,
            sensitive: false,
            default: None,
            replace_on_change: false,
            write_only: false,
        }
    }

    pub fn required(name: &'static str, ty: Type, description: &'static str) -> Attribute {
        Attribute::new(name, ty, Mode::Required, description)
    }

    pub fn optional(name: &'static str, ty: Type, description: &'static str) -> Attribute {
        Attribute::new(name, ty, Mode::Optional, description)
    }

    pub fn computed(name: &'static str, ty: Type, description: &'static str) -> Attribute {
        Attribute::new(name, ty, Mode::Computed, description)
    }

    /// An optional attribute that, left unset, keeps the value the provider
    /// recorded (unknown until the first apply).
    pub fn optional_computed(name: &'static str, ty: Type, description: &'static str) -> Attribute {
        Attribute::new(name, ty, Mode::OptionalComputed, description)
    }

    /// An optional attribute whose unset value is `default`.
    pub fn with_default(
        name: &'static str,
        ty: Type,
        default: Value,
        description: &'static str,
    ) -> Attribute {
        Attribute {
            default: Some(default),
            ..Attribute::new(name, ty, Mode::OptionalComputed, description)
        }
    }

    pub fn sensitive(mut self) -> Attribute {
        self.sensitive = true;
        self
    }

    pub fn replace_on_change(mut self) -> Attribute {
        self.replace_on_change = true;
        self
    }

    /// A write-only attribute (optional or required, never computed).
    pub fn write_only(mut self) -> Attribute {
        self.write_only = true;
        self
    }

    fn is_computed(&self) -> bool {
        matches!(self.mode, Mode::Computed | Mode::OptionalComputed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most one block; null when absent.
    Single,
    /// An ordered list of blocks.
    List,
}

#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub name: &'static str,
    pub nesting: Nesting,
    pub block: Block,
    pub min_items: i64,
    pub max_items: i64,
    /// A change inside this block replaces the resource.
    pub replace_on_change: bool,
}

impl NestedBlock {
    pub fn single(name: &'static str, block: Block) -> NestedBlock {
        NestedBlock {
            name,
            nesting: Nesting::Single,
            block,
            min_items: 0,
            max_items: 0,
            replace_on_change: false,
        }
    }

    pub fn list(name: &'static str, block: Block) -> NestedBlock {
        NestedBlock {
            name,
            nesting: Nesting::List,
            block,
            min_items: 0,
            max_items: 0,
            replace_on_change: false,
        }
    }

    pub fn min_items(mut self, n: i64) -> NestedBlock {
        self.min_items = n;
        self
    }

    pub fn replace_on_change(mut self) -> NestedBlock {
        self.replace_on_change = true;
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct Block {
    pub description: &'static str,
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
}

impl Block {
    pub fn new(description: &'static str) -> Block {
        Block {
            description,
            ..Block::default()
        }
    }

    pub fn attribute(mut self, attribute: Attribute) -> Block {
        self.attributes.push(attribute);
        self
    }

    pub fn block(mut self, block: NestedBlock) -> Block {
        self.blocks.push(block);
        self
    }

    /// The object type of a value of this block.
    pub fn value_type(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.to_string(), a.ty.clone()))
            .collect();
        for nested in &self.blocks {
            let element = nested.block.value_type();
            let ty = match nested.nesting {
                Nesting::Single => element,
                Nesting::List => Type::list(element),
            };
            attrs.insert(nested.name.to_string(), ty);
        }
        Type::Object(attrs)
    }

    /// Fills in what the provider decides at plan time: defaults for unset
    /// attributes and unknown values for computed attributes that have no
    /// value yet. `planned` starts as Terraform's proposed new state.
    pub fn plan_values(&self, config: &Value, planned: &mut Value) {
        if planned.is_null() || planned.is_unknown() {
            return;
        }
        for attr in self.attributes.iter().filter(|a| a.is_computed()) {
            if !config.get(attr.name).is_null() {
                continue;
            }
            if let Some(default) = &attr.default {
                planned.set(attr.name, default.clone());
            } else if planned.get(attr.name).is_null() {
                planned.set(attr.name, Value::Unknown);
            }
        }
        for nested in &self.blocks {
            let config_child = config.get(nested.name).clone();
            let mut child = planned.get(nested.name).clone();
            match nested.nesting {
                Nesting::Single => nested.block.plan_values(&config_child, &mut child),
                Nesting::List => {
                    if let Value::List(items) = &mut child {
                        for (i, item) in items.iter_mut().enumerate() {
                            let config_item =
                                config_child.as_list().get(i).cloned().unwrap_or_default();
                            nested.block.plan_values(&config_item, item);
                        }
                    }
                }
            }
            planned.set(nested.name, child);
        }
    }

    /// Paths of replace-on-change attributes whose planned value differs
    /// from the prior one.
    pub fn replacement_paths(
        &self,
        prior: &Value,
        planned: &Value,
        at: &AttributePath,
        out: &mut Vec<AttributePath>,
    ) {
        for attr in self.attributes.iter().filter(|a| a.replace_on_change) {
            if prior.get(attr.name) != planned.get(attr.name) {
                out.push(at.attribute(attr.name));
            }
        }
        for nested in &self.blocks {
            if nested.replace_on_change && prior.get(nested.name) != planned.get(nested.name) {
                out.push(at.attribute(nested.name));
            }
        }
    }

    /// Sets every computed attribute the user did not set to unknown: what
    /// a replacement plans for values the new object will compute.
    pub fn unknown_computed(&self, config: &Value, planned: &mut Value) {
        for attr in self.attributes.iter().filter(|a| a.mode == Mode::Computed) {
            if config.get(attr.name).is_null() {
                planned.set(attr.name, Value::Unknown);
            }
        }
    }

    /// The write-only attributes, each as the names leading to it: at the
    /// top level or inside single nested blocks (`backup.s3.secret_wo`).
    pub fn write_only_paths(&self) -> Vec<Vec<&'static str>> {
        let mut paths: Vec<Vec<&'static str>> = self
            .attributes
            .iter()
            .filter(|a| a.write_only)
            .map(|a| vec![a.name])
            .collect();
        for nested in self.blocks.iter().filter(|b| b.nesting == Nesting::Single) {
            for mut inner in nested.block.write_only_paths() {
                inner.insert(0, nested.name);
                paths.push(inner);
            }
        }
        paths
    }

    /// Sets every write-only attribute of `value` to null: what Terraform
    /// must get back from a plan or an apply.
    pub fn without_write_only(&self, value: &mut Value) {
        for path in self.write_only_paths() {
            set_at(value, &path, Value::Null);
        }
    }

    /// `planned` with the write-only values of `config` put back, for the
    /// resource to use while it applies.
    pub fn with_write_only(&self, config: &Value, planned: &Value) -> Value {
        let mut value = planned.clone();
        for path in self.write_only_paths() {
            let given = path.iter().fold(config, |v, name| v.get(name)).clone();
            set_at(&mut value, &path, given);
        }
        value
    }
}

/// Sets the attribute at `path` (names through single nested blocks) of
/// `value` where every object on the way is present; else nothing.
fn set_at(value: &mut Value, path: &[&str], to: Value) {
    if value.is_null() || value.is_unknown() {
        return;
    }
    match path {
        [] => {}
        [name] => value.set(name, to),
        [name, rest @ ..] => {
            let mut inner = value.get(name).clone();
            if !inner.is_null() && !inner.is_unknown() {
                set_at(&mut inner, rest, to);
                value.set(name, inner);
            }
        }
    }
}

/// A resource's schema: its block and the version of its stored state.
#[derive(Debug, Clone)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Block {
        Block::new("test")
            .attribute(Attribute::required("name", Type::String, "n").replace_on_change())
            .attribute(Attribute::with_default(
                "port",
                Type::Number,
                Value::number(2379.0),
                "p",
            ))
            .attribute(Attribute::computed("id", Type::String, "i"))
            .block(NestedBlock::list(
                "member",
                Block::new("m")
                    .attribute(Attribute::required("host", Type::String, "h"))
                    .attribute(Attribute::with_default(
                        "peer_port",
                        Type::Number,
                        Value::number(2380.0),
                        "pp",
                    )),
            ))
    }

    #[test]
    fn create_plan_fills_defaults_and_unknowns_recursively() {
        let config = Value::object([
            ("name", Value::string("a")),
            (
                "member",
                Value::List(vec![Value::object([("host", Value::string("h1"))])]),
            ),
        ]);
        let mut planned = config.clone();
        block().plan_values(&config, &mut planned);
        assert_eq!(planned.get("port"), &Value::number(2379.0));
        assert!(planned.get("id").is_unknown());
        assert_eq!(
            planned.get("member").as_list()[0].get("peer_port"),
            &Value::number(2380.0)
        );
    }

    #[test]
    fn update_plan_keeps_prior_computed_values() {
        let config = Value::object([("name", Value::string("a"))]);
        let mut planned = Value::object([("name", Value::string("a")), ("id", Value::string("x"))]);
        block().plan_values(&config, &mut planned);
        assert_eq!(planned.get("id").as_str(), Some("x"));
    }

    #[test]
    fn replacement_only_for_changed_replace_attributes() {
        let prior = Value::object([("name", Value::string("a")), ("port", Value::number(1.0))]);
        let planned = Value::object([("name", Value::string("b")), ("port", Value::number(2.0))]);
        let mut out = Vec::new();
        block().replacement_paths(&prior, &planned, &AttributePath::default(), &mut out);
        assert_eq!(out, vec![AttributePath::root("name")]);
    }

    #[test]
    fn write_only_values_reach_apply_and_leave_no_trace() {
        let block = Block::new("t")
            .attribute(Attribute::required("name", Type::String, "n"))
            .attribute(Attribute::optional("secret_wo", Type::String, "s").write_only());
        let config = Value::object([
            ("name", Value::string("a")),
            ("secret_wo", Value::string("k")),
        ]);
        let mut planned = config.clone();
        block.without_write_only(&mut planned);
        assert!(planned.get("secret_wo").is_null());
        assert_eq!(planned.get("name").as_str(), Some("a"));
        let applying = block.with_write_only(&config, &planned);
        assert_eq!(applying.get("secret_wo").as_str(), Some("k"));
    }

    #[test]
    fn write_only_values_in_single_nested_blocks_too() {
        let inner = Block::new("i")
            .attribute(Attribute::optional("key_wo", Type::String, "k").write_only())
            .attribute(Attribute::optional("id", Type::String, "i"));
        let block = Block::new("t")
            .attribute(Attribute::required("name", Type::String, "n"))
            .block(NestedBlock::single(
                "outer",
                Block::new("o").block(NestedBlock::single("inner", inner)),
            ));
        assert_eq!(
            block.write_only_paths(),
            vec![vec!["outer", "inner", "key_wo"]]
        );
        let config = Value::object([
            ("name", Value::string("a")),
            (
                "outer",
                Value::object([(
                    "inner",
                    Value::object([("key_wo", Value::string("k")), ("id", Value::string("x"))]),
                )]),
            ),
        ]);
        let mut planned = config.clone();
        block.without_write_only(&mut planned);
        assert!(planned.get("outer").get("inner").get("key_wo").is_null());
        assert_eq!(
            planned.get("outer").get("inner").get("id").as_str(),
            Some("x")
        );
        let applying = block.with_write_only(&config, &planned);
        assert_eq!(
            applying.get("outer").get("inner").get("key_wo").as_str(),
            Some("k")
        );
        // No block: nothing to set.
        let mut absent = Value::object([("name", Value::string("a")), ("outer", Value::Null)]);
        block.without_write_only(&mut absent);
        assert!(absent.get("outer").is_null());
    }

    #[test]
    fn value_type_includes_blocks() {
        let Type::Object(attrs) = block().value_type() else {
            panic!("not an object")
        };
        assert!(matches!(attrs.get("member"), Some(Type::List(_))));
        assert_eq!(attrs.len(), 4);
    }
}
