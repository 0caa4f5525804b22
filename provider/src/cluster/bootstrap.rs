//! Phase: bootstrap a new cluster.
//!
//! Changes: every member host gets the `etcd` user, directories, binaries,
//! certificates, config file and unit, and etcd is started with
//! `initial-cluster-state=new` (from an initial snapshot if one is given:
//! read once and streamed to every member, see `snapshot_stream`).
//!
//! Nothing to do: never skipped; it runs once, at create.
//!
//! Steps:
//! 1. Refuse two members on one machine (the same `/etc/machine-id`, e.g.
//!    a DNS name and an IP of one host). Install and start every member in
//!    parallel. Safe: no cluster exists yet, so there is no quorum to lose. A data directory that holds
//!    someone else's data (another cluster token) is refused, never used.
//! 2. Wait until every member is a started, voting, healthy member.
//! 3. Install the scheduled backup job on every member (a job that ran
//!    before the cluster formed would fail). A failure there is logged and
//!    shows as drift in `status`; the cluster is created all the same.
//!
//! Interrupted: nothing is in state. The next apply runs the bootstrap
//! again; members that already hold this cluster's data (same token)
//! resume with it, the others are installed afresh.

use std::collections::BTreeMap;
use std::time::Duration;

use super::backups::install_backup_jobs;
use super::hosts::{close_all, connect_all};
use super::member_steps::{install_and_start, refuse_shared_machines, Start};
use super::quorum::wait_until_healthy;
use super::snapshot_stream::fan_out;
use super::ClusterSpec;
use crate::framework::Context;
use crate::member::install::Fingerprints;
use crate::member::MemberSpec;
use crate::ssh::Host;

/// Bootstraps every member in parallel, then waits until the member list
/// is complete and every endpoint is healthy; returns each member's
/// fingerprints.
pub async fn bootstrap(
    ctx: &Context,
    spec: &ClusterSpec,
    timeout: Duration,
) -> Result<BTreeMap<String, Fingerprints>, String> {
    let now = ctx.now();

    // The initial snapshot, if any, read once for all members.
    let (pump, mut initial) = match &spec.initial_snapshot {
        Some(path) => {
            let (pump, data) = fan_out(path, spec.members.len()).await?;
            (Some(pump), data.into_iter().map(Some).collect())
        }
        None => (None, Vec::new()),
    };
    initial.resize_with(spec.members.len(), || None);
    // The binaries are read while the hosts are reached.
    let (binaries, hosts) = tokio::join!(spec.local_binaries(), connect_all(&spec.members));
    let binaries = match binaries {
        Ok(binaries) => binaries,
        Err(e) => {
            close_all(hosts).await;
            return Err(e);
        }
    };
    let (members, reached): (Vec<&MemberSpec>, Vec<&Host>) = spec
        .members
        .iter()
        .zip(&hosts)
        .filter_map(|(m, h)| h.as_ref().ok().map(|h| (m, h)))
        .unzip();
    if let Err(e) = refuse_shared_machines(&members, &reached).await {
        close_all(hosts).await;
        return Err(e);
    }
    let initial_cluster = spec.initial_cluster();
    let installs = spec
        .members
        .iter()
        .zip(&hosts)
        .zip(initial)
        .map(|((member, host), initial)| {
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
                    Start::New(initial),
                    now,
                )
                .await
                .map(|prints| (member.name.clone(), prints))
                .map_err(|e| format!("member {}: {e}", member.name))
            }
        });
    let pumped = async {
        match pump {
            Some(pump) => pump.await,
            None => Ok(()),
        }
    };
    let (results, pumped) = tokio::join!(futures::future::join_all(installs), pumped);
    close_all(hosts).await;
    pumped?;
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
    install_backup_jobs(spec).await;
    Ok(fingerprints)
}
