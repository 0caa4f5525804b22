//! What the provider sees of a running cluster: the live member list, each
//! endpoint's status and each member host, compared with the spec. Every
//! member gets a [`Health`]: healthy, or the typed problems found, which
//! the phases decide on and `status` shows as text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::hosts::Hosts;
use super::ClusterSpec;
use crate::etcd;
use crate::framework::Context;
use crate::member::install::Fingerprints;
use crate::member::{backup_state, inspect};

/// The status text of a member that is as it should be.
pub const HEALTHY: &str = "healthy";

/// One thing wrong with a member.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The client API could not be set up at all (no client certificate,
    /// no tunnel): nothing is known about the member.
    ApiUnavailable(String),
    /// Its host did not answer over SSH.
    HostUnreachable(String),
    /// The unit is not active, or a managed file is missing or changed.
    Drift(String),
    /// Its certificates expire at the given time, inside the renewal window.
    CertificatesDue(String),
    /// Its endpoint serves although the provider's unit is not active:
    /// an etcd started some other way (a hand-made unit) holds its ports.
    ServedOutsideUnit(String),
    /// It is in the member list as a learner.
    Learner,
    /// No live member has its peer URL: removed out of band, or never added.
    NotAMember,
    /// It is in the member list, but its data directory holds no etcd data
    /// (a replaced disk): it must be removed and added again, never started
    /// under its old ID without its log.
    DataMissing,
    /// Its endpoint does not answer a quorum read.
    Unhealthy(String),
    /// Its endpoint does not answer this machine, but the member answers a
    /// quorum read on its own host: it serves, and is out of this
    /// machine's reach (a firewall, a route, a name). Never restarted for
    /// that.
    ServesUnreachable(String),
    /// Its scheduled backup job is broken (see `member::backup`).
    Backup(String),
    /// It raised an alarm that the cluster keeps (see `space.rs`).
    Alarm(etcd::AlarmKind),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ApiUnavailable(e) => write!(f, "unreachable: {e}"),
            Problem::HostUnreachable(e) => write!(f, "unreachable over SSH: {e}"),
            Problem::Drift(what) => f.write_str(what),
            Problem::CertificatesDue(end) => {
                write!(f, "certificates expire {end}: due for renewal")
            }
            Problem::ServedOutsideUnit(unit) => write!(
                f,
                "served by an etcd the provider did not start (etcd.service is {unit})"
            ),
            Problem::Learner => f.write_str("is a learner"),
            Problem::NotAMember => f.write_str("not a member of the cluster"),
            Problem::DataMissing => f.write_str("its data directory holds no etcd data"),
            Problem::Unhealthy(e) => write!(f, "unhealthy: {e}"),
            Problem::ServesUnreachable(e) => write!(
                f,
                "serves on its host (a quorum read there succeeds), but this machine cannot reach its client URL: {e}"
            ),
            Problem::Backup(what) => f.write_str(what),
            Problem::Alarm(etcd::AlarmKind::NoSpace) => f.write_str(
                "alarm NOSPACE: its database reached quota-backend-bytes and the cluster refuses writes; \
                 apply compacts the keyspace at its current revision, defragments each member in turn and \
                 disarms the alarm",
            ),
            Problem::Alarm(kind) => write!(
                f,
                "alarm {kind}: the provider does not clear this alarm (CORRUPT: this member's data differs \
                 from the others'; replace the member, see etcd's guide to data corruption)"
            ),
        }
    }
}

/// A member's health: no problems, or what is wrong with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health(pub Vec<Problem>);

impl Health {
    pub fn is_healthy(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the live cluster no longer (or not yet) lists the member.
    pub fn is_not_a_member(&self) -> bool {
        self.0.contains(&Problem::NotAMember)
    }

    /// Whether the member must be (removed if listed and) added again: it
    /// is not a member, or lost its data.
    pub fn needs_readd(&self) -> bool {
        self.is_not_a_member() || self.0.contains(&Problem::DataMissing)
    }

    /// Whether alarms are all that is wrong: they are cleared by the
    /// space phase, not by restarting the member.
    pub fn only_alarms(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|p| matches!(p, Problem::Alarm(_)))
    }

