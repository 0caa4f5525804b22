//! Phase: lower the cluster version before the members go back one minor
//! version (etcd 3.6 and later; `crate::version` says which changes are
//! downgrades).
//!
//! Changes: etcd's cluster version, by `downgrade validate` and `downgrade
//! enable`: every member then writes its data for the older minor (its
//! "storage version") while it still runs the newer binary. The roll that
//! follows (roll.rs) restarts the members on the older binaries one at a
//! time, each healthy before the next; once every member runs it, etcd
//! ends the downgrade by itself.
//!
//! Nothing to do: the version change is not a downgrade, or every member's
//! storage is already at the older minor (a downgrade finished or resumed).
//!
//! Steps:
//! 1. Unless a downgrade to this minor is already under way: only while
//!    every member is healthy, a snapshot first (`before-downgrade`), then
//!    `downgrade validate` (etcd refuses if a member cannot go back) and
//!    `downgrade enable`. Safe: no member restarts; the data stays readable
//!    by the newer binaries.
//! 2. Wait until every member's storage version is the older minor's: a
//!    member started on the older binary before that would refuse its data.
//!
//! Interrupted: the downgrade stays enabled in etcd. The state keeps the
//! newer version, so the next plan shows the downgrade again; its apply
//! sees the downgrade under way in the members' status and only waits, and
//! the roll skips members already on the older version. An operator who
//! gives up before any member runs the older version cancels it with
//! `etcdctl downgrade cancel`.

use std::time::{Duration, Instant};

use super::backups::SnapshotBefore;
use super::quorum::ensure_all_healthy;
use super::{continue_unless_stopped, ChangeWarning, ClusterSpec};
use crate::framework::Context;
use crate::version::{version_change, EtcdVersion, VersionChange};

/// How often the members' storage versions are read while waiting.
const POLL: Duration = Duration::from_millis(500);

/// Lowers the cluster version of `spec` (running its `etcd_version`) to
/// the minor of `target` when that is a downgrade (see the module's steps).
pub async fn lower_cluster_version(
    ctx: &Context,
    spec: &ClusterSpec,
    target: &str,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let from = &spec.settings.etcd_version;
    if version_change(from, target) != Ok(VersionChange::Downgrade) {
        return Ok(());
    }
    let Some(minor) = EtcdVersion::parse(target).map(EtcdVersion::minor_name) else {
        return Ok(());
    };
    let api = spec.api(ctx.now()).await?;
    let states = api.storage_states().await;
    let under_way = states.iter().any(|(_, state)| {
        state.as_ref().is_ok_and(|s| {
            s.downgrading_to
                .as_deref()
                .is_some_and(|to| same_minor(to, &minor))
        })
    });
    if !under_way && !all_stored_for(&states, &minor) {
        continue_unless_stopped(ctx, "downgrade")?;
        ensure_all_healthy(
            spec,
            &api,
            "refusing to start a downgrade while members are unhealthy",
        )
        .await?;
        SnapshotBefore::new("before-downgrade")
            .ensure(spec, warnings)
            .await?;
        api.enable_downgrade(&minor).await?;
        log::info!("downgrade of the cluster from {from} to {minor} enabled");
    }
    let deadline = Instant::now() + timeout;
    loop {
        let states = api.storage_states().await;
        if all_stored_for(&states, &minor) {
            return Ok(());
        }
        continue_unless_stopped(ctx, "downgrade")?;
        if Instant::now() >= deadline {
            let seen: Vec<String> = states
                .iter()
                .map(|(endpoint, state)| match state {
                    Ok(s) => format!("{endpoint}: storage {}", s.storage_version),
                    Err(e) => format!("{endpoint}: {e}"),
                })
                .collect();
            return Err(format!(
                "the members' storage did not reach etcd {minor} within {timeout:?}: {}",
                seen.join("; ")
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `version` (`3.6.0`) is of the minor `minor` (`3.6`).
fn same_minor(version: &str, minor: &str) -> bool {
    EtcdVersion::parse(version).is_some_and(|v| v.minor_name() == minor)
}

/// Whether every member answered with its storage at `minor`.
fn all_stored_for(
    states: &[(String, Result<crate::etcd::StorageState, String>)],
    minor: &str,
) -> bool {
    !states.is_empty()
        && states.iter().all(|(_, state)| {
            state
                .as_ref()
                .is_ok_and(|s| same_minor(&s.storage_version, minor))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::StorageState;

    fn state(storage: &str) -> (String, Result<StorageState, String>) {
        let s = StorageState {
            storage_version: storage.into(),
            downgrading_to: None,
        };
        ("https://e:2379".into(), Ok(s))
    }

    #[test]
    fn the_wait_ends_only_when_every_member_stores_for_the_older_minor() {
        assert!(all_stored_for(&[state("3.6.0"), state("3.6.0")], "3.6"));
        assert!(!all_stored_for(&[state("3.6.0"), state("3.7.0")], "3.6"));
        let silent = ("https://e:2379".to_string(), Err("no answer".to_string()));
        assert!(!all_stored_for(&[state("3.6.0"), silent], "3.6"));
        assert!(!all_stored_for(&[], "3.6"));
        assert!(
            !all_stored_for(&[state("")], "3.6"),
            "before 3.6: no storage version"
        );
    }
}
