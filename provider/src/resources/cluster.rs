//! `etcd_cluster`: a whole etcd cluster on hosts reached over SSH. Create
//! bootstraps it; read looks at the live member list and every host, so
//! drift shows up in the plan; update repairs drift one member at a time;
//! delete stops and removes the members (data directories are kept unless
//! `purge_data_on_destroy` is set).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::common;
use crate::cluster::{self, ClusterSpec, Observed, HEALTHY};
use crate::framework::{
    Attribute, AttributePath, Block, Context, Diagnostics, NestedBlock, Plan, Private, Resource,
    Schema, Type, Value,
};
use crate::member::install::Fingerprints;

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

fn schema_block() -> Block {
    let member = common::member_attributes(
        Block::new(
            "A member of the cluster. Members are bootstrapped together; their order is not significant.",
        ),
        false,
    );
    let block = Block::new(
        "An etcd cluster bootstrapped over SSH on hosts with systemd. Each member gets the `etcd` user, a 0700 data \
         directory, the etcd binaries, server and peer certificates signed by the CA, a configuration file with \
         client and peer TLS, and a `Type=notify` systemd unit. The live member list and each host are compared \
         with the configuration on every plan: drift (a member stopped, removed, added out of band, or a changed \
         file) is a planned change, so `terraform plan -detailed-exitcode` exits 2, and apply repairs it one \
         member at a time.",
    )
    .attribute(Attribute::computed("id", Type::String, "The cluster ID (hex)."))
    .attribute(Attribute::required("name", Type::String, "Cluster name, also its initial cluster token."))
    .attribute(Attribute::required(
        "ca_cert_pem",
        Type::String,
        "The CA certificate (PEM) the members' certificates are issued from, e.g. `etcd_ca.main.cert_pem`. A new \
         CA on a running cluster is rotated in member by member: every member first trusts the old and the new \
         CA, then gets certificates from the new one, then stops trusting the old one.",
    ))
    .attribute(
        Attribute::required("ca_key_pem", Type::String, "The CA's private key (PEM). It stays on the machine running Terraform; members never get it.")
            .sensitive(),
    );
    common::settings_attributes(block, false)
    .attribute(Attribute::optional(
        "initial_snapshot_path",
        Type::String,
        "A snapshot file on the machine running Terraform (e.g. an `etcd_snapshot`'s `path`) that a new cluster \
         starts from: each member's data directory is restored from it (`etcdctl snapshot restore`) before its \
         first start. Only used when the cluster is created; a later change does nothing.",
    ))
    .attribute(Attribute::computed("cluster_id", Type::String, "The cluster ID (hex)."))
    .attribute(Attribute::computed("client_endpoints", Type::list(Type::String), "Client URLs of the members."))
    .attribute(Attribute::computed("member_ids", Type::map(Type::String), "Member name to member ID (hex), from the live member list."))
    .attribute(Attribute::computed(
        "member_versions",
        Type::map(Type::String),
        "Member name to the etcd version the running member reports (members that answer).",
    ))
    .attribute(Attribute::computed("leader", Type::String, "Name of the current leader (informational: elections change it)."))
    .attribute(Attribute::computed(
        "status",
        Type::map(Type::String),
        "Member name to `healthy`, or to what is wrong with it. Anything but `healthy` is planned to be repaired.",
    ))
    .attribute(Attribute::computed(
        "unmanaged_members",
        Type::list(Type::String),
        "Live members that the configuration does not list (added out of band); apply removes them.",
    ))
    .block(NestedBlock::single("binary_source", common::binary_source_block()))
    .block(NestedBlock::single("ssh", common::ssh_block(true)))
    .block(NestedBlock::list("member", member).min_items(1))
    .block(NestedBlock::single(
        "timeouts",
        common::timeouts_block(
            "Bootstrap, until every member is healthy. Default 5m.",
            "Each step of a repair. Default 5m.",
        ),
    ))
}

fn member_path(i: usize, attr: &str) -> AttributePath {
    AttributePath::root("member").index(i).attribute(attr)
}

