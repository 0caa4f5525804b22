//! Reading a (wholly known) configuration or state into the domain's
//! `ClusterSettings` and `MemberSpec`, and the `timeouts` durations.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::schema::{DEFAULT_CLIENT_PORT, DEFAULT_PEER_PORT};
use crate::framework::{Context, Value};
use crate::member::{BinarySource, ClusterSettings, Layout, MemberSpec, PACKAGE_BIN_DIR};
use crate::ssh;

/// How long an operation may take when `timeouts` does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long one command on a host may run when `timeouts` does not say:
/// long enough for a download or an apt install on a slow link.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// The longest `timeouts` value: a week. Anything longer is a typo, and
/// would overflow the clock arithmetic of a wait.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// `90s`, `5m`, `1h30m` as a duration, at most [`MAX_TIMEOUT`].
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
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    let total = Duration::from_secs(total);
    (number.is_empty() && !total.is_zero() && total <= MAX_TIMEOUT).then_some(total)
}

/// A `timeouts` value: `create`, `update` (default 5m) or `command`
/// (default [`DEFAULT_COMMAND_TIMEOUT`]).
pub fn timeout(config: &Value, which: &str) -> Duration {
    let default = if which == "command" {
        DEFAULT_COMMAND_TIMEOUT
    } else {
        DEFAULT_TIMEOUT
    };
    config
        .get("timeouts")
        .get(which)
        .as_str()
        .and_then(parse_duration)
        .unwrap_or(default)
}

/// How long an SSH connection stays open after a run when `ssh.control_persist`
/// does not say: long enough for the apply after a plan, or the next check.
const DEFAULT_KEEP_OPEN: Duration = Duration::from_secs(60);

/// A `control_persist` value: a duration, or `0s` (no connection kept).
pub fn parse_keep_open(text: &str) -> Option<Duration> {
    if text.trim() == "0s" {
        return Some(Duration::ZERO);
    }
    parse_duration(text)
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
        client_port: number("client_port", DEFAULT_CLIENT_PORT) as u16,
        peer_port: number("peer_port", DEFAULT_PEER_PORT) as u16,
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
        backup: super::backup::backup_settings(value),
        peer_names_only: true,
    }
}

/// A member from its attributes, the resource's `ssh` block, the time
/// limit of one command on its host, and Terraform's stop request.
pub fn member_spec(
    member: &Value,
    ssh_block: &Value,
    command_timeout: Duration,
    ctx: &Context,
) -> MemberSpec {
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
            command_timeout,
            keep_open: ssh_block
                .get("control_persist")
                .as_str()
                .and_then(parse_keep_open)
                .unwrap_or(DEFAULT_KEEP_OPEN),
            sudo: ssh_block.get("sudo").as_bool().unwrap_or(false),
            stop: ctx.stop_signal(),
        },
        host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("168h"), Some(MAX_TIMEOUT));
        assert_eq!(parse_duration("169h"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
        assert_eq!(parse_duration("18446744073709551615h"), None);
    }
}
