//! What the provider sees of a running cluster: the live member list, each
//! endpoint's status and each member host, compared with the spec. Every
//! member gets a [`Health`] (health.rs): healthy, or the typed problems
//! found, which the phases decide on and `status` shows as text.

use std::collections::{BTreeMap, BTreeSet};

pub use super::health::{Health, Problem, HEALTHY};
use super::hosts::Hosts;
use super::ClusterSpec;
use crate::etcd;
use crate::framework::Context;
use crate::member::install::Fingerprints;
use crate::member::{backup_state, inspect};

/// What the provider saw of a running cluster.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Observed {
    pub cluster_id: Option<u64>,
    /// Member name to its ID (hex), for members in the live list.
    pub member_ids: BTreeMap<String, String>,
    /// Member name to the etcd version it reports, for members that answer.
    pub versions: BTreeMap<String, String>,
    /// Member name to its health.
    pub health: BTreeMap<String, Health>,
    /// Members whose endpoint answers a quorum read: restarting one of
    /// these takes a serving member away for a moment.
    pub serving: BTreeSet<String>,
    /// Live members the configuration does not have.
    pub unmanaged: Vec<Unmanaged>,
    pub leader: Option<String>,
    /// Things worth a warning: unreachable hosts or endpoints.
    pub warnings: Vec<String>,
    /// The managed files found on each reachable host, by member name.
    pub files: BTreeMap<String, Fingerprints>,
    /// Members whose peer certificate does not carry the peer name
    /// (`PEER_COMMON_NAME`): made before the peer port accepted members
    /// only. The runner gives them one before any member starts with a
    /// config that accepts nothing else.
    pub peer_name_missing: BTreeSet<String>,
}

/// A live member the configuration does not list.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmanaged {
    pub id: u64,
    /// Empty for a member added but never started.
    pub name: String,
    /// A voter, not a learner: it counts towards quorum.
    pub voter: bool,
    /// It answers a quorum read at its own client URL.
    pub serving: bool,
}

impl Unmanaged {
    /// `name (id)`, as `status` shows it.
    pub fn label(&self) -> String {
        let name = if self.name.is_empty() {
            "unstarted"
        } else {
            &self.name
        };
        format!("{name} ({})", etcd::format_id(self.id))
    }
}

impl Observed {
    /// The unmanaged members as `status` shows them.
    pub fn unmanaged_labels(&self) -> Vec<String> {
        self.unmanaged.iter().map(Unmanaged::label).collect()
    }

    pub fn all_healthy(&self) -> bool {
        self.health.values().all(Health::is_healthy) && self.unmanaged.is_empty()
    }

    /// A member's health; a member not looked at is unknown, not healthy.
    pub fn health_of(&self, name: &str) -> Health {
        self.health
            .get(name)
            .cloned()
            .unwrap_or_else(|| Health(vec![Problem::Unhealthy("not observed".into())]))
    }

    /// Whether no member answers a quorum read: the cluster has lost its
    /// quorum, for a while (members rebooting, a partition) or for good.
    pub fn quorum_lost(&self) -> bool {
        !self.health.is_empty() && self.serving.is_empty()
    }

