//! Phase: bootstrap a new cluster.
//!
//! Changes: every member host gets the `etcd` user, directories, binaries,
//! certificates, config file and unit, and etcd is started with
//! `initial-cluster-state=new` (from an initial snapshot if one is given).
//!
//! Nothing to do: never skipped; it runs once, at create.
//!
//! Steps:
//! 1. Install and start every member in parallel. Safe: no cluster exists
//!    yet, so there is no quorum to lose. A data directory that holds
//!    someone else's data (another cluster token) is refused, never used.
//! 2. Wait until every member is a started, voting, healthy member.
//! 3. Install the scheduled backup job on every member (a job that ran
//!    before the cluster formed would fail).
//!
//! Interrupted: nothing is in state. The next apply runs the bootstrap
//! again; members that already hold this cluster's data (same token)
//! resume with it, the others are installed afresh.

use std::collections::BTreeMap;
use std::time::Duration;

use super::backups::install_backup_jobs;
use super::member_steps::{close_all, connect_all, install_and_start};
use super::quorum::wait_until_healthy;
use super::ClusterSpec;
use crate::framework::Context;
use crate::member::install::Fingerprints;
use crate::member::render::InitialState;

/// Bootstraps every member in parallel, then waits until the member list
/// is complete and every endpoint is healthy; returns each member's
/// fingerprints.
pub async fn bootstrap(
    ctx: &Context,
    spec: &ClusterSpec,
    timeout: Duration,
) -> Result<BTreeMap<String, Fingerprints>, String> {
    let now = ctx.now();
    let binaries = spec.local_binaries()?;
    let hosts = connect_all(&spec.members).await;
    let initial_cluster = spec.initial_cluster();
    let installs = spec.members.iter().zip(&hosts).map(|(member, host)| {
        let binaries = binaries.as_ref();
        let initial_cluster = &initial_cluster;
        async move {
            let host = host.as_ref().map_err(Clone::clone)?;
            install_and_start(
                spec,
                member,
                host,
                binaries,
                initial_cluster,
                InitialState::New,
                now,
            )
            .await
            .map(|prints| (member.name.clone(), prints))
            .map_err(|e| format!("member {}: {e}", member.name))
        }
    });
    let results = futures::future::join_all(installs).await;
    close_all(hosts).await;
    let mut fingerprints = BTreeMap::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok((name, prints)) => {
                fingerprints.insert(name, prints);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    log::info!(
        "started {} members of {}; waiting for them to form the cluster",
        spec.members.len(),
        spec.settings.token
    );
    wait_until_healthy(ctx, spec, timeout).await?;
    install_backup_jobs(spec).await?;
    Ok(fingerprints)
}
