//! What `etcd_cluster` and `etcd_member` share: the schema pieces of a
//! member's settings, SSH and binary source, their validation, and the
//! reading of a configuration into the domain's settings and member specs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::Observed;
use crate::framework::{Attribute, AttributePath, Block, Diagnostics, Plan, Type, Value};
use crate::member::render::MANAGED_KEYS;
use crate::member::{BinarySource, ClusterSettings, Layout, MemberSpec, PACKAGE_BIN_DIR};
use crate::ssh;

/// How long an operation may take when `timeouts` does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The `ssh` block. `tunnel` is offered where the provider reaches the
/// client API of members it manages (etcd_cluster).
pub fn ssh_block(tunnel: bool) -> Block {
    let block = Block::new("How to reach the member hosts. The system `ssh` is used, so `~/.ssh/config`, the agent and ProxyJump apply; anything unset here is left to them.")
        .attribute(Attribute::optional("user", Type::String, "User to log in as; it must be root or have passwordless sudo as root. Default: from ssh_config."))
        .attribute(Attribute::optional("port", Type::Number, "SSH port. Default: from ssh_config (22)."))
        .attribute(Attribute::optional("private_key_path", Type::String, "Private key file to log in with."))
        .attribute(Attribute::optional("known_hosts_path", Type::String, "known_hosts file holding the hosts' keys."))
        .attribute(Attribute::optional("config_file", Type::String, "An ssh_config file to use instead of `~/.ssh/config`."))
        .attribute(Attribute::with_default(
            "strict_host_key_checking",
            Type::Bool,
            Value::Bool(true),
            "Refuse hosts whose key is not in known_hosts (default). Turning this off accepts any host key.",
        ));
    if !tunnel {
        return block;
    }
    block.attribute(Attribute::with_default(
        "tunnel",
        Type::Bool,
        Value::Bool(false),
        "Reach the members' client API through SSH port forwards to their loopback client URL, for when the \
         client port is not reachable from the machine running Terraform. Default false: direct.",
    ))
}

/// The `binary_source` block.
pub fn binary_source_block() -> Block {
    Block::new("Where the etcd binaries come from: exactly one of `local_path`, `url` with `sha256`, or `os_package = true`.")
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
        ))
}

/// The `timeouts` block.
pub fn timeouts_block(create: &'static str, update: &'static str) -> Block {
    Block::new("How long operations may take, as durations like `90s`, `5m` or `1h`.")
        .attribute(Attribute::optional("create", Type::String, create))
        .attribute(Attribute::optional("update", Type::String, update))
}

/// A member's own attributes: `name`, `host`, `ssh_host`, `extra_sans`.
/// With `replace`, a new name or host replaces the member.
pub fn member_attributes(block: Block, replace: bool) -> Block {
    let fixed = |a: Attribute| if replace { a.replace_on_change() } else { a };
    block
        .attribute(fixed(Attribute::required("name", Type::String, "Member name, unique in the cluster.")))
        .attribute(fixed(Attribute::required(
            "host",
            Type::String,
            "IP address or DNS name of the host: used in the member's URLs and certificates, and to reach it over SSH unless `ssh_host` is set.",
        )))
        .attribute(Attribute::optional("ssh_host", Type::String, "Address or ssh_config host name to SSH to, when it differs from `host`."))
        .attribute(Attribute::optional("extra_sans", Type::list(Type::String), "More DNS names and IPs for the member's certificates."))
}

/// The settings every member has: version, ports, paths, flags,
/// certificate lifetimes, and what destroy does with the data. With
/// `replace`, a new port or path replaces the member.
pub fn settings_attributes(block: Block, replace: bool) -> Block {
    let fixed = |a: Attribute| if replace { a.replace_on_change() } else { a };
    block
        .attribute(Attribute::required("etcd_version", Type::String, "The etcd version to run, like `3.4.23`; the installed binary must report it."))
        .attribute(fixed(Attribute::with_default("client_port", Type::Number, Value::number(2379.0), "Client port. Default 2379.")))
        .attribute(fixed(Attribute::with_default("peer_port", Type::Number, Value::number(2380.0), "Peer port. Default 2380.")))
        .attribute(Attribute::with_default(
            "metrics_url",
            Type::String,
            Value::string("http://127.0.0.1:2381"),
            "Where each member serves `/metrics` and `/health` without TLS. Default `http://127.0.0.1:2381`.",
        ))
        .attribute(fixed(Attribute::with_default("bin_dir", Type::String, Value::string("/usr/local/bin"), "Directory for `etcd` and `etcdctl` on the hosts.")))
        .attribute(fixed(Attribute::with_default("config_dir", Type::String, Value::string("/etc/etcd"), "Directory for the configuration file and `pki/`.")))
        .attribute(fixed(Attribute::with_default(
            "pki_dir",
            Type::String,
            Value::string("/etc/etcd/pki"),
            "Directory for `ca.crt`, `server.crt`/`.key` and `peer.crt`/`.key` (the file names kubeadm uses; set \
             `/etc/kubernetes/pki/etcd` for its layout).",
        )))
        .attribute(fixed(Attribute::with_default("data_dir", Type::String, Value::string("/var/lib/etcd"), "etcd's data directory (created 0700, owned by `etcd`).")))
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
}

