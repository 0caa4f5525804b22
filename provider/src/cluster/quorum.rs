//! The quorum guard's calls to the cluster, used by the runner
//! (`runner.rs`) around every step that touches a running member: after
//! it, the cluster must be whole and healthy again before the next step
//! ([`wait_until_healthy`]); a leader hands its role to a voter that
//! serves before it restarts ([`hand_off_leadership`]); a cluster the
//! configuration does not own is asked member by member
//! ([`foreign_members_serve`]). Around a whole change, the cluster's
//! change lock ([`take_change_lock`]) keeps any other run from changing
//! the cluster meanwhile.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::ClusterSpec;
use crate::etcd;
use crate::framework::Context;
use crate::member::MemberSpec;

/// Takes the cluster's change lock (etcd's lock service, on a lease), so
/// that no other run changes the cluster until it is released; waits up to
/// `wait` for another holder. A cluster without quorum cannot grant the
/// lock: then `None`, and the change goes on without it, since the guard
/// refuses every step that needs a quorum and the others (starting a
/// member that does not serve) are safe to make twice.
pub async fn take_change_lock(
    ctx: &Context,
    api: &etcd::Client,
    wait: Duration,
) -> Result<Option<etcd::HeldLock>, LockRefusal> {
    let taken = tokio::select! {
        taken = api.lock_changes(wait) => taken,
        _ = ctx.stopped() => return Err(LockRefusal::Other("stopped by Terraform while waiting for the change lock; nothing was changed".into())),
    };
    match taken {
        Ok(held) => Ok(Some(held)),
        Err(etcd::LockError::NoQuorum(e)) => {
            log::warn!(
                "no change lock ({e}): the cluster has no quorum; only members that do not serve are brought back"
            );
            Ok(None)
        }
        Err(etcd::LockError::Busy(e)) => Err(LockRefusal::Other(format!(
            "the cluster is being changed by another run: {e}"
        ))),
        Err(etcd::LockError::DatabaseFull(e)) => Err(LockRefusal::DatabaseFull(format!(
            "the cluster's database is full (NOSPACE alarm), so etcd grants no lease for the change lock: {e}"
        ))),
    }
}

/// Why [`take_change_lock`] took no lock.
#[derive(Debug)]
pub enum LockRefusal {
    /// The database is full: space must be freed before any lock is taken.
    DatabaseFull(String),
    /// Stopped by Terraform, or another run holds the lock.
    Other(String),
}

impl From<LockRefusal> for String {
    fn from(refusal: LockRefusal) -> String {
        match refusal {
            LockRefusal::DatabaseFull(e) | LockRefusal::Other(e) => e,
        }
    }
}

/// `ctx` for the steps made under `lock`: once the lock is no longer held
/// (its lease expired, or an operator revoked it), they stop at their next
/// safe point, since another run may take the lock and change the cluster.
pub fn under_lock(ctx: &Context, lock: &Option<etcd::HeldLock>) -> Context {
    match lock {
        Some(lock) => ctx.stopping_also_when(
            lock.ended(),
            "stopped: the cluster's change lock was lost (its lease expired or was revoked), so another run may change the cluster",
        ),
        None => ctx.clone(),
    }
}

/// Gives a lock from [`take_change_lock`] back.
pub async fn release_change_lock(lock: Option<etcd::HeldLock>) {
    if let Some(lock) = lock {
        lock.release().await;
    }
}

/// Refuses a step on `member` unless every other live member, managed
/// here or not, is started and healthy, each asked at its own client URL
/// (for a cluster the configuration does not own: `etcd_member`).
pub async fn foreign_members_serve(
    api: &etcd::Client,
    member: &MemberSpec,
    settings: &crate::member::ClusterSettings,
) -> Result<(), String> {
    let unhealthy = api.unhealthy_members(&member.peer_url(settings)).await?;
    if unhealthy.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "member {}: refusing to restart, add or remove it while other members are not healthy \
             (that could lose quorum): {}",
            member.name,
            unhealthy.join("; ")
        ))
    }
}

