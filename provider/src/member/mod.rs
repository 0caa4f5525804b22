//! One etcd member on one host: where its files go, what it is configured
//! with, and the SSH steps that install, inspect and remove it. The cluster
//! and member resources both build on this, so that bootstrapping, adding
//! a member to a running cluster and `etcd_member` share one install path.

pub mod backup;
pub mod backup_copy;
pub mod backup_drill;
pub mod backup_s3;
pub mod backup_state;
pub mod binaries;
pub mod inspect;
pub mod install;
pub mod render;
pub mod upload_state;

use std::collections::BTreeMap;

use crate::ssh;
use crate::version::{EtcdVersion, SnapshotTool};

/// etcd's systemd unit: one member per host.
pub const UNIT_FILE: &str = "/etc/systemd/system/etcd.service";

/// Paths on a member host.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub bin_dir: String,
    pub config_dir: String,
    pub pki_dir: String,
    pub data_dir: String,
}

impl Layout {
    pub fn pki_dir(&self) -> String {
        self.pki_dir.clone()
    }
    pub fn config_file(&self) -> String {
        format!("{}/etcd.conf.yml", self.config_dir)
    }
    /// Environment for `etcdctl` on the host (`set -a; . FILE; set +a`).
    pub fn etcdctl_env_file(&self) -> String {
        format!("{}/etcdctl.env", self.config_dir)
    }
    /// For binaries from a `url`: the tarball's SHA-256 and the installed
    /// etcd's, so that a binary of the right version but another build is
    /// replaced.
    pub fn release_file(&self) -> String {
        format!("{}/etcd-release.sha256", self.config_dir)
    }
    /// A binary's SHA-256 with the `stat` it was computed for, so that a
    /// look at the host hashes the binary only after it changed (see
    /// `binaries::binary_sums`).
    pub fn binary_hash_memo(&self, name: &str) -> String {
        format!("{}/.{name}-binary.sha256", self.config_dir)
    }
    /// The same for a binary staged ahead of a roll (`binaries::staged`).
    pub fn staged_hash_memo(&self, name: &str) -> String {
        format!("{}/.{name}-binary.staged.sha256", self.config_dir)
    }
    /// The backup schedule's interval as systemd computed it on the host,
    /// with the schedule and the day it was computed for (see
    /// `backup_state`).
    pub fn backup_interval_memo(&self) -> String {
        format!("{}/.etcd-backup.interval", self.config_dir)
    }
    /// The same for the restore drill's schedule.
    pub fn drill_interval_memo(&self) -> String {
        format!("{}/.etcd-drill.interval", self.config_dir)
    }
    pub fn unit_file(&self) -> String {
        UNIT_FILE.to_string()
    }
    /// Where the program `name` (`etcd`, `etcdctl`, `etcdutl`) is installed.
    pub fn binary(&self, name: &str) -> String {
        format!("{}/{name}", self.bin_dir)
    }
    pub fn etcd(&self) -> String {
        self.binary("etcd")
    }
    pub fn etcdctl(&self) -> String {
        self.binary("etcdctl")
    }
    /// The certificate files: (name in fingerprints, certificate, key).
    pub fn certificate_files(&self) -> [(&'static str, String, Option<String>); 4] {
        let pki = self.pki_dir();
        [
            ("ca.crt", format!("{pki}/ca.crt"), None),
            (
                "server.crt",
                format!("{pki}/server.crt"),
                Some(format!("{pki}/server.key")),
            ),
            (
                "peer.crt",
                format!("{pki}/peer.crt"),
                Some(format!("{pki}/peer.key")),
            ),
            // The identity of etcdctl and the backup job on the host:
            // etcd's `root` user once authentication is on.
            (
                "etcdctl.crt",
                format!("{pki}/etcdctl.crt"),
                Some(format!("{pki}/etcdctl.key")),
            ),
        ]
    }
}

/// Where the etcd binaries come from.
#[derive(Debug, Clone, PartialEq)]
pub enum BinarySource {
    /// A directory on the machine running Terraform holding `etcd` and
    /// `etcdctl` (and `etcdutl` from etcd 3.5).
    LocalPath(String),
    /// A release tarball fetched on the host and checked against its SHA-256.
    Url { url: String, sha256: String },
    /// The distribution's packages (`etcd-server`, `etcd-client`) through
    /// apt; the binaries are the package's, in [`PACKAGE_BIN_DIR`].
    OsPackage,
}

/// The common name (CN) of every member's peer certificate, and the only
/// one a member's peer port accepts (`allowed-cn`): a consumer's
/// certificate, from the same CA, never carries it, so it cannot speak
/// raft. `etcd_client_certificate` refuses it.
pub const PEER_COMMON_NAME: &str = "etcd-peer";

/// Where Debian's etcd packages put their binaries.
pub const PACKAGE_BIN_DIR: &str = "/usr/bin";

/// What every member of a cluster shares.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    pub token: String,
    pub etcd_version: String,
    pub binary_source: BinarySource,
    pub client_port: u16,
    pub peer_port: u16,
    pub metrics_url: String,
    pub layout: Layout,
    pub extra_flags: BTreeMap<String, String>,
    pub cert_validity_hours: i64,
    /// How long before expiry a member's certificates are renewed.
    pub cert_early_renewal_hours: i64,
    /// Where snapshots go, how many are kept, and the schedule if any.
    pub backup: backup::BackupSettings,
    /// Whether the peer port accepts only [`PEER_COMMON_NAME`]: for a
    /// cluster of the provider's own, not for a member joining a cluster
    /// whose other members' peer certificates it did not make.
    pub peer_names_only: bool,
}

impl ClusterSettings {
    /// The program that checks (`snapshot status`) and restores snapshots
    /// for this version: etcdctl on etcd 3.4, etcdutl later.
    pub fn snapshot_tool(&self) -> String {
        let tool = EtcdVersion::parse(&self.etcd_version).map(EtcdVersion::snapshot_tool);
        match tool {
            Some(SnapshotTool::Etcdutl) => self.layout.binary("etcdutl"),
            Some(SnapshotTool::Etcdctl) | None => self.layout.etcdctl(),
        }
    }
}

/// One member's own settings.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub name: String,
    /// The address in its URLs and certificates (IP or DNS name).
    pub host: String,
    /// Extra names and addresses for its certificates.
    pub extra_sans: Vec<String>,
    pub ssh: ssh::Target,
}

fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// A member for unit tests: named `name`, at `host`, reached by SSH there.
#[cfg(test)]
pub fn test_member(name: &str, host: &str) -> MemberSpec {
    MemberSpec {
        name: name.into(),
        host: host.into(),
        extra_sans: vec![],
        ssh: ssh::Target {
            address: host.into(),
            user: None,
            port: None,
            private_key_path: None,
            known_hosts_path: None,
            config_file: None,
            strict_host_key_checking: true,
            connect_timeout: std::time::Duration::from_secs(10),
            command_timeout: std::time::Duration::from_secs(600),
            keep_open: std::time::Duration::ZERO,
            sudo: false,
            stop: Default::default(),
        },
    }
}

impl MemberSpec {
    pub fn peer_url(&self, settings: &ClusterSettings) -> String {
        format!("https://{}:{}", url_host(&self.host), settings.peer_port)
    }
    pub fn client_url(&self, settings: &ClusterSettings) -> String {
        format!("https://{}:{}", url_host(&self.host), settings.client_port)
    }
}
