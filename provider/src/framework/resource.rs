//! The contract between the framework and one resource type.

use async_trait::async_trait;

use super::context::Context;
use super::diagnostics::{AttributePath, Diagnostics};
use super::schema::Schema;
use super::value::Value;

/// Provider-private data kept with a resource's state (Terraform's
/// "private state"): bookkeeping users never see, such as fingerprints of
/// files the provider wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Private(pub serde_json::Map<String, serde_json::Value>);

impl Private {
    /// Decodes stored private bytes; anything unreadable counts as empty.
    pub fn decode(bytes: &[u8]) -> Private {
        serde_json::from_slice(bytes)
            .map(Private)
            .unwrap_or_default()
    }

    /// The value stored under `key`, if there is one of type `T`.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    pub fn set<T: serde::Serialize>(&mut self, key: &str, value: &T) {
        self.0.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or_default(),
        );
    }

    pub fn encode(&self) -> Vec<u8> {
        if self.0.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.0).unwrap_or_default()
        }
    }
}

/// A plan being made: the resource may change `planned`, ask for
/// replacement and add diagnostics.
pub struct Plan<'a> {
    pub config: &'a Value,
    /// Null when the resource is being created.
    pub prior: &'a Value,
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
    pub diags: Diagnostics,
}

impl Plan<'_> {
    pub fn is_create(&self) -> bool {
        self.prior.is_null()
    }

    /// Plans a replacement because of the value at `path`, marking it
    /// unknown so that Terraform sees the change.
    pub fn replace_because_of(&mut self, path: AttributePath) {
        if let [super::diagnostics::PathStep::Attribute(name)] = path.0.as_slice() {
            self.planned.set(name, Value::Unknown);
        }
        self.requires_replace.push(path);
    }
}

/// One managed resource type. Values are whole objects of the schema's
/// block; the framework takes care of encodings, defaults and unknowns.
#[async_trait]
pub trait Resource: Send + Sync {
    /// The type name, such as `etcd_ca`.
    fn name(&self) -> &'static str;

    fn schema(&self) -> Schema;

    /// Checks a configuration that may still hold unknown values.
    fn validate(&self, config: &Value, diags: &mut Diagnostics);

    /// Refines a plan after the framework has applied the schema's rules.
    async fn modify_plan(&self, _ctx: &Context, _plan: &mut Plan<'_>) {}

    /// Creates the object; returns its state, or null when nothing exists.
    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value;

    /// Refreshes the state; null means the object is gone.
    async fn read(
        &self,
        ctx: &Context,
        state: &Value,
        private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value;

    /// Brings the object from `prior` to `planned` in place.
    async fn update(
        &self,
        ctx: &Context,
        prior: &Value,
        planned: &Value,
        private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value;

    async fn delete(
        &self,
        ctx: &Context,
        prior: &Value,
        private: &Private,
        diags: &mut Diagnostics,
    );

    /// Builds the state of an existing object from an import ID.
    async fn import(
        &self,
        ctx: &Context,
        id: &str,
        private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value;

    /// Rewrites stored state of an older schema version into the current one.
    fn upgrade_state(
        &self,
        version: i64,
        state: serde_json::Value,
        diags: &mut Diagnostics,
    ) -> serde_json::Value {
        diags.error(
            "Unsupported state version",
            format!(
                "{} has no upgrade from schema version {version}",
                self.name()
            ),
        );
        state
    }
}
