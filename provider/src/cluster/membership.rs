//! Phase: change the membership (scale out, scale in, move or rename
//! members).
//!
//! Changes: members only the old spec has are removed from the cluster and
//! uninstalled (their data is always kept: `purge_data_on_destroy` is for
//! destroy); members only the new spec has are added. A member whose host
//! or name changes is both.
//!
//! Nothing to do: both specs list the same (name, host) pairs.
//!
//! Steps, one membership change at a time, each followed by a wait until
//! every member is healthy:
//! 1. Refuse unless every member that stays is healthy: a step while one
//!    of them is down could leave the cluster without quorum. When members
//!    leave, take a snapshot first (`before-removal`, see `backups`): no
//!    snapshot, no change.
//! 2. Remove leaving members that do not serve (etcd's advice: a failed
//!    member goes before anything is added, since adding one raises the
//!    quorum while the failed one still counts).
//! 3. First, the binaries go to every new member's host at once (staged
//!    beside the installed ones; no member is touched). Then for each new
//!    member (refused if its machine, by `/etc/machine-id`,
//!    is a current member's under another address): install its files,
//!    add it as a learner (etcd 3.4+; etcd may make it wait until every
//!    voter has been connected for five seconds, which the install
//!    overlaps), start it, promote it once it has caught up;
//!    then remove one healthy leaving member. Adding first keeps every
//!    healthy member voting while the new one catches up, and the cluster
//!    is never more than one member larger than planned. Exception: a leaving member with the new one's
//!    name or on its host is removed just before it (etcd cannot hold two
//!    members of one name in an initial cluster, and one host cannot run
//!    two members on the same ports and data directory).
//! 4. Remove the healthy leaving members that are left.
//!
//! Removal moves leadership off a leaving leader first. A host that holds
//! data of an earlier member gets it moved aside (kept, named with the
//! time) before its new member starts; that is reported as a warning.
//!
//! Interrupted: the state keeps the old members; the next apply plans the
//! same change again. A member already removed is skipped (not in the
//! member list); a member already added (found by its peer URL) is
//! finished, not added twice.

use std::collections::BTreeMap;
use std::time::Duration;

use super::backups::{install_backup_job_after_change, SnapshotBefore};
use super::hosts::Hosts;
use super::hosts::{close_all, connect_all};
use super::member_steps::{add_member, refuse_shared_machines, remove_member, uninstall_member};
use super::quorum::wait_until_healthy;
use super::{continue_unless_stopped, observe, ChangeWarning, ClusterSpec};
use crate::framework::Context;
use crate::member::binaries::LocalBinaries;
use crate::member::install::Fingerprints;
use crate::member::MemberSpec;
use crate::ssh::Host;

fn same_member(a: &MemberSpec, b: &MemberSpec) -> bool {
    a.name == b.name && a.host == b.host
}

/// Members only `to` has, and members only `from` has; a member that moves
/// to another host is in both (it is removed, then added).
pub fn membership_changes<'a>(
    from: &'a ClusterSpec,
    to: &'a ClusterSpec,
) -> (Vec<&'a MemberSpec>, Vec<&'a MemberSpec>) {
    let added = to
        .members
        .iter()
        .filter(|t| !from.members.iter().any(|f| same_member(f, t)))
        .collect();
    let removed = from
        .members
        .iter()
        .filter(|f| !to.members.iter().any(|t| same_member(f, t)))
        .collect();
    (added, removed)
}

/// Members of `from` that stay in `to`.
pub fn staying<'a>(from: &'a ClusterSpec, to: &ClusterSpec) -> Vec<&'a MemberSpec> {
    let (_, removed) = membership_changes(from, to);
    from.members
        .iter()
        .filter(|m| !removed.iter().any(|r| same_member(r, m)))
        .collect()
}

