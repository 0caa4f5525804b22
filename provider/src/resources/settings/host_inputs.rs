//! Plan-time checks of the free-form strings that reach root-run commands
//! and root-owned files on the hosts: directories (they go into the unit,
//! `etcdctl.env` and `install`/`chown`/`rm` commands), `extra_flags` (keys
//! and values of etcd's config file), the cluster name, the metrics URL,
//! and the SSH settings. Each finding is an error on its attribute.

use std::collections::BTreeMap;

use super::schema::{DEFAULT_BIN_DIR, DEFAULT_CONFIG_DIR, DEFAULT_DATA_DIR, DEFAULT_PKI_DIR};
use crate::framework::{AttributePath, Diagnostics, Value};
use crate::member::render::MANAGED_KEYS;

/// Directories the provider must never own, fill or delete as a member's
/// configuration, certificate or data directory.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/etc/kubernetes",
    "/etc/kubernetes/pki",
    "/etc/ssh",
    "/etc/systemd",
    "/etc/systemd/system",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/run",
    "/var/tmp",
];

/// The directories a member uses, their defaults, and whether a system
/// directory is refused for it (`bin_dir` only gets the two binaries).
const DIRECTORIES: &[(&str, &str, bool)] = &[
    ("bin_dir", DEFAULT_BIN_DIR, false),
    ("config_dir", DEFAULT_CONFIG_DIR, true),
    ("pki_dir", DEFAULT_PKI_DIR, true),
    ("data_dir", DEFAULT_DATA_DIR, true),
];

pub fn validate(config: &Value, diags: &mut Diagnostics) {
    validate_directories(config, diags);
    validate_flags(config, diags);
    validate_metrics_url(config, diags);
    validate_ssh(config, diags);
}

/// Why `path` is not acceptable as a directory on the hosts, if it is not.
pub fn directory_problem(path: &str, system_refused: bool) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("{path:?} is not an absolute path."));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._/-".contains(*c)))
    {
        return Some(format!(
            "{path:?} has {c:?}; use letters, digits, '.', '_', '-' and '/'."
        ));
    }
    let normal = path.len() == 1
        || (!path.ends_with('/')
            && path.split('/').skip(1).all(|part| {
                !part.is_empty() && part != "." && part != ".." && !part.starts_with('-')
            }));
    if !normal {
        return Some(format!(
            "{path:?} is not a normalised path (no empty, '.' or '..' parts, no part starting with '-', no trailing '/')."
        ));
    }
    if system_refused && SYSTEM_DIRS.contains(&path) {
        return Some(format!(
            "{path:?} is a system directory; the provider sets its owner and mode (and may delete a data \
             directory), so give the member a directory of its own, e.g. /var/lib/etcd or /etc/etcd."
        ));
    }
    None
}

fn validate_directories(config: &Value, diags: &mut Diagnostics) {
    let mut valid = BTreeMap::new();
    for (name, default, system_refused) in DIRECTORIES {
        // Unset: the default, which the plan fills in. Unknown: not yet.
        let path = match config.get(name) {
            Value::Null => *default,
            value => match value.as_str() {
                Some(path) => path,
                None => continue,
            },
        };
        match directory_problem(path, *system_refused) {
            Some(problem) => {
                diags.error_at(AttributePath::root(name), "Invalid directory", problem)
            }
            None => {
                valid.insert(*name, path.to_string());
            }
        }
    }
    let inside = |dir: &str, parent: &str| dir == parent || dir.starts_with(&format!("{parent}/"));
    let named: Vec<(&str, &String)> = valid.iter().map(|(n, p)| (*n, p)).collect();
    for (i, (name, path)) in named.iter().enumerate() {
        for (other, other_path) in &named[i + 1..] {
            let overlap = path == other_path
                || ((*name == "data_dir" || *other == "data_dir")
                    && (inside(path, other_path) || inside(other_path, path)));
            if overlap {
                diags.error_at(
                    AttributePath::root(other),
                    "Directories overlap",
                    format!(
                        "{other} ({other_path}) and {name} ({path}) must be distinct, and the data directory \
                         may neither hold nor sit inside another."
                    ),
                );
            }
        }
    }
}

