//! Phase: roll changed settings (flags, metrics URL, certificate lifetime,
//! a new etcd version) through the members.
//!
//! Changes: each member's files are rewritten from the new settings (new
//! binaries where the version changes, certificates reissued) and etcd is
//! restarted.
//!
//! Nothing to do for a member whose config file and trusted CA file match
//! the new settings, that reports the new version, and whose etcd started
//! after its config was written; a member removed out of band (or whose
//! data is gone) is left to the repair that follows, which re-adds it with the new settings.
//!
//! Steps: first, new binaries start uploading in the background to a
//! staging place beside the installed ones, host after host in the roll's
//! order (`staging`: the running members are not touched, so this needs
//! no quorum guard; each member's step waits for its own). Then one member
//! at a time, in the order of `plan::roll` (which also removes a voter the
//! configuration does not list that does not serve, before the first
//! restart), through the runner and its guards (`runner.rs`):
//! 0. Before the first member that needs it, a snapshot (`before-roll`,
//!    see `backups`): no snapshot, no roll.
//! 1. Refuse unless every other voter serves: a restart takes this
//!    member away for a moment, and the others must hold quorum meanwhile.
//! 2. Rewrite and restart it (a staged binary is renamed into place).
//! 3. Wait until the cluster is healthy and check that the member runs the
//!    new version before the next one.
//!
//! Interrupted: the state keeps the old settings, so the next plan shows
//! the change again; members already rolled are skipped (step "nothing to
//! do"), so the roll continues where it stopped. A staged binary left
//! behind is used or replaced by the next roll, and removed on destroy.
//!
//! The roll keeps one SSH connection per host open throughout (`hosts`)
//! for its looks at every host before each member's step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::hosts::Hosts;
use super::plan::roll::plan_roll;
use super::plan::Step;
use super::runner::{Record, Runner};
use super::{ChangeWarning, ClusterSpec, Observed};
use crate::framework::Context;
use crate::member::install::{self, Fingerprints};
use crate::member::render::{self, InitialState};
use crate::member::MemberSpec;
use crate::ssh::{quote, Host};

/// Applies changed settings one member at a time (see the module's steps).
pub async fn roll(
    ctx: &Context,
    spec: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let hosts = Hosts::default();
    let record = Record {
        fingerprints,
        warnings,
    };
    let rolled = async {
        let mut runner = Runner::new(
            ctx,
            spec,
            &hosts,
            timeout,
            record,
            ("rolling change", "before-roll"),
        )
        .await?;
        runner.stage_binaries(&spec.members).await;
        roll_members(spec, &mut runner, &hosts).await
    }
    .await;
    hosts.close().await;
    rolled
}

/// The one-member-at-a-time part of the roll.
async fn roll_members(
    spec: &ClusterSpec,
    runner: &mut Runner<'_>,
    hosts: &Hosts,
) -> Result<(), String> {
    let names: Vec<&str> = spec.members.iter().map(|m| m.name.as_str()).collect();
    loop {
        let observed = runner.observed().await.clone();
        let mut rolled = runner.done.clone();
        for member in already_rolled(spec, &observed, hosts, &rolled).await {
            // Rolled by an earlier or another run: its files as they are
            // become the baseline, so that the repair after the roll does
            // not take them for drift.
            if let Some(files) = observed.files.get(&member) {
                runner
                    .record()
                    .fingerprints
                    .insert(member.clone(), files.clone());
            }
            rolled.insert(member);
        }
        let steps = plan_roll(&names, &observed, &rolled);
        let Some(step) = steps.first() else {
            return Ok(());
        };
        runner.run(step).await?;
        if let Step::Restart(name) = step {
            let running = runner.observed().await.versions.get(name).cloned();
            if running.as_ref() != Some(&spec.settings.etcd_version) {
                return Err(format!(
                    "member {name} runs {} after its restart, not {}",
                    running.as_deref().unwrap_or("nothing"),
                    spec.settings.etcd_version
                ));
            }
        }
    }
}

/// The members (other than `skipped`) that already run the new settings,
/// each judged on its host (in parallel).
async fn already_rolled(
    spec: &ClusterSpec,
    observed: &Observed,
    hosts: &Hosts,
    skipped: &BTreeSet<String>,
) -> Vec<String> {
    let candidates: Vec<MemberSpec> = spec
        .members
        .iter()
        .filter(|m| !skipped.contains(&m.name) && runs_new_files(spec, m, observed))
        .cloned()
        .collect();
    let connected = hosts.connect_all(&candidates).await;
    let looks = candidates
        .iter()
        .zip(connected)
        .map(|(m, host)| async move {
            let host: Arc<Host> = host.ok()?;
            started_after_config(&host, spec)
                .await
                .then(|| m.name.clone())
        });
    futures::future::join_all(looks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Whether the member's config and trusted CA files are the desired ones
/// and it reports the desired version (it runs them if etcd also started
/// after the config was written).
fn runs_new_files(spec: &ClusterSpec, member: &MemberSpec, observed: &Observed) -> bool {
    let desired = render::config_file(
        member,
        &spec.settings,
        &spec.initial_cluster(),
        InitialState::Existing,
    );
    let on_host = |file: &str| {
        observed
            .files
            .get(&member.name)
            .and_then(|f| f.get(file))
            .cloned()
    };
    on_host("config") == Some(install::sha256_hex(desired.as_bytes()))
        && on_host("ca.crt") == Some(install::sha256_hex(spec.trusted_ca_pem.as_bytes()))
        && observed.versions.get(&member.name) == Some(&spec.settings.etcd_version)
}

/// Whether the running etcd started after its configuration file was last
/// written, i.e. runs with it (a member rewritten by an interrupted roll
/// but not restarted does not). The start time is the process's own: the
/// boot time (now less the uptime) plus its start in clock ticks after
/// boot, from /proc; not a file time.
async fn started_after_config(host: &Host, spec: &ClusterSpec) -> bool {
    let config = quote(&spec.settings.layout.config_file());
    let check = format!(
        "pid=$(systemctl show -p MainPID --value etcd); [ \"$pid\" != 0 ] || exit 0; \
         boot=$(awk -v now=\"$(date +%s.%N)\" '{{printf \"%.3f\", now - $1}}' /proc/uptime); ticks=$(getconf CLK_TCK); \
         started=$(awk -v boot=\"$boot\" -v ticks=\"$ticks\" '{{printf \"%.3f\", boot + $22 / ticks}}' /proc/$pid/stat); \
         written=$(stat -c %.3Y {config}); \
         awk -v s=\"$started\" -v w=\"$written\" 'BEGIN {{ if (s > w) print \"fresh\" }}'"
    );
    host.run(&check)
        .await
        .map(|o| o.stdout.contains("fresh"))
        .unwrap_or(false)
}
