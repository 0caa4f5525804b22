//! What is on a member host now, and how it differs from what the provider
//! wrote there.

use std::collections::BTreeMap;

use super::backup::{self, BackupState};
use super::install::Fingerprints;
use super::ClusterSettings;
use crate::ssh::{quote, Host, SshError};

/// A member host as one SSH round trip sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// `systemctl is-active etcd`: active, inactive, failed, activating...
    pub unit: String,
    /// SHA-256 of each managed file that exists, by fingerprint name.
    pub files: Fingerprints,
    /// The member's server certificate (PEM), to tell when it expires.
    pub server_cert_pem: String,
    /// Whether the data directory holds etcd data (`member/`).
    pub has_data: bool,
    /// The scheduled backup job.
    pub backup: BackupState,
}

/// Separates the sums from the certificate in the command's output.
const CERT_MARKER: &str = "--- server certificate ---";

/// Printed before the sums when the data directory holds etcd data.
const DATA_MARKER: &str = "--- member data present ---";

pub async fn observe(host: &Host, settings: &ClusterSettings) -> Result<HostState, SshError> {
    let l = &settings.layout;
    let mut paths: BTreeMap<String, String> = BTreeMap::new();
    paths.insert(l.config_file(), "config".into());
    paths.insert(l.unit_file(), "unit".into());
    paths.insert(l.etcdctl_env_file(), "etcdctl.env".into());
    for (name, cert, _) in l.certificate_files() {
        paths.insert(cert, name.into());
    }
    let quoted: Vec<String> = paths.keys().map(|p| quote(p)).collect();
    paths.insert(l.etcd(), "etcd".into());
    let server_cert = format!("{}/server.crt", l.pki_dir());
    let out = host
        .run(&format!(
            "systemctl is-active etcd; [ -d {}/member ] && echo '{DATA_MARKER}'; sha256sum {} 2>/dev/null; {}; \
             echo '{CERT_MARKER}'; cat {} 2>/dev/null; {}",
            quote(&l.data_dir),
            quoted.join(" "),
            binary_hash_command(&l.etcd(), &l.binary_hash_memo()),
            quote(&server_cert),
            backup::inspect_command(settings)
        ))
        .await?;
    Ok(parse(&out.stdout, &paths))
}

/// Prints `SHA256  BINARY` as `sha256sum` does, hashing the binary (tens
/// of megabytes, on every host at every plan) only when its size, times or
/// inode differ from those the memo was written for; the change time
/// moves with any write or rename, so a replaced binary is always hashed.
/// Safe under `set -e`: a missing or unwritable memo only costs a hash.
pub(super) fn binary_hash_command(binary: &str, memo: &str) -> String {
    let (binary, memo) = (quote(binary), quote(memo));
    format!(
        "if st=$(stat -c '%s:%.9Y:%.9Z:%i' {binary} 2>/dev/null); then \
           m=$(cat {memo} 2>/dev/null || true); \
           if [ \"${{m%% *}}\" = \"$st\" ]; then h=${{m#* }}; \
           else h=$(sha256sum {binary} | cut -d' ' -f1); {{ echo \"$st $h\" > {memo}; }} 2>/dev/null || true; fi; \
           echo \"$h  \"{binary}; \
         fi"
    )
}

fn parse(stdout: &str, paths: &BTreeMap<String, String>) -> HostState {
    let (stdout, backup) = stdout.split_once(backup::MARKER).unwrap_or((stdout, ""));
    let (sums, server_cert_pem) = stdout.split_once(CERT_MARKER).unwrap_or((stdout, ""));
    let mut lines = sums.lines();
    let unit = lines.next().unwrap_or("unknown").trim().to_string();
    let files = lines
        .filter_map(|l| l.split_once("  "))
        .filter_map(|(sum, path)| {
            paths
                .get(path.trim())
                .map(|name| (name.clone(), sum.to_string()))
        })
        .collect();
    HostState {
        unit,
        files,
        server_cert_pem: server_cert_pem.trim().to_string(),
        has_data: sums.contains(DATA_MARKER),
        backup: backup::parse(backup),
    }
}

/// Whether none of the provider's files is on the host (a new or wiped
/// machine).
pub fn nothing_installed(seen: &HostState) -> bool {
    seen.files.is_empty() && seen.unit != "active"
}

/// Human descriptions of what differs from `expected`.
pub fn differences(expected: &Fingerprints, seen: &HostState) -> Vec<String> {
    if nothing_installed(seen) && !expected.is_empty() {
        return vec!["etcd is not installed on the host".to_string()];
    }
    let mut problems = Vec::new();
    if seen.unit != "active" {
        problems.push(format!("etcd unit is {}", seen.unit));
    }
    for (name, sum) in expected {
        match seen.files.get(name) {
            None => problems.push(format!("{name} is missing")),
            Some(found) if found != sum => problems.push(format!("{name} changed on the host")),
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_hashed_again_only_after_it_changed() {
        let dir = std::env::temp_dir().join(format!("binary-memo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (binary, memo) = (dir.join("etcd"), dir.join("memo"));
        let hash = |bytes: &[u8]| crate::member::install::sha256_hex(bytes);
        // Under `set -e`, as after writing files (`Host::write_files_then`).
        let run_with = |memo: &std::path::Path| {
            let command = binary_hash_command(binary.to_str().unwrap(), memo.to_str().unwrap());
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("set -e; {command}"))
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let run = || run_with(&memo);
        std::fs::write(&binary, b"one").unwrap();
        let line = |bytes: &[u8]| format!("{}  {}\n", hash(bytes), binary.display());
        // No memo yet, and none can be written: hashed all the same.
        assert_eq!(run_with(&dir.join("missing/memo")), line(b"one"));
        assert_eq!(run(), line(b"one"));
        let memo_text = std::fs::read_to_string(&memo).unwrap();
        assert!(memo_text.trim_end().ends_with(&hash(b"one")), "{memo_text}");
        assert_eq!(run(), line(b"one"), "from the memo");
        // A binary replaced by a rename, as an install does.
        let next = dir.join("etcd.new");
        std::fs::write(&next, b"two").unwrap();
        std::fs::rename(&next, &binary).unwrap();
        assert_eq!(run(), line(b"two"));
        std::fs::remove_file(&binary).unwrap();
        assert_eq!(run(), "", "no binary, no line");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn parses_unit_state_and_sums() {
        let paths: BTreeMap<String, String> =
            [("/etc/etcd/etcd.conf.yml".to_string(), "config".to_string())].into();
        let seen = parse(
            "failed\nabc  /etc/etcd/etcd.conf.yml\n--- server certificate ---\n-----BEGIN CERTIFICATE-----\n",
            &paths,
        );
        assert!(!seen.has_data);
        assert!(
            parse(
                "active\n--- member data present ---\n--- server certificate ---\n",
                &paths
            )
            .has_data
        );
        assert_eq!(seen.server_cert_pem, "-----BEGIN CERTIFICATE-----");
        assert_eq!(seen.unit, "failed");
        assert_eq!(seen.files.get("config").map(String::as_str), Some("abc"));
        let expected: Fingerprints = [
            ("config".to_string(), "abd".to_string()),
            ("etcd".to_string(), "x".to_string()),
        ]
        .into();
        assert_eq!(
            differences(&expected, &seen),
            vec![
                "etcd unit is failed",
                "config changed on the host",
                "etcd is missing"
            ]
        );
        let wiped = parse("inactive\n--- server certificate ---\n", &paths);
        assert_eq!(
            differences(&expected, &wiped),
            vec!["etcd is not installed on the host"]
        );
    }
}
