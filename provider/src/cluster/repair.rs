//! Phase: repair drift, one member at a time.
//!
//! Changes: a member whose backup job alone is broken gets it rewritten and
//! its timer restarted (etcd is not touched); a serving member whose
//! certificates alone are due gets new ones without a restart (etcd reads
//! its certificate files for every new connection; a TLS handshake must
//! show the new one, or it is restarted after all); a member that is
//! stopped, has a changed or missing file, or is a learner is rewritten and
//! restarted; a member removed out of band is re-added (its old data moved
//! aside, never deleted); live members the configuration does not list
//! are removed.
//!
//! Nothing to do: every member is healthy and none is unmanaged.
//!
//! Refused: a member served by an etcd the provider did not start (a
//! hand-made unit after an import); installing ours would start a second
//! etcd on its ports and data.
//!
//! Steps:
//! 1. Bring back every listed member that does not serve, all together,
//!    then wait until the cluster is healthy. Safe: a member that does not
//!    serve can only restore a voter; together, because while a majority
//!    is down no one member can become healthy alone.
//! 2. Then for each member in turn (judged on an observation taken after
//!    the last change):
//!    remove unmanaged members, one at a time and only while every
//!    configured member is healthy; restart a drifted member that still
//!    serves, or re-add a removed one (or one whose data is gone: removed
//!    from the list first, never started under its old ID without its
//!    log), only while every other member
//!    serves (either takes a voter away or changes the membership); wait
//!    until the cluster is healthy before the next member.
//!
//! Interrupted: nothing in state depends on the repair; the next plan
//! observes the drift that is left and the next apply repairs it.
//!
//! Its looks at the hosts go over one SSH connection per host, kept open
//! for the whole repair (`hosts`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::backups::{install_backup_job, JobInstallError};
use super::hosts::connect;
use super::hosts::Hosts;
use super::in_place::renew_certificates;
use super::member_steps::{Change, OneMemberChanges};
use super::observe::{in_renewal_window, observe_through, unlisted};
use super::quorum::{ensure_all_healthy, ensure_others_serve, wait_until_healthy};
use super::{continue_unless_stopped, ChangeWarning, ClusterSpec};
use crate::etcd;
use crate::framework::Context;
use crate::member::install::Fingerprints;
use crate::member::MemberSpec;

/// Brings drifted members back (see the module's steps).
pub async fn repair(
    ctx: &Context,
    spec: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let hosts = Hosts::default();
    let repaired = repair_through(ctx, spec, fingerprints, timeout, &hosts, warnings).await;
    hosts.close().await;
    repaired
}

/// [`repair`], looking at the hosts over connections kept open throughout.
async fn repair_through(
    ctx: &Context,
    spec: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    hosts: &Hosts,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let binaries = spec.local_binaries().await?;
    let changes = OneMemberChanges {
        ctx,
        spec,
        binaries: binaries.as_ref(),
        timeout,
    };
    let api = spec.api(ctx.now()).await?;
    // Observed again only after something changed: each observation is an
    // SSH round trip to every host and a status call to every member.
    let mut observed = observe_through(ctx, spec, fingerprints, hosts).await;
    let down: Vec<&MemberSpec> = spec
        .members
        .iter()
        .filter(|m| {
            let health = observed.health_of(&m.name);
            !health.is_healthy()
                && !observed.serving.contains(&m.name)
                && health.host_reachable()
                && !health.needs_readd()
                && health.refusal(&m.name).is_none()
        })
        .collect();
    if !down.is_empty() {
        continue_unless_stopped(ctx, "repair")?;
        changes.bring_back(&down, fingerprints).await?;
        observed = observe_through(ctx, spec, fingerprints, hosts).await;
    }
    for member in &spec.members {
        if !observed.unmanaged.is_empty() {
            remove_unmanaged(ctx, spec, &api, timeout).await?;
            observed = observe_through(ctx, spec, fingerprints, hosts).await;
        }
        let health = observed.health_of(&member.name);
        // Alarms are cleared after the repair (`space.rs`), never by a restart.
        if health.is_healthy() || health.only_alarms() {
            continue;
        }
        continue_unless_stopped(ctx, "repair")?;
        if health.only_backup_broken() {
            log::info!(
                "repairing the backup job of member {}: {health}",
                member.name
            );
            match install_backup_job(spec, member).await {
                Ok(()) => {}
                // The job runs; its copies fail until the backup host is
                // back, and show as drift until then.
                Err(JobInstallError::CopiesNotSetUp(e)) => {
                    warnings.push(ChangeWarning::BackupCopyFailed(e))
                }
                Err(JobInstallError::Job(e)) => return Err(e),
            }
            continue;
        }
        if health.only_certificates_due() && observed.serving.contains(&member.name) {
            log::info!(
                "renewing the certificates of member {} in place",
                member.name
            );
            let out_of_window = |der: &[u8]| {
                crate::pki::not_after_der(der).is_some_and(|end| !in_renewal_window(ctx, spec, end))
            };
            let renewed = renew_certificates(
                ctx,
                spec,
                member,
                binaries.as_ref(),
                fingerprints,
                out_of_window,
            )
            .await?;
            if renewed {
                wait_until_healthy(ctx, spec, timeout).await?;
                observed = observe_through(ctx, spec, fingerprints, hosts).await;
                continue;
            }
            log::warn!(
                "member {} still serves its old certificate: restarting it",
                member.name
            );
        }
        if let Some(refusal) = health.refusal(&member.name) {
            return Err(refusal);
        }
        log::info!("repairing member {}: {health}", member.name);
        let removed = health.needs_readd();
        if removed || observed.serving.contains(&member.name) {
            ensure_others_serve(spec, &api, &observed, member).await?;
        }
        let host = connect(member).await?;
        let change = if removed {
            Change::Readd(&api)
        } else {
            Change::Rewrite
        };
        changes.apply(member, host, change, fingerprints).await?;
        observed = observe_through(ctx, spec, fingerprints, hosts).await;
    }
    if !observed.unmanaged.is_empty() {
        remove_unmanaged(ctx, spec, &api, timeout).await?;
    }
    Ok(())
}

/// Removes live members the configuration does not list, one at a time,
/// only while every configured member is healthy (so quorum is never at
/// risk).
async fn remove_unmanaged(
    ctx: &Context,
    spec: &ClusterSpec,
    api: &etcd::Client,
    timeout: Duration,
) -> Result<(), String> {
    let (_, live) = api.members().await?;
    for extra in unlisted(spec, &live) {
        let id = etcd::format_id(extra.id);
        ensure_all_healthy(
            spec,
            api,
            &format!("refusing to remove unmanaged member {id} while members are unhealthy"),
        )
        .await?;
        log::info!("removing unmanaged member {} ({id})", extra.name);
        api.remove_member(extra.id).await?;
        wait_until_healthy(ctx, spec, timeout).await?;
    }
    Ok(())
}
