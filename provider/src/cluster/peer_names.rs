//! Phase: the peer name on every member's peer certificate, before any member
//! starts with a config that accepts only that name on its peer port
//! (`settings::peer_names_only`; clusters made before it lack the name).
//!
//! Changes: each member whose peer certificate lacks the name gets a new
//! one in place, without a restart: etcd reads it for every new peer
//! connection, so no member is ever refused by a peer that starts with
//! the new config.
//!
//! Nothing to do when every member's certificate has the name (the
//! observation says which lack it). A member whose host does not answer
//! gets its certificate when it is brought back. Interrupted: the members
//! not yet done still lack the name, and the next run gives it to them.
//! The runner calls this before every step that writes a member's config.

use std::collections::{BTreeMap, BTreeSet};

use super::hosts::connect;
use super::ClusterSpec;
use crate::framework::Context;
use crate::member::install::{issue_certificates, write_peer_certificate, Fingerprints};
use crate::member::MemberSpec;

/// Gives each of `members` listed in `missing` a peer certificate with
/// the peer name, recording its new fingerprint.
pub async fn give_peer_names(
    ctx: &Context,
    spec: &ClusterSpec,
    members: &[MemberSpec],
    missing: &BTreeSet<String>,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
) -> Result<(), String> {
    for member in members.iter().filter(|m| missing.contains(&m.name)) {
        let Ok(host) = connect(member).await else {
            continue;
        };
        log::info!(
            "member {}: a peer certificate with the peer name, in place",
            member.name
        );
        let certs = issue_certificates(
            member,
            &spec.settings,
            &spec.ca_cert_pem,
            &spec.ca_key_pem,
            &spec.trusted_ca_pem,
            ctx.now(),
        )
        .map_err(|e| format!("member {}: certificates: {e}", member.name));
        let written = match certs {
            Ok(certs) => write_peer_certificate(&host, &spec.settings, &certs)
                .await
                .map_err(|e| format!("member {}: {e}", member.name)),
            Err(e) => Err(e),
        };
        host.close().await;
        let print = written?;
        if let Some(prints) = fingerprints.get_mut(&member.name) {
            prints.insert("peer.crt".into(), print);
        }
    }
    Ok(())
}
