//! The steps every phase is made of, each on one member (over a connection
//! from `hosts`): install and start it, rewrite and restart it, re-add it,
//! add it, remove it, uninstall it. None of them checks quorum: the phase that
//! calls a step holds the guard (see `quorum`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use time::OffsetDateTime;

use super::hosts::connect;
use super::quorum::successor;
use super::snapshot_stream::InitialData;
use super::{ChangeWarning, ClusterSpec};
use crate::etcd;
use crate::framework::Context;
use crate::member::binaries::{self, LocalBinaries};
use crate::member::install::{self, Fingerprints};
use crate::member::render::InitialState;
use crate::member::{ClusterSettings, MemberSpec};
use crate::ssh::{quote, Host};

/// Refuses members that are one machine under two addresses (a DNS name
/// and an IP, say), judged by `/etc/machine-id` on `hosts` (connected to
/// `members`, in order; unreachable ones are left out). Two members there
/// would share ports and a data directory.
pub async fn refuse_shared_machines(
    members: &[&MemberSpec],
    hosts: &[&Host],
) -> Result<(), String> {
    let ids =
        futures::future::join_all(hosts.iter().map(|h| h.run_ok("cat /etc/machine-id"))).await;
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (member, id) in members.iter().zip(ids) {
        let Ok(id) = id else { continue };
        let id = id.trim().to_string();
        if id.is_empty() {
            continue;
        }
        if let Some(other) = seen.insert(id, &member.name) {
            return Err(format!(
                "members {other} and {} are on the same machine (the same /etc/machine-id): give each member a \
                 host of its own",
                member.name
            ));
        }
    }
    Ok(())
}

/// How a member starts: as one of a new cluster (from the initial
/// snapshot, when there is one), joining the running cluster, (a running
/// member whose files were rewritten) by a restart, or not yet (a joining
/// member, started by the caller once etcd has accepted it).
pub enum Start {
    New(Option<InitialData>),
    Existing,
    Restart,
    NotYet,
}