fn validate_flags(config: &Value, diags: &mut Diagnostics) {
    let Value::Map(flags) = config.get("extra_flags") else {
        return;
    };
    let at = AttributePath::root("extra_flags");
    for (key, value) in flags {
        let flag = key.as_str();
        // Keys are written into etcd's config file, which ignores any it
        // does not know: "--snapshot-count" would do nothing.
        let well_formed = !flag.is_empty()
            && !flag.starts_with('-')
            && flag
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !well_formed {
            diags.error_at(
                at.clone(),
                "Invalid flag name",
                format!("{key:?} is not an etcd flag name: use lower-case letters, digits and '-', without leading dashes (e.g. \"snapshot-count\")."),
            );
        } else if let Some(why) = refused_flag(flag) {
            diags.error_at(at.key(key), "Flag refused", why);
        } else if MANAGED_KEYS.contains(&flag) {
            diags.error_at(
                at.clone(),
                "Flag managed by the provider",
                format!("{key:?} is set by the provider from the resource's attributes and cannot be overridden."),
            );
        }
        if let Some(text) = value.as_str() {
            if text.chars().any(char::is_control) {
                diags.error_at(
                    at.key(key),
                    "Invalid flag value",
                    format!("The value of {key:?} has a control character (a newline?)."),
                );
            }
        }
    }
}

/// Why a flag that etcd knows may not be set through `extra_flags`: each
/// would break the cluster as a roll reached each member.
fn refused_flag(flag: &str) -> Option<String> {
    match flag {
        "force-new-cluster" => Some(
            "force-new-cluster makes a member forget its peers and start a cluster of one: rolled through \
             the members, it splits the cluster. Recover a lost quorum as the backups guide shows."
                .into(),
        ),
        "wal-dir" => Some(
            "wal-dir moves the member's log outside its data directory, which the provider neither creates, \
             moves aside nor backs up; changing it makes a member lose its log."
                .into(),
        ),
        _ if flag == "discovery" || flag.starts_with("discovery-") => Some(format!(
            "{flag} bootstraps through a discovery service; the provider bootstraps with the members it is given."
        )),
        _ => None,
    }
}

/// `etcd_cluster.name`, which is also the initial cluster token.
pub fn validate_cluster_name(config: &Value, diags: &mut Diagnostics) {
    let Some(name) = config.get("name").as_str() else {
        return;
    };
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid {
        diags.error_at(
            AttributePath::root("name"),
            "Invalid name",
            format!("{name:?}: use 1 to 128 letters, digits, '.', '_' and '-'."),
        );
    }
}

fn validate_metrics_url(config: &Value, diags: &mut Diagnostics) {
    let Some(url) = config.get("metrics_url").as_str() else {
        return;
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let valid = rest.is_some_and(|rest| {
        rest.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
        })
    });
    if !valid {
        diags.error_at(
            AttributePath::root("metrics_url"),
            "Invalid metrics URL",
            format!("{url:?} is not a URL like http://127.0.0.1:2381."),
        );
    }
}

pub fn validate_ssh(config: &Value, diags: &mut Diagnostics) {
    let ssh = config.get("ssh");
    let at = AttributePath::root("ssh");
    validate_login(ssh, &at, diags);
    if let Some(text) = ssh.get("control_persist").as_str() {
        if super::read::parse_keep_open(text).is_none() {
            diags.error_at(
                at.attribute("control_persist"),
                "Invalid duration",
                format!("{text:?} is not a duration like 60s, 10m or 0s."),
            );
        }
    }
}

/// The `port` and `user` of a block that logs in somewhere over SSH.
pub(super) fn validate_login(block: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    if let Some(port) = block.get("port").as_f64() {
        if !(1.0..=65535.0).contains(&port) || port.fract() != 0.0 {
            diags.error_at(
                at.attribute("port"),
                "Invalid port",
                format!("{port} is not a port number."),
            );
        }
    }
    if let Some(user) = block.get("user").as_str() {
        let valid = !user.is_empty()
            && !user.starts_with('-')
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            diags.error_at(
                at.attribute("user"),
                "Invalid SSH user",
                format!("{user:?} is not a user name."),
            );
        }
    }
}

