//! Run: the one place where steps touch a running cluster, and every guard
//! around them. The phases decide (the planners in `plan/`, from one
//! observation); the runner checks and runs:
//!
//! - Terraform's stop request, and the change lock still held (the
//!   phases' context stops once the lock is lost or can no longer be
//!   counted on; see `etcd::lock`), checked before each step and again
//!   right before each restart or membership call;
//! - quorum judged on the live voters (`plan::guard`), on an observation
//!   taken after the last step: a member counts as down only on its own
//!   host's evidence (see `observe`), never because this machine cannot
//!   reach it;
//! - the snapshot before the first step that restarts or removes a voter
//!   (kept on the member; a failed copy to the backup host warns);
//! - the leader handed to a voter that serves before its member restarts
//!   or leaves;
//! - the wait until every member is healthy after each step, then the
//!   member's backup job.
//!
//! A phase observes (`observed`), asks its planner, runs the first step
//! and observes again: an interrupted apply resumes on the same path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::backups::SnapshotBefore;
use super::backups::{install_backup_job, install_backup_job_after_change, JobInstallError};
use super::hosts::{close_all, connect, connect_all, Hosts};
use super::in_place::renew_certificates;
use super::member_steps::{
    refuse_shared_machines, remove_member, rewrite_and_restart, uninstall_member, Joining,
};
use super::observe::{in_renewal_window, observe_through};
use super::peer_names::give_peer_names;
use super::plan::guard::{all_serve, others_serve};
use super::plan::{MemberAt, Step};
use super::quorum::{foreign_members_serve, hand_off_leadership, wait_until_healthy};
use super::staging::Staging;
use super::{continue_unless_stopped, ChangeWarning, ClusterSpec, Observed};
use crate::framework::Context;
use crate::member::binaries::LocalBinaries;
use crate::member::install::Fingerprints;
use crate::member::MemberSpec;
use crate::ssh::Host;

/// What the steps leave for the resource's state: the members' file
/// fingerprints, and the warnings to show.
pub struct Record<'a> {
    pub fingerprints: &'a mut BTreeMap<String, Fingerprints>,
    pub warnings: &'a mut Vec<ChangeWarning>,
}

/// Runs one phase's steps (see the module).
pub struct Runner<'a> {
    ctx: &'a Context,
    /// The configuration the steps bring the members to.
    spec: &'a ClusterSpec,
    /// The members the cluster has now (a membership change adds and
    /// removes; otherwise the spec's).
    present: Vec<MemberSpec>,
    hosts: &'a Hosts,
    binaries: Option<Arc<LocalBinaries>>,
    /// Binaries uploaded ahead of the steps, if any.
    staging: Option<Staging>,
    timeout: Duration,
    phase: &'static str,
    snapshot: SnapshotBefore,
    record: Record<'a>,
    /// The observation of `present` since the last step, if any.
    observed: Option<Observed>,
    /// Members a step of this run has touched.
    pub done: BTreeSet<String>,
    /// Whether every member's peer certificate carries the peer name (see
    /// [`Runner::give_peer_names`]).
    peer_names_given: bool,
}

