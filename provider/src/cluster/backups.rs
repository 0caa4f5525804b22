//! Backups around the phases: the scheduled job installed on every member
//! once a new cluster is healthy, and the snapshot taken before a change
//! that restarts or removes members.
//!
//! The snapshot before a change is taken once, just before its first step
//! that touches a running member (nothing to do: a change that has no such
//! step takes none), on the first member that answers a quorum read, into
//! the backup directory as `etcd-<label>-<time>-rev<revision>.db`. If no
//! member can take it, the change does not start. An interrupted change
//! takes another when it continues (one per label is kept up to `keep`).

use super::member_steps::connect;
use super::ClusterSpec;
use crate::member::{backup, MemberSpec};

/// Installs the backup job on every member (after a bootstrap: a job that
/// ran before the cluster had formed would fail).
pub async fn install_backup_jobs(spec: &ClusterSpec) -> Result<(), String> {
    let installs = spec.members.iter().map(|m| install_backup_job(spec, m));
    let errors: Vec<String> = futures::future::join_all(installs)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// Installs (or repairs) one member's backup job, once it is healthy:
/// etcd is not touched.
pub async fn install_backup_job(spec: &ClusterSpec, member: &MemberSpec) -> Result<(), String> {
    let host = connect(member).await?;
    let installed = backup::install(&host, &spec.settings).await;
    host.close().await;
    installed.map_err(|e| format!("member {}: backup job: {e}", member.name))
}

/// The snapshot a change takes before its first step, once.
pub struct SnapshotBefore {
    label: &'static str,
    taken: bool,
}

impl SnapshotBefore {
    /// `label` names the change in the file name (`before-roll`, ...).
    pub fn new(label: &'static str) -> SnapshotBefore {
        SnapshotBefore {
            label,
            taken: false,
        }
    }

    /// Takes the snapshot unless it was taken already; an error means the
    /// change must not go on.
    pub async fn ensure(&mut self, spec: &ClusterSpec) -> Result<(), String> {
        if self.taken {
            return Ok(());
        }
        let mut failures = Vec::new();
        for member in &spec.members {
            let taken = async {
                let host = connect(member).await?;
                let taken = backup::take_now(&host, &spec.settings, self.label).await;
                host.close().await;
                taken.map_err(|e| e.to_string())
            };
            match taken.await {
                Ok(path) => {
                    log::info!(
                        "snapshot {} taken on member {}: {path}",
                        self.label,
                        member.name
                    );
                    self.taken = true;
                    return Ok(());
                }
                Err(e) => failures.push(format!("member {}: {e}", member.name)),
            }
        }
        Err(format!(
            "the change did not start: no member could take the snapshot {} into {}:\n{}",
            self.label,
            spec.settings.backup.dir,
            failures.join("\n")
        ))
    }
}
