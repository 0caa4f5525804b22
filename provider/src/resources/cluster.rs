//! `etcd_cluster`: a whole etcd cluster on hosts reached over SSH. Create
//! bootstraps it; read looks at the live member list and every host, so
//! drift shows up in the plan; update repairs drift one member at a time;
//! delete stops and removes the members (data directories are kept unless
//! `purge_data_on_destroy` is set).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::cluster::{self, ClusterSpec, Observed, HEALTHY};
use crate::framework::{
    Attribute, AttributePath, Block, Context, Diagnostics, NestedBlock, Plan, Private, Resource,
    Schema, Type, Value,
};
use crate::member::install::Fingerprints;
use crate::member::render::MANAGED_KEYS;
use crate::member::{BinarySource, ClusterSettings, Layout, MemberSpec, PACKAGE_BIN_DIR};
use crate::ssh;

pub struct EtcdCluster;

const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(300);

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

/// Settings a running cluster takes on by a rolling change (a new CA by a
/// CA rotation).
const ROLLED: &[&str] = &[
    "ca_cert_pem",
    "etcd_version",
    "extra_flags",
    "metrics_url",
    "cert_validity_hours",
];

/// (major, minor, patch) of a version like `3.4.23`.
fn version_parts(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// Why going from etcd `from` to `to` is not a supported rolling upgrade.
fn upgrade_refusal(from: &str, to: &str) -> Option<String> {
    let (Some(old), Some(new)) = (version_parts(from), version_parts(to)) else {
        return None;
    };
    if new < old {
        Some(format!(
            "{from} -> {to} is a downgrade; etcd supports rolling upgrades only."
        ))
    } else if new.0 != old.0 || new.1 > old.1 + 1 {
        Some(format!("{from} -> {to} skips a minor version; upgrade one minor version at a time (e.g. 3.4 -> 3.5)."))
    } else {
        None
    }
}

fn schema_block() -> Block {
    let ssh = Block::new("How to reach the member hosts. The system `ssh` is used, so `~/.ssh/config`, the agent and ProxyJump apply; anything unset here is left to them.")
        .attribute(Attribute::optional("user", Type::String, "User to log in as; it must be root or have passwordless sudo as root. Default: from ssh_config."))
        .attribute(Attribute::optional("port", Type::Number, "SSH port. Default: from ssh_config (22)."))
        .attribute(Attribute::optional("private_key_path", Type::String, "Private key file to log in with."))
        .attribute(Attribute::optional("known_hosts_path", Type::String, "known_hosts file holding the hosts' keys."))
        .attribute(Attribute::optional("config_file", Type::String, "An ssh_config file to use instead of `~/.ssh/config`."))
        .attribute(Attribute::with_default(
            "tunnel",
            Type::Bool,
            Value::Bool(false),
            "Reach the members' client API through SSH port forwards to their loopback client URL, for when the \
             client port is not reachable from the machine running Terraform. Default false: direct.",
        ))
        .attribute(Attribute::with_default(
            "strict_host_key_checking",
            Type::Bool,
            Value::Bool(true),
            "Refuse hosts whose key is not in known_hosts (default). Turning this off accepts any host key.",
        ));
    let binary_source = Block::new("Where the etcd binaries come from: exactly one of `local_path`, `url` with `sha256`, or `os_package = true`.")
        .attribute(Attribute::optional(
            "local_path",
            Type::String,
            "A directory on the machine running Terraform holding `etcd` and `etcdctl`; they are uploaded to each host.",
        ))
        .attribute(Attribute::optional(
            "url",
            Type::String,
            "URL of a release tarball (`etcd-vX.Y.Z-linux-amd64.tar.gz` layout) that each host downloads.",
        ))
        .attribute(Attribute::optional("sha256", Type::String, "SHA-256 of the tarball at `url` (hex); checked on each host."))
        .attribute(Attribute::optional(
            "os_package",
            Type::Bool,
            "Install the distribution's `etcd-server` and `etcd-client` packages with apt (Debian, Ubuntu). Their \
             binaries in /usr/bin are used (`bin_dir` does not apply), the packaged service is replaced by this \
             provider's unit, and destroy leaves the packages installed.",
        ));
    let member = Block::new("A member of the cluster. Members are bootstrapped together; their order is not significant.")
        .attribute(Attribute::required("name", Type::String, "Member name, unique in the cluster."))
        .attribute(Attribute::required(
            "host",
            Type::String,
            "IP address or DNS name of the host: used in the member's URLs and certificates, and to reach it over SSH unless `ssh_host` is set.",
        ))
        .attribute(Attribute::optional("ssh_host", Type::String, "Address or ssh_config host name to SSH to, when it differs from `host`."))
        .attribute(Attribute::optional("extra_sans", Type::list(Type::String), "More DNS names and IPs for the member's certificates."));
    let timeouts =
        Block::new("How long operations may take, as durations like `90s`, `5m` or `1h`.")
            .attribute(Attribute::optional(
                "create",
                Type::String,
                "Bootstrap, until every member is healthy. Default 5m.",
            ))
            .attribute(Attribute::optional(
                "update",
                Type::String,
                "Each step of a repair. Default 5m.",
            ));
    Block::new(
        "An etcd cluster bootstrapped over SSH on hosts with systemd. Each member gets the `etcd` user, a 0700 data \
         directory, the etcd binaries, server and peer certificates signed by the CA, a configuration file with \
         client and peer TLS, and a `Type=notify` systemd unit. The live member list and each host are compared \
         with the configuration on every plan: drift (a member stopped, removed, added out of band, or a changed \
         file) is a planned change, so `terraform plan -detailed-exitcode` exits 2, and apply repairs it one \
         member at a time.",
    )
    .attribute(Attribute::computed("id", Type::String, "The cluster ID (hex)."))
    .attribute(Attribute::required("name", Type::String, "Cluster name, also its initial cluster token."))
    .attribute(Attribute::required("ca_cert_pem", Type::String, "The CA certificate (PEM) the members' certificates are issued from, e.g. `etcd_ca.main.cert_pem`. A new CA on a \
     running cluster is rotated in member by member: every member first trusts the old and the new CA, then gets \
     certificates from the new one, then stops trusting the old one."))
    .attribute(
        Attribute::required("ca_key_pem", Type::String, "The CA's private key (PEM). It stays on the machine running Terraform; members never get it.")
            .sensitive(),
    )
    .attribute(Attribute::required("etcd_version", Type::String, "The etcd version to run, like `3.4.23`; the installed binary must report it."))
    .attribute(Attribute::with_default("client_port", Type::Number, Value::number(2379.0), "Client port. Default 2379."))
    .attribute(Attribute::with_default("peer_port", Type::Number, Value::number(2380.0), "Peer port. Default 2380."))
    .attribute(Attribute::with_default(
        "metrics_url",
        Type::String,
        Value::string("http://127.0.0.1:2381"),
        "Where each member serves `/metrics` and `/health` without TLS. Default `http://127.0.0.1:2381`.",
    ))
    .attribute(Attribute::with_default("bin_dir", Type::String, Value::string("/usr/local/bin"), "Directory for `etcd` and `etcdctl` on the hosts."))
    .attribute(Attribute::with_default("config_dir", Type::String, Value::string("/etc/etcd"), "Directory for the configuration file and `pki/`."))
    .attribute(Attribute::with_default(
        "pki_dir",
        Type::String,
        Value::string("/etc/etcd/pki"),
        "Directory for `ca.crt`, `server.crt`/`.key` and `peer.crt`/`.key` (the file names kubeadm uses; set \
         `/etc/kubernetes/pki/etcd` for its layout).",
    ))
    .attribute(Attribute::with_default("data_dir", Type::String, Value::string("/var/lib/etcd"), "etcd's data directory (created 0700, owned by `etcd`)."))
    .attribute(Attribute::optional(
        "extra_flags",
        Type::map(Type::String),
        "More settings for etcd's configuration file, by flag name without dashes (e.g. `snapshot-count = \"10000\"`).",
    ))
    .attribute(Attribute::with_default(
        "cert_validity_hours",
        Type::Number,
        Value::number(8760.0),
        "Validity of the members' server and peer certificates, in hours. Default 8760 (one year).",
    ))
    .attribute(Attribute::with_default(
        "cert_early_renewal_hours",
        Type::Number,
        Value::number(720.0),
        "How many hours before they expire the members' certificates are due for renewal: from then on the \
         member's `status` says so, the plan shows it (exit 2), and apply reissues them one member at a time. \
         Must be less than `cert_validity_hours`. Default 720 (thirty days).",
    ))
    .attribute(Attribute::with_default(
        "purge_data_on_destroy",
        Type::Bool,
        Value::Bool(false),
        "Delete the members' data directories on destroy. Default false: data directories are kept.",
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
    .block(NestedBlock::single("binary_source", binary_source))
    .block(NestedBlock::single("ssh", ssh))
    .block(NestedBlock::list("member", member).min_items(1))
    .block(NestedBlock::single("timeouts", timeouts))
}

/// `90s`, `5m`, `1h30m` as a duration.
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
    }
    (number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

fn timeout(config: &Value, which: &str) -> Duration {
    config
        .get("timeouts")
        .get(which)
        .as_str()
        .and_then(parse_duration)
        .unwrap_or(DEFAULT_CREATE_TIMEOUT)
}

fn is_valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
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
        if let Some(name) = member.get("name").as_str() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                diags.error_at(
                    member_path(i, "name"),
                    "Invalid member name",
                    format!("{name:?}: use letters, digits, '-', '_' and '.'."),
                );
            } else if let Some(first) = names.insert(name.to_string(), i) {
                diags.error_at(
                    member_path(i, "name"),
                    "Duplicate member name",
                    format!("{name:?} is also the name of member[{first}]."),
                );
            }
        }
        if let Some(host) = member.get("host").as_str() {
            if !is_valid_host(host) {
                diags.error_at(
                    member_path(i, "host"),
                    "Invalid host",
                    format!("{host:?} is neither an IP address nor a DNS name."),
                );
            } else if let Some(first) = hosts.insert(host.to_string(), i) {
                diags.error_at(
                    member_path(i, "host"),
                    "Duplicate host",
                    format!("{host:?} is also the host of member[{first}]; two members on one host would share ports and data."),
                );
            }
        }
    }
}

