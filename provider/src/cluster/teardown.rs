//! Phase: tear a cluster down (destroy).
//!
//! Changes: etcd is stopped on every member and the provider's files are
//! removed (unit, config, certificates, binaries it installed). Data
//! directories stay unless `purge_data` is set; even then, the data of a
//! cluster that has lost its quorum (no member answers a quorum read) is
//! moved aside, never deleted: that is the state in which the cluster is
//! replaced to recover it (`apply -replace` with a snapshot), and its
//! data may be all that is left of it.
//!
//! Nothing to do: a host that no longer has the files is left as it is. A
//! host that does not answer over SSH (gone for good, e.g. before a
//! recovery with `-replace`) is skipped with a warning that says what may
//! be left on it: destroy gets through with lost hosts.
//!
//! Steps: every member in parallel. Safe: the whole cluster goes, so no
//! quorum is kept on purpose; the data, unless purging, is kept.
//!
//! Interrupted or failed: Terraform keeps the resource in state; the next
//! destroy runs the teardown again, and what is already removed is skipped.

use time::OffsetDateTime;

use super::hosts::{close_all, connect_all};
use super::member_steps::move_data_aside;
use super::{ChangeWarning, ClusterSpec};
use crate::member::install;

/// Stops and removes every member's installation; returns a warning for
/// each host that could not be reached, and for data moved aside instead
/// of purged.
pub async fn teardown(
    spec: &ClusterSpec,
    purge_data: bool,
    now: OffsetDateTime,
) -> Result<Vec<ChangeWarning>, String> {
    let mut warnings = Vec::new();
    let mut purge_data = purge_data;
    if purge_data && !any_member_serves(spec, now).await {
        purge_data = false;
        warnings.push(ChangeWarning::DataMovedAside(format!(
            "purge_data_on_destroy: no member answered a quorum read, so the cluster's data was moved aside on each \
             member ({}.moved-<time>), not deleted: it may be all that is left of the cluster. Delete it once \
             you no longer need it.",
            spec.settings.layout.data_dir
        )));
    }
    let aside_instead = !purge_data && !warnings.is_empty();
    let hosts = connect_all(&spec.members).await;
    let removals = spec
        .members
        .iter()
        .zip(&hosts)
        .map(|(member, host)| async move {
            let Ok(host) = host else {
                return Ok(()); // warned about below
            };
            install::uninstall(host, &spec.settings, purge_data)
                .await
                .map_err(|e| format!("member {}: {e}", member.name))?;
            if aside_instead {
                move_data_aside(now, host, &spec.settings)
                    .await
                    .map_err(|e| format!("member {}: {e}", member.name))?;
            }
            Ok(())
        });
    let results = futures::future::join_all(removals).await;
    for (host, member) in hosts.iter().zip(&spec.members) {
        if let Err(e) = host {
            let left = if purge_data {
                "its etcd installation and data directory"
            } else {
                "its etcd installation"
            };
            warnings.push(ChangeWarning::HostUnreachable(format!(
                "member {} was not reachable ({e}); {left} may be left on that host",
                member.name
            )));
        }
    }
    close_all(hosts).await;
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors.join("\n"))
    }
}

/// Whether any member answers a quorum read.
async fn any_member_serves(spec: &ClusterSpec, now: OffsetDateTime) -> bool {
    match spec.api(now).await {
        Ok(api) => api.statuses().await.iter().any(|s| s.healthy),
        Err(_) => false,
    }
}
