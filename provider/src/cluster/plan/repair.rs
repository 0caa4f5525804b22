//! The repair's triage: which drifted members are brought back, have
//! their backup job or certificates renewed, are restarted or re-added,
//! and in which order (the phase is `cluster/repair.rs`).
//!
//! 1. Members that do not serve, on their host's evidence (unit stopped or
//!    failed, or no answer to a quorum read there), are brought back
//!    together.
//! 2. Live members the configuration does not list are removed while
//!    every configured member serves (a voter that does not serve lowers
//!    the cluster's margin; etcd's advice is to remove failed members
//!    first).
//! 3. Then each member that is not healthy, in order: a broken backup job
//!    alone is reinstalled; certificates due alone are renewed in place; a
//!    member that serves only out of this machine's reach, or is served by
//!    an etcd the provider did not start, stops the repair; a member that
//!    is no longer listed or whose host shows its data gone is re-added;
//!    anything else is rewritten and restarted.
//! 4. Members whose host does not answer are named last: nothing can be
//!    repaired there.
//!
//! `done` lists the members already stepped on in this apply: each is
//! stepped on once, so a step that does not cure its drift (a backup host
//! still down) never loops.

use std::collections::BTreeSet;

use super::guard::all_serve;
use super::Step;
use crate::cluster::Observed;

