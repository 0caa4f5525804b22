//! `etcd_cluster`: a whole etcd cluster on hosts reached over SSH. Create
//! bootstraps it; read looks at the live member list and every host, so
//! drift shows up in the plan; update repairs drift one member at a time;
//! delete stops and removes the members (data directories are kept unless
//! `purge_data_on_destroy` is set).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{ca_keys, settings};
use crate::cluster::{self, ClusterSpec, Observed, HEALTHY};
use crate::framework::{
    AttributePath, Context, Diagnostics, Plan, Private, Resource, Schema, Value,
};
use crate::member::install::Fingerprints;

mod ca_rotation;
mod import;
mod schema;

use import::import_state;
use schema::{schema_block, validate_members};

pub struct EtcdCluster;

/// Attributes a running cluster cannot change (yet): a change is refused
/// at plan time rather than planned as a replacement that would lose data.
const FIXED_AFTER_CREATE: &[&str] = &[
    "name",
    "client_port",
    "peer_port",
    "bin_dir",
    "config_dir",
    "pki_dir",
    "data_dir",
];

/// The domain view of a (wholly known) configuration or state.
fn spec(ctx: &Context, value: &Value) -> ClusterSpec {
    let ssh_block = value.get("ssh");
    ClusterSpec {
        settings: settings::settings(value, value.str_or_empty("name")),
        members: value
            .get("member")
            .as_list()
            .iter()
            .map(|m| settings::member_spec(m, ssh_block, settings::timeout(value, "command"), ctx))
            .collect(),
        ca_cert_pem: value.str_or_empty("ca_cert_pem").to_string(),
        ca_key_pem: ca_keys::ca_key(ctx, value),
        trusted_ca_pem: ca_rotation::trusted(value),
        tunnel: ssh_block.get("tunnel").as_bool().unwrap_or(false),
        foreign_endpoints: Vec::new(),
        initial_snapshot: value
            .get("initial_snapshot_path")
            .as_str()
            .map(str::to_string),
        s3_secret: settings::s3_secret(value),
    }
}

const FINGERPRINTS: &str = "fingerprints";

/// Whether `prior` is an imported cluster whose settings the first apply
/// has not adopted yet: import leaves what the API cannot tell null, and
/// `name` is required, so only such a state has no name.
fn is_adopting(prior: &Value) -> bool {
    prior.get("name").is_null()
}

/// Writes what was observed into the computed attributes of `state`.
fn record(state: &mut Value, spec: &ClusterSpec, observed: &Observed) {
    if let Some(id) = observed.cluster_id {
        let id = crate::etcd::format_id(id);
        state.set("id", Value::string(&id));
        state.set("cluster_id", Value::string(id));
    }
    state.set("client_endpoints", Value::strings(spec.endpoints()));
    state.set("member_ids", settings::string_map(&observed.member_ids));
    state.set("member_versions", settings::string_map(&observed.versions));
    state.set("status", settings::string_map(&observed.status_text()));
    state.set(
        "leader",
        Value::string(observed.leader.clone().unwrap_or_default()),
    );
    state.set(
        "unmanaged_members",
        Value::strings(observed.unmanaged_labels()),
    );
}

/// Turns authentication on or off as `planned` says (unset: as it is),
/// then records what the cluster has.
async fn apply_auth(
    ctx: &Context,
    spec: &ClusterSpec,
    planned: &Value,
    state: &mut Value,
    diags: &mut Diagnostics,
) {
    if let Some(enabled) = planned.get("auth_enabled").as_bool() {
        if let Err(e) = cluster::set_auth(ctx, spec, enabled).await {
            diags.error_at(
                AttributePath::root("auth_enabled"),
                "Could not switch authentication",
                e,
            );
        }
    }
    record_auth(ctx, spec, state).await;
}

/// Records whether authentication is on (kept as it was when no member
/// answers).
async fn record_auth(ctx: &Context, spec: &ClusterSpec, state: &mut Value) {
    let enabled = cluster::auth_enabled(ctx, spec).await;
    set_auth_enabled(state, enabled);
}

