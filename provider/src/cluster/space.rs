//! Phase: clear a space alarm, as etcd's maintenance guide does by hand.
//!
//! Changes: when a member raised `NOSPACE` (its database reached
//! `quota-backend-bytes`; the cluster then refuses every write, reads go
//! on), the keyspace is compacted at its current revision (every key keeps
//! its current value; the revisions before it are dropped), each member is
//! defragmented in turn (its database file shrinks to what it holds), and
//! the alarm is disarmed. Other alarms (`CORRUPT`) are left to the
//! operator: they stay in `status` and the apply says so.
//!
//! Nothing to do: no `NOSPACE` alarm.
//!
//! Steps:
//! 1. Only while every member is healthy (reads on a quorum); a snapshot
//!    first (`before-compaction`), as before every change. Safe: nothing
//!    is written yet, and the snapshot holds the history compaction drops.
//! 2. Compaction at the current revision. Safe: current values stay; a
//!    watcher of an older revision is told it was compacted (what etcd's
//!    own periodic compaction does).
//! 3. Defragmentation, one member at a time, each once the whole cluster is
//!    healthy again: a member answers nothing else while its database is
//!    rewritten, the others keep the quorum. Compaction and each
//!    defragmentation may take up to `timeouts.update` (a database of
//!    gigabytes takes a while).
//! 4. The alarm disarmed: writes are accepted again. If the data itself
//!    is larger than the quota, etcd raises it again at the next write and
//!    the next plan shows it: raise `quota-backend-bytes` (`extra_flags`).
//!
//! Locking: at the end of an update it runs under the change lock. But a
//! full database grants no lease, so no lock: then it runs first, without
//! the lock, and the update takes the lock after it (update.rs). Two runs
//! that find the database full at the same moment could each start a
//! defragmentation at once; each waits for a healthy cluster first, and a
//! member being defragmented fails the health check, so both would have
//! to start within the same instant. No data is at risk even then: the
//! cluster answers no quorum read for the seconds that takes.
//!
//! Interrupted: every step can be done again (a second compaction at the
//! same revision is refused and skipped, defragmenting twice is harmless);
//! the alarm stays until step 4, so the next plan shows it and the next
//! apply starts again.

use std::time::Duration;

use super::backups::SnapshotBefore;
use super::quorum::{ensure_all_healthy, wait_until_healthy};
use super::{continue_unless_stopped, ChangeWarning, ClusterSpec};
use crate::etcd::{self, AlarmKind, Compaction};
use crate::framework::Context;

/// Clears the cluster's `NOSPACE` alarms (see the module's steps).
pub async fn clear_space_alarms(
    ctx: &Context,
    spec: &ClusterSpec,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let api = spec.api(ctx.now()).await?;
    let no_space: Vec<etcd::Alarm> = current_alarms(&api)
        .await?
        .into_iter()
        .filter(|a| a.kind == AlarmKind::NoSpace)
        .collect();
    if no_space.is_empty() {
        return Ok(());
    }
    continue_unless_stopped(ctx, "clearing the NOSPACE alarm")?;
    ensure_all_healthy(
        spec,
        &api,
        "refusing to compact and defragment while members are unhealthy",
    )
    .await?;
    SnapshotBefore::new("before-compaction")
        .ensure(spec, warnings)
        .await?;
    match api.compact_at_current_revision(timeout).await? {
        Compaction::Done(revision) => log::info!("compacted the keyspace at revision {revision}"),
        Compaction::AlreadyDone(revision) => {
            log::info!("the keyspace was compacted at revision {revision} already")
        }
    }
    for endpoint in &api.endpoints {
        continue_unless_stopped(ctx, "defragmentation")?;
        wait_until_healthy(ctx, spec, timeout).await?;
        log::info!("defragmenting {endpoint}");
        api.defragment(endpoint, timeout).await?;
    }
    wait_until_healthy(ctx, spec, timeout).await?;
    for alarm in &no_space {
        api.disarm(alarm).await?;
    }
    Ok(())
}

/// The cluster's alarms, as the first member that answers lists them.
async fn current_alarms(api: &etcd::Client) -> Result<Vec<etcd::Alarm>, String> {
    let statuses = api.statuses().await;
    statuses
        .iter()
        .find(|s| s.version.is_some())
        .map(|s| s.alarms.clone())
        .ok_or_else(|| {
            let errors: Vec<String> = statuses.iter().filter_map(|s| s.error.clone()).collect();
            format!("no member answered a status request: {}", errors.join("; "))
        })
}
