//! Whole-cluster operations, as phases over SSH and the etcd API.
//!
//! ```text
//! create:  bootstrap
//! read:    observe
//! update:  membership -> downgrade (to the previous minor) -> roll -> rotate_ca (one stage per apply) -> repair
//!          -> space (a NOSPACE alarm cleared)
//!          (order in update.rs); then auth (create too)
//! delete:  teardown
//! etcd_member: foreign_member (join / observe / update / leave)
//! ```
//!
//! Each phase is one file that opens with what it changes, when it has
//! nothing to do, its steps and why each is safe, and how an interrupted
//! run resumes. Decide, then run: each phase asks a pure planner
//! (`plan/`: the order of its steps, and the quorum guards, tested by
//! tables) and hands every step that touches a running member to the one
//! `runner`, which holds every guard (stop and lock, quorum on the live
//! voters, the snapshot before, the leader hand-off, the health wait, the
//! backup job). Below them: `backups` (the backup job, and the
//! snapshot before a change), `quorum` (the guard's calls to the cluster),
//! `member_steps` (the steps, each on one member), `hosts` (SSH
//! connections, and those a phase keeps open), `in_place` (new
//! certificates without a restart), `observe` (what is
//! running, with a typed `Problem` per member from `health`), `api` (the client API,
//! direct or tunnelled) and `spec`. Which versions may follow which, and
//! how each spells its settings, is `crate::version`'s.
//!
//! Rules every phase keeps:
//! - A running cluster changes one member at a time. Restarting a serving
//!   member or changing the membership happens only while every other
//!   member serves; a member that does not serve may always be brought
//!   back. After each step the whole cluster must be healthy before the
//!   next.
//! - Data is never deleted unless the user asked (purge on destroy); data
//!   in the way is moved aside.
//! - Every phase can be interrupted (Terraform's stop request is checked
//!   between steps) and resumes: what is done is read from the cluster and
//!   the hosts, not from memory, and skipped.

mod api;
mod auth;
mod backups;
mod bootstrap;
mod downgrade;
pub mod foreign_member;
mod health;
mod hosts;
mod import;
mod in_place;
mod member_steps;
mod membership;
mod observe;
mod peer_names;
mod plan;
mod quorum;
mod repair;
mod roll;
mod rotate_ca;
mod runner;
mod snapshot_stream;
mod space;
mod spec;
mod staging;
mod teardown;
mod update;
mod warning;

pub use auth::{auth_enabled, set_auth};
pub use bootstrap::bootstrap;
pub use import::read_live_cluster;
pub use membership::{change_membership, membership_changes, replaced_in_place, staying};
pub use observe::{observe, Observed, HEALTHY};
pub use repair::repair;
pub use roll::roll;
pub use rotate_ca::{retire_old_ca, trust_new_ca};
pub use space::clear_space_alarms;
pub use spec::{trusted_bundle, ClusterSpec};
pub use teardown::teardown;
pub use update::update;
pub use warning::ChangeWarning;

use crate::framework::Context;

/// Ends a phase between two steps once Terraform has asked the provider to
/// stop, saying that the next apply continues `phase`.
fn continue_unless_stopped(ctx: &Context, phase: &str) -> Result<(), String> {
    if ctx.is_stopped() {
        Err(format!(
            "{}; the next apply continues the {phase}",
            ctx.stop_reason()
        ))
    } else {
        Ok(())
    }
}
