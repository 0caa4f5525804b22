//! The change lock: a lock in etcd itself, taken through etcd's lock
//! service (as `etcdctl lock` does) on a lease the provider keeps alive.
//! Two Terraform runs (two CI jobs, two workspaces, two `etcd_member`s of
//! one apply) never change one cluster at the same time; a crashed
//! holder's lock expires with its lease. An operator can hold it by hand to
//! freeze changes: `etcdctl lock terraform-provider-etcd/changes sleep 600`.
//!
//! The holder restarts every member in a roll, the member it first reached
//! among them, and a waiter waits through those restarts: the lease is
//! renewed, the lock asked for and given back through whichever member
//! answers at the time, never through one member only (a lease renewed
//! through a member that restarts would expire in the middle of a change,
//! and let a second run in). A holder whose lease is gone anyway (expired,
//! or revoked by an operator to end a stuck run) is told ([`HeldLock::ended`])
//! and stops at its next safe point.
//!
//! Fencing: the holder knows until when its lease lives (each renewal's
//! answer gives the time left); once that is closer than
//! [`FENCE_MARGIN`] without a new answer (every member out of reach, say),
//! `ended` fires too, so that no restart or membership call is made by a
//! run that may have lost the lock. The check costs no round trip.

use std::time::Duration;

use etcd_client::LockOptions;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{text, Client};

/// The lock's name in the cluster's keyspace.
pub const CHANGE_LOCK: &str = "terraform-provider-etcd/changes";

/// How long the lock outlives a holder that stopped renewing its lease.
const LEASE_TTL_SECONDS: i64 = 15;

/// How often the lease is renewed: three times within its TTL.
const RENEW_EVERY: Duration = Duration::from_secs(LEASE_TTL_SECONDS as u64 / 3);

/// How long before the lease could have expired the holder stops
/// counting on it: room for one step that is already under way to land.
const FENCE_MARGIN: Duration = Duration::from_secs(4);

/// The pause before the lease or the lock is asked for again through
/// another member, after the one asked failed at once (refused, reset).
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// The cluster could not grant a lease: it has no quorum (or no member
    /// answers). No change that needs a quorum can be made anyway.
    NoQuorum(String),
    /// Someone else held the lock for the whole wait.
    Busy(String),
    /// The database is full (a NOSPACE alarm): etcd grants no lease until
    /// space is freed.
    DatabaseFull(String),
}

/// The held lock; [`HeldLock::release`] gives it back. Dropped instead, it
/// stops renewing its lease, so the lock expires within the lease's TTL.
pub struct HeldLock {
    cluster: Client,
    key: Vec<u8>,
    lease: i64,
    /// Fires once the lock is no longer held: released, dropped, or its
    /// lease gone (expired, or revoked by an operator).
    ended: CancellationToken,
    _renewing: DropGuard,
}

/// A lease grant that got no answer in time: no quorum to grant it.
impl From<String> for LockError {
    fn from(e: String) -> LockError {
        LockError::NoQuorum(e)
    }
}

