//! Plan-time checks of the free-form strings that reach root-run commands
//! and root-owned files on the hosts (directories: `directories.rs`): `extra_flags` (keys
//! and values of etcd's config file), the cluster name, the metrics URL,
//! and the SSH settings. Each finding is an error on its attribute.

use crate::framework::{AttributePath, Diagnostics, Value};
use crate::member::render::MANAGED_KEYS;

pub fn validate(config: &Value, diags: &mut Diagnostics) {
    super::directories::validate_directories(config, diags);
    validate_flags(config, diags);
    validate_metrics_url(config, diags);
    validate_ssh(config, diags);
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