/// Records an answer to "is authentication on?" (`None`: no member said).
fn set_auth_enabled(state: &mut Value, enabled: Option<bool>) {
    match enabled {
        Some(enabled) => state.set("auth_enabled", Value::Bool(enabled)),
        None if state.get("auth_enabled").is_unknown() => state.set("auth_enabled", Value::Null),
        None => {}
    }
}

#[async_trait]
impl Resource for EtcdCluster {
    fn name(&self) -> &'static str {
        "etcd_cluster"
    }

    fn schema(&self) -> Schema {
        Schema {
            version: 0,
            block: schema_block(),
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_members(config, diags);
        settings::validate_cluster_name(config, diags);
        settings::validate_binary_source(config, diags);
        settings::validate_settings(config, diags);
        settings::validate_backup(config, diags);
    }

    async fn modify_plan(&self, ctx: &Context, plan: &mut Plan<'_>) {
        settings::plan_version_warnings(plan);
        ca_rotation::plan_ca(plan);
        ca_keys::require_key(ctx, plan);
        let rotating = !plan.is_create()
            && plan.planned.get("ca_cert_pem").as_str().is_some()
            && plan.prior.get("ca_cert_pem") != plan.planned.get("ca_cert_pem");
        if rotating {
            // The first pass of a rotation still issues from the old CA.
            let prior = plan.prior.clone();
            ca_keys::require_key_of(ctx, &prior, "the CA being rotated out (in state)", plan);
        }
        if plan.is_create() {
            if let Some(path) = plan.planned.get("initial_snapshot_path").as_str() {
                if !std::path::Path::new(path).is_file() {
                    plan.diags.error_at(
                        AttributePath::root("initial_snapshot_path"),
                        "Snapshot not found",
                        format!("{path} is not a file on this machine."),
                    );
                }
            }
            let endpoints = spec(ctx, &plan.planned).endpoints();
            if plan.planned.get("member").is_wholly_known() {
                plan.planned
                    .set("client_endpoints", Value::strings(endpoints));
            }
            return;
        }
        for name in FIXED_AFTER_CREATE {
            // Null in state: an imported cluster whose setting the API
            // cannot tell; the configuration's value is adopted.
            let adopted = plan.prior.get(name).is_null();
            if !adopted
                && plan.prior.get(name) != plan.config.get(name)
                && plan.planned.get(name) != plan.prior.get(name)
            {
                plan.diags.error_at(
                    AttributePath::root(name),
                    "Change not supported on a running cluster",
                    format!(
                        "{name} cannot change on a running cluster yet; the provider will not replace a cluster \
                         (that would lose its data). Revert the change."
                    ),
                );
            }
        }
        if plan.planned.get("auth_enabled").as_bool() == Some(true)
            && plan.prior.get("auth_enabled").as_bool() != Some(true)
        {
            plan.diags.warning_at(
                AttributePath::root("auth_enabled"),
                "Authentication will be turned on",
                "From then on a client needs an etcd_user with roles for its keys; clients without one are \
                 refused.",
            );
        }
        let rolling = settings::plan_rolled_change(plan);
        let (prior_spec, planned_spec) = (spec(ctx, plan.prior), spec(ctx, &plan.planned));
        let (added, removed) = cluster::membership_changes(&prior_spec, &planned_spec);
        let membership_changes = !added.is_empty() || !removed.is_empty();
        if membership_changes && plan.planned.get("member").is_wholly_known() {
            // Checked again against the live cluster at apply time.
            let unhealthy: Vec<String> = cluster::staying(&prior_spec, &planned_spec)
                .into_iter()
                .filter_map(|m| {
                    let status = plan
                        .prior
                        .get("status")
                        .get(&m.name)
                        .as_str()
                        .unwrap_or("unknown");
                    (status != HEALTHY).then(|| format!("{} ({status})", m.name))
                })
                .collect();
            if !unhealthy.is_empty() {
                plan.diags.error_at(
                    AttributePath::root("member"),
                    "Membership change refused while members are unhealthy",
                    format!(
                        "Members are added and removed one at a time, and only while every member that stays is \
                         healthy (otherwise a step could lose quorum). Not healthy: {}. Repair them first (apply \
                         without the membership change), or remove the broken member itself.",
                        unhealthy.join("; ")
                    ),
                );
            }
            let in_place: Vec<String> = cluster::replaced_in_place(&prior_spec, &planned_spec)
                .iter()
                .map(|m| format!("{} ({})", m.name, m.host))
                .collect();
            if !in_place.is_empty() {
                plan.diags.warning_at(
                    AttributePath::root("member"),
                    "Members replaced in place",
                    format!(
                        "{} take the name or host of a member that leaves: each is added only after that \
                         member is removed (etcd cannot hold both), so the cluster is one member short during \
                         that step. Other new members are added before a leaving member is removed.",
                        in_place.join(", ")
                    ),
                );
            }
            plan.planned
                .set("client_endpoints", Value::strings(planned_spec.endpoints()));
        }
        if is_adopting(plan.prior) {
            // The apply that adopts an import changes nothing; what it will
            // observe is not known yet.
            for name in [
                "status",
                "unmanaged_members",
                "member_ids",
                "member_versions",
                "leader",
            ] {
                plan.planned.set(name, Value::Unknown);
            }
            return;
        }
        let desired: BTreeMap<String, String> = planned_spec
            .members
            .iter()
            .map(|m| (m.name.clone(), HEALTHY.to_string()))
            .collect();
        let desired = settings::string_map(&desired);
        let drifted = membership_changes
            || rolling
            || plan.prior.get("status") != &desired
            || !plan.prior.get("unmanaged_members").as_list().is_empty();
        plan.planned.set("status", desired);
        plan.planned.set("unmanaged_members", Value::List(vec![]));
        if drifted {
            plan.planned.set("member_ids", Value::Unknown);
            plan.planned.set("member_versions", Value::Unknown);
        }
        // Any apply may restart members (a CA rotation, a repair), and a
        // leader hands leadership on before its restart.
        if drifted || plan.planned != *plan.prior {
            plan.planned.set("leader", Value::Unknown);
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
        let prints =
            match cluster::bootstrap(ctx, &spec, settings::timeout(planned, "create")).await {
                Ok(prints) => prints,
                Err(e) => {
                    diags.error(
                        "Could not bootstrap the cluster",
                        format!(
                        "{e}\n\nNothing was saved to state; apply again to resume the bootstrap."
                    ),
                    );
                    return Value::Null;
                }
            };
        private.set(FINGERPRINTS, &prints);
        let observed = cluster::observe(ctx, &spec, &prints).await;
        settings::warn_unreachable(diags, &observed);
        let mut state = planned.clone();
        record(&mut state, &spec, &observed);
        settings::warn_if_unhealthy(
            diags,
            "Cluster not healthy right after bootstrap",
            &observed,
        );
        apply_auth(ctx, &spec, planned, &mut state, diags).await;
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
        let mut prints = private
            .get::<BTreeMap<String, Fingerprints>>(FINGERPRINTS)
            .unwrap_or_default();
        // Whether auth is on is asked while the hosts are looked at.
        let (observed, auth_enabled) = tokio::join!(
            cluster::observe(ctx, &spec, &prints),
            cluster::auth_enabled(ctx, &spec)
        );
        settings::warn_unreachable(diags, &observed);
        settings::warn_if_quorum_lost(diags, &observed, &spec.settings.backup.dir);
        // Members without fingerprints (an imported cluster) get what the
        // hosts hold now as their baseline.
        for (name, files) in &observed.files {
            prints.entry(name.clone()).or_insert_with(|| files.clone());
        }
        private.set(FINGERPRINTS, &prints);
        let mut state = state.clone();
        record(&mut state, &spec, &observed);
        set_auth_enabled(&mut state, auth_enabled);
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
        let mut prints = private
            .get::<BTreeMap<String, Fingerprints>>(FINGERPRINTS)
            .unwrap_or_default();
        let adopting = is_adopting(prior);
        let mut warnings = Vec::new();
        // The first apply after an import only adopts the configuration's
        // settings: it touches no host.
        let updated = if adopting {
            Ok(())
        } else {
            let timeout = settings::timeout(planned, "update");
            cluster::update(ctx, &from, &spec, &mut prints, timeout, &mut warnings).await
        };
        settings::warn_all(diags, &warnings);
        match updated {
            Err(stop) if stop.keeps_prior_state() => {
                // The state keeps the members and settings from before the
                // change, so the next plan shows it again and the next apply
                // continues it (finished steps are skipped, not redone).
                private.set(FINGERPRINTS, &prints);
                let observed = cluster::observe(ctx, &from, &prints).await;
                let mut state = prior.clone();
                record(&mut state, &from, &observed);
                record_auth(ctx, &from, &mut state).await;
                diags.error(stop.summary(), stop.to_string());
                state
            }
            repaired => {
                let observed = cluster::observe(ctx, &spec, &prints).await;
                settings::warn_unreachable(diags, &observed);
                if repaired.is_ok() && observed.all_healthy() {
                    // The hosts are now as they should be (this also takes in
                    // the files at the paths a just-imported cluster's settings
                    // name).
                    prints = observed.files.clone();
                }
                private.set(FINGERPRINTS, &prints);
                let mut state = planned.clone();
                record(&mut state, &spec, &observed);
                if repaired.is_ok() && !adopting {
                    apply_auth(ctx, &spec, planned, &mut state, diags).await;
                } else {
                    record_auth(ctx, &spec, &mut state).await;
                }
                if let Err(stop) = repaired {
                    diags.error(stop.summary(), stop.to_string());
                } else if adopting {
                    settings::warn_if_unhealthy(
                        diags,
                        "Imported cluster adopted as it is",
                        &observed,
                    );
                } else if !observed.all_healthy() {
                    diags.error(
                        "Cluster still not healthy after repair",
                        format!("{:?}", observed.status_text()),
                    );
                }
                state
            }
        }
    }

    async fn delete(
        &self,
        ctx: &Context,
        prior: &Value,
        _private: &Private,
        diags: &mut Diagnostics,
    ) {
        let spec = spec(ctx, prior);
        let purge = prior
            .get("purge_data_on_destroy")
            .as_bool()
            .unwrap_or(false);
        match cluster::teardown(&spec, purge, ctx.now()).await {
            Ok(warnings) => {
                for warning in warnings {
                    diags.warning(warning.summary(), warning.to_string());
                }
            }
            Err(e) => diags.error("Could not remove every member", e),
        }
    }

    /// ID: `ENDPOINT,CA_CERT_PATH,CA_KEY_PATH`, e.g.
    /// `https://10.0.0.11:2379,/etc/kubernetes/pki/etcd/ca.crt,/etc/kubernetes/pki/etcd/ca.key`.
    /// Members, ports and version come from the live cluster; settings the
    /// API cannot tell (name, directories, ssh, binary source) stay null and
    /// are adopted from the configuration by the next apply, which changes
    /// nothing on the hosts.
    async fn import(
        &self,
        ctx: &Context,
        id: &str,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        match import_state(ctx, id).await {
            Ok(state) => state,
            Err(e) => {
                diags.error(
                    "Cannot import the cluster",
                    format!(
                        "{e}\n\nImport an etcd_cluster as ENDPOINT,CA_CERT_PATH,CA_KEY_PATH: a client URL of \
                         one member, and the cluster CA's certificate and key on the machine running Terraform."
                    ),
                );
                Value::Null
            }
        }
    }
}