/// Installs one member and starts it without waiting for it. A member of a
/// new cluster with an initial snapshot gets its data restored from it.
pub async fn install_and_start(
    spec: &ClusterSpec,
    member: &MemberSpec,
    host: &Host,
    binaries: Option<&LocalBinaries>,
    initial_cluster: &[String],
    start: Start,
    now: OffsetDateTime,
) -> Result<Fingerprints, String> {
    let settings = &spec.settings;
    let has_data = install::prepare(host, settings)
        .await
        .map_err(|e| e.to_string())?;
    let (restart, start_now) = (
        matches!(start, Start::Restart),
        !matches!(start, Start::NotYet),
    );
    let (state, initial) = match start {
        Start::New(initial) => (InitialState::New, initial),
        Start::Existing | Start::Restart | Start::NotYet => (InitialState::Existing, None),
    };
    if state == InitialState::New && initial.is_none() {
        refuse_foreign_etcd(host, settings, has_data).await?;
    }
    binaries::install_binaries(host, settings, binaries)
        .await
        .map_err(|e| e.to_string())?;
    let certs = install::issue_certificates(
        member,
        settings,
        &spec.ca_cert_pem,
        &spec.ca_key_pem,
        &spec.trusted_ca_pem,
        now,
    )
    .map_err(|e| format!("certificates: {e}"))?;
    let prints = install::write_files(host, member, settings, &certs, initial_cluster, state)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(initial) = initial {
        restore_initial_snapshot(spec, member, host, initial, initial_cluster, has_data, now)
            .await?;
    }
    if start_now {
        install::start(host, restart)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(prints)
}

/// Makes a new member's data from the initial snapshot. Data already there
/// restored from this very snapshot (an interrupted bootstrap) is resumed;
/// any other data (the old cluster's, in a recovery with `-replace`) is
/// moved aside, never deleted, and the member restored.
async fn restore_initial_snapshot(
    spec: &ClusterSpec,
    member: &MemberSpec,
    host: &Host,
    initial: InitialData,
    initial_cluster: &[String],
    has_data: bool,
    now: OffsetDateTime,
) -> Result<(), String> {
    if has_data {
        let marker = install::restored_from(host, &spec.settings)
            .await
            .map_err(|e| e.to_string())?;
        if marker.as_deref() == Some(initial.digest.as_str()) {
            return Ok(());
        }
        // The old cluster's etcd may still run on that data.
        stop_etcd(host).await?;
        if let Some(aside) = move_data_aside(now, host, &spec.settings).await? {
            log::warn!(
                "member {}: data that was not restored from {} moved aside to {aside}",
                member.name,
                initial.path
            );
        }
    }
    install::restore_snapshot(
        host,
        member,
        &spec.settings,
        initial.stream,
        &initial.digest,
        initial_cluster,
    )
    .await
    .map_err(|e| e.to_string())
}

/// Only data or an etcd of this very cluster (an earlier, interrupted
/// bootstrap) may be resumed by a bootstrap: data (`has_data`) or a
/// running etcd.service whose config is not this cluster's is someone
/// else's (one etcd.service per host: a second cluster's bootstrap there
/// would take it over).
async fn refuse_foreign_etcd(
    host: &Host,
    settings: &ClusterSettings,
    has_data: bool,
) -> Result<(), String> {
    let looked = host
        .run(&format!(
            "systemctl is-active --quiet etcd.service && echo '# etcd runs'; cat {} 2>/dev/null",
            quote(&settings.layout.config_file())
        ))
        .await
        .map_err(|e| e.to_string())?;
    let runs = looked.stdout.starts_with("# etcd runs");
    let ours = looked
        .stdout
        .contains(&format!("initial-cluster-token: \"{}\"", settings.token));
    if ours || !(has_data || runs) {
        return Ok(());
    }
    Err(if has_data {
        format!(
            "{} already holds etcd data not made by this cluster; refusing to bootstrap over it \
             (move it away or choose another data_dir)",
            settings.layout.data_dir
        )
    } else {
        "etcd.service already runs on this host, for another cluster (its config is not this cluster's); a host \
         runs one member: refusing to take it over"
            .to_string()
    })
}

/// Rewrites a running member's files from the spec (certificates
/// reissued) and restarts it. The initial cluster it names is the
/// configured one: etcd ignores it for a member that has its data.
pub async fn rewrite_and_restart(
    ctx: &Context,
    spec: &ClusterSpec,
    member: &MemberSpec,
    host: &Host,
    binaries: Option<&LocalBinaries>,
) -> Result<Fingerprints, String> {
    install_and_start(
        spec,
        member,
        host,
        binaries,
        &spec.initial_cluster(),
        Start::Restart,
        ctx.now(),
    )
    .await
}

/// Stops etcd on `host` and makes sure it is stopped: a failure to stop
/// it is an error, never ignored (its data is about to be moved).
async fn stop_etcd(host: &Host) -> Result<(), String> {
    host.run_ok(
        "if systemctl cat etcd.service >/dev/null 2>&1; then systemctl stop etcd.service; fi; \
         if systemctl is-active --quiet etcd.service; then echo 'etcd.service is still active' >&2; exit 1; fi",
    )
    .await
    .map(drop)
    .map_err(|e| format!("could not stop etcd: {e}"))
}

/// Moves the data directory aside (renamed with the time, never deleted)
/// if it holds etcd data; returns where it went. etcd must not run on it.
pub async fn move_data_aside(
    now: OffsetDateTime,
    host: &Host,
    settings: &ClusterSettings,
) -> Result<Option<String>, String> {
    let data = &settings.layout.data_dir;
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .map_err(|e| e.to_string())?;
    let aside = format!("{data}.moved-{stamp}");
    let moved = host
        .run_ok(&format!(
            "if [ -d {data}/member ]; then mv -T {data} {aside} && echo moved; fi",
            data = quote(data),
            aside = quote(&aside)
        ))
        .await
        .map_err(|e| e.to_string())?;
    Ok(moved.contains("moved").then_some(aside))
}

/// The initial cluster for `joining`: the started members of the live
/// cluster and `joining` itself.
fn joining_cluster(
    live: &[etcd::Member],
    joining: &MemberSpec,
    settings: &ClusterSettings,
) -> Vec<String> {
    let own = joining.peer_url(settings);
    let mut initial: Vec<String> = live
        .iter()
        .filter(|m| !m.name.is_empty() && !m.peer_urls.contains(&own))
        .map(|m| {
            format!(
                "{}={}",
                m.name,
                m.peer_urls.first().cloned().unwrap_or_default()
            )
        })
        .collect();
    initial.push(format!("{}={own}", joining.name));
    initial
}

/// Members joining the running cluster reached through `api`, with the
/// settings of `to`.
#[derive(Clone, Copy)]
pub struct Joining<'a> {
    pub ctx: &'a Context,
    pub to: &'a ClusterSpec,
    pub api: &'a etcd::Client,
    pub binaries: Option<&'a LocalBinaries>,
    /// How long a learner may take to catch up.
    pub timeout: Duration,
}

