//! One member in a cluster that the configuration does not own (the
//! `etcd_member` resource): join it, change it, take it out again. The
//! spec holds that one member and the cluster's client URLs as foreign
//! endpoints. A step that restarts a serving member or changes the
//! membership first checks that every other live member, managed here or
//! not, is started and healthy, so that no step costs the cluster its
//! quorum; the steps themselves are the ones `etcd_cluster` uses.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cluster::{self, ClusterSpec, Observed};
use crate::etcd;
use crate::framework::Context;
use crate::member::install::Fingerprints;
use crate::member::MemberSpec;

fn the_member(spec: &ClusterSpec) -> &MemberSpec {
    &spec.members[0]
}

/// Adds the member to the running cluster, installs and starts it, and
/// waits until it is a healthy voting member. Run again after a failure, it
/// finishes the member an earlier run added.
pub async fn join(
    ctx: &Context,
    spec: &ClusterSpec,
    timeout: Duration,
) -> Result<Fingerprints, String> {
    // The cluster's own endpoints: the new member has none to answer yet.
    let api = etcd::Cluster::new(spec.foreign_endpoints.clone(), spec.credentials(ctx.now())?);
    cluster::ensure_others_healthy(spec, &api, &Observed::default(), the_member(spec)).await?;
    let binaries = spec.local_binaries()?;
    let me = the_member(spec);
    let prints = cluster::add_member(ctx, spec, &api, me, binaries.as_ref(), timeout).await?;
    cluster::wait_until_healthy(ctx, spec, timeout).await?;
    Ok(prints)
}

/// The member as the live cluster and its host show it.
pub async fn observe(ctx: &Context, spec: &ClusterSpec, expected: &Fingerprints) -> Observed {
    let name = the_member(spec).name.clone();
    let expected = BTreeMap::from([(name, expected.clone())]);
    cluster::observe(ctx, spec, &expected).await
}

/// Repairs drift (a stopped member, changed files, a member removed out of
/// band), then, if `settings_changed` (settings or CA), rewrites the
/// member's files and restarts it; it must come back healthy on the
/// configured version. A member that serves is restarted, and a removed
/// one re-added, only while every other member is healthy; a member that
/// does not serve is always brought back.
pub async fn update(
    ctx: &Context,
    spec: &ClusterSpec,
    settings_changed: bool,
    fingerprints: &mut Fingerprints,
    timeout: Duration,
) -> Result<(), String> {
    let me = the_member(spec);
    let mut prints = BTreeMap::from([(me.name.clone(), fingerprints.clone())]);
    let mut result = cluster::repair(ctx, spec, &mut prints, timeout).await;
    if result.is_ok() && settings_changed {
        result = cluster::roll(ctx, spec, &mut prints, timeout).await;
    }
    if let Some(p) = prints.remove(&me.name) {
        *fingerprints = p;
    }
    result
}

/// Takes the member out of the cluster (leadership handed on first), then
/// stops it and removes its installation; its data stays unless
/// `purge_data`. Refused while another member is unhealthy.
pub async fn leave(ctx: &Context, spec: &ClusterSpec, purge_data: bool) -> Result<(), String> {
    let api = spec.api(ctx.now()).await?;
    let me = the_member(spec);
    cluster::ensure_others_healthy(spec, &api, &Observed::default(), me).await?;
    cluster::remove_member(&api, me, &spec.settings).await?;
    cluster::uninstall_member(me, &spec.settings, purge_data).await
}