/// The repair's remaining steps for the configured `members` (names, in
/// order) as `observed` sees them.
pub fn plan_repair(members: &[&str], observed: &Observed, done: &BTreeSet<String>) -> Vec<Step> {
    let mut steps = Vec::new();
    let todo: Vec<&str> = members
        .iter()
        .copied()
        .filter(|m| !done.contains(*m))
        .collect();
    let down: Vec<String> = todo
        .iter()
        .filter(|m| {
            let health = observed.health_of(m);
            !health.is_healthy()
                && !observed.serving.contains(**m)
                && health.host_reachable()
                && !health.needs_readd()
                && health.refusal(m).is_none()
        })
        .map(|m| m.to_string())
        .collect();
    if !down.is_empty() {
        // The rest is planned on the observation after they are back.
        return vec![Step::BringBack(down)];
    }
    let configured_serve = all_serve(members.iter().copied(), observed);
    if configured_serve {
        let mut unmanaged = observed.unmanaged.clone();
        unmanaged.sort_by_key(|m| m.serving);
        steps.extend(unmanaged.into_iter().map(|m| Step::RemoveUnmanaged {
            id: m.id,
            label: m.label(),
        }));
    }
    let mut out_of_reach = Vec::new();
    for member in todo {
        let health = observed.health_of(member);
        if health.is_healthy() || health.only_alarms() {
            // Alarms are cleared after the repair (`space.rs`), never by a restart.
            continue;
        }
        if health.only_backup_broken() {
            steps.push(Step::RepairBackupJob(member.into()));
        } else if let Some(refusal) = health.refusal(member) {
            steps.push(Step::Refuse(refusal));
            return steps;
        } else if !health.host_reachable() {
            out_of_reach.push(format!("{member} ({health})"));
        } else if health.only_certificates_due() && observed.serving.contains(member) {
            steps.push(Step::RenewCertificates(member.into()));
        } else if health.needs_readd() {
            steps.push(Step::Readd(member.into()));
        } else {
            steps.push(Step::Restart(member.into()));
        }
    }
    if !observed.unmanaged.is_empty() && !configured_serve {
        steps.push(Step::Refuse(format!(
            "refusing to remove members the configuration does not list ({}) while configured members do not serve",
            observed.unmanaged_labels().join(", ")
        )));
    } else if !out_of_reach.is_empty() {
        steps.push(Step::Refuse(format!(
            "nothing can be repaired on members whose host does not answer: {}",
            out_of_reach.join("; ")
        )));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::observe::{Health, Problem, Unmanaged};

    const MEMBERS: [&str; 3] = ["e1", "e2", "e3"];

    /// An observation: each member's problems; `serving` as listed.
    fn seen(problems: &[(&str, Vec<Problem>)], serving: &[&str]) -> Observed {
        let mut observed = Observed {
            serving: serving.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        for name in MEMBERS {
            let found = problems.iter().find(|(n, _)| *n == name);
            let health = found.map(|(_, p)| Health(p.clone())).unwrap_or_default();
            observed.health.insert(name.into(), health);
        }
        observed
    }

    fn plan(observed: &Observed) -> Vec<Step> {
        plan_repair(&MEMBERS, observed, &BTreeSet::new())
    }

    fn drift(what: &str) -> Problem {
        Problem::Drift(what.into())
    }

    #[test]
    fn a_healthy_cluster_needs_nothing_and_alarms_wait_for_the_space_phase() {
        assert_eq!(plan(&seen(&[], &MEMBERS)), vec![]);
        let full = seen(
            &[("e1", vec![Problem::Alarm(crate::etcd::AlarmKind::NoSpace)])],
            &MEMBERS,
        );
        assert_eq!(plan(&full), vec![]);
    }

    #[test]
    fn members_that_do_not_serve_come_back_together_before_anything_else() {
        let stopped = vec![
            drift("etcd unit is failed"),
            Problem::Unhealthy("refused".into()),
        ];
        let observed = seen(
            &[
                ("e1", stopped.clone()),
                ("e2", stopped),
                ("e3", vec![drift("config changed on the host")]),
            ],
            &["e3"],
        );
        assert_eq!(
            plan(&observed),
            vec![Step::BringBack(vec!["e1".into(), "e2".into()])]
        );
        let done: BTreeSet<String> = ["e1".into(), "e2".into()].into();
        let after = seen(
            &[("e3", vec![drift("config changed on the host")])],
            &MEMBERS,
        );
        assert_eq!(
            plan_repair(&MEMBERS, &after, &done),
            vec![Step::Restart("e3".into())]
        );
    }

    #[test]
    fn a_member_out_of_this_machines_reach_is_never_restarted() {
        // Finding 1: the client port blocked for the runner, SSH open.
        let problems: Vec<(&str, Vec<Problem>)> = MEMBERS
            .iter()
            .map(|m| (*m, vec![Problem::ServesUnreachable("timed out".into())]))
            .collect();
        // Judged on their hosts, they serve.
        let observed = seen(&problems, &MEMBERS);
        let steps = plan(&observed);
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(
            matches!(&steps[0], Step::Refuse(why) if why.contains("restarts no member that serves")),
            "{steps:?}"
        );
    }

    #[test]
    fn data_gone_or_no_longer_listed_is_readded_and_drift_restarted() {
        let observed = seen(
            &[
                ("e1", vec![Problem::DataMissing]),
                ("e2", vec![Problem::NotAMember]),
                ("e3", vec![drift("unit changed on the host")]),
            ],
            &["e3"],
        );
        assert_eq!(
            plan(&observed),
            vec![
                Step::Readd("e1".into()),
                Step::Readd("e2".into()),
                Step::Restart("e3".into())
            ]
        );
    }

    #[test]
    fn a_job_or_certificates_alone_never_restart_etcd() {
        let observed = seen(
            &[
                (
                    "e1",
                    vec![Problem::Backup("etcd-backup.timer is inactive".into())],
                ),
                (
                    "e2",
                    vec![Problem::CertificatesDue("2027-01-01T00:00:00Z".into())],
                ),
            ],
            &MEMBERS,
        );
        assert_eq!(
            plan(&observed),
            vec![
                Step::RepairBackupJob("e1".into()),
                Step::RenewCertificates("e2".into())
            ]
        );
    }

    #[test]
    fn an_unreachable_host_is_named_after_what_can_be_repaired() {
        let observed = seen(
            &[
                ("e1", vec![Problem::HostUnreachable("timed out".into())]),
                ("e2", vec![drift("config changed on the host")]),
            ],
            &MEMBERS,
        );
        let steps = plan(&observed);
        assert_eq!(steps[0], Step::Restart("e2".into()));
        assert!(matches!(&steps[1], Step::Refuse(why) if why.contains("e1 (unreachable over SSH")));
    }

    #[test]
    fn members_the_configuration_does_not_list_go_first_and_only_while_all_serve() {
        let unstarted = Unmanaged {
            id: 0xabc,
            name: String::new(),
            voter: true,
            serving: false,
        };
        let mut observed = seen(
            &[("e3", vec![drift("config changed on the host")])],
            &MEMBERS,
        );
        observed.unmanaged = vec![unstarted];
        assert_eq!(
            plan(&observed),
            vec![
                Step::RemoveUnmanaged {
                    id: 0xabc,
                    label: "unstarted (abc)".into()
                },
                Step::Restart("e3".into())
            ]
        );
        observed.serving.remove("e3");
        assert_eq!(plan(&observed), vec![Step::BringBack(vec!["e3".into()])]);
        // Brought back, and still not serving: nothing is removed.
        let done: BTreeSet<String> = ["e3".into()].into();
        let steps = plan_repair(&MEMBERS, &observed, &done);
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(matches!(&steps[0], Step::Refuse(why) if why.contains("unstarted (abc)")));
    }

    #[test]
    fn each_member_is_stepped_on_once_per_apply() {
        let observed = seen(
            &[("e1", vec![Problem::Backup("the last run failed".into())])],
            &MEMBERS,
        );
        let done: BTreeSet<String> = ["e1".into()].into();
        assert_eq!(plan_repair(&MEMBERS, &observed, &done), vec![]);
    }
}
