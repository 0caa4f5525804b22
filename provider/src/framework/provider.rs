//! The provider as Terraform sees it, in domain terms: the set of resource
//! types and the generic half of every operation (schema rules, dispatch of
//! create, update and delete, checks on what resources return).

use std::collections::BTreeMap;

use super::codec;
use super::context::Context;
use super::diagnostics::{AttributePath, Diagnostics};
use super::resource::{Plan, Private, Resource};
use super::schema::{Block, Schema};
use super::types::Type;
use super::value::Value;

pub struct Provider {
    resources: BTreeMap<&'static str, Box<dyn Resource>>,
    config: ProviderBlock,
    pub context: Context,
}

/// The provider block: its schema and the check of a configuration (which
/// may hold unknown values when Terraform validates it).
pub struct ProviderBlock {
    pub block: Block,
    pub check: fn(&Value, &mut Diagnostics),
}

/// The outcome of planning one resource change.
pub struct Planned {
    pub state: Value,
    pub requires_replace: Vec<AttributePath>,
}

impl Provider {
    pub fn new(resources: Vec<Box<dyn Resource>>, config: ProviderBlock) -> Provider {
        Provider {
            resources: resources.into_iter().map(|r| (r.name(), r)).collect(),
            config,
            context: Context::default(),
        }
    }

    pub fn provider_schema(&self) -> Schema {
        Schema {
            version: 0,
            block: self.config.block.clone(),
        }
    }

    /// Checks the provider block (ValidateProviderConfig).
    pub fn validate_config(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::default();
        (self.config.check)(config, &mut diags);
        diags
    }

    /// Checks the provider block and keeps it for every later operation
    /// (ConfigureProvider).
    pub fn configure(&self, config: Value) -> Diagnostics {
        let diags = self.validate_config(&config);
        self.context.set_provider_config(config);
        diags
    }