impl Joining<'_> {
    /// Adds `new` to the running cluster reached through `api`: member add (as
    /// a learner where etcd has them), install and start it with
    /// `initial-cluster-state=existing`, then promote it once it has caught
    /// up. A member already added by an interrupted earlier run is finished,
    /// not added twice; data of an earlier member on the host is moved aside
    /// first (a warning in `warnings`).
    pub async fn add(
        &self,
        new: &MemberSpec,
        warnings: &mut Vec<ChangeWarning>,
    ) -> Result<Fingerprints, String> {
        let Joining {
            ctx,
            to,
            api,
            binaries,
            timeout,
        } = *self;
        let host = connect(new).await?;
        let added = async {
        let (_, live) = api.members().await?;
        let earlier = live
            .iter()
            .find(|m| m.peer_urls.contains(&new.peer_url(&to.settings)));
        if earlier.is_none() {
            // Data here belongs to an earlier member (removed, renamed, or of
            // another cluster): a new member must start empty. Kept, aside.
            let running = host
                .run_ok("systemctl is-active --quiet etcd && echo active; true")
                .await
                .map_err(|e| e.to_string())?;
            if running.contains("active") {
                return Err(
                    "etcd already runs on this host and is not the new member; refusing to stop it. If it is \
                     a member of this cluster under another name or address, remove that member first."
                        .to_string(),
                );
            }
            if let Some(aside) = move_data_aside(ctx.now(), &host, &to.settings).await? {
                warnings.push(ChangeWarning::DataMovedAside(format!(
                    "member {} at {}: {} held etcd data of an earlier member; it was moved aside to {aside} \
                     (kept: delete it once you no longer need it)",
                    new.name, new.host, to.settings.layout.data_dir
                )));
            }
        }
        let initial = joining_cluster(&live, new, &to.settings);
        // Its files first: etcd may make a new member wait a few seconds
        // (until every voter has been connected for five), and the install
        // fits in that wait. Nothing starts before etcd accepts it.
        let prints = install_and_start(
            to,
            new,
            &host,
            binaries,
            &initial,
            Start::NotYet,
            ctx.now(),
        )
        .await?;
        log::info!("adding member {} at {}", new.name, new.host);
        let (id, learner) = match earlier {
            Some(m) => (m.id, m.is_learner),
            None => (
                api.add_member(&new.peer_url(&to.settings), to.has_learners())
                    .await?,
                to.has_learners(),
            ),
        };
        install::start(&host, false)
            .await
            .map_err(|e| e.to_string())?;
        if learner {
            api.promote_member(id, timeout).await?;
        }
        Ok(prints)
    }
    .await;
        host.close().await;
        added.map_err(|e| format!("member {}: {e}", new.name))
    }

    /// Re-adds a member that was removed from the cluster out of band, or
    /// lost its data (connected on `host`): etcd is stopped (a failure to
    /// stop it ends the step), it is removed from the member list if still
    /// listed (never started under its old ID without its log), then added
    /// like a new member: as a learner, its old data moved aside (kept),
    /// promoted once it caught up.
    pub async fn readd(
        &self,
        member: &MemberSpec,
        host: &Host,
        serving: &BTreeSet<String>,
        warnings: &mut Vec<ChangeWarning>,
    ) -> Result<Fingerprints, String> {
        stop_etcd(host).await?;
        remove_member(self.api, member, &self.to.settings, Some(serving)).await?;
        self.add(member, warnings).await
    }
}

/// Removes `gone` from the cluster, handing leadership to another voting
/// member that serves first if it leads (`serving`: the names of the
/// members that serve; `None`: every live voter, as the caller checked).
/// Nothing to do if it is not a member.
pub async fn remove_member(
    api: &etcd::Client,
    gone: &MemberSpec,
    settings: &ClusterSettings,
    serving: Option<&BTreeSet<String>>,
) -> Result<(), String> {
    let (_, live) = api.members().await?;
    let Some(leaving) = live
        .iter()
        .find(|m| m.peer_urls.contains(&gone.peer_url(settings)))
    else {
        return Ok(());
    };
    let successor = successor(&live, leaving.id, serving).ok_or_else(|| {
        format!(
            "removing {} would leave no voting member that serves",
            gone.name
        )
    })?;
    api.move_leader_off(leaving.id, successor.id).await?;
    log::info!(
        "removing member {} ({})",
        gone.name,
        etcd::format_id(leaving.id)
    );
    api.remove_member(leaving.id).await
}

/// Stops a member that has left the cluster and removes its installation
/// (its data stays unless `purge_data`). A lost host is only a warning: the
/// member is out of the cluster and nothing runs there.
pub async fn uninstall_member(
    gone: &MemberSpec,
    settings: &ClusterSettings,
    purge_data: bool,
) -> Result<(), String> {
    match connect(gone).await {
        Ok(host) => {
            let result = install::uninstall(&host, settings, purge_data).await;
            host.close().await;
            result.map_err(|e| format!("member {} left the cluster, but: {e}", gone.name))
        }
        Err(e) => {
            log::warn!("removed from the cluster, but its host is unreachable: {e}");
            Ok(())
        }
    }
}
