//! New etcd binaries uploaded ahead of the members' steps, in the
//! background (see `binaries::stage_binaries`): a roll's or a scale-out's
//! first member waits only for its own host's upload, and the other hosts
//! get theirs while it restarts or joins.
//!
//! The hosts are served one after the other, in the order the steps take
//! them, so that the first member's binaries arrive as early as they can
//! (uploads in parallel would share the link and the CPU, and all finish
//! last). Staging touches nothing a member runs; a failed or unfinished
//! upload costs only speed, as the member's own step uploads what is not
//! staged. An interrupted upload leaves no staged file (files are written
//! through a temporary one), and the uploads stop when the phase ends.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::member::binaries::{stage_binaries, LocalBinaries};
use crate::member::ClusterSettings;
use crate::ssh::Host;

/// Uploads under way (see the module).
pub struct Staging {
    /// The members whose hosts get uploads.
    members: BTreeSet<String>,
    /// The members whose upload has ended, well or not.
    ended: watch::Receiver<BTreeSet<String>>,
    uploads: JoinHandle<()>,
}

impl Staging {
    /// Starts uploading `local` to each of `hosts` (member name and its
    /// host), in that order.
    pub fn start(
        hosts: Vec<(String, Arc<Host>)>,
        settings: ClusterSettings,
        local: Arc<LocalBinaries>,
    ) -> Staging {
        let members = hosts.iter().map(|(name, _)| name.clone()).collect();
        let (tell, ended) = watch::channel(BTreeSet::new());
        let uploads = tokio::spawn(async move {
            for (name, host) in hosts {
                if let Err(e) = stage_binaries(&host, &settings, &local).await {
                    log::warn!("member {name}: staging the binaries: {e}");
                }
                tell.send_modify(|ended| {
                    ended.insert(name);
                });
            }
        });
        Staging {
            members,
            ended,
            uploads,
        }
    }

    /// Waits until the upload to `member`'s host has ended (at once for a
    /// member not staged).
    pub async fn wait_for(&mut self, member: &str) {
        if !self.members.contains(member) {
            return;
        }
        // An error: every upload has ended.
        let _ = self.ended.wait_for(|ended| ended.contains(member)).await;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.uploads.abort();
    }
}
