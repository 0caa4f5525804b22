//! The lifecycle of one member in a cluster the configuration does not own
//! (the `etcd_member` resource): join, observe, update, leave. The spec
//! holds that one member and the cluster's client URLs as foreign
//! endpoints. A step that restarts a serving member or changes the
//! membership first checks that every other live member, managed here or
//! not, is started and healthy, so that no step costs the cluster its
//! quorum; the steps are the ones `etcd_cluster` uses. Join, update and
//! leave each hold the cluster's change lock, so two `etcd_member`s of one
//! apply (Terraform runs them in parallel) never restart together.
//!
//! - Join: refused unless every live member is healthy; member add as a
//!   learner, install, promote. Interrupted: the next apply finds the
//!   member by its peer URL and finishes it.
//! - Update: the repair phase, then (for changed settings or CA) the roll.
//! - Leave: refused while another member is unhealthy; leadership handed
//!   on, member remove, uninstall (data kept unless purging).

use std::collections::BTreeMap;
use std::time::Duration;

use super::member_steps::{remove_member, uninstall_member, Joining};
use super::quorum::{
    foreign_members_serve, release_change_lock, take_change_lock, under_lock, wait_until_healthy,
};
use super::{repair, roll, ChangeWarning, ClusterSpec, Observed};
use crate::etcd;
use crate::framework::Context;
use crate::member::install::Fingerprints;
use crate::member::MemberSpec;

fn the_member(spec: &ClusterSpec) -> &MemberSpec {
    &spec.members[0]
}

/// Adds the member to the running cluster, installs and starts it, and
/// waits until it is a healthy voting member. Run again after a failure, it
/// finishes the member an earlier run added. Data of an earlier member on
/// the host is moved aside (a warning in `warnings`).
pub async fn join(
    ctx: &Context,
    spec: &ClusterSpec,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<Fingerprints, String> {
    // The cluster's own endpoints: the new member has none to answer yet.
    let api = etcd::Client::new(spec.foreign_endpoints.clone(), spec.credentials(ctx.now())?);
    let lock = take_change_lock(ctx, &api, timeout).await?;
    let ctx = &under_lock(ctx, &lock);
    let joined = async {
        let me = the_member(spec);
        foreign_members_serve(&api, me, &spec.settings).await?;
        let binaries = spec.local_binaries().await?;
        let joining = Joining {
            ctx,
            to: spec,
            api: &api,
            binaries: binaries.as_ref(),
            timeout,
        };
        let prints = joining.add(me, warnings).await?;
        wait_until_healthy(ctx, spec, timeout).await?;
        Ok(prints)
    }
    .await;
    release_change_lock(lock).await;
    joined
}

/// The member as the live cluster and its host show it.
pub async fn observe(ctx: &Context, spec: &ClusterSpec, expected: &Fingerprints) -> Observed {
    let name = the_member(spec).name.clone();
    let expected = BTreeMap::from([(name, expected.clone())]);
    super::observe(ctx, spec, &expected).await
}

/// Repairs drift (a stopped member, changed files, a member removed out of
/// band), then, if `settings_changed` (settings or CA), rewrites the
/// member's files and restarts it; it must come back healthy on the
/// configured version.
pub async fn update(
    ctx: &Context,
    spec: &ClusterSpec,
    settings_changed: bool,
    fingerprints: &mut Fingerprints,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let me = the_member(spec);
    let api = spec.api(ctx.now()).await?;
    let lock = take_change_lock(ctx, &api, timeout).await?;
    let ctx = &under_lock(ctx, &lock);
    let mut prints = BTreeMap::from([(me.name.clone(), fingerprints.clone())]);
    let mut result = repair(ctx, spec, &mut prints, timeout, warnings).await;
    if result.is_ok() && settings_changed {
        result = roll(ctx, spec, &mut prints, timeout, warnings).await;
    }
    release_change_lock(lock).await;
    if let Some(p) = prints.remove(&me.name) {
        *fingerprints = p;
    }
    result
}

/// Takes the member out of the cluster (leadership handed on first), then
/// stops it and removes its installation; its data stays unless
/// `purge_data`. Refused while another member is unhealthy.
pub async fn leave(
    ctx: &Context,
    spec: &ClusterSpec,
    purge_data: bool,
    timeout: Duration,
) -> Result<(), String> {
    let api = spec.api(ctx.now()).await?;
    let lock = take_change_lock(ctx, &api, timeout).await?;
    let me = the_member(spec);
    let left = async {
        foreign_members_serve(&api, me, &spec.settings).await?;
        remove_member(&api, me, &spec.settings, None).await
    }
    .await;
    release_change_lock(lock).await;
    left?;
    uninstall_member(me, &spec.settings, purge_data).await
}