    pub fn schemas(&self) -> BTreeMap<&'static str, Schema> {
        self.resources
            .iter()
            .map(|(name, r)| (*name, r.schema()))
            .collect()
    }

    /// The resource type `name` with its value type, or a diagnostic.
    pub fn resource(&self, name: &str) -> Result<(&dyn Resource, Type), Diagnostics> {
        match self.resources.get(name) {
            Some(r) => Ok((r.as_ref(), r.schema().block.value_type())),
            None => {
                let mut diags = Diagnostics::default();
                diags.error(
                    "Unknown resource type",
                    format!("this provider has no resource type {name:?}"),
                );
                Err(diags)
            }
        }
    }

    /// Checks a resource's configuration. `write_only_allowed`: whether
    /// the client keeps write-only values out of state (Terraform 1.11+);
    /// an older one would store them, so setting one is refused.
    pub fn validate(
        &self,
        resource: &dyn Resource,
        config: &Value,
        write_only_allowed: bool,
    ) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if !write_only_allowed {
            for path in resource.schema().block.write_only_paths() {
                let name = path[path.len() - 1];
                let at = path[1..]
                    .iter()
                    .fold(AttributePath::root(path[0]), |at, n| at.attribute(n));
                if !path.iter().fold(config, |v, n| v.get(n)).is_null() {
                    diags.error_at(
                        at,
                        "Write-only attribute needs Terraform or OpenTofu 1.11 or later",
                        format!(
                            "{name} is write-only: Terraform 1.11 and later, and OpenTofu 1.11 and later, pass \
                             it to the provider without storing it, but this client would keep it in state and \
                             plan files. Upgrade it, or leave {name} unset."
                        ),
                    );
                }
            }
        }
        resource.validate(config, &mut diags);
        diags
    }

    pub async fn plan(
        &self,
        resource: &dyn Resource,
        prior: &Value,
        proposed: &Value,
        config: &Value,
    ) -> (Planned, Diagnostics) {
        let mut diags = Diagnostics::default();
        if proposed.is_null() {
            // A destroy plan: nothing to decide.
            return (
                Planned {
                    state: Value::Null,
                    requires_replace: vec![],
                },
                diags,
            );
        }
        let block = resource.schema().block;
        let mut planned = proposed.clone();
        block.plan_values(config, &mut planned);
        // Write-only values are never planned, nor compared with the state
        // (which never has them): the resource reads them from `config`.
        block.without_write_only(&mut planned);
        let mut requires_replace = Vec::new();
        if !prior.is_null() {
            block.replacement_paths(
                prior,
                &planned,
                &AttributePath::default(),
                &mut requires_replace,
            );
        }
        let mut plan = Plan {
            config,
            prior,
            planned,
            requires_replace,
            diags: Diagnostics::default(),
        };
        resource.validate(config, &mut plan.diags);
        if !plan.diags.has_errors() {
            resource.modify_plan(&self.context, &mut plan).await;
        }
        if !plan.requires_replace.is_empty() {
            block.unknown_computed(config, &mut plan.planned);
        }
        diags.extend(plan.diags);
        (
            Planned {
                state: plan.planned,
                requires_replace: plan.requires_replace,
            },
            diags,
        )
    }

    /// Carries out a planned change. The resource sees `planned` with the
    /// write-only values of `config`; none of them reach the new state.
    pub async fn apply(
        &self,
        resource: &dyn Resource,
        prior: &Value,
        planned: &Value,
        config: &Value,
        private: &mut Private,
    ) -> (Value, Diagnostics) {
        let mut diags = Diagnostics::default();
        let ctx = &self.context;
        let block = resource.schema().block;
        let planned = &block.with_write_only(config, planned);
        let mut state = match (prior.is_null(), planned.is_null()) {
            (_, true) => {
                resource.delete(ctx, prior, private, &mut diags).await;
                if diags.has_errors() {
                    prior.clone()
                } else {
                    Value::Null
                }
            }
            (true, false) => resource.create(ctx, planned, private, &mut diags).await,
            (false, false) => {
                resource
                    .update(ctx, prior, planned, private, &mut diags)
                    .await
            }
        };
        block.without_write_only(&mut state);
        if !state.is_wholly_known() {
            diags.error(
                "Provider returned an incomplete state",
                format!(
                    "{} left unknown values after apply; this is a bug in the provider",
                    resource.name()
                ),
            );
        }
        (state, diags)
    }

    pub async fn read(
        &self,
        resource: &dyn Resource,
        state: &Value,
        private: &mut Private,
    ) -> (Value, Diagnostics) {
        let mut diags = Diagnostics::default();
        let new_state = resource
            .read(&self.context, state, private, &mut diags)
            .await;
        (new_state, diags)
    }

    pub async fn import(
        &self,
        resource: &dyn Resource,
        id: &str,
        private: &mut Private,
    ) -> (Value, Diagnostics) {
        let mut diags = Diagnostics::default();
        let state = resource
            .import(&self.context, id, private, &mut diags)
            .await;
        (state, diags)
    }

    /// Decodes stored JSON state of schema `version` into the current schema.
    pub fn upgrade(
        &self,
        resource: &dyn Resource,
        ty: &Type,
        version: i64,
        json: &[u8],
    ) -> (Value, Diagnostics) {
        let mut diags = Diagnostics::default();
        let current = resource.schema().version;
        let raw: serde_json::Value = match serde_json::from_slice(json) {
            Ok(raw) => raw,
            Err(e) => {
                diags.error("Stored state is not valid JSON", e.to_string());
                return (Value::Null, diags);
            }
        };
        let raw = if version == current {
            raw
        } else if version < current {
            resource.upgrade_state(version, raw, &mut diags)
        } else {
            diags.error(
                "State is newer than this provider",
                format!("state has schema version {version}; this provider knows up to {current}. Upgrade the provider."),
            );
            return (Value::Null, diags);
        };
        match codec::from_json(&raw, ty, &AttributePath::default()) {
            Ok(v) => (v, diags),
            Err(e) => {
                diags.error("Stored state does not match the schema", e.to_string());
                (Value::Null, diags)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::framework::{Attribute, Block};

    /// A resource at schema version 1 that renamed `hostname` to `host`.
    struct Renamed;

    #[async_trait]
    impl Resource for Renamed {
        fn name(&self) -> &'static str {
            "test_renamed"
        }
        fn schema(&self) -> Schema {
            Schema {
                version: 1,
                block: Block::new("t")
                    .attribute(Attribute::required("host", Type::String, "h"))
                    .attribute(Attribute::optional("token_wo", Type::String, "w").write_only()),
            }
        }
        fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
        async fn create(
            &self,
            _: &Context,
            planned: &Value,
            _: &mut Private,
            _: &mut Diagnostics,
        ) -> Value {
            // Shows in `host` whether the write-only token arrived.
            let mut state = planned.clone();
            if let Some(token) = planned.get("token_wo").as_str() {
                state.set("host", Value::string(format!("got {token}")));
            }
            state
        }
        async fn read(
            &self,
            _: &Context,
            state: &Value,
            _: &mut Private,
            _: &mut Diagnostics,
        ) -> Value {
            state.clone()
        }
        async fn update(
            &self,
            _: &Context,
            _: &Value,
            planned: &Value,
            _: &mut Private,
            _: &mut Diagnostics,
        ) -> Value {
            planned.clone()
        }
        async fn delete(&self, _: &Context, _: &Value, _: &Private, _: &mut Diagnostics) {}
        async fn import(
            &self,
            _: &Context,
            _: &str,
            _: &mut Private,
            _: &mut Diagnostics,
        ) -> Value {
            Value::Null
        }
        fn upgrade_state(
            &self,
            version: i64,
            mut state: serde_json::Value,
            diags: &mut Diagnostics,
        ) -> serde_json::Value {
            if version != 0 {
                diags.error("no upgrade", "");
            }
            let host = state["hostname"].take();
            serde_json::json!({ "host": host })
        }
    }

    fn test_provider() -> Provider {
        Provider::new(
            vec![Box::new(Renamed)],
            ProviderBlock {
                block: Block::new("test"),
                check: |_, _| {},
            },
        )
    }

    #[test]
    fn stored_state_is_upgraded_across_schema_versions() {
        let provider = test_provider();
        let (resource, ty) = provider.resource("test_renamed").unwrap();
        let (state, diags) = provider.upgrade(resource, &ty, 0, br#"{"hostname":"h1"}"#);
        assert!(!diags.has_errors());
        assert_eq!(state.get("host").as_str(), Some("h1"));
        let (state, diags) = provider.upgrade(resource, &ty, 1, br#"{"host":"h2"}"#);
        assert!(!diags.has_errors());
        assert_eq!(state.get("host").as_str(), Some("h2"));
        let (_, diags) = provider.upgrade(resource, &ty, 2, br#"{"host":"h3"}"#);
        assert!(
            diags.has_errors(),
            "state from a newer provider must be refused"
        );
        let (_, diags) = provider.upgrade(resource, &ty, 1, b"{not json");
        assert!(diags.has_errors());
    }

    #[tokio::test]
    async fn write_only_values_are_refused_by_old_clients_and_never_returned() {
        let provider = test_provider();
        let (resource, _) = provider.resource("test_renamed").unwrap();
        let config = Value::object([
            ("host", Value::string("h")),
            ("token_wo", Value::string("secret")),
        ]);
        let refused = provider.validate(resource, &config, false);
        assert_eq!(
            refused.0.first().and_then(|d| d.path.as_ref()),
            Some(&AttributePath::root("token_wo"))
        );
        assert!(!provider.validate(resource, &config, true).has_errors());
        let (planned, diags) = provider
            .plan(resource, &Value::Null, &config, &config)
            .await;
        assert!(!diags.has_errors());
        assert!(planned.state.get("token_wo").is_null());
        let mut private = Private::default();
        let (state, diags) = provider
            .apply(
                resource,
                &Value::Null,
                &planned.state,
                &config,
                &mut private,
            )
            .await;
        assert!(!diags.has_errors());
        assert_eq!(state.get("host").as_str(), Some("got secret"));
        assert!(state.get("token_wo").is_null());
    }

    #[test]
    fn unknown_resource_types_are_a_diagnostic() {
        let provider = test_provider();
        assert!(provider.resource("nope").is_err());
    }
}
