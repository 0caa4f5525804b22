//! The schema of `etcd_cluster` and the validation of its member list.

use std::collections::BTreeMap;

use crate::framework::{Attribute, AttributePath, Block, Diagnostics, NestedBlock, Type, Value};
use crate::resources::settings;

pub(super) fn schema_block() -> Block {
    let member = settings::member_attributes(
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
         CA on a running cluster is rotated in member by member, over two applies: the first has every member \
         trust the old and the new CA; the second gives them certificates from the new one, then stops trusting \
         the old one (see `retiring_ca_cert_pem`).",
    ))
    .attribute(
        Attribute::optional(
            "ca_key_pem",
            Type::String,
            "The CA's private key (PEM). It stays on the machine running Terraform; members never get it. Leave \
             it unset to keep it out of state: the provider block's `ca_key_files` or `ca_keys` give it (during a \
             CA rotation, the old CA's key and the new one's).",
        )
            .sensitive(),
    );
    settings::settings_attributes(block, false)
    .attribute(Attribute::optional(
        "initial_snapshot_path",
        Type::String,
        "A snapshot file on the machine running Terraform (e.g. an `etcd_snapshot`'s `path`) that a new cluster \
         starts from: each member's data directory is restored from it (`etcdutl snapshot restore`; etcdctl on 3.4) before its \
         first start. Only used when the cluster is created; a later change does nothing.",
    ))
    .attribute(Attribute::optional_computed(
        "auth_enabled",
        Type::Bool,
        "etcd's authentication: `true` turns it on (the `root` user and role are made first; the provider and the \
         members' backup jobs act as `root` through their certificates), `false` turns it off. Unset: left as it \
         is, and shown as it is. With it on, a client needs an `etcd_user` (certificate users by the common \
         name of their `etcd_client_certificate`) with `etcd_role`s for its keys. Authentication switched by hand \
         against this setting is drift.",
    ))
    .attribute(Attribute::computed(
        "retiring_ca_cert_pem",
        Type::String,
        "During a CA rotation, the previous CA, which the members still trust: the apply that brings a new \
         `ca_cert_pem` has every member trust both (certificates still from the previous CA), and the next apply \
         moves them to the new CA alone and clears this. In between, consumers get certificates from the new CA \
         and `trusted_ca_pem`, so none is ever refused.",
    ))
    .attribute(Attribute::computed(
        "trusted_ca_pem",
        Type::String,
        "The CA certificates the members trust (PEM): give it to consumers as the CA to verify the members with \
         (`etcd_client_certificate.trusted_ca_pem`), so that they keep working through a CA rotation.",
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
    .block(NestedBlock::single("binary_source", settings::binary_source_block()))
    .block(NestedBlock::single("ssh", settings::ssh_block(true)))
    .block(NestedBlock::single("backup", settings::backup_block()))
    .block(NestedBlock::list("member", member).min_items(1))
    .block(NestedBlock::single(
        "timeouts",
        settings::timeouts_block(
            "Bootstrap, until every member is healthy. Default 5m.",
            "Each step of a repair. Default 5m.",
        ),
    ))
}

fn member_path(i: usize, attr: &str) -> AttributePath {
    AttributePath::root("member").index(i).attribute(attr)
}

pub(super) fn validate_members(config: &Value, diags: &mut Diagnostics) {
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
        if !settings::validate_member(member, &|attr| member_path(i, attr), diags) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Resource;
    use crate::resources::cluster::EtcdCluster;

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
}
