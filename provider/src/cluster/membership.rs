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
//! Steps, one membership change at a time in the order of
//! `plan::membership` (tested there), each through the runner
//! (`runner.rs`) and followed by a wait until every member is healthy:
//! refused unless every member that stays is healthy; when members leave,
//! a snapshot first (`before-removal`, see `backups`): no snapshot, no
//! change. The binaries go to every new member's host at once first
//! (staged beside the installed ones; no member is touched). A new member
//! (refused if its machine, by `/etc/machine-id`, is a current member's
//! under another address) gets its files, is added as a learner (etcd
//! may make it wait until every voter has been connected for five
//! seconds, which the install overlaps), started, and promoted once it
//! has caught up.
//!
//! Removal moves leadership off a leaving leader first, to a voter that
//! serves. A host that holds data of an earlier member gets it moved
//! aside (kept, named with the time) before its new member starts; that
//! is reported as a warning.
//!
//! Interrupted: the state keeps the old members; the next apply plans the
//! same change again. A member already removed is skipped (not in the
//! member list); a member already added (found by its peer URL) is
//! finished, not added twice.

use std::collections::BTreeMap;
use std::time::Duration;

use super::hosts::Hosts;
use super::plan::membership::{changes, plan_membership, same_member, same_place};
use super::plan::Step;
use super::runner::{Record, Runner};
use super::{ChangeWarning, ClusterSpec};
use crate::framework::Context;
use crate::member::install::Fingerprints;
use crate::member::MemberSpec;

/// Members only `to` has, and members only `from` has; a member that moves
/// to another host is in both (it is removed, then added).
pub fn membership_changes<'a>(
    from: &'a ClusterSpec,
    to: &'a ClusterSpec,
) -> (Vec<&'a MemberSpec>, Vec<&'a MemberSpec>) {
    changes(&from.members, &to.members)
}

/// Members of `from` that stay in `to`.
pub fn staying<'a>(from: &'a ClusterSpec, to: &ClusterSpec) -> Vec<&'a MemberSpec> {
    let (_, removed) = changes(&from.members, &to.members);
    from.members
        .iter()
        .filter(|m| !removed.iter().any(|r| same_member(r, m)))
        .collect()
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
    let hosts = Hosts::default();
    let record = Record {
        fingerprints,
        warnings,
    };
    let changed = async {
        let mut runner = Runner::new(
            ctx,
            to,
            &hosts,
            timeout,
            record,
            ("membership change", "before-removal"),
        )
        .await?;
        runner.starting_from(&from.members);
        let steps = plan_membership(&from.members, &to.members, runner.observed().await);
        // The new members' hosts get their binaries while the steps
        // before their joins run.
        let new: Vec<MemberSpec> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Add(at) => to.members.iter().find(|m| m.name == at.name).cloned(),
                _ => None,
            })
            .collect();
        runner.stage_binaries(&new).await;
        for step in &steps {
            runner.run(step).await?;
        }
        Ok(())
    }
    .await;
    hosts.close().await;
    changed
}
