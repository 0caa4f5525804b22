//! A step below the phases: new certificates for a serving member without
//! a restart. etcd (3.2 and later) reads its certificate and key files for
//! every new connection, client and peer, so writing them is enough; its
//! trusted CA file it reads only at start (etcd #11555), so a change of
//! that one still needs a restart. What the member serves is checked with a
//! TLS handshake; when it is not what was expected, the caller restarts it.

use std::collections::BTreeMap;

use super::hosts::connect;
use super::member_steps::{install_and_start, Start};
use super::ClusterSpec;
use crate::etcd;
use crate::framework::Context;
use crate::member::binaries::LocalBinaries;
use crate::member::install::Fingerprints;
use crate::member::MemberSpec;

/// Writes `member`'s files from `spec` (certificates reissued) without
/// restarting it; true when the certificate it then serves passes
/// `expected`.
pub async fn renew_certificates(
    ctx: &Context,
    spec: &ClusterSpec,
    member: &MemberSpec,
    binaries: Option<&LocalBinaries>,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    expected: impl Fn(&[u8]) -> bool,
) -> Result<bool, String> {
    let host = connect(member).await?;
    let written = install_and_start(
        spec,
        member,
        &host,
        binaries,
        &spec.initial_cluster(),
        Start::Existing,
        ctx.now(),
    )
    .await;
    host.close().await;
    let prints = written.map_err(|e| format!("member {}: {e}", member.name))?;
    fingerprints.insert(member.name.clone(), prints);
    let served = etcd::served_certificate(&member.client_url(&spec.settings)).await;
    Ok(served.is_ok_and(|der| expected(&der)))
}
