//! `etcd_member`: one member joining a running cluster that the
//! configuration does not own (made by kubeadm, by hand, or by another
//! workspace). Create adds it (as a learner, promoted once caught up);
//! read finds it in the live member list and on its host, so a member that
//! is gone or broken is drift; update repairs it and applies changed
//! settings; delete takes it out of the cluster and off its host. Every
//! step waits for every other member to be healthy.

use async_trait::async_trait;

use super::{ca_keys, settings};
use crate::cluster::foreign_member;
use crate::cluster::{ClusterSpec, Observed, HEALTHY};
use crate::framework::{
    Attribute, AttributePath, Block, Context, Diagnostics, NestedBlock, Plan, Private, Resource,
    Schema, Type, Value,
};
use crate::member::install::Fingerprints;

pub struct EtcdMember;

const FINGERPRINTS: &str = "fingerprints";

fn schema_block() -> Block {
    let block = Block::new(
        "One etcd member that joins a running cluster this configuration does not own: one made by kubeadm, by \
         hand or by another workspace. Create adds it as a learner, installs and starts it like an `etcd_cluster` \
         member, and promotes it once it has caught up; read checks it in the live member list and on its host, \
         so a member that is gone or broken is drift (`plan -detailed-exitcode` exits 2); delete removes it from \
         the cluster, then stops it and removes its files. Every step waits until every other member is healthy. \
         Never point an `etcd_member` at an `etcd_cluster` of the same or another configuration: that resource \
         owns its membership and removes members it does not list; add members there instead.",
    )
    .attribute(Attribute::computed("id", Type::String, "The member ID (hex)."));
    let block = settings::member_attributes(block, true)
        .attribute(Attribute::required(
            "cluster_endpoints",
            Type::list(Type::String),
            "Client URLs (`https://HOST:PORT`) of members of the running cluster: for the member list, the health \
             of every member, and the membership changes. Every member's advertised client URL must be reachable \
             from the machine running Terraform too: an unreachable member counts as unhealthy.",
        ))
        .attribute(Attribute::required(
            "ca_cert_pem",
            Type::String,
            "The cluster's CA certificate (PEM), e.g. kubeadm's `/etc/kubernetes/pki/etcd/ca.crt`. The member's \
             certificates are issued from it, and so is the client certificate the provider uses. A new CA \
             rewrites the member's certificates and restarts it: change it only once the cluster trusts the new CA.",
        ))
        .attribute(
            Attribute::optional(
                "ca_key_pem",
                Type::String,
                "The CA's private key (PEM). It stays on the machine running Terraform; the member never gets it. \
                 Leave it unset to keep it out of state: the provider block's `ca_key_files` or `ca_keys` give it.",
            )
            .sensitive(),
        );
    settings::settings_attributes(block, true)
        .attribute(Attribute::computed("member_id", Type::String, "The member ID (hex), from the live member list."))
        .attribute(Attribute::computed("cluster_id", Type::String, "The ID (hex) of the cluster the member is in."))
        .attribute(Attribute::computed("version", Type::String, "The etcd version the running member reports."))
        .attribute(Attribute::computed("client_url", Type::String, "The member's client URL."))
        .attribute(Attribute::computed("peer_url", Type::String, "The member's peer URL."))
        .attribute(Attribute::computed(
            "status",
            Type::String,
            "`healthy`, or what is wrong with the member. Anything but `healthy` is planned to be repaired.",
        ))
        .block(NestedBlock::single("binary_source", settings::binary_source_block()))
        .block(NestedBlock::single("ssh", settings::ssh_block(false)))
        .block(NestedBlock::single(
            "timeouts",
            settings::timeouts_block(
                "Joining, until the member is a healthy voting member. Default 5m.",
                "Each step of a change or repair. Default 5m.",
            ),
        ))
}