    /// Members whose host answers but whose data directory is empty (a
    /// replaced machine or disk): lost for good.
    pub fn members_without_data(&self) -> Vec<String> {
        self.health
            .iter()
            .filter(|(_, health)| health.0.contains(&Problem::DataMissing))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Member name to its health as text, as `status` shows it.
    pub fn status_text(&self) -> BTreeMap<String, String> {
        self.health
            .iter()
            .map(|(name, health)| (name.clone(), health.to_string()))
            .collect()
    }
}

/// Looks at the live cluster and every member host. Never fails: what
/// cannot be reached is reported in the health and as a warning.
pub async fn observe(
    ctx: &Context,
    spec: &ClusterSpec,
    expected: &BTreeMap<String, Fingerprints>,
) -> Observed {
    let hosts = Hosts::default();
    let observed = observe_through(ctx, spec, expected, &hosts).await;
    hosts.close().await;
    observed
}

/// [`observe`] over connections that the caller keeps open between looks.
pub async fn observe_through(
    ctx: &Context,
    spec: &ClusterSpec,
    expected: &BTreeMap<String, Fingerprints>,
    hosts: &Hosts,
) -> Observed {
    let mut observed = Observed::default();
    let api = match spec.api(ctx.now()).await {
        Ok(api) => api,
        Err(e) => {
            observed.warnings.push(e.clone());
            for m in &spec.members {
                observed.health.insert(
                    m.name.clone(),
                    Health(vec![Problem::ApiUnavailable(e.clone())]),
                );
            }
            return observed;
        }
    };
    let (survey, connected) = tokio::join!(api.survey(), hosts.connect_all(&spec.members));
    let looks = connected
        .iter()
        .zip(&survey)
        .map(|(host, (status, _))| async move {
            let host = host.as_ref().map_err(Clone::clone)?;
            let state = inspect::observe(host, &spec.settings)
                .await
                .map_err(|e| e.to_string())?;
            // No answer here: is that the member, or this machine's reach?
            let serves_there = !status.healthy
                && inspect::unit_runs(&state.unit)
                && inspect::serves_locally(host, &spec.settings).await;
            Ok::<_, String>((state, serves_there))
        });
    let looked: Vec<Result<(inspect::HostState, bool), String>> =
        futures::future::join_all(looks).await;
    let mut serves_there: Vec<bool> = looked
        .iter()
        .map(|look| look.as_ref().is_ok_and(|(_, serves)| *serves))
        .collect();
    let host_states: Vec<Result<inspect::HostState, String>> = looked
        .into_iter()
        .map(|look| look.map(|(state, _)| state))
        .collect();
    // The member list of a member that answers a quorum read: a member cut
    // off from the others answers with what it saw last. Without one, the
    // list of any member, but no member is judged "not a member" or
    // "unmanaged" from it.
    let (mut statuses, mut lists): (Vec<_>, Vec<_>) = survey.into_iter().unzip();
    // A member that serves on its host is asked once more from here: one
    // that was only starting when first asked answers now.
    let api_ref = &api;
    let again = serves_there
        .iter()
        .zip(&statuses)
        .map(|(serves, status)| async move {
            if *serves {
                Some(api_ref.endpoint_status(&status.endpoint).await)
            } else {
                None
            }
        });
    let again = futures::future::join_all(again).await;
    for ((status, serves), answer) in statuses.iter_mut().zip(&mut serves_there).zip(again) {
        if let Some(answer) = answer.filter(|a| a.healthy) {
            *status = answer;
            *serves = false;
        }
    }
    let serving = statuses.iter().position(|s| s.healthy);
    let (listed, current) = match serving {
        Some(index) => (lists.swap_remove(index), true),
        None => (api.members().await, false),
    };
    let live = match listed {
        Ok((cluster_id, live)) => {
            observed.cluster_id = Some(cluster_id);
            Some(live)
        }
        Err(e) => {
            observed
                .warnings
                .push(format!("no member of the cluster answered: {e}"));
            None
        }
    };
    // Every member's status lists all of the cluster's alarms; each
    // belongs to the member that raised it.
    let mut alarms: BTreeSet<etcd::Alarm> =
        statuses.iter().flat_map(|s| s.alarms.clone()).collect();
    let members = spec.members.iter().zip(&statuses).zip(host_states);
    for (((member, status), host_state), serves_there) in members.zip(serves_there) {
        if let Some(version) = &status.version {
            observed
                .versions
                .insert(member.name.clone(), version.clone());
        }
        // Judged by its host too: a member that serves there counts as
        // serving (no step may restart it), though this machine cannot
        // reach it.
        if status.healthy || serves_there {
            observed.serving.insert(member.name.clone());
        }
        let mut problems = Vec::new();
        match &host_state {
            Err(e) => {
                observed
                    .warnings
                    .push(format!("member {}: {e}", member.name));
                problems.push(Problem::HostUnreachable(e.clone()));
            }
            Ok(state) => {
                // A member imported from elsewhere has no fingerprints yet:
                // its files as first seen become the baseline.
                let expected = expected.get(&member.name).unwrap_or(&state.files);
                if matches!(state.unit.as_str(), "inactive" | "failed") && status.healthy {
                    problems.push(Problem::ServedOutsideUnit(state.unit.clone()));
                }
                problems.extend(
                    inspect::differences(expected, state)
                        .into_iter()
                        .map(Problem::Drift),
                );
                if !inspect::nothing_installed(state) {
                    problems.extend(
                        backup_state::problems(&spec.settings, &state.backup)
                            .into_iter()
                            .map(Problem::Backup),
                    );
                }
                let peer_name = crate::pki::common_name(&state.peer_cert_pem);
                if !inspect::nothing_installed(state)
                    && peer_name.as_deref() != Some(crate::member::PEER_COMMON_NAME)
                {
                    observed.peer_name_missing.insert(member.name.clone());
                }
                if let Some(end) = renewal_due(ctx, spec, &state.server_cert_pem) {
                    problems.push(Problem::CertificatesDue(end));
                }
                observed
                    .files
                    .insert(member.name.clone(), state.files.clone());
            }
        }
        let peer_url = member.peer_url(&spec.settings);
        let mut member_id = status.member_id;
        if let Some(live) = &live {
            match live.iter().find(|m| m.peer_urls.contains(&peer_url)) {
                Some(m) => {
                    member_id = Some(m.id);
                    observed
                        .member_ids
                        .insert(member.name.clone(), etcd::format_id(m.id));
                    if m.is_learner {
                        problems.push(Problem::Learner);
                    }
                    let serves = status.healthy || serves_there;
                    match &host_state {
                        Ok(state) if data_gone(state.data, serves) => {
                            problems.push(Problem::DataMissing)
                        }
                        Ok(state) if state.data == inspect::DataDir::Unreadable => {
                            observed.warnings.push(format!(
                                "member {}: the SSH user cannot look inside {} (connect as root, or with sudo): \
                                 whether its data is there is unknown",
                                member.name, spec.settings.layout.data_dir
                            ))
                        }
                        _ => {}
                    }
                }
                None if current => problems.push(Problem::NotAMember),
                None => {}
            }
        }
        if !status.healthy && problems.iter().all(|p| matches!(p, Problem::Backup(_))) {
            let error = status.error.clone().unwrap_or_default();
            problems.push(if serves_there {
                Problem::ServesUnreachable(error)
            } else {
                Problem::Unhealthy(error)
            });
        }
        let raised: Vec<etcd::Alarm> = alarms
            .iter()
            .filter(|a| Some(a.member_id) == member_id)
            .cloned()
            .collect();
        for alarm in raised {
            alarms.remove(&alarm);
            problems.push(Problem::Alarm(alarm.kind));
        }
        observed
            .health
            .insert(member.name.clone(), Health(problems));
    }
    for alarm in alarms {
        observed.warnings.push(format!(
            "alarm {} raised by member {}, which the configuration does not list",
            alarm.kind,
            etcd::format_id(alarm.member_id)
        ));
    }
    if let Some(live) = &live {
        if current {
            observed.unmanaged = unmanaged(spec, &api, live).await;
        }
        let leader = statuses.iter().find_map(|s| s.leader.filter(|l| *l != 0));
        observed.leader = leader
            .and_then(|id| live.iter().find(|m| m.id == id))
            .map(|m| m.name.clone());
    }
    observed
}

/// Whether a listed member's data is gone (so that it must be removed and
/// added again): only on its host's word that the data directory is
/// readable and empty (an SSH user that cannot look inside proves
/// nothing), and never for a member that serves (it has its log).
fn data_gone(data: inspect::DataDir, serves: bool) -> bool {
    data == inspect::DataDir::Absent && !serves
}

/// When the server certificate expires (RFC 3339), if that is inside the
/// renewal window.
fn renewal_due(ctx: &Context, spec: &ClusterSpec, server_cert_pem: &str) -> Option<String> {
    let end = crate::pki::not_after(server_cert_pem)?;
    in_renewal_window(ctx, spec, end).then(|| {
        end.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    })
}

/// Whether a member certificate that expires at `end` is due for renewal.
pub(super) fn in_renewal_window(
    ctx: &Context,
    spec: &ClusterSpec,
    end: time::OffsetDateTime,
) -> bool {
    ctx.now() >= end - time::Duration::hours(spec.settings.cert_early_renewal_hours)
}

/// Live members the spec does not list, each voter asked at its own client
/// URL whether it serves (no round trip when there are none). Members of a
/// cluster the configuration does not own (foreign endpoints) never are.
async fn unmanaged(
    spec: &ClusterSpec,
    api: &etcd::Client,
    live: &[etcd::Member],
) -> Vec<Unmanaged> {
    if !spec.foreign_endpoints.is_empty() {
        return Vec::new();
    }
    let asks = unlisted(spec, live).map(|m| async move {
        let url = m.client_urls.first().filter(|_| !m.is_learner);
        let serving = match url {
            Some(url) => api.endpoint_status(url).await.healthy,
            None => false,
        };
        Unmanaged {
            id: m.id,
            name: m.name.clone(),
            voter: !m.is_learner,
            serving,
        }
    });
    futures::future::join_all(asks).await
}

/// Live members whose peer URLs are none of the spec's members'.
fn unlisted<'a>(
    spec: &ClusterSpec,
    live: &'a [etcd::Member],
) -> impl Iterator<Item = &'a etcd::Member> {
    let configured: Vec<String> = spec
        .members
        .iter()
        .map(|m| m.peer_url(&spec.settings))
        .collect();
    live.iter()
        .filter(move |m| !m.peer_urls.iter().any(|u| configured.contains(u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_gone_only_on_the_hosts_word_and_never_for_a_member_that_serves() {
        use inspect::DataDir::*;
        assert!(data_gone(Absent, false));
        assert!(!data_gone(Absent, true), "it serves: it has its log");
        assert!(!data_gone(Unreadable, false), "no root, no sudo: unknown");
        assert!(!data_gone(Present, false));
    }

    #[test]
    fn a_member_not_looked_at_is_not_healthy() {
        let observed = Observed::default();
        assert!(!observed.health_of("e1").is_healthy());
    }
}
