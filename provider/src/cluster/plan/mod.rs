//! Decide: pure planners from (configuration, one observation of the
//! cluster) to the steps a phase takes, in order, and the pure guards the
//! runner (`runner.rs`) checks before each step. No I/O here: every rule
//! about ordering and evidence is tested in milliseconds by tables of
//! (configuration, observed) -> steps.
//!
//! - `repair`: which drifted members are brought back, repaired, renewed,
//!   restarted or re-added, and in which order.
//! - `roll`: which members a rolling change restarts, and which it skips.
//! - `membership`: the order of adds and removals when members change.
//! - `guard`: whether a step may run now, judged on the live voters.

pub mod guard;
pub mod membership;
pub mod repair;
pub mod roll;

/// A member as the configuration names it: its name and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAt {
    pub name: String,
    pub host: String,
}

impl MemberAt {
    pub fn of(member: &crate::member::MemberSpec) -> MemberAt {
        MemberAt {
            name: member.name.clone(),
            host: member.host.clone(),
        }
    }
}

/// One step on a running cluster, for the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Rewrite and start members that do not serve, all together, then
    /// wait once for a healthy cluster (while a majority is down, no one
    /// member becomes healthy alone). No quorum guard: a member that does
    /// not serve can only give a voter back.
    BringBack(Vec<String>),
    /// Reinstall a member's backup job; etcd is not touched.
    RepairBackupJob(String),
    /// New certificates for a serving member without a restart (a restart
    /// after all if it keeps serving the old ones).
    RenewCertificates(String),
    /// Rewrite a member's files and restart it: a roll, or drift repaired.
    Restart(String),
    /// Remove a member (if still listed) and add it again as a learner,
    /// its old data moved aside: it was removed out of band, or lost its
    /// data.
    Readd(String),
    /// Remove a live member the configuration does not list.
    RemoveUnmanaged { id: u64, label: String },
    /// Add a new member (as a learner, promoted once it caught up).
    Add(MemberAt),
    /// Remove a member that leaves the configuration, and uninstall it.
    Remove(MemberAt),
    /// Stop the phase here, with this reason: the next step cannot be
    /// made safely.
    Refuse(String),
}
