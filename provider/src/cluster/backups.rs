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

use super::hosts::connect;
use super::{ChangeWarning, ClusterSpec};
use crate::member::backup_copy::{self, CopyTo};
use crate::member::{backup, MemberSpec};
use crate::ssh::{self, Host};

/// Installs the backup job on every member (after a bootstrap: a job that
/// ran before the cluster had formed would fail), one member after the
/// other: each may edit the backup host's `authorized_keys`. Best effort
/// (see [`install_backup_job_after_change`]).
pub async fn install_backup_jobs(spec: &ClusterSpec) {
    for member in &spec.members {
        install_backup_job_after_change(spec, member, None).await;
    }
}

/// Installs a member's backup job after a change that is done (a
/// bootstrap, a member added or rewritten): a failure does not undo the
/// change. It is logged, the member's `status` shows the broken job, and
/// the next apply's repair installs it (or says why it cannot). `host`:
/// a connection to the member the caller holds, if any.
pub async fn install_backup_job_after_change(
    spec: &ClusterSpec,
    member: &MemberSpec,
    host: Option<&Host>,
) {
    let installed = match host {
        Some(host) => install_backup_job_on(spec, member, host).await,
        None => install_backup_job(spec, member).await,
    };
    if let Err(e) = installed {
        log::warn!("{}; the next apply installs it", String::from(e));
    }
}

/// Installs (or repairs) one member's backup job: etcd is not touched.
pub async fn install_backup_job(
    spec: &ClusterSpec,
    member: &MemberSpec,
) -> Result<(), JobInstallError> {
    let host = connect(member).await.map_err(JobInstallError::Job)?;
    let installed = install_backup_job_on(spec, member, &host).await;
    host.close().await;
    installed
}

/// [`install_backup_job`] over a connection the caller holds. With
/// `copy_to`, the member's key is made and authorized on the backup host
/// first; the job itself is installed even when that fails (the error
/// then says so: [`JobInstallError::CopiesNotSetUp`]).
async fn install_backup_job_on(
    spec: &ClusterSpec,
    member: &MemberSpec,
    host: &Host,
) -> Result<(), JobInstallError> {
    let copies = match &spec.settings.backup.copy_to {
        Some(copy) => allow_copies(spec, member, host, copy).await,
        None => Ok(()),
    };
    backup::install(host, &spec.settings, spec.s3_secret.as_deref())
        .await
        .map_err(|e| JobInstallError::Job(format!("member {}: backup job: {e}", member.name)))?;
    copies.map_err(|e| {
        JobInstallError::CopiesNotSetUp(format!(
            "member {}: backup job: copies to the backup host: {e}",
            member.name
        ))
    })
}

/// Why a backup job was not installed as configured.
#[derive(Debug)]
pub enum JobInstallError {
    /// Not installed (nor a connection to the member made).
    Job(String),
    /// Installed, but its copies to the backup host could not be set up
    /// (the backup host did not answer, say): snapshots stay local.
    CopiesNotSetUp(String),
}

impl From<JobInstallError> for String {
    fn from(e: JobInstallError) -> String {
        match e {
            JobInstallError::Job(e) | JobInstallError::CopiesNotSetUp(e) => e,
        }
    }
}

/// Gives the member a key of its own that may only add snapshots on the
/// backup host, and the backup host's key.
async fn allow_copies(
    spec: &ClusterSpec,
    member: &MemberSpec,
    host: &Host,
    copy: &CopyTo,
) -> Result<(), String> {
    let target = ssh::Target {
        address: copy.host.clone(),
        user: Some(copy.user.clone()),
        port: copy.port,
        sudo: false,
        ..member.ssh.clone()
    };
    let backup_host = Host::connect(&target)
        .await
        .map_err(|e| format!("backup host: {e}"))?
        .finishing_commands();
    let allowed = async {
        let host_keys = backup_copy::prepare_backup_host(&backup_host, copy).await?;
        let public_key = backup_copy::prepare_member(host, &spec.settings, &host_keys).await?;
        backup_copy::authorize(
            &backup_host,
            &spec.settings,
            copy,
            &member.name,
            &public_key,
        )
        .await
    }
    .await;
    backup_host.close().await;
    allowed.map_err(|e| e.to_string())
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
    /// change must not go on. The snapshot is what counts: a copy to the
    /// backup host that fails (or cannot be set up) is a warning.
    pub async fn ensure(
        &mut self,
        spec: &ClusterSpec,
        warnings: &mut Vec<ChangeWarning>,
    ) -> Result<(), String> {
        if self.taken {
            return Ok(());
        }
        let mut failures = Vec::new();
        for member in &spec.members {
            let taken = async {
                // The job as the settings have it (a member installed
                // before backups existed, or before copy_to, has none).
                let copies = match install_backup_job(spec, member).await {
                    Ok(()) => None,
                    Err(JobInstallError::CopiesNotSetUp(e)) => Some(e),
                    Err(JobInstallError::Job(e)) => return Err(e),
                };
                let host = connect(member).await?;
                let taken = backup::take_now(&host, &spec.settings, self.label).await;
                host.close().await;
                let taken = taken.map_err(|e| e.to_string())?;
                Ok((taken, copies))
            };
            match taken.await {
                Ok((taken, copies)) => {
                    log::info!(
                        "snapshot {} taken on member {}: {}",
                        self.label,
                        member.name,
                        taken.path
                    );
                    if let Some(why) = copies.or(taken.copy_failed) {
                        warnings.push(ChangeWarning::BackupCopyFailed(format!(
                            "The snapshot {} before this change is kept on member {} ({}), but was not copied \
                             to the backup host: {why}",
                            self.label, member.name, taken.path
                        )));
                    }
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
