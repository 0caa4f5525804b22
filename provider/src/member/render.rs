//! etcd's YAML configuration file and its systemd unit, rendered from the
//! member's settings. Pure functions: the same settings give the same bytes.

use std::net::IpAddr;

use super::{ClusterSettings, MemberSpec};
use crate::version::{corruption_check_settings, flags_touch_feature_gates};

/// Settings the provider itself manages; `extra_flags` may not set them.
pub const MANAGED_KEYS: &[&str] = &[
    "name",
    "data-dir",
    "listen-peer-urls",
    "listen-client-urls",
    "advertise-client-urls",
    "initial-advertise-peer-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "listen-metrics-urls",
    "client-transport-security",
    "peer-transport-security",
    "config-file",
];

/// Settings written unless the user's `extra_flags` set them:
/// - `enable-grpc-gateway`: etcd serves its HTTP/JSON gateway (`/v3/...`,
///   used by Patroni's etcd3 client and curl) when started by flags, but
///   before 3.5 not when started from a config file (etcd #12093);
/// - `pre-vote`: a member that has not heard from a leader asks the others
///   before it campaigns, so a member restarting in a roll, or one that
///   joins a bootstrap late (etcd 3.4 fast-forwards its election ticks),
///   does not depose a working leader and pause every write for an
///   election. etcd 3.5's default; off in 3.4. Members with and without
///   it work together, so members written before this default keep theirs
///   until their next rewrite (a roll or repair): no restart of its own.
const DEFAULTS_UNLESS_GIVEN: &[(&str, &str)] =
    &[("enable-grpc-gateway", "true"), ("pre-vote", "true")];

/// etcd's corruption checks, on unless `extra_flags` set them: a member
/// compares its data with the others' before it serves, and the leader
/// compares the followers' hashes after each compaction; a mismatch raises
/// the `CORRUPT` alarm, which the plan shows. Spelled for the version
/// (`cluster::corruption_check_settings`); none where `extra_flags` already
/// speak of feature gates (etcd refuses a gate given twice).
fn corruption_checks(settings: &ClusterSettings) -> Vec<(&'static str, &'static str)> {
    let version = &settings.etcd_version;
    if flags_touch_feature_gates(version, settings.extra_flags.keys().map(String::as_str)) {
        return Vec::new();
    }
    corruption_check_settings(version)
}

/// Whether a new member starts a new cluster or joins a running one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    New,
    Existing,
}

