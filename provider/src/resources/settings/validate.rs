//! Plan-time validation of the settings `etcd_cluster` and `etcd_member`
//! share, each finding reported on its attribute. No host is touched.

use std::net::IpAddr;

use super::read::parse_duration;
use super::schema::{DEFAULT_CLIENT_PORT, DEFAULT_PEER_PORT};
use crate::framework::{AttributePath, Diagnostics, Value};
use crate::pki::MAX_VALIDITY_HOURS;
use crate::version::{flag_refusal, EtcdVersion};

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

/// Checks a member's name and host; false if either is invalid.
pub fn validate_member(
    member: &Value,
    at: &dyn Fn(&str) -> AttributePath,
    diags: &mut Diagnostics,
) -> bool {
    let mut valid = true;
    if let Some(name) = member.get("name").as_str() {
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            diags.error_at(
                at("name"),
                "Invalid member name",
                format!("{name:?}: use letters, digits, '-', '_' and '.' (not first)."),
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
    if let Some(problem) = member
        .get("ssh_host")
        .as_str()
        .and_then(super::host_inputs::ssh_host_problem)
    {
        diags.error_at(at("ssh_host"), "Invalid SSH host", problem);
        valid = false;
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
            let version = config.get("etcd_version").as_str().unwrap_or_default();
            for binary in crate::member::binaries::names(version) {
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
        match EtcdVersion::parse(version) {
            None => diags.error_at(
                AttributePath::root("etcd_version"),
                "Invalid etcd version",
                format!("{version:?} is not a version like 3.6.17."),
            ),
            Some(parsed) => {
                if let Some(why) = parsed.unsupported() {
                    diags.error_at(
                        AttributePath::root("etcd_version"),
                        "Unsupported etcd version",
                        why,
                    );
                }
                validate_flags_for_version(config, version, diags);
            }
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
    let port = |name: &str, default: i64| match config.get(name) {
        Value::Null => Some(default),
        value => value.as_i64(),
    };
    let client = port("client_port", DEFAULT_CLIENT_PORT);
    if client.is_some() && client == port("peer_port", DEFAULT_PEER_PORT) {
        diags.error_at(
            AttributePath::root("peer_port"),
            "Ports collide",
            "client_port and peer_port must differ.",
        );
    }
    super::host_inputs::validate(config, diags);
    if let Some(hours) = config.get("cert_validity_hours").as_f64() {
        if !(1.0..=MAX_VALIDITY_HOURS as f64).contains(&hours) || hours.fract() != 0.0 {
            diags.error_at(
                AttributePath::root("cert_validity_hours"),
                "Invalid validity",
                format!(
                    "cert_validity_hours must be a whole number of hours from 1 to {MAX_VALIDITY_HOURS} (100 years)."
                ),
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
    for which in ["create", "update", "command"] {
        if let Some(text) = config.get("timeouts").get(which).as_str() {
            if parse_duration(text).is_none() {
                diags.error_at(
                    AttributePath::root("timeouts").attribute(which),
                    "Invalid duration",
                    format!("{text:?} is not a duration like 90s, 5m or 1h, of at most 168h."),
                );
            }
        }
    }
    validate_ca_pair(config, diags);
}

/// `extra_flags` that `version` no longer (or does not yet) read, each
/// refused on its key with the spelling that version takes.
fn validate_flags_for_version(config: &Value, version: &str, diags: &mut Diagnostics) {
    let Value::Map(flags) = config.get("extra_flags") else {
        return;
    };
    for key in flags.keys() {
        if let Some(why) = flag_refusal(version, key.trim_start_matches('-')) {
            diags.error_at(
                AttributePath::root("extra_flags").key(key),
                "Setting not read by this etcd version",
                why,
            );
        }
    }
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