fn validate_members(config: &Value, diags: &mut Diagnostics) {
    let members = config.get("member").as_list();
    if members.is_empty() {
        return;
    }
    if members.len().is_multiple_of(2) || members.len() == 1 {
        let why = if members.len() == 1 {
            "a single member has no fault tolerance: losing it loses the cluster".to_string()
        } else {
            format!(
                "{} members tolerate no more failures than {}: quorum is {} of {}. Use an odd count (3 or 5).",
                members.len(),
                members.len() - 1,
                members.len() / 2 + 1,
                members.len()
            )
        };
        diags.warning_at(
            AttributePath::root("member"),
            "Member count without a fault-tolerance benefit",
            why,
        );
    }
    let mut names = BTreeMap::new();
    let mut hosts = BTreeMap::new();
    for (i, member) in members.iter().enumerate() {
        if !common::validate_member(member, &|attr| member_path(i, attr), diags) {
            continue;
        }
        if let Some(name) = member.get("name").as_str() {
            if let Some(first) = names.insert(name.to_string(), i) {
                diags.error_at(
                    member_path(i, "name"),
                    "Duplicate member name",
                    format!("{name:?} is also the name of member[{first}]."),
                );
            }
        }
        if let Some(host) = member.get("host").as_str() {
            if let Some(first) = hosts.insert(host.to_string(), i) {
                diags.error_at(
                    member_path(i, "host"),
                    "Duplicate host",
                    format!("{host:?} is also the host of member[{first}]; two members on one host would share ports and data."),
                );
            }
        }
    }
}

/// The domain view of a (wholly known) configuration or state.
fn spec(value: &Value) -> ClusterSpec {
    let ssh_block = value.get("ssh");
    ClusterSpec {
        settings: common::settings(value, value.str_or_empty("name")),
        members: value
            .get("member")
            .as_list()
            .iter()
            .map(|m| common::member_spec(m, ssh_block))
            .collect(),
        ca_cert_pem: value.str_or_empty("ca_cert_pem").to_string(),
        ca_key_pem: value.str_or_empty("ca_key_pem").to_string(),
        trusted_ca_pem: value.str_or_empty("ca_cert_pem").to_string(),
        tunnel: ssh_block.get("tunnel").as_bool().unwrap_or(false),
        foreign_endpoints: Vec::new(),
        initial_snapshot: value
            .get("initial_snapshot_path")
            .as_str()
            .map(str::to_string),
    }
}

const FINGERPRINTS: &str = "fingerprints";
/// Set in private state by import, until the first apply has adopted the
/// configuration's settings.
const ADOPTING: &str = "adopting";