/// A YAML string, always quoted: a member named `010` or `1.10` must not
/// become the number 8 or 1.1.
fn string(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

/// A YAML scalar for an `extra_flags` value: booleans and numbers bare,
/// everything else quoted.
fn scalar(value: &str) -> String {
    let bare = value == "true"
        || value == "false"
        || value.parse::<i64>().is_ok()
        || value.parse::<f64>().is_ok();
    if bare {
        value.to_string()
    } else {
        serde_json::Value::String(value.to_string()).to_string()
    }
}

/// The etcd configuration file of `member`. `initial_cluster` lists
/// `name=peer_url` of the members it starts with.
pub fn config_file(
    member: &MemberSpec,
    settings: &ClusterSettings,
    initial_cluster: &[String],
    state: InitialState,
) -> String {
    let layout = &settings.layout;
    let pki = layout.pki_dir();
    let client = member.client_url(settings);
    let peer = member.peer_url(settings);
    let mut out =
        String::from("# Managed by terraform-provider-etcd: changes here show up as drift.\n");
    let mut line = |key: &str, value: String| out.push_str(&format!("{key}: {value}\n"));
    line("name", string(&member.name));
    line("data-dir", scalar(&layout.data_dir));
    // etcd binds to IP addresses only: a member known by a DNS name listens
    // on all of its host's addresses (loopback included) and advertises
    // the name.
    let (listen_peer, listen_client) = if member.host.parse::<IpAddr>().is_ok() {
        (
            peer.clone(),
            format!("{client},https://127.0.0.1:{}", settings.client_port),
        )
    } else {
        (
            format!("https://0.0.0.0:{}", settings.peer_port),
            format!("https://0.0.0.0:{}", settings.client_port),
        )
    };
    line("listen-peer-urls", scalar(&listen_peer));
    line("listen-client-urls", scalar(&listen_client));
    line("advertise-client-urls", scalar(&client));
    line("initial-advertise-peer-urls", scalar(&peer));
    line("initial-cluster", scalar(&initial_cluster.join(",")));
    line(
        "initial-cluster-state",
        scalar(match state {
            InitialState::New => "new",
            InitialState::Existing => "existing",
        }),
    );
    line("initial-cluster-token", string(&settings.token));
    line("listen-metrics-urls", scalar(&settings.metrics_url));
    for (key, value) in DEFAULTS_UNLESS_GIVEN
        .iter()
        .copied()
        .chain(corruption_checks(settings))
    {
        if !settings.extra_flags.contains_key(key) {
            line(key, scalar(value));
        }
    }
    for (key, value) in &settings.extra_flags {
        line(key, scalar(value));
    }
    for (section, prefix) in [
        ("client-transport-security", "server"),
        ("peer-transport-security", "peer"),
    ] {
        out.push_str(&format!(
            "{section}:\n  cert-file: {}\n  key-file: {}\n  trusted-ca-file: {}\n  client-cert-auth: true\n",
            scalar(&format!("{pki}/{prefix}.crt")),
            scalar(&format!("{pki}/{prefix}.key")),
            scalar(&format!("{pki}/ca.crt")),
        ));
    }
    if settings.peer_names_only {
        // Members only on the peer port (a list: etcd 3.4 reads one too).
        out.push_str(&format!(
            "  allowed-cn: [{}]\n",
            scalar(super::PEER_COMMON_NAME)
        ));
    }
    out
}

/// Variables that point `etcdctl` on the member's host at its local
/// client URL with its certificates, so that an operator there can run
/// `set -a; . /etc/etcd/etcdctl.env; set +a; etcdctl member list`. Values
/// are single-quoted (paths are validated to hold no quote) so that
/// sourcing the file never runs anything.
pub fn etcdctl_env(settings: &ClusterSettings) -> String {
    let pki = settings.layout.pki_dir();
    format!(
        "# Managed by terraform-provider-etcd. Use: set -a; . {file}; set +a\n\
         ETCDCTL_ENDPOINTS='https://127.0.0.1:{port}'\n\
         ETCDCTL_CACERT='{pki}/ca.crt'\n\
         ETCDCTL_CERT='{pki}/etcdctl.crt'\n\
         ETCDCTL_KEY='{pki}/etcdctl.key'\n",
        file = settings.layout.etcdctl_env_file(),
        port = settings.client_port,
    )
}

/// The systemd unit. `Type=notify`: etcd tells systemd when it has joined
/// the cluster, so `systemctl start` blocks until there is a quorum. No
/// start timeout (as etcd's own unit): a member replaying a long log must
/// not be killed and restarted in a loop; the provider starts units
/// without blocking and waits by its own timeouts.
pub fn unit_file(settings: &ClusterSettings) -> String {
    let layout = &settings.layout;
    format!(
        "# Managed by terraform-provider-etcd: changes here show up as drift.\n\
         [Unit]\n\
         Description=etcd key-value store\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         User=etcd\n\
         Group=etcd\n\
         ExecStart={} --config-file {}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         LimitNOFILE=65536\n\
         TimeoutStartSec=0\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        layout.etcd(),
        layout.config_file()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{BinarySource, Layout};

    fn settings() -> ClusterSettings {
        ClusterSettings {
            token: "etcd-cluster-0".into(),
            etcd_version: "3.4.23".into(),
            binary_source: BinarySource::LocalPath("/opt/etcd".into()),
            client_port: 2379,
            peer_port: 2380,
            metrics_url: "http://127.0.0.1:2381".into(),
            layout: Layout {
                bin_dir: "/usr/local/bin".into(),
                config_dir: "/etc/etcd".into(),
                pki_dir: "/etc/etcd/pki".into(),
                data_dir: "/var/lib/etcd".into(),
            },
            extra_flags: [
                ("snapshot-count".to_string(), "10000".to_string()),
                ("log-level".to_string(), "warn".to_string()),
            ]
            .into(),
            cert_validity_hours: 8760,
            cert_early_renewal_hours: 720,
            backup: Default::default(),
            peer_names_only: true,
        }
    }

    fn member() -> MemberSpec {
        crate::member::test_member("e1", "10.0.0.11")
    }

    #[test]
    fn config_has_tls_on_both_sides_and_the_initial_cluster() {
        let cluster = vec![
            "e1=https://10.0.0.11:2380".to_string(),
            "e2=https://10.0.0.12:2380".to_string(),
        ];
        let text = config_file(&member(), &settings(), &cluster, InitialState::New);
        assert!(text.contains("name: \"e1\"\n"));
        assert!(text
            .contains("listen-client-urls: \"https://10.0.0.11:2379,https://127.0.0.1:2379\"\n"));
        assert!(text.contains(
            "initial-cluster: \"e1=https://10.0.0.11:2380,e2=https://10.0.0.12:2380\"\n"
        ));
        assert!(text.contains("initial-cluster-state: \"new\"\n"));
        assert_eq!(text.matches("client-cert-auth: true").count(), 2);
        assert!(text.contains("snapshot-count: 10000\n") && text.contains("log-level: \"warn\"\n"));
        assert!(text.contains("peer-transport-security:\n  cert-file: \"/etc/etcd/pki/peer.crt\""));
        assert!(
            text.ends_with("  client-cert-auth: true\n  allowed-cn: [\"etcd-peer\"]\n"),
            "the peer section, last, accepts members only:\n{text}"
        );
    }

    #[test]
    fn the_http_gateway_and_pre_vote_are_on_unless_extra_flags_turn_them_off() {
        for key in ["enable-grpc-gateway", "pre-vote"] {
            let on = config_file(&member(), &settings(), &[], InitialState::New);
            assert_eq!(on.matches(&format!("{key}: true\n")).count(), 1, "{on}");
            let mut off = settings();
            off.extra_flags.insert(key.into(), "false".into());
            let text = config_file(&member(), &off, &[], InitialState::New);
            assert_eq!(text.matches(key).count(), 1, "{text}");
            assert!(text.contains(&format!("{key}: false\n")), "{text}");
        }
    }

    #[test]
    fn corruption_checks_are_on_in_the_spelling_of_the_version() {
        let rendered = |version: &str, flags: &[(&str, &str)]| {
            let mut s = settings();
            s.etcd_version = version.into();
            s.extra_flags = flags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            config_file(&member(), &s, &[], InitialState::New)
        };
        let old = rendered("3.4.23", &[]);
        assert!(
            !old.contains("corrupt") && !old.contains("feature-gates"),
            "{old}"
        );
        let v35 = rendered("3.5.36", &[]);
        assert!(
            v35.contains("experimental-initial-corrupt-check: true\n"),
            "{v35}"
        );
        assert!(
            v35.contains("experimental-compact-hash-check-enabled: true\n"),
            "{v35}"
        );
        for version in ["3.6.17", "3.7.4"] {
            let text = rendered(version, &[]);
            assert!(
                text.contains(
                    "feature-gates: \"InitialCorruptCheck=true,CompactHashCheck=true\"\n"
                ),
                "{text}"
            );
            assert!(!text.contains("experimental-"), "{text}");
        }
        let own = rendered("3.6.17", &[("feature-gates", "CompactHashCheck=false")]);
        assert_eq!(own.matches("feature-gates").count(), 1, "{own}");
        let old_spelling = rendered("3.6.17", &[("experimental-initial-corrupt-check", "false")]);
        assert!(!old_spelling.contains("feature-gates"), "{old_spelling}");
        let off = rendered("3.5.36", &[("experimental-initial-corrupt-check", "false")]);
        assert_eq!(
            off.matches("experimental-initial-corrupt-check").count(),
            1,
            "{off}"
        );
    }

    #[test]
    fn names_and_tokens_that_look_like_numbers_stay_strings() {
        let mut m = member();
        m.name = "010".into();
        let mut s = settings();
        s.token = "1.10".into();
        let text = config_file(&m, &s, &[], InitialState::New);
        assert!(text.contains("name: \"010\"\n"), "{text}");
        assert!(text.contains("initial-cluster-token: \"1.10\"\n"), "{text}");
        assert!(unit_file(&s).contains("TimeoutStartSec=0\n"));
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_urls() {
        let mut m = member();
        m.host = "fd00::11".into();
        assert_eq!(m.client_url(&settings()), "https://[fd00::11]:2379");
    }

    #[test]
    fn a_member_known_by_name_listens_on_all_addresses_and_advertises_the_name() {
        let mut m = member();
        m.host = "e1.etcd.example".into();
        let config = config_file(&m, &settings(), &[], InitialState::New);
        assert!(
            config.contains("listen-peer-urls: \"https://0.0.0.0:2380\"\n"),
            "{config}"
        );
        assert!(
            config.contains("listen-client-urls: \"https://0.0.0.0:2379\"\n"),
            "{config}"
        );
        assert!(
            config.contains("advertise-client-urls: \"https://e1.etcd.example:2379\"\n"),
            "{config}"
        );
        assert!(
            config.contains("initial-advertise-peer-urls: \"https://e1.etcd.example:2380\"\n"),
            "{config}"
        );
        let by_ip = config_file(&member(), &settings(), &[], InitialState::New);
        assert!(
            by_ip.contains("listen-peer-urls: \"https://10.0.0.11:2380\"\n"),
            "{by_ip}"
        );
    }

    #[test]
    fn etcdctl_env_points_at_the_local_member_with_its_certificates() {
        let env = etcdctl_env(&settings());
        // etcdctl speaks v3 by default from 3.4; etcd 3.6's warns about the variable.
        assert!(!env.contains("ETCDCTL_API"), "{env}");
        for line in [
            "ETCDCTL_ENDPOINTS='https://127.0.0.1:2379'\n",
            "ETCDCTL_CACERT='/etc/etcd/pki/ca.crt'\n",
            "ETCDCTL_KEY='/etc/etcd/pki/etcdctl.key'\n",
        ] {
            assert!(env.contains(line), "{line}");
        }
    }

    #[test]
    fn unit_is_notify_and_restarts_on_failure() {
        let unit = unit_file(&settings());
        for line in [
            "Type=notify",
            "Restart=on-failure",
            "User=etcd",
            "LimitNOFILE=65536",
        ] {
            assert!(unit.contains(line), "{line}");
        }
        assert!(
            unit.contains("ExecStart=/usr/local/bin/etcd --config-file /etc/etcd/etcd.conf.yml")
        );
    }
}
