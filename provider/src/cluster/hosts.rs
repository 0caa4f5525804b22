//! SSH connections to the members' hosts: one for a step that changes a
//! member ([`connect`]), and those a phase keeps open for its whole run
//! ([`Hosts`]): a roll looks at every host before each member's step, and
//! opening a connection (a TCP and SSH handshake, ~0.15 s) for each look
//! cost more than the look itself. Connections are opened together, on
//! first use; one that could not be opened, or broke, is opened again at
//! the next use; `close` ends them all. Their commands are abandoned at
//! Terraform's stop request: they look and stage, and a step that changes
//! a member opens a connection of its own whose commands run to their end.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::member::MemberSpec;
use crate::ssh::Host;

#[derive(Default)]
pub struct Hosts {
    open: Mutex<BTreeMap<String, Arc<Host>>>,
}

impl Hosts {
    /// A connection to each of `members` (in order), opening the missing
    /// ones (and those that broke: a host rebooted) in parallel; a member
    /// that cannot be reached gets its error.
    pub async fn connect_all(&self, members: &[MemberSpec]) -> Vec<Result<Arc<Host>, String>> {
        let mut open = self.open.lock().await;
        let checks = members
            .iter()
            .filter_map(|m| open.get(&m.name).map(|h| (m, h.clone())));
        let broken: Vec<String> = futures::future::join_all(
            checks.map(|(m, host)| async move { (!host.is_alive().await).then(|| m.name.clone()) }),
        )
        .await
        .into_iter()
        .flatten()
        .collect();
        for name in broken {
            open.remove(&name);
        }
        let missing: Vec<&MemberSpec> = members
            .iter()
            .filter(|m| !open.contains_key(&m.name))
            .collect();
        let connected = futures::future::join_all(
            missing
                .iter()
                .map(|m| async { Host::connect(&m.ssh).await.map_err(|e| e.to_string()) }),
        )
        .await;
        let mut errors = BTreeMap::new();
        for (member, result) in missing.into_iter().zip(connected) {
            match result {
                Ok(host) => {
                    open.insert(member.name.clone(), Arc::new(host));
                }
                Err(e) => {
                    errors.insert(member.name.clone(), e);
                }
            }
        }
        members
            .iter()
            .map(|m| match open.get(&m.name) {
                Some(host) => Ok(host.clone()),
                None => Err(errors.remove(&m.name).unwrap_or_default()),
            })
            .collect()
    }

    /// Closes every connection. A connection still borrowed elsewhere
    /// closes when its last user drops it.
    pub async fn close(self) {
        let open = self.open.into_inner();
        futures::future::join_all(
            open.into_values()
                .filter_map(|h| Arc::try_unwrap(h).ok())
                .map(Host::close),
        )
        .await;
    }
}

/// Connects to a member's host to change it: its commands run to their end
/// even after Terraform's stop request (see [`Host::finishing_commands`]).
/// The error names the member.
pub async fn connect(member: &MemberSpec) -> Result<Host, String> {
    Host::connect(&member.ssh)
        .await
        .map(Host::finishing_commands)
        .map_err(|e| format!("member {}: {e}", member.name))
}

/// Connects to every member's host at once, in the order of `members`.
pub async fn connect_all(members: &[MemberSpec]) -> Vec<Result<Host, String>> {
    futures::future::join_all(members.iter().map(connect)).await
}

/// Closes connections opened by [`connect_all`].
pub async fn close_all(hosts: Vec<Result<Host, String>>) {
    futures::future::join_all(hosts.into_iter().flatten().map(Host::close)).await;
}
