//! The provider's resource types, one file each.

pub mod ca;
pub mod client_certificate;
pub mod cluster;
pub mod member;
mod settings;
pub mod snapshot;

use crate::framework::provider::Provider;

/// The provider with every resource type registered.
pub fn provider() -> Provider {
    Provider::new(vec![
        Box::new(ca::CertificateAuthority),
        Box::new(client_certificate::ClientCertificate),
        Box::new(cluster::EtcdCluster),
        Box::new(member::EtcdMember),
        Box::new(snapshot::EtcdSnapshot),
    ])
}