/// Waits until every configured member is a started voting member and
/// healthy. On time-out, names the members that are late and why.
pub async fn wait_until_healthy(
    ctx: &Context,
    spec: &ClusterSpec,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let api = spec.api(ctx.now()).await?;
    loop {
        let late = tokio::select! {
            late = late_members(spec, &api) => late,
            _ = ctx.stopped() => return Err(format!("{}; the cluster was not healthy yet", ctx.stop_reason())),
        };
        if late.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the cluster was not healthy within {timeout:?}; late: {}",
                late.join("; ")
            ));
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// How often a restarted member's health is polled: a member of a small
/// cluster is back well within a second, so a coarse poll would be most
/// of a rolling step's overhead.
const HEALTH_POLL: Duration = Duration::from_millis(50);

/// Members that are not yet started, voting and healthy, with the reason.
/// One look at every endpoint (status, quorum read and member list over
/// one connection each); the member list of one that answers a quorum
/// read, else of any that answers.
pub async fn late_members(spec: &ClusterSpec, api: &etcd::Client) -> Vec<String> {
    let survey = api.survey().await;
    let listed = survey
        .iter()
        .filter(|(status, _)| status.healthy)
        .chain(&survey)
        .find_map(|(_, list)| list.as_ref().ok());
    let Some((_, live)) = listed else {
        // Said once: no endpoint answered, so nothing is known per member.
        let errors: Vec<String> = survey
            .iter()
            .filter_map(|(status, list)| {
                list.as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", status.endpoint))
            })
            .collect();
        return vec![format!(
            "the member list is unavailable ({})",
            errors.join("; ")
        )];
    };
    spec.members
        .iter()
        .zip(&survey)
        .filter_map(|(member, (status, _))| {
            let problem = match live.iter().find(|m| m.name == member.name) {
                None => Some("not started".to_string()),
                Some(m) if m.is_learner => Some("still a learner".to_string()),
                Some(_) if !status.healthy => {
                    Some(status.error.clone().unwrap_or_else(|| "unhealthy".into()))
                }
                Some(_) => None,
            };
            problem.map(|p| format!("{} ({}): {p}", member.name, member.host))
        })
        .collect()
}

/// Refuses to go on unless every configured member is started, voting and
/// healthy now (before a membership step or a CA rotation pass).
pub async fn ensure_all_healthy(
    spec: &ClusterSpec,
    api: &etcd::Client,
    refusal: &str,
) -> Result<(), String> {
    let late = late_members(spec, api).await;
    if late.is_empty() {
        Ok(())
    } else {
        Err(format!("{refusal}: {}", late.join("; ")))
    }
}

/// A voting member other than `leaving` that serves, to hand leadership
/// to (`serving`: the names of the members that serve; `None`: every
/// voter, as the caller checked).
pub fn successor<'a>(
    live: &'a [etcd::Member],
    leaving: u64,
    serving: Option<&BTreeSet<String>>,
) -> Option<&'a etcd::Member> {
    live.iter().find(|m| {
        m.id != leaving && !m.is_learner && serving.is_none_or(|names| names.contains(&m.name))
    })
}

/// Hands leadership from `member` to another voting member if it leads,
/// before it restarts. Otherwise the cluster has a stopping leader for a
/// moment: lease renewals that followers forward to it fail, and some
/// clients (Patroni) give up their lock on such an error. Best effort:
/// etcd also hands leadership over when it stops cleanly, only later.
pub async fn hand_off_leadership(
    ctx: &Context,
    spec: &ClusterSpec,
    member: &MemberSpec,
    serving: &BTreeSet<String>,
) {
    let Ok(api) = spec.api(ctx.now()).await else {
        return;
    };
    let Ok((_, live)) = api.members().await else {
        return;
    };
    let peer_url = member.peer_url(&spec.settings);
    let Some(leaving) = live.iter().find(|m| m.peer_urls.contains(&peer_url)) else {
        return;
    };
    if let Some(next) = successor(&live, leaving.id, Some(serving)) {
        if let Err(e) = api.move_leader_off(leaving.id, next.id).await {
            log::warn!(
                "could not hand leadership off {} before its restart: {e}",
                member.name
            );
        }
    }
}
