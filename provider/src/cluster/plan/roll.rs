//! The roll's choice of members (the phase is `cluster/roll.rs`): each
//! member in order is restarted with the new settings unless it already
//! runs them (`rolled`: judged on its host) or is no longer a member (the
//! repair after the roll re-adds it, with the new settings). A member the
//! provider must not touch stops the roll there. A voter the
//! configuration does not list that does not serve is removed first,
//! while every configured member serves: until then it counts towards
//! the quorum without serving, and no restart would be safe.

use std::collections::BTreeSet;

use super::guard::all_serve;
use super::Step;
use crate::cluster::Observed;

/// The roll's remaining steps for the configured `members` (names, in
/// order); `rolled`: members that already run the new settings, or were
/// restarted by this apply.
pub fn plan_roll(members: &[&str], observed: &Observed, rolled: &BTreeSet<String>) -> Vec<Step> {
    let mut steps = Vec::new();
    for member in members {
        let health = observed.health_of(member);
        if health.needs_readd() || rolled.contains(*member) {
            continue;
        }
        if let Some(refusal) = health.refusal(member) {
            steps.push(Step::Refuse(refusal));
            break;
        }
        steps.push(Step::Restart(member.to_string()));
    }
    let stalled: Vec<Step> = observed
        .unmanaged
        .iter()
        .filter(|m| m.voter && !m.serving)
        .map(|m| Step::RemoveUnmanaged {
            id: m.id,
            label: m.label(),
        })
        .collect();
    if !steps.is_empty() && !stalled.is_empty() && all_serve(members.iter().copied(), observed) {
        steps.splice(0..0, stalled);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::observe::{Health, Problem, Unmanaged};

    const MEMBERS: [&str; 3] = ["e1", "e2", "e3"];

    fn all_serving() -> Observed {
        let mut observed = Observed {
            serving: MEMBERS.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        for name in MEMBERS {
            observed.health.insert(name.into(), Health::default());
        }
        observed
    }

    fn names(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_member_not_yet_rolled_in_order() {
        let steps = plan_roll(&MEMBERS, &all_serving(), &names(&["e2"]));
        assert_eq!(
            steps,
            vec![Step::Restart("e1".into()), Step::Restart("e3".into())]
        );
        assert_eq!(
            plan_roll(&MEMBERS, &all_serving(), &names(&MEMBERS)),
            vec![]
        );
    }

    #[test]
    fn a_removed_member_is_left_to_the_repair_and_an_untouchable_one_stops_the_roll() {
        let mut observed = all_serving();
        observed
            .health
            .insert("e1".into(), Health(vec![Problem::NotAMember]));
        observed.health.insert(
            "e2".into(),
            Health(vec![Problem::ServedOutsideUnit("inactive".into())]),
        );
        let steps = plan_roll(&MEMBERS, &observed, &BTreeSet::new());
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(matches!(&steps[0], Step::Refuse(why) if why.contains("member e2")));
    }

    #[test]
    fn an_unstarted_voter_is_removed_before_the_first_restart() {
        // Finding 4: 3 listed + 1 unstarted voter.
        let mut observed = all_serving();
        observed.unmanaged = vec![Unmanaged {
            id: 0xabc,
            name: String::new(),
            voter: true,
            serving: false,
        }];
        let steps = plan_roll(&MEMBERS, &observed, &names(&["e1", "e2"]));
        assert_eq!(
            steps,
            vec![
                Step::RemoveUnmanaged {
                    id: 0xabc,
                    label: "unstarted (abc)".into()
                },
                Step::Restart("e3".into())
            ]
        );
        // Nothing to roll: nothing removed either (the repair's business).
        assert_eq!(plan_roll(&MEMBERS, &observed, &names(&MEMBERS)), vec![]);
    }
}
