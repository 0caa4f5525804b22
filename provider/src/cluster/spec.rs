//! `ClusterSpec`: a cluster as the configuration describes it (settings,
//! members, the CA that issues their certificates and the CAs they trust),
//! and what follows from it alone: endpoints, the initial cluster, the
//! provider's client credentials and the binaries to upload.

use time::OffsetDateTime;

use crate::etcd::Credentials;
use crate::member::binaries::LocalBinaries;
use crate::member::{BinarySource, ClusterSettings, MemberSpec};
use crate::version::EtcdVersion;

/// A cluster as the configuration describes it.
pub struct ClusterSpec {
    pub settings: ClusterSettings,
    pub members: Vec<MemberSpec>,
    /// The CA the members' certificates are issued from.
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    /// The CA certificates the members trust (their `ca.crt`): `ca_cert_pem`,
    /// or the old and the new CA together during a CA rotation.
    pub trusted_ca_pem: String,
    /// Reach the client API through SSH port forwards instead of directly.
    pub tunnel: bool,
    /// Client URLs of members the configuration does not own (the cluster
    /// an `etcd_member` joins), asked after the managed members. Empty for
    /// `etcd_cluster`, which owns every member: a live member it does not
    /// list is unmanaged and is removed.
    pub foreign_endpoints: Vec<String>,
    /// A snapshot file on the machine running Terraform that the members of
    /// a new cluster start from (each member's data is restored from it).
    pub initial_snapshot: Option<String>,
    /// The write-only secret of `backup.s3`, while applying with it.
    pub s3_secret: Option<String>,
}

/// The CA certificates members trust: `ca`, and while a rotation
/// finishes the retiring one after it (the bundle's exact text is part of
/// the trusted-CA file's digest).
pub fn trusted_bundle(ca: &str, retiring: Option<&str>) -> String {
    match retiring {
        Some(old) => format!("{}\n{}\n", ca.trim_end(), old.trim_end()),
        None => ca.to_string(),
    }
}

impl ClusterSpec {
    /// The same cluster with another set of members (a step of a change).
    pub fn with_members(&self, members: Vec<MemberSpec>) -> ClusterSpec {
        ClusterSpec {
            settings: self.settings.clone(),
            members,
            ca_cert_pem: self.ca_cert_pem.clone(),
            ca_key_pem: self.ca_key_pem.clone(),
            trusted_ca_pem: self.trusted_ca_pem.clone(),
            tunnel: self.tunnel,
            foreign_endpoints: self.foreign_endpoints.clone(),
            initial_snapshot: self.initial_snapshot.clone(),
            s3_secret: self.s3_secret.clone(),
        }
    }

    /// The same cluster with its certificates issued from another CA and
    /// another set of trusted CAs (a step of a CA rotation).
    pub fn with_ca(&self, cert_pem: &str, key_pem: &str, trusted_pem: &str) -> ClusterSpec {
        ClusterSpec {
            ca_cert_pem: cert_pem.to_string(),
            ca_key_pem: key_pem.to_string(),
            trusted_ca_pem: trusted_pem.to_string(),
            ..self.with_members(self.members.clone())
        }
    }

    /// Whether new members join as learners (etcd 3.4 and later).
    pub fn has_learners(&self) -> bool {
        EtcdVersion::parse(&self.settings.etcd_version).is_some_and(EtcdVersion::has_learners)
    }

    /// The members' client URLs, in the order of `members`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| m.client_url(&self.settings))
            .collect()
    }

    /// `name=peer-url` of every member, as `initial-cluster` lists them.
    pub fn initial_cluster(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url(&self.settings)))
            .collect()
    }

    /// A client identity for this run, issued from the CA.
    pub fn credentials(&self, now: OffsetDateTime) -> Result<Credentials, String> {
        Credentials::issue(&self.ca_cert_pem, &self.ca_key_pem, now)
            .map(|c| c.trusting(&self.trusted_ca_pem))
            .map_err(|e| format!("client certificate: {e}"))
    }

    /// The binaries to upload, read once per operation (none when the hosts
    /// download them or install packages).
    pub async fn local_binaries(&self) -> Result<Option<LocalBinaries>, String> {
        match &self.settings.binary_source {
            BinarySource::LocalPath(dir) => {
                // Tens of megabytes read and hashed: off the async threads,
                // so that a caller can connect to the hosts meanwhile.
                let (dir, version) = (dir.clone(), self.settings.etcd_version.clone());
                tokio::task::spawn_blocking(move || LocalBinaries::load(&dir, &version))
                    .await
                    .map_err(|e| format!("reading the etcd binaries: {e}"))?
                    .map(Some)
            }
            BinarySource::Url { .. } | BinarySource::OsPackage => Ok(None),
        }
    }
}