/// (major, minor, patch) of a version like `3.4.23`.
pub fn version_parts(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// Why going from etcd `from` to `to` is not a supported rolling upgrade.
pub fn upgrade_refusal(from: &str, to: &str) -> Option<String> {
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

/// `90s`, `5m`, `1h30m` as a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
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

pub fn timeout(config: &Value, which: &str) -> Duration {
    config
        .get("timeouts")
        .get(which)
        .as_str()
        .and_then(parse_duration)
        .unwrap_or(DEFAULT_TIMEOUT)
}

pub fn is_valid_host(host: &str) -> bool {
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

pub fn is_version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Checks a member's name and host; false if either is invalid.
pub fn validate_member(
    member: &Value,
    at: &dyn Fn(&str) -> AttributePath,
    diags: &mut Diagnostics,
) -> bool {
    let mut valid = true;
    if let Some(name) = member.get("name").as_str() {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            diags.error_at(
                at("name"),
                "Invalid member name",
                format!("{name:?}: use letters, digits, '-', '_' and '.'."),
            );
            valid = false;
        }
    }
    if let Some(host) = member.get("host").as_str() {
        if !is_valid_host(host) {
            diags.error_at(
                at("host"),
                "Invalid host",
                format!("{host:?} is neither an IP address nor a DNS name."),
            );
            valid = false;
        }
    }
    valid
}

pub fn validate_binary_source(config: &Value, diags: &mut Diagnostics) {
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

pub fn validate_settings(config: &Value, diags: &mut Diagnostics) {
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
    validate_ca_pair(config, diags);
}

/// `ca_cert_pem` must be a CA certificate and `ca_key_pem` its key.
pub fn validate_ca_pair(config: &Value, diags: &mut Diagnostics) {
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

/// `cluster_endpoints`: at least one `https://HOST:PORT` client URL.
pub fn validate_endpoints(config: &Value, diags: &mut Diagnostics) {
    let endpoints = config.get("cluster_endpoints");
    if !endpoints.is_wholly_known() {
        return;
    }
    let at = AttributePath::root("cluster_endpoints");
    if endpoints.as_list().is_empty() {
        diags.error_at(
            at.clone(),
            "No cluster endpoints",
            "Give at least one client URL of the running cluster.",
        );
    }
    for (i, url) in endpoints.as_strings().iter().enumerate() {
        let host_port = url.strip_prefix("https://").unwrap_or("");
        let valid = host_port
            .trim_end_matches('/')
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            diags.error_at(
                at.index(i),
                "Invalid cluster endpoint",
                format!(
                    "{url:?} is not a client URL like https://10.0.0.11:2379 (the cluster must use TLS)."
                ),
            );
        }
    }
}

/// The settings of a (wholly known) configuration or state.
pub fn settings(value: &Value, token: &str) -> ClusterSettings {
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
    ClusterSettings {
        token: token.to_string(),
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
    }
}

/// A member from its attributes and the resource's `ssh` block.
pub fn member_spec(member: &Value, ssh_block: &Value) -> MemberSpec {
    let path = |name: &str| ssh_block.get(name).as_str().map(PathBuf::from);
    let host = member.str_or_empty("host").to_string();
    MemberSpec {
        name: member.str_or_empty("name").to_string(),
        extra_sans: member.get("extra_sans").as_strings(),
        ssh: ssh::Target {
            address: member.get("ssh_host").as_str().unwrap_or(&host).to_string(),
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
}

/// Settings a running member takes on by being rewritten and restarted
/// (member by member in a cluster; a new CA by a CA rotation there).
const ROLLED: &[&str] = &[
    "ca_cert_pem",
    "etcd_version",
    "extra_flags",
    "metrics_url",
    "cert_validity_hours",
];

/// For a plan on a running cluster or member: refuses an unsupported
/// version change, and tells whether any rolled setting changes.
pub fn plan_rolled_change(plan: &mut Plan<'_>) -> bool {
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
    ROLLED
        .iter()
        .any(|name| plan.prior.get(name) != plan.planned.get(name))
}

/// A warning for each host or endpoint that could not be reached.
pub fn warn_unreachable(diags: &mut Diagnostics, observed: &Observed) {
    for warning in &observed.warnings {
        diags.warning("Cluster member not reachable", warning.clone());
    }
}

/// After create: members that are not healthy yet are a warning, never an
/// error. An error would taint the resource, and Terraform replaces a
/// tainted resource; as `status` drift, the next apply repairs them.
pub fn warn_if_unhealthy(diags: &mut Diagnostics, summary: &str, observed: &Observed) {
    if !observed.all_healthy() {
        diags.warning(
            summary,
            format!(
                "{:?}\n\nThe next plan shows this as drift and apply repairs it.",
                observed.status
            ),
        );
    }
}

/// A map of strings as a value.
pub fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::string(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
