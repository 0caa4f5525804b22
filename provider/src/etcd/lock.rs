//! The change lock: a lock in etcd itself, taken through etcd's lock
//! service (as `etcdctl lock` does) on a lease the provider keeps alive.
//! Two Terraform runs (two CI jobs, two workspaces, two `etcd_member`s of
//! one apply) never change one cluster at the same time; a crashed
//! holder's lock expires with its lease. An operator can hold it by hand to
//! freeze changes: `etcdctl lock terraform-provider-etcd/changes sleep 600`.

use std::time::Duration;

use etcd_client::LockOptions;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{text, Client};

/// The lock's name in the cluster's keyspace.
pub const CHANGE_LOCK: &str = "terraform-provider-etcd/changes";

/// How long the lock outlives a holder that stopped renewing its lease.
const LEASE_TTL_SECONDS: i64 = 15;

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
    client: etcd_client::Client,
    key: Vec<u8>,
    lease: i64,
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
        let renewing = CancellationToken::new();
        let (mut keeper, mut answers) = client
            .lease_keep_alive(lease)
            .await
            .map_err(|e| LockError::NoQuorum(text(e)))?;
        let stop = renewing.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(LEASE_TTL_SECONDS as u64 / 3)) => {}
                }
                if keeper.keep_alive().await.is_err() || answers.message().await.is_err() {
                    return;
                }
            }
        });
        let held = HeldLock {
            client: client.clone(),
            key: Vec::new(),
            lease,
            _renewing: renewing.drop_guard(),
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Each request ends with the client's request timeout; while
            // another holder has the lock, ask again until the deadline.
            match client
                .lock(CHANGE_LOCK, Some(LockOptions::new().with_lease(lease)))
                .await
            {
                Ok(answer) => {
                    return Ok(HeldLock {
                        key: answer.key().to_vec(),
                        ..held
                    })
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    log::info!(
                        "waiting for {CHANGE_LOCK}, held by another run ({})",
                        text(e)
                    );
                }
                Err(e) => {
                    held.release().await;
                    return Err(LockError::Busy(format!(
                        "another run held {CHANGE_LOCK} for {wait:?} ({}). Apply again once it has finished.",
                        text(e)
                    )));
                }
            }
        }
    }
}

impl HeldLock {
    /// Gives the lock back and ends its lease.
    pub async fn release(mut self) {
        if !self.key.is_empty() {
            if let Err(e) = self.client.unlock(self.key.clone()).await {
                log::warn!(
                    "{CHANGE_LOCK} not released ({}); it expires with its lease",
                    text(e)
                );
            }
        }
        let _ = self.client.lease_revoke(self.lease).await;
    }
}