/// The domain view: a cluster spec holding this member, with the cluster's
/// own endpoints as foreign ones. The token names the member: etcd uses
/// the initial cluster token only when it bootstraps a new cluster.
fn spec(ctx: &Context, value: &Value) -> ClusterSpec {
    ClusterSpec {
        settings: crate::member::ClusterSettings {
            // The cluster's other members' peer certificates are not ours.
            peer_names_only: false,
            ..settings::settings(value, value.str_or_empty("name"))
        },
        members: vec![settings::member_spec(
            value,
            value.get("ssh"),
            settings::timeout(value, "command"),
            ctx,
        )],
        ca_cert_pem: value.str_or_empty("ca_cert_pem").to_string(),
        ca_key_pem: ca_keys::ca_key(ctx, value),
        trusted_ca_pem: value.str_or_empty("ca_cert_pem").to_string(),
        tunnel: false,
        foreign_endpoints: value.get("cluster_endpoints").as_strings(),
        initial_snapshot: None,
        s3_secret: None,
    }
}

/// Writes what was observed into the computed attributes of `state`.
fn record(state: &mut Value, spec: &ClusterSpec, observed: &Observed) {
    let member = &spec.members[0];
    if let Some(id) = observed.member_ids.get(&member.name) {
        state.set("id", Value::string(id));
        state.set("member_id", Value::string(id));
    }
    if let Some(id) = observed.cluster_id {
        state.set("cluster_id", Value::string(crate::etcd::format_id(id)));
    }
    let version = observed.versions.get(&member.name).cloned();
    state.set("version", Value::string(version.unwrap_or_default()));
    state.set(
        "client_url",
        Value::string(member.client_url(&spec.settings)),
    );
    state.set("peer_url", Value::string(member.peer_url(&spec.settings)));
    let status = observed.health.get(&member.name).map(ToString::to_string);
    state.set(
        "status",
        Value::string(status.unwrap_or_else(|| "unknown".into())),
    );
}

