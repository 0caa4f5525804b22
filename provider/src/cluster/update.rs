//! The order of the phases of an update of a running cluster, and where an
//! update stopped.
//!
//! 1. Membership (scale, move), with the CA the members trust now.
//! 2. Rolling change of settings, with that CA too; before a roll to the
//!    previous minor version, the cluster version lowered (downgrade.rs).
//! 3. CA rotation, last: pass 1 in the apply that brings a new CA, passes
//!    2 and 3 in the next (see rotate_ca.rs), so that consumers are never
//!    refused.
//! 4. Repair of whatever drift is left, with the new settings and CA.
//! 5. A NOSPACE alarm cleared (compaction, defragmentation, disarm), once
//!    every member is healthy again.
//!
//! (The first apply after an import runs none of this: it only adopts the
//! configuration's settings into the state.)
//!
//! All five run under the cluster's change lock, so that no other run (a
//! second CI job, another workspace) changes the cluster meanwhile. A
//! full database grants no lease for the lock: its alarm is cleared first,
//! without the lock (see space.rs), then the lock is taken.
//!
//! A stop in 1-3 leaves the state as it was before the update, so the next
//! plan shows the change again and the next apply continues it: each
//! phase skips what it has already done. A failed repair leaves the new
//! settings in state; its drift shows in the next plan.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::downgrade::lower_cluster_version;
use super::quorum::{release_change_lock, take_change_lock, under_lock, LockRefusal};
use super::{
    change_membership, clear_space_alarms, repair, retire_old_ca, roll, trust_new_ca,
    ChangeWarning, ClusterSpec,
};
use crate::framework::Context;
use crate::member::install::Fingerprints;

/// Where an update stopped.
#[derive(Debug)]
pub enum UpdateStop {
    /// The membership change stopped: keep the prior state.
    Membership(String),
    /// The rolling change or CA rotation stopped: keep the prior state.
    Rolling(String),
    /// A full database could not be cleared before the changes (see
    /// space.rs): keep the prior state.
    Space(String),
    /// The repair after the changes failed: the changes are done.
    Repair(String),
}

impl UpdateStop {
    /// Whether the state must keep the members and settings from before
    /// the update, so that the next apply continues it.
    pub fn keeps_prior_state(&self) -> bool {
        !matches!(self, UpdateStop::Repair(_))
    }

    pub fn summary(&self) -> &'static str {
        match self {
            UpdateStop::Membership(_) => "Membership change stopped",
            UpdateStop::Rolling(_) => "Rolling change stopped",
            UpdateStop::Space(_) => "Could not free the cluster's full database",
            UpdateStop::Repair(_) => "Could not repair the cluster",
        }
    }
}

impl fmt::Display for UpdateStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateStop::Membership(e) => write!(
                f,
                "{e}\n\nNo step that was done is undone. Apply again to continue once the cause is fixed."
            ),
            UpdateStop::Rolling(e) => write!(
                f,
                "{e}\n\nMembers already changed stay changed. Apply again to continue once the cause is fixed."
            ),
            UpdateStop::Space(e) => write!(
                f,
                "{e}\n\nNothing else was changed. Apply again to continue once the cause is fixed."
            ),
            UpdateStop::Repair(e) => f.write_str(e),
        }
    }
}

/// Runs the phases in order from `from` to `to`, waiting up to `timeout`
/// for a healthy cluster after each step; what deserves a warning goes to
/// `warnings`.
pub async fn update(
    ctx: &Context,
    from: &ClusterSpec,
    to: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), UpdateStop> {
    let api = from.api(ctx.now()).await.map_err(UpdateStop::Membership)?;
    let lock = match take_change_lock(ctx, &api, timeout).await {
        Ok(lock) => lock,
        Err(LockRefusal::DatabaseFull(e)) => {
            // No lease, so no lock, until space is freed: that first (see
            // space.rs), with the members and settings running now.
            log::warn!("{e}: clearing the alarm before the change lock is taken");
            clear_space_alarms(ctx, from, timeout, warnings)
                .await
                .map_err(UpdateStop::Space)?;
            take_change_lock(ctx, &api, timeout)
                .await
                .map_err(|e| UpdateStop::Membership(e.into()))?
        }
        Err(e) => return Err(UpdateStop::Membership(e.into())),
    };
    let result = phases(
        &under_lock(ctx, &lock),
        from,
        to,
        fingerprints,
        timeout,
        warnings,
    )
    .await;
    release_change_lock(lock).await;
    result
}

/// The phases in order, under the change lock.
async fn phases(
    ctx: &Context,
    from: &ClusterSpec,
    to: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), UpdateStop> {
    // A new CA: pass 1 of its rotation (this apply). The same CA with a
    // CA no longer trusted: passes 2 and 3 (the apply after). Until passes
    // 2 and 3, membership and rolling changes keep the certificates the
    // members have (the old CA's) and trust both.
    let rotating = from.ca_cert_pem != to.ca_cert_pem;
    let retiring = !rotating && from.trusted_ca_pem != to.trusted_ca_pem;
    let ca_now = if rotating || retiring { from } else { to };
    let staged = to.with_ca(
        &ca_now.ca_cert_pem,
        &ca_now.ca_key_pem,
        &ca_now.trusted_ca_pem,
    );
    change_membership(ctx, from, &staged, fingerprints, timeout, warnings)
        .await
        .map_err(UpdateStop::Membership)?;
    if from.settings != to.settings {
        lower_cluster_version(ctx, from, &to.settings.etcd_version, timeout, warnings)
            .await
            .map_err(UpdateStop::Rolling)?;
        roll(ctx, &staged, fingerprints, timeout, warnings)
            .await
            .map_err(UpdateStop::Rolling)?;
    }
    if rotating {
        trust_new_ca(ctx, from, to, fingerprints, timeout, warnings)
            .await
            .map_err(UpdateStop::Rolling)?;
    }
    if retiring {
        if let Some(old_ca) = retiring_ca(from, to) {
            retire_old_ca(ctx, &old_ca, to, fingerprints, timeout, warnings)
                .await
                .map_err(UpdateStop::Rolling)?;
        }
    }
    repair(ctx, to, fingerprints, timeout, warnings)
        .await
        .map_err(UpdateStop::Repair)?;
    clear_space_alarms(ctx, to, timeout, warnings)
        .await
        .map_err(UpdateStop::Repair)
}

/// The CA `from` trusts besides `to`'s: the one a rotation retires.
fn retiring_ca(from: &ClusterSpec, to: &ClusterSpec) -> Option<String> {
    let current = to.ca_cert_pem.trim_end();
    from.trusted_ca_pem
        .trim_end()
        .strip_prefix(current)
        .map(|rest| rest.trim().to_string())
        .filter(|rest| !rest.is_empty())
}