/// Changes the membership from `from` to `to` (see the module's steps);
/// what deserves a warning (data moved aside) goes to `warnings`.
pub async fn change_membership(
    ctx: &Context,
    from: &ClusterSpec,
    to: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let (added, removed) = membership_changes(from, to);
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    let observed = observe(ctx, from, fingerprints).await;
    let unhealthy: Vec<String> = staying(from, to)
        .into_iter()
        .map(|m| (m, observed.health_of(&m.name)))
        .filter(|(_, health)| !health.is_healthy())
        .map(|(m, health)| format!("{} ({health})", m.name))
        .collect();
    if !unhealthy.is_empty() {
        return Err(format!(
            "the membership was not changed: every member that stays must be healthy first, and these are not: {}",
            unhealthy.join("; ")
        ));
    }
    if !removed.is_empty() {
        SnapshotBefore::new("before-removal")
            .ensure(from, warnings)
            .await?;
    }
    let (failed, mut leaving): (Vec<&MemberSpec>, Vec<&MemberSpec>) = removed
        .into_iter()
        .partition(|m| !observed.serving.contains(&m.name));
    let mut change = Membership {
        ctx,
        from,
        to,
        current: from.members.clone(),
        fingerprints,
        timeout,
    };
    for gone in failed {
        change.remove(gone).await?;
    }
    let binaries = to.local_binaries().await?;
    if let Some(local) = &binaries {
        // The new members' hosts get their binaries at once, before the
        // joins, which go one at a time.
        let hosts = Hosts::default();
        let new: Vec<MemberSpec> = added.iter().map(|m| (*m).clone()).collect();
        hosts.stage_binaries(&new, &to.settings, local).await;
        hosts.close().await;
    }
    for new in added {
        if let Some(index) = leaving.iter().position(|m| same_place(m, new)) {
            change.remove(leaving.remove(index)).await?;
        }
        change.add(new, binaries.as_ref(), warnings).await?;
        if !leaving.is_empty() {
            change.remove(leaving.remove(0)).await?;
        }
    }
    for gone in leaving {
        change.remove(gone).await?;
    }
    Ok(())
}

/// New members that take the place (name or host) of a leaving member:
/// each is added only after that member is removed, so the cluster runs
/// one member short meanwhile.
pub fn replaced_in_place<'a>(from: &'a ClusterSpec, to: &'a ClusterSpec) -> Vec<&'a MemberSpec> {
    let (added, removed) = membership_changes(from, to);
    added
        .into_iter()
        .filter(|new| removed.iter().any(|gone| same_place(gone, new)))
        .collect()
}

/// Whether two members would collide: the same name, or the same host.
fn same_place(a: &MemberSpec, b: &MemberSpec) -> bool {
    a.name == b.name || a.ssh.address == b.ssh.address || a.host == b.host
}

/// A membership change under way: the members the cluster has now.
struct Membership<'a> {
    ctx: &'a Context,
    from: &'a ClusterSpec,
    to: &'a ClusterSpec,
    current: Vec<MemberSpec>,
    fingerprints: &'a mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
}

impl Membership<'_> {
    /// Removes one member, uninstalls it (data kept) and waits until the
    /// rest is healthy.
    async fn remove(&mut self, gone: &MemberSpec) -> Result<(), String> {
        continue_unless_stopped(self.ctx, "membership change")?;
        let api = self.present().api(self.ctx.now()).await?;
        remove_member(&api, gone, &self.from.settings).await?;
        self.current.retain(|m| !same_member(m, gone));
        if !self.current.iter().any(|m| m.name == gone.name) {
            self.fingerprints.remove(&gone.name);
        }
        uninstall_member(gone, &self.from.settings, false).await?;
        wait_until_healthy(self.ctx, &self.present(), self.timeout).await
    }

    /// Adds one member, waits until the cluster is healthy with it, then
    /// installs its backup job.
    async fn add(
        &mut self,
        new: &MemberSpec,
        binaries: Option<&LocalBinaries>,
        warnings: &mut Vec<ChangeWarning>,
    ) -> Result<(), String> {
        continue_unless_stopped(self.ctx, "membership change")?;
        self.refuse_same_machine(new).await?;
        let api = self.present().api(self.ctx.now()).await?;
        let prints = add_member(
            self.ctx,
            self.to,
            &api,
            new,
            binaries,
            self.timeout,
            warnings,
        )
        .await?;
        self.fingerprints.insert(new.name.clone(), prints);
        self.current.push(new.clone());
        wait_until_healthy(self.ctx, &self.present(), self.timeout).await?;
        install_backup_job_after_change(self.to, new, None).await;
        Ok(())
    }

    /// Refuses a new member on the machine of a current one (under
    /// another address: a DNS name and an IP).
    async fn refuse_same_machine(&self, new: &MemberSpec) -> Result<(), String> {
        let mut all = self.current.clone();
        all.push(new.clone());
        let hosts = connect_all(&all).await;
        let (members, reached): (Vec<&MemberSpec>, Vec<&Host>) = all
            .iter()
            .zip(&hosts)
            .filter_map(|(m, h)| h.as_ref().ok().map(|h| (m, h)))
            .unzip();
        let refused = refuse_shared_machines(&members, &reached).await;
        close_all(hosts).await;
        refused
    }

    /// The cluster as it is now (the new spec's settings: paths and ports
    /// cannot change on a running cluster, and the CA is the current one).
    fn present(&self) -> ClusterSpec {
        self.to.with_members(self.current.clone())
    }
}