#[async_trait]
impl Resource for EtcdMember {
    fn name(&self) -> &'static str {
        "etcd_member"
    }

    fn schema(&self) -> Schema {
        Schema {
            version: 0,
            block: schema_block(),
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        settings::validate_member(config, &AttributePath::root, diags);
        settings::validate_endpoints(config, diags);
        settings::validate_binary_source(config, diags);
        settings::validate_settings(config, diags);
    }

    async fn modify_plan(&self, ctx: &Context, plan: &mut Plan<'_>) {
        settings::plan_version_warnings(plan);
        ca_keys::require_key(ctx, plan);
        let planned = spec(ctx, &plan.planned);
        let member = &planned.members[0];
        if plan.planned.get("host").is_wholly_known() {
            for (name, url) in [
                ("client_url", member.client_url(&planned.settings)),
                ("peer_url", member.peer_url(&planned.settings)),
            ] {
                if plan.planned.get(name).is_unknown() {
                    plan.planned.set(name, Value::string(url));
                }
            }
        }
        if plan.is_create() {
            return;
        }
        let rewritten = settings::plan_rolled_change(plan);
        let drifted = rewritten || plan.prior.get("status").as_str() != Some(HEALTHY);
        plan.planned.set("status", Value::string(HEALTHY));
        if drifted {
            // A member removed out of band comes back with a new ID.
            for name in ["version", "member_id", "id"] {
                plan.planned.set(name, Value::Unknown);
            }
        }
    }

    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let spec = spec(ctx, planned);
        let mut warnings = Vec::new();
        let timeout = settings::timeout(planned, "create");
        let joined = foreign_member::join(ctx, &spec, timeout, &mut warnings).await;
        settings::warn_all(diags, &warnings);
        let prints = match joined {
            Ok(prints) => prints,
            Err(e) => {
                diags.error(
                    "Could not add the member",
                    format!(
                        "{e}\n\nNothing was saved to state. If the member was already added to the cluster, the \
                         next apply finishes joining it; to give up instead, remove it from the cluster with \
                         `etcdctl member remove`."
                    ),
                );
                return Value::Null;
            }
        };
        private.set(FINGERPRINTS, &prints);
        let observed = foreign_member::observe(ctx, &spec, &prints).await;
        settings::warn_unreachable(diags, &observed);
        let mut state = planned.clone();
        record(&mut state, &spec, &observed);
        settings::warn_if_unhealthy(diags, "Member not healthy right after joining", &observed);
        state
    }

    async fn read(
        &self,
        ctx: &Context,
        state: &Value,
        private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let spec = spec(ctx, state);
        let prints: Fingerprints = private.get(FINGERPRINTS).unwrap_or_default();
        let observed = foreign_member::observe(ctx, &spec, &prints).await;
        settings::warn_unreachable(diags, &observed);
        let mut state = state.clone();
        record(&mut state, &spec, &observed);
        state
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: &Value,
        planned: &Value,
        private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let (from, spec) = (spec(ctx, prior), spec(ctx, planned));
        let mut prints: Fingerprints = private.get(FINGERPRINTS).unwrap_or_default();
        let settings_changed =
            from.settings != spec.settings || from.ca_cert_pem != spec.ca_cert_pem;
        let timeout = settings::timeout(planned, "update");
        let mut warnings = Vec::new();
        let updated = foreign_member::update(
            ctx,
            &spec,
            settings_changed,
            &mut prints,
            timeout,
            &mut warnings,
        )
        .await;
        settings::warn_all(diags, &warnings);
        private.set(FINGERPRINTS, &prints);
        if let Err(e) = updated {
            // The prior settings stay in state, so the next plan shows the
            // change again and the next apply continues it.
            let observed = foreign_member::observe(ctx, &from, &prints).await;
            let mut state = prior.clone();
            record(&mut state, &from, &observed);
            diags.error(
                "Could not change the member",
                format!("{e}\n\nApply again to continue once the cause is fixed."),
            );
            return state;
        }
        let observed = foreign_member::observe(ctx, &spec, &prints).await;
        settings::warn_unreachable(diags, &observed);
        let mut state = planned.clone();
        record(&mut state, &spec, &observed);
        if !observed.all_healthy() {
            diags.error(
                "Member still not healthy after the change",
                format!("{:?}", observed.status_text()),
            );
        }
        state
    }

    async fn delete(
        &self,
        ctx: &Context,
        prior: &Value,
        _private: &Private,
        diags: &mut Diagnostics,
    ) {
        let purge = prior
            .get("purge_data_on_destroy")
            .as_bool()
            .unwrap_or(false);
        let timeout = settings::timeout(prior, "update");
        if let Err(e) = foreign_member::leave(ctx, &spec(ctx, prior), purge, timeout).await {
            diags.error(
                "Could not remove the member",
                format!("{e}\n\nThe member stays in the cluster and in state; apply the destroy again once the cause is fixed."),
            );
        }
    }

    async fn import(
        &self,
        _ctx: &Context,
        _id: &str,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        diags.error(
            "etcd_member cannot be imported",
            "An etcd_member is a member this configuration added. To manage members that already run, import the \
             whole cluster as an etcd_cluster (ENDPOINT,CA_CERT_PATH,CA_KEY_PATH).",
        );
        Value::Null
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Value {
        Value::object([
            ("name", Value::string("e4")),
            ("host", Value::string("10.0.0.14")),
            (
                "cluster_endpoints",
                Value::strings(["https://10.0.0.11:2379"]),
            ),
            ("etcd_version", Value::string("3.4.23")),
            (
                "binary_source",
                Value::object([("os_package", Value::Bool(true))]),
            ),
        ])
    }

    fn error_paths(config: &Value) -> Vec<String> {
        let mut diags = Diagnostics::default();
        EtcdMember.validate(config, &mut diags);
        diags
            .0
            .iter()
            .map(|d| d.path.as_ref().map(|p| p.to_string()).unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_valid_member_has_no_diagnostics() {
        assert!(
            error_paths(&config()).is_empty(),
            "{:?}",
            error_paths(&config())
        );
    }

    #[test]
    fn bad_endpoints_host_and_name_are_errors_on_their_attribute() {
        let mut c = config();
        c.set(
            "cluster_endpoints",
            Value::strings([
                "https://10.0.0.11:2379",
                "http://10.0.0.12:2379",
                "10.0.0.13",
            ]),
        );
        c.set("host", Value::string("bad host"));
        c.set("name", Value::string("e 4"));
        let found = error_paths(&c);
        for path in [
            "cluster_endpoints[1]",
            "cluster_endpoints[2]",
            "host",
            "name",
        ] {
            assert!(found.contains(&path.to_string()), "{path}: {found:?}");
        }
        assert!(!found.contains(&"cluster_endpoints[0]".to_string()));
        c.set("cluster_endpoints", Value::List(vec![]));
        assert!(error_paths(&c).contains(&"cluster_endpoints".to_string()));
    }
}