/// Why an `ssh_host` is not acceptable, if it is not: it may be an
/// address or an ssh_config alias, but never an option or have spaces.
pub fn ssh_host_problem(host: &str) -> Option<String> {
    let valid = !host.is_empty()
        && !host.starts_with('-')
        && !host.chars().any(|c| c.is_whitespace() || c.is_control());
    (!valid).then(|| format!("{host:?} is neither an address nor an ssh_config host name."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_must_be_absolute_plain_and_not_the_systems() {
        for good in [
            "/var/lib/etcd",
            "/etc/etcd/pki",
            "/srv/etcd-1/data",
            "/opt/etcd_2.0",
        ] {
            assert_eq!(directory_problem(good, true), None, "{good}");
        }
        assert_eq!(directory_problem("/usr/local/bin", false), None);
        for bad in [
            "var/lib/etcd",
            "/var/lib/etcd/",
            "/var//lib",
            "/var/lib/../etc",
            "/var/./lib",
            "/var/lib/$(id)",
            "/var/lib/etcd\nExecStartPre=/bin/sh",
            "/var/lib/e tcd",
            "/var/-rf",
            "",
        ] {
            assert!(directory_problem(bad, false).is_some(), "{bad:?}");
        }
        for system in ["/", "/etc", "/var/lib", "/usr", "/tmp", "/root"] {
            assert!(directory_problem(system, true).is_some(), "{system}");
        }
    }

    fn errors(config: Value) -> Vec<String> {
        let mut diags = Diagnostics::default();
        validate(&config, &mut diags);
        diags
            .0
            .iter()
            .map(|d| d.path.as_ref().map(|p| p.to_string()).unwrap_or_default())
            .collect()
    }

    #[test]
    fn overlapping_directories_are_refused() {
        let dirs = |config: &str, pki: &str, data: &str| {
            Value::object([
                ("bin_dir", Value::string("/usr/local/bin")),
                ("config_dir", Value::string(config)),
                ("pki_dir", Value::string(pki)),
                ("data_dir", Value::string(data)),
            ])
        };
        assert!(errors(dirs("/etc/etcd", "/etc/etcd/pki", "/var/lib/etcd")).is_empty());
        assert_eq!(
            errors(dirs("/etc/etcd", "/etc/etcd", "/var/lib/etcd")),
            vec!["pki_dir"]
        );
        assert_eq!(
            errors(dirs("/etc/etcd", "/var/lib/etcd/pki", "/var/lib/etcd")),
            vec!["pki_dir"]
        );
        assert_eq!(
            errors(dirs(
                "/srv/etcd/data/conf",
                "/etc/etcd/pki",
                "/srv/etcd/data"
            )),
            vec!["data_dir"]
        );
    }

    #[test]
    fn flag_names_are_plain_and_values_have_no_newlines() {
        let flags = |key: &str, value: &str| {
            Value::object([(
                "extra_flags",
                Value::Map([(key.to_string(), Value::string(value))].into()),
            )])
        };
        assert!(errors(flags("snapshot-count", "10000")).is_empty());
        for refused in ["force-new-cluster", "wal-dir", "discovery", "discovery-srv"] {
            assert_eq!(
                errors(flags(refused, "x")),
                vec![format!("extra_flags[\"{refused}\"]")],
                "{refused}"
            );
        }
        for bad in [
            "--snapshot-count",
            "-x",
            "data-dir ",
            " data-dir",
            "data-dir",
            "--data-dir",
            "Data-Dir",
            "a\nb",
            "x: y",
            "",
        ] {
            assert_eq!(errors(flags(bad, "1")), vec!["extra_flags"], "{bad:?}");
        }
        assert_eq!(
            errors(flags("log-level", "info\ndata-dir: /tmp")),
            vec!["extra_flags[\"log-level\"]"]
        );
    }

    #[test]
    fn names_urls_and_ssh_settings_are_checked() {
        let mut diags = Diagnostics::default();
        validate_cluster_name(&Value::object([("name", Value::string("a b"))]), &mut diags);
        assert_eq!(diags.0.len(), 1);
        assert_eq!(
            errors(Value::object([("metrics_url", Value::string("ftp://x:1"))])),
            vec!["metrics_url"]
        );
        assert!(errors(Value::object([(
            "metrics_url",
            Value::string("http://127.0.0.1:2381")
        )]))
        .is_empty());
        let ssh = |key: &str, value: Value| Value::object([("ssh", Value::object([(key, value)]))]);
        assert_eq!(
            errors(ssh("port", Value::number(70000.0))),
            vec!["ssh.port"]
        );
        assert_eq!(
            errors(ssh("user", Value::string("-oProxyCommand=x"))),
            vec!["ssh.user"]
        );
        assert_eq!(
            errors(ssh("control_persist", Value::string("forever"))),
            vec!["ssh.control_persist"]
        );
        for fine in ["0s", "60s", "10m"] {
            assert!(errors(ssh("control_persist", Value::string(fine))).is_empty());
        }
        assert!(ssh_host_problem("-oProxyCommand=x").is_some());
        assert!(ssh_host_problem("bastion-1").is_none());
    }
}