    /// Whether the backup job is all that is wrong: it is repaired without
    /// touching etcd.
    pub fn only_backup_broken(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|p| matches!(p, Problem::Backup(_)))
    }

    /// Whether certificates due for renewal are all that is wrong: they
    /// are renewed without a restart.
    pub fn only_certificates_due(&self) -> bool {
        !self.0.is_empty()
            && self
                .0
                .iter()
                .all(|p| matches!(p, Problem::CertificatesDue(_)))
    }

    /// Whether its host answered over SSH (and the client API could be set
    /// up at all).
    pub fn host_reachable(&self) -> bool {
        !self
            .0
            .iter()
            .any(|p| matches!(p, Problem::HostUnreachable(_) | Problem::ApiUnavailable(_)))
    }

    /// Why the provider must not touch the member's host, if it must not:
    /// another etcd (not the provider's unit) serves the member.
    pub fn refusal(&self, member: &str) -> Option<String> {
        self.0.iter().find_map(|p| match p {
            Problem::ServesUnreachable(_) => Some(format!(
                "member {member} {p}. The provider changes nothing it cannot see, and restarts no member that \
                 serves: let this machine reach the members' client port, or set ssh.tunnel = true to reach it \
                 through SSH."
            )),
            Problem::ServedOutsideUnit(_) => Some(format!(
                "member {member} is {p}; the provider will not start a second etcd next to it. Stop that \
                 etcd (e.g. its hand-made unit) and apply again: the provider then starts the member from \
                 its data with its own unit."
            )),
            _ => None,
        })
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(HEALTHY);
        }
        let text: Vec<String> = self.0.iter().map(Problem::to_string).collect();
        f.write_str(&text.join("; "))
    }
}

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
    /// Live members the configuration does not have, as `name (id)`.
    pub unmanaged: Vec<String>,
    pub leader: Option<String>,
    /// Things worth a warning: unreachable hosts or endpoints.
    pub warnings: Vec<String>,
    /// The managed files found on each reachable host, by member name.
    pub files: BTreeMap<String, Fingerprints>,
}

impl Observed {
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
    let serves_there: Vec<bool> = looked
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
    let (statuses, mut lists): (Vec<_>, Vec<_>) = survey.into_iter().unzip();
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
                    if matches!(&host_state, Ok(state) if !state.has_data) {
                        problems.push(Problem::DataMissing);
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
            observed.unmanaged = unmanaged(spec, live);
        }
        let leader = statuses.iter().find_map(|s| s.leader.filter(|l| *l != 0));
        observed.leader = leader
            .and_then(|id| live.iter().find(|m| m.id == id))
            .map(|m| m.name.clone());
    }
    observed
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

/// Live members the spec does not list, as `name (id)`. Members of a
/// cluster the configuration does not own (foreign endpoints) never are.
pub(super) fn unmanaged(spec: &ClusterSpec, live: &[etcd::Member]) -> Vec<String> {
    if !spec.foreign_endpoints.is_empty() {
        return Vec::new();
    }
    unlisted(spec, live)
        .map(|m| {
            let name = if m.name.is_empty() {
                "unstarted"
            } else {
                &m.name
            };
            format!("{name} ({})", etcd::format_id(m.id))
        })
        .collect()
}

/// Live members whose peer URLs are none of the spec's members'.
pub(super) fn unlisted<'a>(
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
    fn health_reads_as_status_text_and_tells_a_removed_member() {
        assert_eq!(Health::default().to_string(), HEALTHY);
        let removed = Health(vec![
            Problem::Drift("etcd unit is inactive".into()),
            Problem::NotAMember,
        ]);
        assert_eq!(
            removed.to_string(),
            "etcd unit is inactive; not a member of the cluster"
        );
        assert!(removed.is_not_a_member() && !removed.is_healthy());
        let learner = Health(vec![Problem::Learner]);
        assert!(!learner.is_not_a_member());
        let observed = Observed::default();
        assert!(!observed.health_of("e1").is_healthy());
    }

    #[test]
    fn a_member_that_serves_on_its_host_is_never_restarted_for_being_out_of_reach() {
        let unreachable = Health(vec![Problem::ServesUnreachable(
            "connection refused".into(),
        )]);
        assert!(!unreachable.is_healthy());
        let refusal = unreachable.refusal("e1").expect("refused");
        assert!(
            refusal.contains("restarts no member that serves"),
            "{refusal}"
        );
        assert!(unreachable.to_string().starts_with("serves on its host"));
        assert_eq!(
            Health(vec![Problem::Unhealthy("x".into())]).refusal("e1"),
            None
        );
    }

    #[test]
    fn an_alarm_alone_is_left_to_the_space_phase() {
        let full = Health(vec![Problem::Alarm(etcd::AlarmKind::NoSpace)]);
        assert!(full.only_alarms() && !full.is_healthy());
        assert!(full.to_string().starts_with("alarm NOSPACE: "), "{full}");
        let drifted = Health(vec![
            Problem::Alarm(etcd::AlarmKind::NoSpace),
            Problem::Drift("config changed on the host".into()),
        ]);
        assert!(!drifted.only_alarms(), "drift is repaired by a restart");
        assert!(!Health::default().only_alarms());
        let corrupt = Health(vec![Problem::Alarm(etcd::AlarmKind::Corrupt)]);
        assert!(corrupt.to_string().contains("does not clear"), "{corrupt}");
    }
}
