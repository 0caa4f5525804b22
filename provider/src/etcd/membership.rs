//! Membership changes through the client API: add (as a learner),
//! promote, remove, and moving leadership off a member, with etcd's
//! deferral of changes right after a restart retried.

use std::time::Duration;

use super::{format_id, text, Client};

/// Why a membership change failed, as far as a caller decides on it.
#[derive(Debug)]
enum MembershipError {
    /// etcd defers membership changes ("unhealthy cluster") until every
    /// member has been connected for a few seconds, e.g. after a restart.
    Deferred(String),
    Failed(String),
}

impl MembershipError {
    /// Sorts an etcd error by its gRPC status: etcd answers a deferred
    /// change with `Unavailable` and its `ErrGRPCUnhealthy` description.
    fn from_etcd(e: etcd_client::Error) -> MembershipError {
        let deferred = matches!(&e, etcd_client::Error::GRpcStatus(status)
            if status.code() == tonic::Code::Unavailable
                && status.message() == "etcdserver: unhealthy cluster");
        if deferred {
            MembershipError::Deferred(text(e))
        } else {
            MembershipError::Failed(text(e))
        }
    }
}

impl From<String> for MembershipError {
    fn from(e: String) -> MembershipError {
        MembershipError::Failed(e)
    }
}

impl Client {
    /// Removes member `id`, asking through another member: a member that
    /// applies its own removal stops before it answers. An answer lost on
    /// the way (the leader changed, the connection broke) is settled by the
    /// member list: the removal is done once `id` is no longer listed
    /// (asked for up to ten seconds).
    pub async fn remove_member(&self, id: u64) -> Result<(), String> {
        let asked = patiently(|| async {
            let (mut client, _, _) = self.first_answering(Some(id)).await?;
            client
                .member_remove(id)
                .await
                .map_err(MembershipError::from_etcd)?;
            Ok(())
        })
        .await;
        let Err(e) = asked else { return Ok(()) };
        for _ in 0..10 {
            let listed = async {
                let (client, _, _) = self.first_answering(Some(id)).await?;
                Self::member_list(client).await
            };
            // A follower's list may lag the commit by a moment.
            if let Ok((_, members)) = listed.await {
                if !members.iter().any(|m| m.id == id) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(e)
    }

    /// Adds a member by its peer URL, as a non-voting learner when asked;
    /// returns the new member's ID.
    pub async fn add_member(&self, peer_url: &str, learner: bool) -> Result<u64, String> {
        patiently(|| async {
            let mut client = self.any_client().await?;
            let options = learner.then(|| etcd_client::MemberAddOptions::new().with_is_learner());
            let response = client
                .member_add([peer_url], options)
                .await
                .map_err(MembershipError::from_etcd)?;
            response
                .member()
                .map(|m| m.id())
                .ok_or_else(|| MembershipError::Failed("member add returned no member".into()))
        })
        .await
    }

    /// Promotes learner `id` once it has caught up with the
    /// leader (etcd refuses until then), waiting up to `timeout`.
    pub async fn promote_member(&self, id: u64, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Never through the learner itself: a learner serves no
            // membership calls.
            let attempt = async {
                let (mut client, _, _) = self.first_answering(Some(id)).await?;
                client.member_promote(id).await.map_err(text).map(|_| ())
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    log::debug!("learner {} not promoted yet: {e}", format_id(id));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "learner {} was not promoted within {timeout:?}: {e}",
                        format_id(id)
                    ))
                }
            }
        }
    }

    /// Hands leadership to `target` if `from` is the leader; asks the
    /// leader itself, as etcd requires.
    pub async fn move_leader_off(&self, from: u64, target: u64) -> Result<(), String> {
        for status in self.statuses().await {
            if status.member_id == Some(from) && status.leader == Some(from) {
                let endpoint = status.endpoint.clone();
                return Self::bounded(&endpoint.clone(), async {
                    let mut client = self.client(&[endpoint]).await?;
                    client.move_leader(target).await.map_err(text).map(|_| ())
                })
                .await;
            }
        }
        Ok(())
    }
}

/// Runs a membership change, retrying for up to 30 seconds while etcd
/// defers it (see [`MembershipError::Deferred`]); other errors end it.
async fn patiently<T, F, Fut>(mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MembershipError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(MembershipError::Deferred(e)) if tokio::time::Instant::now() < deadline => {
                log::debug!("membership change deferred by etcd ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(MembershipError::Deferred(e) | MembershipError::Failed(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_etcds_unhealthy_cluster_answer_defers_a_membership_change() {
        let deferred = etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
            "etcdserver: unhealthy cluster",
        ));
        assert!(matches!(
            MembershipError::from_etcd(deferred),
            MembershipError::Deferred(_)
        ));
        for other in [
            tonic::Status::unavailable("etcdserver: request timed out"),
            tonic::Status::failed_precondition("etcdserver: unhealthy cluster"),
            tonic::Status::invalid_argument("etcdserver: Peer URLs already exists"),
        ] {
            assert!(matches!(
                MembershipError::from_etcd(etcd_client::Error::GRpcStatus(other)),
                MembershipError::Failed(_)
            ));
        }
    }
}