/// Writes what was observed into the computed attributes of `state`.
fn record(state: &mut Value, spec: &ClusterSpec, observed: &Observed) {
    if let Some(id) = observed.cluster_id {
        let id = crate::etcd::format_id(id);
        state.set("id", Value::string(&id));
        state.set("cluster_id", Value::string(id));
    }
    state.set("client_endpoints", Value::strings(spec.endpoints()));
    state.set("member_ids", common::string_map(&observed.member_ids));
    state.set("member_versions", common::string_map(&observed.versions));
    state.set("status", common::string_map(&observed.status));
    state.set(
        "leader",
        Value::string(observed.leader.clone().unwrap_or_default()),
    );
    state.set(
        "unmanaged_members",
        Value::strings(observed.unmanaged.clone()),
    );
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
        common::validate_binary_source(config, diags);
        common::validate_settings(config, diags);
    }

    async fn modify_plan(&self, _ctx: &Context, plan: &mut Plan<'_>) {
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
            let endpoints = spec(&plan.planned).endpoints();
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
        let rolling = common::plan_rolled_change(plan);
        let (prior_spec, planned_spec) = (spec(plan.prior), spec(&plan.planned));
        let (added, removed) = cluster::membership_changes(&prior_spec, &planned_spec);
        let membership_changes = !added.is_empty() || !removed.is_empty();
        if membership_changes && plan.planned.get("member").is_wholly_known() {
            // Checked again against the live cluster at apply time.
            let unhealthy: Vec<String> = prior_spec
                .members
                .iter()
                .filter(|m| !removed.iter().any(|r| r.name == m.name && r.host == m.host))
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
            plan.planned
                .set("client_endpoints", Value::strings(planned_spec.endpoints()));
        }
        let desired: BTreeMap<String, String> = planned_spec
            .members
            .iter()
            .map(|m| (m.name.clone(), HEALTHY.to_string()))
            .collect();
        let desired = common::string_map(&desired);
        let drifted = membership_changes
            || rolling
            || plan.prior.get("status") != &desired
            || !plan.prior.get("unmanaged_members").as_list().is_empty();
        plan.planned.set("status", desired);
        plan.planned.set("unmanaged_members", Value::List(vec![]));
        if drifted {
            plan.planned.set("member_ids", Value::Unknown);
            plan.planned.set("member_versions", Value::Unknown);
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
        let spec = spec(planned);
        let prints = match cluster::bootstrap(ctx, &spec, common::timeout(planned, "create")).await
        {
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
        common::warn_unreachable(diags, &observed);
        let mut state = planned.clone();
        record(&mut state, &spec, &observed);
        common::warn_if_unhealthy(
            diags,
            "Cluster not healthy right after bootstrap",
            &observed,
        );
        state
    }

    async fn read(
        &self,
        ctx: &Context,
        state: &Value,
        private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let spec = spec(state);
        let mut prints = private
            .get::<BTreeMap<String, Fingerprints>>(FINGERPRINTS)
            .unwrap_or_default();
        let observed = cluster::observe(ctx, &spec, &prints).await;
        common::warn_unreachable(diags, &observed);
        // Members without fingerprints (an imported cluster) get what the
        // hosts hold now as their baseline.
        for (name, files) in &observed.files {
            prints.entry(name.clone()).or_insert_with(|| files.clone());
        }
        private.set(FINGERPRINTS, &prints);
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
        let (from, spec) = (spec(prior), spec(planned));
        let mut prints = private
            .get::<BTreeMap<String, Fingerprints>>(FINGERPRINTS)
            .unwrap_or_default();
        let purge = planned
            .get("purge_data_on_destroy")
            .as_bool()
            .unwrap_or(false);
        let timeout = common::timeout(planned, "update");
        // The first apply after an import only records the configuration's
        // settings: the hosts run as they are, nothing is rolled.
        let adopting = private.0.contains_key(ADOPTING);
        // A new CA comes last: membership and rolling changes are made with
        // the CA the members trust now.
        let rotating = !adopting && from.ca_cert_pem != spec.ca_cert_pem;
        let ca_now = if rotating { &from } else { &spec };
        let staged = spec.with_ca(
            &ca_now.ca_cert_pem,
            &ca_now.ca_key_pem,
            &ca_now.trusted_ca_pem,
        );
        let stopped = match cluster::change_membership(
            ctx,
            &from,
            &staged,
            &mut prints,
            timeout,
            purge,
        )
        .await
        {
            Err(e) => Some((
                "Membership change stopped",
                format!("{e}\n\nNo step that was done is undone."),
            )),
            Ok(()) if adopting => None,
            Ok(()) => {
                let mut changed = Ok(());
                if from.settings != spec.settings {
                    changed = cluster::roll(ctx, &staged, &mut prints, timeout).await;
                }
                if changed.is_ok() && rotating {
                    changed = cluster::rotate_ca(ctx, &from, &spec, &mut prints, timeout).await;
                }
                changed.err().map(|e| {
                    (
                        "Rolling change stopped",
                        format!("{e}\n\nMembers already changed stay changed."),
                    )
                })
            }
        };
        if let Some((summary, detail)) = stopped {
            // The state keeps the members and settings from before the
            // change, so the next plan shows it again and the next apply
            // continues it (finished steps are skipped, not redone).
            private.set(FINGERPRINTS, &prints);
            let observed = cluster::observe(ctx, &from, &prints).await;
            let mut state = prior.clone();
            record(&mut state, &from, &observed);
            diags.error(
                summary,
                format!("{detail} Apply again to continue once the cause is fixed."),
            );
            return state;
        }
        private.0.remove(ADOPTING);
        let repaired = cluster::repair(ctx, &spec, &mut prints, timeout).await;
        let observed = cluster::observe(ctx, &spec, &prints).await;
        common::warn_unreachable(diags, &observed);
        if repaired.is_ok() && observed.all_healthy() {
            // The hosts are now as they should be (this also takes in the
            // files at the paths a just-imported cluster's settings name).
            prints = observed.files.clone();
        }
        private.set(FINGERPRINTS, &prints);
        let mut state = planned.clone();
        record(&mut state, &spec, &observed);
        if let Err(e) = repaired {
            diags.error("Could not repair the cluster", e);
        } else if !observed.all_healthy() {
            diags.error(
                "Cluster still not healthy after repair",
                format!("{:?}", observed.status),
            );
        }
        state
    }

    async fn delete(
        &self,
        _ctx: &Context,
        prior: &Value,
        _private: &Private,
        diags: &mut Diagnostics,
    ) {
        let spec = spec(prior);
        let purge = prior
            .get("purge_data_on_destroy")
            .as_bool()
            .unwrap_or(false);
        if let Err(e) = cluster::teardown(&spec, purge).await {
            diags.error("Could not remove every member", e);
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
        private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        match import_state(ctx, id).await {
            Ok(state) => {
                private
                    .0
                    .insert(ADOPTING.into(), serde_json::Value::Bool(true));
                state
            }
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

/// `https://10.0.0.11:2380` as host and port (IPv6 without brackets).
fn split_url(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    Some((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port.parse().ok()?,
    ))
}

async fn import_state(ctx: &Context, id: &str) -> Result<Value, String> {
    let parts: Vec<&str> = id.split(',').map(str::trim).collect();
    let [endpoint, cert_path, key_path] = parts.as_slice() else {
        return Err(format!("{id:?} does not have three comma-separated parts"));
    };
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let (ca_cert_pem, ca_key_pem) = (read(cert_path)?, read(key_path)?);
    crate::pki::inspect_ca(&ca_cert_pem, &ca_key_pem)
        .map_err(|e| format!("{cert_path}, {key_path}: {e}"))?;
    let credentials = crate::etcd::Credentials::issue(&ca_cert_pem, &ca_key_pem, ctx.now())
        .map_err(|e| format!("client certificate: {e}"))?;
    let api = crate::etcd::Cluster::new(vec![endpoint.to_string()], credentials);
    let (cluster_id, mut live) = api.members().await?;
    let status = api.endpoint_status(endpoint).await;
    let version = status
        .version
        .ok_or_else(|| status.error.unwrap_or_else(|| "no version".into()))?;
    live.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ports = (None, None);
    let mut members = Vec::new();
    for m in &live {
        let (host, peer_port) = m
            .peer_urls
            .first()
            .and_then(|u| split_url(u))
            .ok_or_else(|| format!("member {} has no usable peer URL", m.name))?;
        ports.1 = Some(peer_port);
        ports.0 = m
            .client_urls
            .first()
            .and_then(|u| split_url(u))
            .map(|(_, p)| p)
            .or(ports.0);
        members.push(Value::object([
            ("name", Value::string(&m.name)),
            ("host", Value::string(host)),
            ("ssh_host", Value::Null),
            ("extra_sans", Value::Null),
        ]));
    }
    let id = crate::etcd::format_id(cluster_id);
    Ok(Value::object([
        ("id", Value::string(&id)),
        ("cluster_id", Value::string(id)),
        ("ca_cert_pem", Value::string(ca_cert_pem)),
        ("ca_key_pem", Value::string(ca_key_pem)),
        ("etcd_version", Value::string(version)),
        ("client_port", Value::number(ports.0.unwrap_or(2379) as f64)),
        ("peer_port", Value::number(ports.1.unwrap_or(2380) as f64)),
        ("member", Value::List(members)),
        ("client_endpoints", Value::List(vec![])),
        ("member_ids", Value::Map(BTreeMap::new())),
        ("member_versions", Value::Map(BTreeMap::new())),
        ("status", Value::Map(BTreeMap::new())),
        ("leader", Value::string("")),
        ("unmanaged_members", Value::List(vec![])),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, host: &str) -> Value {
        Value::object([("name", Value::string(name)), ("host", Value::string(host))])
    }

    fn config(members: Vec<Value>) -> Value {
        Value::object([
            ("name", Value::string("c")),
            ("etcd_version", Value::string("3.4.23")),
            (
                "binary_source",
                Value::object([
                    ("url", Value::string("https://example.invalid/etcd.tgz")),
                    ("sha256", Value::string("a".repeat(64))),
                ]),
            ),
            ("member", Value::List(members)),
        ])
    }

    fn diagnostics(config: &Value) -> Vec<(bool, String)> {
        let mut diags = Diagnostics::default();
        EtcdCluster.validate(config, &mut diags);
        diags
            .0
            .iter()
            .map(|d| {
                (
                    d.severity == crate::framework::diagnostics::Severity::Error,
                    d.path.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn three_distinct_members_are_fine() {
        assert!(diagnostics(&config(vec![
            member("a", "10.0.0.1"),
            member("b", "10.0.0.2"),
            member("c", "h3.example")
        ]))
        .is_empty());
    }

    #[test]
    fn even_and_single_counts_warn_about_quorum() {
        assert_eq!(
            diagnostics(&config(vec![
                member("a", "10.0.0.1"),
                member("b", "10.0.0.2")
            ])),
            vec![(false, "member".into())]
        );
        assert_eq!(
            diagnostics(&config(vec![member("a", "10.0.0.1")])),
            vec![(false, "member".into())]
        );
    }

    #[test]
    fn duplicates_and_bad_hosts_are_errors_on_the_member() {
        let found = diagnostics(&config(vec![
            member("a", "10.0.0.1"),
            member("a", "10.0.0.1"),
            member("c", "bad host!"),
        ]));
        assert!(
            found.contains(&(true, "member[1].name".into())),
            "{found:?}"
        );
        assert!(
            found.contains(&(true, "member[1].host".into())),
            "{found:?}"
        );
        assert!(
            found.contains(&(true, "member[2].host".into())),
            "{found:?}"
        );
    }

    #[test]
    fn version_checksum_and_source_are_checked() {
        let mut c = config(vec![
            member("a", "10.0.0.1"),
            member("b", "10.0.0.2"),
            member("c", "10.0.0.3"),
        ]);
        c.set("etcd_version", Value::string("3.4"));
        c.set(
            "binary_source",
            Value::object([
                ("url", Value::string("https://x.invalid/e.tgz")),
                ("sha256", Value::string("xyz")),
            ]),
        );
        let found = diagnostics(&c);
        assert!(found.contains(&(true, "etcd_version".into())), "{found:?}");
        assert!(
            found.contains(&(true, "binary_source.sha256".into())),
            "{found:?}"
        );
        c.set("binary_source", Value::Null);
        assert!(diagnostics(&c).contains(&(true, "binary_source".into())));
    }

    #[test]
    fn exactly_one_binary_source() {
        let mut c = config(vec![
            member("a", "10.0.0.1"),
            member("b", "10.0.0.2"),
            member("c", "10.0.0.3"),
        ]);
        c.set(
            "binary_source",
            Value::object([("os_package", Value::Bool(true))]),
        );
        assert!(diagnostics(&c).is_empty(), "{:?}", diagnostics(&c));
        c.set(
            "binary_source",
            Value::object([
                ("os_package", Value::Bool(true)),
                ("url", Value::string("https://x.invalid/e.tgz")),
            ]),
        );
        assert!(diagnostics(&c).contains(&(true, "binary_source".into())));
        c.set(
            "binary_source",
            Value::object([("os_package", Value::Bool(false))]),
        );
        assert!(diagnostics(&c).contains(&(true, "binary_source".into())));
    }

    #[test]
    fn managed_flags_cannot_be_overridden() {
        let mut c = config(vec![
            member("a", "10.0.0.1"),
            member("b", "10.0.0.2"),
            member("c", "10.0.0.3"),
        ]);
        c.set(
            "extra_flags",
            Value::object([("data-dir", Value::string("/tmp"))]),
        );
        assert!(diagnostics(&c).contains(&(true, "extra_flags".into())));
    }

    #[test]
    fn urls_split_into_host_and_port() {
        assert_eq!(
            split_url("https://10.0.0.11:2380"),
            Some(("10.0.0.11".into(), 2380))
        );
        assert_eq!(
            split_url("https://[fd00::1]:2379/"),
            Some(("fd00::1".into(), 2379))
        );
        assert_eq!(split_url("10.0.0.1"), None);
    }
}
