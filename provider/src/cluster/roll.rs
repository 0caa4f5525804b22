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
//! Steps: first, for every member at once, new binaries are uploaded to a
//! staging place beside the installed ones (the running members are not
//! touched, so this needs no quorum guard). Then one member at a time:
//! 0. Before the first member that needs it, a snapshot (`before-roll`,
//!    see `backups`): no snapshot, no roll.
//! 1. Refuse unless every other member serves: a restart takes this
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

use std::collections::BTreeMap;
use std::time::Duration;

use super::backups::SnapshotBefore;
use super::hosts::connect;
use super::hosts::Hosts;
use super::member_steps::{Change, OneMemberChanges};
use super::observe::observe_through;
use super::quorum::ensure_others_serve;
use super::{continue_unless_stopped, ChangeWarning, ClusterSpec, Observed};
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
    let binaries = spec.local_binaries().await?;
    let hosts = Hosts::default();
    if let Some(binaries) = &binaries {
        hosts
            .stage_binaries(&spec.members, &spec.settings, binaries)
            .await;
    }
    let changes = OneMemberChanges {
        ctx,
        spec,
        binaries: binaries.as_ref(),
        timeout,
    };
    let rolled = roll_members(ctx, spec, fingerprints, &changes, &hosts, warnings).await;
    hosts.close().await;
    rolled
}

/// The one-member-at-a-time part of the roll, over `hosts`.
async fn roll_members(
    ctx: &Context,
    spec: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    changes: &OneMemberChanges<'_>,
    hosts: &Hosts,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let mut snapshot = SnapshotBefore::new("before-roll");
    for (index, member) in spec.members.iter().enumerate() {
        continue_unless_stopped(ctx, "rolling change")?;
        let observed = observe_through(ctx, spec, fingerprints, hosts).await;
        let health = observed.health_of(&member.name);
        if health.needs_readd() {
            // Re-added by the repair that follows, with the new settings.
            continue;
        }
        if let Some(refusal) = health.refusal(&member.name) {
            return Err(refusal);
        }
        let host = connect(member).await?;
        if already_rolled(spec, member, &observed, &host).await {
            host.close().await;
            // Rolled by an earlier or another run: its files as they are
            // become the baseline, so that the repair after the roll does
            // not take them for drift.
            if let Some(files) = observed.files.get(&member.name) {
                fingerprints.insert(member.name.clone(), files.clone());
            }
            continue;
        }
        let api = spec.api(ctx.now()).await?;
        let ready = match ensure_others_serve(spec, &api, &observed, member).await {
            Ok(()) => snapshot.ensure(spec, warnings).await,
            Err(e) => Err(format!("rolling change paused: {e}")),
        };
        if let Err(e) = ready {
            host.close().await;
            return Err(e);
        }
        log::info!("rolling member {} to the new settings", member.name);
        changes
            .apply(member, host, Change::Rewrite, fingerprints)
            .await?;
        // Only this member's endpoint, in the same order as the members.
        let running = api.endpoint_status(&api.endpoints[index]).await.version;
        if running.as_ref() != Some(&spec.settings.etcd_version) {
            return Err(format!(
                "member {} runs {} after its restart, not {}",
                member.name,
                running.as_deref().unwrap_or("nothing"),
                spec.settings.etcd_version
            ));
        }
    }
    Ok(())
}

/// Whether the member already runs with the new settings: its config and
/// trusted CA files are the desired ones, it reports the desired version,
/// and etcd started after the config was written.
async fn already_rolled(
    spec: &ClusterSpec,
    member: &MemberSpec,
    observed: &Observed,
    host: &Host,
) -> bool {
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
        && started_after_config(host, spec).await
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