impl Client {
    /// Takes the change lock, waiting up to `wait` while another holder has
    /// it.
    pub async fn lock_changes(&self, wait: Duration) -> Result<HeldLock, LockError> {
        let mut client = self.any_client().await.map_err(LockError::NoQuorum)?;
        let asked = tokio::time::Instant::now();
        let granted = Self::bounded("lease grant", async {
            client
                .lease_grant(LEASE_TTL_SECONDS, None)
                .await
                .map_err(|e| match &e {
                    // etcd's ErrGRPCNoSpace.
                    etcd_client::Error::GRpcStatus(status)
                        if status.code() == tonic::Code::ResourceExhausted =>
                    {
                        LockError::DatabaseFull(text(e))
                    }
                    _ => LockError::NoQuorum(text(e)),
                })
        })
        .await?;
        let lease = granted.id();
        let ended = CancellationToken::new();
        let lives_until = LivesUntil::counted_from(asked, granted.ttl());
        tokio::spawn(keep_lease_alive(
            self.clone(),
            lease,
            lives_until.clone(),
            ended.clone(),
        ));
        tokio::spawn(fence(lives_until, ended.clone()));
        let held = HeldLock {
            cluster: self.clone(),
            key: Vec::new(),
            lease,
            ended: ended.clone(),
            _renewing: ended.drop_guard(),
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut told = false;
        loop {
            // Each request ends with the client's request timeout; while
            // another holder has the lock, ask again until the deadline.
            let asked = client
                .lock(CHANGE_LOCK, Some(LockOptions::new().with_lease(lease)))
                .await;
            let e = match asked {
                Ok(answer) => {
                    return Ok(HeldLock {
                        key: answer.key().to_vec(),
                        ..held
                    })
                }
                Err(e) => text(e),
            };
            if held.ended.is_cancelled() {
                return Err(LockError::Busy(format!(
                    "the lease this run waited for {CHANGE_LOCK} with is gone (expired or revoked) ({e}). Apply again."
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                held.release().await;
                return Err(LockError::Busy(format!(
                    "another run held {CHANGE_LOCK} for {wait:?} ({e}). Apply again once it has finished."
                )));
            }
            if told {
                log::debug!("still waiting for {CHANGE_LOCK} ({e})");
            } else {
                log::info!("waiting for {CHANGE_LOCK}, held by another run ({e})");
                told = true;
            }
            // The member asked may have gone away (restarted by the
            // holder): ask again through whichever answers now.
            tokio::time::sleep(RETRY_AFTER).await;
            if let Ok(next) = self.any_client().await {
                client = next;
            }
        }
    }
}

/// Until when the lease is known to live: the time of the last renewal
/// answer plus the time to live it gave.
#[derive(Clone)]
struct LivesUntil(std::sync::Arc<std::sync::Mutex<tokio::time::Instant>>);

impl LivesUntil {
    /// A lease granted with `ttl_seconds` by a request sent at `asked`.
    fn counted_from(asked: tokio::time::Instant, ttl_seconds: i64) -> LivesUntil {
        let until = asked + seconds(ttl_seconds);
        LivesUntil(std::sync::Arc::new(std::sync::Mutex::new(until)))
    }

    /// A renewal answered with `ttl_seconds` left, counted from when it was
    /// asked (the answer may have taken a while).
    fn renewed(&self, asked: tokio::time::Instant, ttl_seconds: i64) {
        if let Ok(mut until) = self.0.lock() {
            *until = (*until).max(asked + seconds(ttl_seconds));
        }
    }

    fn get(&self) -> tokio::time::Instant {
        self.0
            .lock()
            .map(|until| *until)
            .unwrap_or_else(|_| tokio::time::Instant::now())
    }
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

/// Fires `ended` once the lease may expire within [`FENCE_MARGIN`] with no
/// renewal answered meanwhile.
async fn fence(lives_until: LivesUntil, ended: CancellationToken) {
    loop {
        let fence_at = lives_until.get().checked_sub(FENCE_MARGIN);
        let fence_at = fence_at.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            _ = ended.cancelled() => return,
            _ = tokio::time::sleep_until(fence_at) => {}
        }
        if lives_until.get().checked_sub(FENCE_MARGIN) <= Some(tokio::time::Instant::now()) {
            log::warn!(
                "no member renewed the lease of {CHANGE_LOCK} in time: this run can no longer be sure it \
                 holds the lock, and stops before its next restart or membership change"
            );
            ended.cancel();
            return;
        }
    }
}

/// Renews `lease` until `ended` fires, through whichever member answers;
/// when the member renewing it stops answering, through another. Once the
/// lease is gone (expired or revoked), fires `ended` itself.
async fn keep_lease_alive(
    cluster: Client,
    lease: i64,
    lives_until: LivesUntil,
    ended: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = ended.cancelled() => return,
            renewing = renew_through_one_member(&cluster, lease, &lives_until) => match renewing {
                Ok(()) => {
                    log::warn!(
                        "the lease of {CHANGE_LOCK} is gone (expired or revoked): this run no longer holds the lock \
                         and stops at its next safe point"
                    );
                    ended.cancel();
                    return;
                }
                Err(e) => log::debug!("renewing the lease of {CHANGE_LOCK} through another member ({e})"),
            },
        }
        tokio::select! {
            _ = ended.cancelled() => return,
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}

/// Renews `lease` every [`RENEW_EVERY`] through the first member that
/// answers, until that member fails (an error) or etcd says the lease is
/// gone (`Ok`: asked when the renewal starts, so right after a failed one).
async fn renew_through_one_member(
    cluster: &Client,
    lease: i64,
    lives_until: &LivesUntil,
) -> Result<(), String> {
    let mut client = cluster.any_client().await?;
    // The client reports a renewal of a lease etcd no longer has as an
    // error like any other: ask etcd first (a gone lease has no time left).
    let left = Client::bounded("lease time to live", async {
        client.lease_time_to_live(lease, None).await.map_err(text)
    })
    .await?;
    if left.ttl() <= 0 {
        return Ok(());
    }
    let (mut keeper, mut answers) = Client::bounded("lease renewal", async {
        client.lease_keep_alive(lease).await.map_err(text)
    })
    .await?;
    loop {
        let asked = tokio::time::Instant::now();
        let ttl = Client::bounded("lease renewal", async {
            keeper.keep_alive().await.map_err(text)?;
            match answers.message().await.map_err(text)? {
                Some(answer) => Ok(answer.ttl()),
                None => Err("the member ended the renewal stream".to_string()),
            }
        })
        .await?;
        if ttl <= 0 {
            return Ok(());
        }
        lives_until.renewed(asked, ttl);
        tokio::time::sleep(RENEW_EVERY).await;
    }
}

impl HeldLock {
    /// Fires once the lock is no longer held (see the field).
    pub fn ended(&self) -> CancellationToken {
        self.ended.clone()
    }

    /// Gives the lock back and ends its lease, through whichever member
    /// answers.
    pub async fn release(self) {
        if self.ended.is_cancelled() {
            // Its lease is gone, and the lock's key with it.
            return;
        }
        let mut client = match self.cluster.any_client().await {
            Ok(client) => client,
            Err(e) => {
                log::warn!("{CHANGE_LOCK} not released ({e}); it expires with its lease");
                return;
            }
        };
        if !self.key.is_empty() {
            if let Err(e) = client.unlock(self.key.clone()).await {
                log::warn!(
                    "{CHANGE_LOCK} not released ({}); it expires with its lease",
                    text(e)
                );
            }
        }
        let _ = client.lease_revoke(self.lease).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_holder_whose_lease_is_not_renewed_stops_before_it_could_expire() {
        let start = tokio::time::Instant::now();
        let lives_until = LivesUntil::counted_from(start, LEASE_TTL_SECONDS);
        let ended = CancellationToken::new();
        let fenced = tokio::spawn(fence(lives_until.clone(), ended.clone()));
        // Renewed at 5 s: held until 20 s, fenced at 16 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
        lives_until.renewed(tokio::time::Instant::now(), LEASE_TTL_SECONDS);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!ended.is_cancelled(), "fenced while the lease still lives");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(ended.is_cancelled(), "not fenced 3 s before the lease ends");
        fenced.await.unwrap();
    }
}