impl<'a> Runner<'a> {
    /// A runner for `phase` (named in messages), which takes the snapshot
    /// `snapshot_label` before its first step that needs one.
    pub async fn new(
        ctx: &'a Context,
        spec: &'a ClusterSpec,
        hosts: &'a Hosts,
        timeout: Duration,
        record: Record<'a>,
        (phase, snapshot_label): (&'static str, &'static str),
    ) -> Result<Runner<'a>, String> {
        Ok(Runner {
            ctx,
            spec,
            present: spec.members.clone(),
            hosts,
            binaries: spec.local_binaries().await?.map(Arc::new),
            staging: None,
            timeout,
            phase,
            snapshot: SnapshotBefore::new(snapshot_label),
            record,
            observed: None,
            done: BTreeSet::new(),
            peer_names_given: false,
        })
    }

    /// The members the cluster has now, before a membership change.
    pub fn starting_from(&mut self, members: &[MemberSpec]) {
        self.present = members.to_vec();
        self.observed = None;
    }

    /// Runs the next steps with `spec` (a CA rotation's next pass).
    pub fn switch_spec(&mut self, spec: &'a ClusterSpec) {
        self.spec = spec;
        self.present = spec.members.clone();
        self.observed = None;
    }

    /// Starts uploading the binaries to the hosts of `members` in the
    /// background (see `staging`); each member's step waits for its own.
    pub async fn stage_binaries(&mut self, members: &[MemberSpec]) {
        let Some(local) = self.binaries.clone() else {
            return;
        };
        let connected = self.hosts.connect_all(members).await;
        let hosts = members
            .iter()
            .zip(connected)
            .filter_map(|(m, host)| Some((m.name.clone(), host.ok()?)))
            .collect();
        self.staging = Some(Staging::start(hosts, self.spec.settings.clone(), local));
    }

    /// Waits for the upload of `name`'s binaries, if one is under way.
    async fn staged(&mut self, name: &str) {
        if let Some(staging) = &mut self.staging {
            staging.wait_for(name).await;
        }
    }

    pub fn record(&mut self) -> &mut Record<'a> {
        &mut self.record
    }

    /// The cluster as it is now.
    fn present_spec(&self) -> ClusterSpec {
        self.spec.with_members(self.present.clone())
    }

    /// The observation since the last step, taken now if there is none.
    pub async fn observed(&mut self) -> &Observed {
        if self.observed.is_none() {
            let present = self.present_spec();
            let seen =
                observe_through(self.ctx, &present, self.record.fingerprints, self.hosts).await;
            self.observed = Some(seen);
        }
        self.observed.get_or_insert_with(Observed::default)
    }

    fn member(&self, name: &str) -> Result<&MemberSpec, String> {
        self.present
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("member {name} is not in the configuration"))
    }

    /// Runs one step with its guards; the next look at the cluster is a
    /// new observation.
    pub async fn run(&mut self, step: &Step) -> Result<(), String> {
        continue_unless_stopped(self.ctx, self.phase)?;
        let ran = match step {
            Step::Refuse(why) => Err(why.clone()),
            Step::BringBack(names) => self.bring_back(names).await,
            Step::RepairBackupJob(name) => self.repair_backup_job(name).await,
            Step::RenewCertificates(name) => {
                let (ctx, spec) = (self.ctx, self.spec);
                let out_of_window = move |der: &[u8]| {
                    crate::pki::not_after_der(der)
                        .is_some_and(|end| !in_renewal_window(ctx, spec, end))
                };
                self.renew_or_restart(name, out_of_window).await
            }
            Step::Restart(name) => self.restart(name).await,
            Step::Readd(name) => self.readd(name).await,
            Step::RemoveUnmanaged { id, label } => self.remove_unmanaged(*id, label).await,
            Step::Add(at) => self.add(at).await,
            Step::Remove(at) => self.remove(at).await,
        };
        self.observed = None;
        ran
    }

    /// Gives every member the peer name (see `peer_names`) once, before
    /// the first step that writes a member's config, whether it comes
    /// through [`Runner::run`] or straight from a phase (the CA rotation).
    async fn give_peer_names(&mut self) -> Result<(), String> {
        if self.peer_names_given {
            return Ok(());
        }
        let missing = self.observed().await.peer_name_missing.clone();
        let (ctx, spec) = (self.ctx, self.spec);
        give_peer_names(ctx, spec, &self.present, &missing, self.record.fingerprints).await?;
        self.peer_names_given = true;
        Ok(())
    }

    /// Refuses a step on `name` unless every other voter serves, then
    /// takes the snapshot before the change if none was taken yet.
    async fn guard_member_change(&mut self, name: &str) -> Result<(), String> {
        let names: Vec<String> = self.present.iter().map(|m| m.name.clone()).collect();
        let observed = self.observed().await;
        others_serve(names.iter().map(String::as_str), observed, name)
            .map_err(|e| format!("{} paused: {e}", self.phase))?;
        if !self.spec.foreign_endpoints.is_empty() {
            let api = self.spec.api(self.ctx.now()).await?;
            let member = self.member(name)?;
            foreign_members_serve(&api, member, &self.spec.settings).await?;
        }
        self.snapshot_before().await
    }

    /// The snapshot before the first change, on a member of ours. A
    /// cluster the configuration does not own (`etcd_member`) is backed up
    /// by its owner: when its one member of ours cannot take a snapshot
    /// (it is the member being repaired), the change goes on.
    async fn snapshot_before(&mut self) -> Result<(), String> {
        let present = self.present_spec();
        match self.snapshot.ensure(&present, self.record.warnings).await {
            Err(e) if !self.spec.foreign_endpoints.is_empty() => {
                log::warn!("no snapshot before this change of a cluster owned elsewhere: {e}");
                Ok(())
            }
            taken => taken,
        }
    }

    /// The names of the members that serve, as last observed.
    async fn serving(&mut self) -> BTreeSet<String> {
        self.observed().await.serving.clone()
    }

    /// Rewrites and restarts `name` (serving or not) with the guards.
    pub async fn restart(&mut self, name: &str) -> Result<(), String> {
        self.guard_member_change(name).await?;
        self.give_peer_names().await?;
        let serving = self.serving().await;
        let member = self.member(name)?.clone();
        log::info!("{}: restarting member {}", self.phase, member.name);
        hand_off_leadership(self.ctx, self.spec, &member, &serving).await;
        self.staged(name).await;
        let host = connect(&member).await?;
        let changed = async {
            // Fencing: the last look at the lock, right before the restart.
            continue_unless_stopped(self.ctx, self.phase)?;
            rewrite_and_restart(
                self.ctx,
                self.spec,
                &member,
                &host,
                self.binaries.as_deref(),
            )
            .await
        }
        .await;
        self.after_change(&member, host, changed).await
    }

    /// Records the member's new files, closes `host`, waits until the
    /// cluster is healthy and reinstalls the member's backup job.
    async fn after_change(
        &mut self,
        member: &MemberSpec,
        host: Host,
        changed: Result<Fingerprints, String>,
    ) -> Result<(), String> {
        let prints = match changed {
            Ok(prints) => prints,
            Err(e) => {
                host.close().await;
                return Err(format!("member {}: {e}", member.name));
            }
        };
        self.record.fingerprints.insert(member.name.clone(), prints);
        self.done.insert(member.name.clone());
        let healthy = wait_until_healthy(self.ctx, &self.present_spec(), self.timeout).await;
        if healthy.is_ok() {
            install_backup_job_after_change(self.spec, member, Some(&host)).await;
        }
        host.close().await;
        healthy
    }

    /// Writes new certificates for a serving member without a restart;
    /// restarts it (with the guards) if it does not then serve one that
    /// passes `expected`.
    pub async fn renew_or_restart(
        &mut self,
        name: &str,
        expected: impl Fn(&[u8]) -> bool,
    ) -> Result<(), String> {
        self.give_peer_names().await?;
        let member = self.member(name)?.clone();
        log::info!(
            "{}: renewing the certificates of member {name} in place",
            self.phase
        );
        let renewed = renew_certificates(
            self.ctx,
            self.spec,
            &member,
            self.binaries.as_deref(),
            self.record.fingerprints,
            expected,
        )
        .await?;
        if renewed {
            self.done.insert(member.name.clone());
            return wait_until_healthy(self.ctx, &self.present_spec(), self.timeout).await;
        }
        log::warn!("member {name} still serves its old certificate: restarting it");
        self.observed = None;
        self.restart(name).await
    }

    /// Rewrites and starts members that do not serve, all of them, then
    /// waits once (see `Step::BringBack`).
    async fn bring_back(&mut self, names: &[String]) -> Result<(), String> {
        self.give_peer_names().await?;
        for name in names {
            let member = self.member(name)?.clone();
            log::info!("bringing back member {name}, which does not serve");
            self.staged(name).await;
            let host = connect(&member).await?;
            let changed = rewrite_and_restart(
                self.ctx,
                self.spec,
                &member,
                &host,
                self.binaries.as_deref(),
            )
            .await;
            host.close().await;
            let prints = changed.map_err(|e| format!("member {name}: {e}"))?;
            self.record.fingerprints.insert(name.clone(), prints);
            self.done.insert(name.clone());
        }
        wait_until_healthy(self.ctx, &self.present_spec(), self.timeout).await
    }

    async fn repair_backup_job(&mut self, name: &str) -> Result<(), String> {
        let member = self.member(name)?.clone();
        log::info!("repairing the backup job of member {name}");
        self.done.insert(member.name.clone());
        match install_backup_job(self.spec, &member).await {
            Ok(()) => Ok(()),
            // The job runs; its copies fail until the backup host is back,
            // and show as drift until then.
            Err(JobInstallError::CopiesNotSetUp(e)) => {
                self.record
                    .warnings
                    .push(ChangeWarning::BackupCopyFailed(e));
                Ok(())
            }
            Err(JobInstallError::Job(e)) => Err(e),
        }
    }

    /// Re-adds a member removed out of band or whose data is gone.
    async fn readd(&mut self, name: &str) -> Result<(), String> {
        self.guard_member_change(name).await?;
        self.give_peer_names().await?;
        let member = self.member(name)?.clone();
        log::info!("{}: re-adding member {name}", self.phase);
        self.staged(name).await;
        let api = self.present_spec().api(self.ctx.now()).await?;
        let serving = self.serving().await;
        let host = connect(&member).await?;
        let joining = Joining {
            ctx: self.ctx,
            to: self.spec,
            api: &api,
            binaries: self.binaries.as_deref(),
            timeout: self.timeout,
        };
        let changed = async {
            continue_unless_stopped(self.ctx, self.phase)?;
            joining
                .readd(&member, &host, &serving, self.record.warnings)
                .await
        }
        .await;
        self.after_change(&member, host, changed).await
    }

    /// Removes a live member the configuration does not list, while every
    /// configured member serves.
    async fn remove_unmanaged(&mut self, id: u64, label: &str) -> Result<(), String> {
        let names: Vec<String> = self.present.iter().map(|m| m.name.clone()).collect();
        if !all_serve(names.iter().map(String::as_str), self.observed().await) {
            return Err(format!(
                "refusing to remove member {label}, which the configuration does not list, while configured \
                 members do not serve"
            ));
        }
        self.snapshot_before().await?;
        continue_unless_stopped(self.ctx, self.phase)?;
        log::info!("removing member {label}, which the configuration does not list");
        let api = self.present_spec().api(self.ctx.now()).await?;
        api.remove_member(id).await?;
        wait_until_healthy(self.ctx, &self.present_spec(), self.timeout).await
    }

    /// Adds a member of the configuration, then waits until the cluster is
    /// healthy with it and installs its backup job.
    async fn add(&mut self, at: &MemberAt) -> Result<(), String> {
        let new = self
            .spec
            .members
            .iter()
            .find(|m| m.name == at.name && m.host == at.host)
            .cloned()
            .ok_or_else(|| format!("member {} is not in the configuration", at.name))?;
        self.refuse_same_machine(&new).await?;
        self.give_peer_names().await?;
        self.staged(&new.name).await;
        let api = self.present_spec().api(self.ctx.now()).await?;
        continue_unless_stopped(self.ctx, self.phase)?;
        let joining = Joining {
            ctx: self.ctx,
            to: self.spec,
            api: &api,
            binaries: self.binaries.as_deref(),
            timeout: self.timeout,
        };
        let prints = joining.add(&new, self.record.warnings).await?;
        self.record.fingerprints.insert(new.name.clone(), prints);
        self.present.push(new.clone());
        self.done.insert(new.name.clone());
        wait_until_healthy(self.ctx, &self.present_spec(), self.timeout).await?;
        install_backup_job_after_change(self.spec, &new, None).await;
        Ok(())
    }

    /// Refuses a new member on the machine of a current one (under
    /// another address: a DNS name and an IP).
    async fn refuse_same_machine(&self, new: &MemberSpec) -> Result<(), String> {
        let mut all = self.present.clone();
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

    /// Removes a member that leaves, uninstalls it (data kept) and waits
    /// until the rest is healthy.
    async fn remove(&mut self, at: &MemberAt) -> Result<(), String> {
        let gone = self
            .present
            .iter()
            .find(|m| m.name == at.name && m.host == at.host)
            .cloned()
            .ok_or_else(|| format!("member {} is not in the cluster", at.name))?;
        self.snapshot_before().await?;
        let serving = self.serving().await;
        let api = self.present_spec().api(self.ctx.now()).await?;
        continue_unless_stopped(self.ctx, self.phase)?;
        remove_member(&api, &gone, &self.spec.settings, Some(&serving)).await?;
        self.present
            .retain(|m| !(m.name == gone.name && m.host == gone.host));
        if !self.present.iter().any(|m| m.name == gone.name) {
            self.record.fingerprints.remove(&gone.name);
        }
        uninstall_member(&gone, &self.spec.settings, false).await?;
        wait_until_healthy(self.ctx, &self.present_spec(), self.timeout).await
    }
}
