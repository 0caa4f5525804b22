//! The provider's resource types, one file each.

pub mod ca;
pub mod ca_keys;
pub mod client_certificate;
pub mod cluster;
mod connection;
mod lifetime;
pub mod member;
pub mod role;
mod settings;
pub mod snapshot;
pub mod user;

use crate::framework::provider::Provider;

/// The provider with every resource type registered.
pub fn provider() -> Provider {
    Provider::new(
        vec![
            Box::new(ca::CertificateAuthority),
            Box::new(client_certificate::ClientCertificate),
            Box::new(cluster::EtcdCluster),
            Box::new(member::EtcdMember),
            Box::new(role::EtcdRole),
            Box::new(snapshot::EtcdSnapshot),
            Box::new(user::EtcdUser),
        ],
        ca_keys::provider_block(),
    )
}