fn validate_binary_source(config: &Value, diags: &mut Diagnostics) {
    let source = config.get("binary_source");
    let at = AttributePath::root("binary_source");
    if source.is_null() {
        diags.error_at(
            at,
            "Missing binary source",
            "Add a binary_source block with local_path, url and sha256, or os_package = true.",
        );
        return;
    }
    let (local, url, sha) = (
        source.get("local_path"),
        source.get("url"),
        source.get("sha256"),
    );
    let package = source.get("os_package");
    if [local, url, sha, package]
        .iter()
        .any(|v| !v.is_wholly_known())
    {
        return;
    }
    let sources = [
        local.is_null(),
        url.is_null(),
        package.as_bool() != Some(true),
    ];
    if sources.iter().filter(|unset| !**unset).count() != 1 {
        diags.error_at(
            at,
            "Ambiguous binary source",
            "Set exactly one of local_path, url with sha256, or os_package = true.",
        );
        return;
    }
    match (local.as_str(), url.as_str()) {
        // os_package (both set was refused above).
        (None, None) | (Some(_), Some(_)) => {}
        (Some(dir), None) => {
            for binary in ["etcd", "etcdctl"] {
                if !std::path::Path::new(dir).join(binary).is_file() {
                    diags.error_at(
                        at.attribute("local_path"),
                        "etcd binaries not found",
                        format!("{dir}/{binary} does not exist."),
                    );
                }
            }
        }
        (None, Some(url)) => {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                diags.error_at(
                    at.attribute("url"),
                    "Invalid URL",
                    format!("{url:?} is not an http(s) URL."),
                );
            }
            match sha.as_str() {
                None => diags.error_at(
                    at.attribute("sha256"),
                    "Missing checksum",
                    "A url needs the sha256 of the tarball.",
                ),
                Some(sum) if sum.len() != 64 || !sum.chars().all(|c| c.is_ascii_hexdigit()) => {
                    diags.error_at(
                        at.attribute("sha256"),
                        "Invalid checksum",
                        format!("{sum:?} is not 64 hex digits."),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

fn validate_settings(config: &Value, diags: &mut Diagnostics) {
    if let Some(version) = config.get("etcd_version").as_str() {
        if !is_version(version) {
            diags.error_at(
                AttributePath::root("etcd_version"),
                "Invalid etcd version",
                format!("{version:?} is not a version like 3.4.23."),
            );
        }
    }
    for port in ["client_port", "peer_port"] {
        if let Some(n) = config.get(port).as_f64() {
            if !(1.0..=65535.0).contains(&n) || n.fract() != 0.0 {
                diags.error_at(
                    AttributePath::root(port),
                    "Invalid port",
                    format!("{n} is not a port number."),
                );
            }
        }
    }
    if config.get("client_port").as_i64().is_some()
        && config.get("client_port") == config.get("peer_port")
    {
        diags.error_at(
            AttributePath::root("peer_port"),
            "Ports collide",
            "client_port and peer_port must differ.",
        );
    }
    if let Value::Map(flags) = config.get("extra_flags") {
        for key in flags
            .keys()
            .filter(|k| MANAGED_KEYS.contains(&k.trim_start_matches('-')))
        {
            diags.error_at(
                AttributePath::root("extra_flags"),
                "Flag managed by the provider",
                format!("{key:?} is set by the provider from the resource's attributes and cannot be overridden."),
            );
        }
    }
    if let Some(hours) = config.get("cert_validity_hours").as_f64() {
        if hours < 1.0 || hours.fract() != 0.0 {
            diags.error_at(
                AttributePath::root("cert_validity_hours"),
                "Invalid validity",
                "cert_validity_hours must be a whole number of hours, at least 1.",
            );
        }
    }
    let (validity, early) = (
        config.get("cert_validity_hours"),
        config.get("cert_early_renewal_hours"),
    );
    if let (true, Some(early)) = (validity.is_wholly_known(), early.as_f64()) {
        let validity = validity.as_f64().unwrap_or(8760.0);
        if early < 0.0 || early >= validity {
            diags.error_at(
                AttributePath::root("cert_early_renewal_hours"),
                "Invalid early renewal",
                format!(
                    "cert_early_renewal_hours ({early}) must be zero or more and less than cert_validity_hours \
                     ({validity}); otherwise certificates would be due for renewal as soon as they are issued."
                ),
            );
        }
    }
    for which in ["create", "update"] {
        if let Some(text) = config.get("timeouts").get(which).as_str() {
            if parse_duration(text).is_none() {
                diags.error_at(
                    AttributePath::root("timeouts").attribute(which),
                    "Invalid duration",
                    format!("{text:?} is not a duration like 90s, 5m or 1h."),
                );
            }
        }
    }
    if let (Some(cert), Some(key)) = (
        config.get("ca_cert_pem").as_str(),
        config.get("ca_key_pem").as_str(),
    ) {
        if let Err(e) = crate::pki::inspect_ca(cert, key) {
            diags.error_at(
                AttributePath::root("ca_key_pem"),
                "CA certificate and key do not fit",
                e.to_string(),
            );
        }
    }
}

/// The domain view of a (wholly known) configuration or state.
fn spec(value: &Value) -> ClusterSpec {
    let number = |name: &str, default: i64| value.get(name).as_i64().unwrap_or(default);
    let source = value.get("binary_source");
    let binary_source = match source.get("local_path").as_str() {
        Some(dir) => BinarySource::LocalPath(dir.to_string()),
        None if source.get("os_package").as_bool() == Some(true) => BinarySource::OsPackage,
        None => BinarySource::Url {
            url: source.str_or_empty("url").to_string(),
            sha256: source.str_or_empty("sha256").to_lowercase(),
        },
    };
    let bin_dir = match binary_source {
        BinarySource::OsPackage => PACKAGE_BIN_DIR.to_string(),
        _ => value.str_or_empty("bin_dir").to_string(),
    };
    let settings = ClusterSettings {
        token: value.str_or_empty("name").to_string(),
        etcd_version: value.str_or_empty("etcd_version").to_string(),
        binary_source,
        client_port: number("client_port", 2379) as u16,
        peer_port: number("peer_port", 2380) as u16,
        metrics_url: value.str_or_empty("metrics_url").to_string(),
        layout: Layout {
            bin_dir,
            config_dir: value.str_or_empty("config_dir").to_string(),
            pki_dir: value.str_or_empty("pki_dir").to_string(),
            data_dir: value.str_or_empty("data_dir").to_string(),
        },
        extra_flags: match value.get("extra_flags") {
            Value::Map(flags) => flags
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        },
        cert_validity_hours: number("cert_validity_hours", 8760),
        cert_early_renewal_hours: number("cert_early_renewal_hours", 720),
    };
    let ssh_block = value.get("ssh");
    let path = |name: &str| ssh_block.get(name).as_str().map(PathBuf::from);
    let members = value
        .get("member")
        .as_list()
        .iter()
        .map(|m| {
            let host = m.str_or_empty("host").to_string();
            MemberSpec {
                name: m.str_or_empty("name").to_string(),
                extra_sans: m.get("extra_sans").as_strings(),
                ssh: ssh::Target {
                    address: m.get("ssh_host").as_str().unwrap_or(&host).to_string(),
                    user: ssh_block.get("user").as_str().map(str::to_string),
                    port: ssh_block.get("port").as_i64().map(|p| p as u16),
                    private_key_path: path("private_key_path"),
                    known_hosts_path: path("known_hosts_path"),
                    config_file: path("config_file"),
                    strict_host_key_checking: ssh_block
                        .get("strict_host_key_checking")
                        .as_bool()
                        .unwrap_or(true),
                    connect_timeout: Duration::from_secs(10),
                },
                host,
            }
        })
        .collect();
    ClusterSpec {
        settings,
        members,
        ca_cert_pem: value.str_or_empty("ca_cert_pem").to_string(),
        ca_key_pem: value.str_or_empty("ca_key_pem").to_string(),
        trusted_ca_pem: value.str_or_empty("ca_cert_pem").to_string(),
        tunnel: ssh_block.get("tunnel").as_bool().unwrap_or(false),
    }
}

const FINGERPRINTS: &str = "fingerprints";
/// Set in private state by import, until the first apply has adopted the
/// configuration's settings.
const ADOPTING: &str = "adopting";

fn load_fingerprints(private: &Private) -> BTreeMap<String, Fingerprints> {
    private
        .0
        .get(FINGERPRINTS)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn store_fingerprints(private: &mut Private, prints: &BTreeMap<String, Fingerprints>) {
    private.0.insert(
        FINGERPRINTS.into(),
        serde_json::to_value(prints).unwrap_or_default(),
    );
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::string(v)))
            .collect(),
    )
}

/// Writes what was observed into the computed attributes of `state`.
fn record(state: &mut Value, spec: &ClusterSpec, observed: &Observed) {
    if let Some(id) = observed.cluster_id {
        let id = crate::etcd::format_id(id);
        state.set("id", Value::string(&id));
        state.set("cluster_id", Value::string(id));
    }
    state.set("client_endpoints", Value::strings(spec.endpoints()));
    state.set("member_ids", string_map(&observed.member_ids));
    state.set("member_versions", string_map(&observed.versions));
    state.set("status", string_map(&observed.status));
    state.set(
        "leader",
        Value::string(observed.leader.clone().unwrap_or_default()),
    );
    state.set(
        "unmanaged_members",
        Value::strings(observed.unmanaged.clone()),
    );
}

fn warn_all(diags: &mut Diagnostics, observed: &Observed) {
    for warning in &observed.warnings {
        diags.warning("Cluster member not reachable", warning.clone());
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
        validate_binary_source(config, diags);
        validate_settings(config, diags);
    }

    async fn modify_plan(&self, _ctx: &Context, plan: &mut Plan<'_>) {
        if plan.is_create() {
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
        if let (Some(from), Some(to)) = (
            plan.prior.get("etcd_version").as_str(),
            plan.planned.get("etcd_version").as_str(),
        ) {
            if let Some(why) = upgrade_refusal(from, to) {
                plan.diags.error_at(
                    AttributePath::root("etcd_version"),
                    "Unsupported version change",
                    why,
                );
            }
        }
        let rolling = ROLLED
            .iter()
            .any(|name| plan.prior.get(name) != plan.planned.get(name));
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
        let desired = string_map(&desired);
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
        let prints = match cluster::bootstrap(ctx, &spec, timeout(planned, "create")).await {
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
        store_fingerprints(private, &prints);
        let observed = cluster::observe(ctx, &spec, &prints).await;
        warn_all(diags, &observed);
        let mut state = planned.clone();
        record(&mut state, &spec, &observed);
        if !observed.all_healthy() {
            diags.error(
                "Cluster not healthy after bootstrap",
                format!("{:?}", observed.status),
            );
        }
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
        let mut prints = load_fingerprints(private);
        let observed = cluster::observe(ctx, &spec, &prints).await;
        warn_all(diags, &observed);
        // Members without fingerprints (an imported cluster) get what the
        // hosts hold now as their baseline.
        for (name, files) in &observed.files {
            prints.entry(name.clone()).or_insert_with(|| files.clone());
        }
        store_fingerprints(private, &prints);
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
        let mut prints = load_fingerprints(private);
        let purge = planned
            .get("purge_data_on_destroy")
            .as_bool()
            .unwrap_or(false);
        let timeout = timeout(planned, "update");
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
            store_fingerprints(private, &prints);
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
        warn_all(diags, &observed);
        if repaired.is_ok() && observed.all_healthy() {
            // The hosts are now as they should be (this also takes in the
            // files at the paths a just-imported cluster's settings name).
            prints = observed.files.clone();
        }
        store_fingerprints(private, &prints);
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

    #[test]
    fn only_one_minor_version_up_at_a_time() {
        assert_eq!(upgrade_refusal("3.4.23", "3.5.1"), None);
        assert_eq!(upgrade_refusal("3.4.23", "3.4.24"), None);
        assert!(upgrade_refusal("3.5.1", "3.4.23")
            .unwrap()
            .contains("downgrade"));
        assert!(upgrade_refusal("3.3.27", "3.5.1")
            .unwrap()
            .contains("skips"));
        assert!(upgrade_refusal("3.5.1", "4.0.0").unwrap().contains("skips"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
    }
}
