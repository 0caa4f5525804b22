//! The order of a membership change (the phase is `cluster/membership.rs`):
//!
//! 1. Refused unless every member that stays is healthy.
//! 2. Leaving members that do not serve are removed first (etcd's advice:
//!    adding one raises the quorum while the failed one still counts).
//! 3. Each new member is added, then one healthy leaving member removed:
//!    every healthy member keeps voting while the new one catches up, and
//!    the cluster is never more than one member larger than planned. A
//!    leaving member with the new one's name or on its host is removed
//!    just before it (etcd cannot hold two members of one name, and one
//!    host cannot run two members on the same ports and data directory).
//! 4. The leaving members that are left are removed.

use super::{MemberAt, Step};
use crate::cluster::Observed;
use crate::member::MemberSpec;

/// Whether two specs are the same member (same name, same host).
pub fn same_member(a: &MemberSpec, b: &MemberSpec) -> bool {
    a.name == b.name && a.host == b.host
}

/// Whether two members would collide: the same name, or the same host.
pub fn same_place(a: &MemberSpec, b: &MemberSpec) -> bool {
    a.name == b.name || a.ssh.address == b.ssh.address || a.host == b.host
}

/// Members only `to` has, and members only `from` has; a member that
/// moves to another host is in both (it is removed, then added).
pub fn changes<'a>(
    from: &'a [MemberSpec],
    to: &'a [MemberSpec],
) -> (Vec<&'a MemberSpec>, Vec<&'a MemberSpec>) {
    let added = to
        .iter()
        .filter(|t| !from.iter().any(|f| same_member(f, t)))
        .collect();
    let removed = from
        .iter()
        .filter(|f| !to.iter().any(|t| same_member(f, t)))
        .collect();
    (added, removed)
}

/// The steps from the members `from` to the members `to`, as `observed`
/// (of `from`) sees the cluster.
pub fn plan_membership(from: &[MemberSpec], to: &[MemberSpec], observed: &Observed) -> Vec<Step> {
    let (added, removed) = changes(from, to);
    if added.is_empty() && removed.is_empty() {
        return Vec::new();
    }
    let unhealthy: Vec<String> = from
        .iter()
        .filter(|m| !removed.iter().any(|r| same_member(r, m)))
        .map(|m| (m, observed.health_of(&m.name)))
        .filter(|(_, health)| !health.is_healthy())
        .map(|(m, health)| format!("{} ({health})", m.name))
        .collect();
    if !unhealthy.is_empty() {
        return vec![Step::Refuse(format!(
            "the membership was not changed: every member that stays must be healthy first, and these are not: {}",
            unhealthy.join("; ")
        ))];
    }
    let (failed, mut leaving): (Vec<&MemberSpec>, Vec<&MemberSpec>) = removed
        .into_iter()
        .partition(|m| !observed.serving.contains(&m.name));
    let mut steps: Vec<Step> = failed
        .into_iter()
        .map(|m| Step::Remove(MemberAt::of(m)))
        .collect();
    for new in added {
        if let Some(index) = leaving.iter().position(|m| same_place(m, new)) {
            steps.push(Step::Remove(MemberAt::of(leaving.remove(index))));
        }
        steps.push(Step::Add(MemberAt::of(new)));
        if !leaving.is_empty() {
            steps.push(Step::Remove(MemberAt::of(leaving.remove(0))));
        }
    }
    steps.extend(leaving.into_iter().map(|m| Step::Remove(MemberAt::of(m))));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::observe::{Health, Problem};

    fn member(name: &str, host: &str) -> MemberSpec {
        crate::member::test_member(name, host)
    }

    fn at(name: &str, host: &str) -> MemberAt {
        MemberAt {
            name: name.into(),
            host: host.into(),
        }
    }

    /// Every member of `members` healthy and serving, but `down`.
    fn seen(members: &[MemberSpec], down: &[&str]) -> Observed {
        let mut observed = Observed::default();
        for m in members {
            if down.contains(&m.name.as_str()) {
                let health = Health(vec![Problem::Unhealthy("refused".into())]);
                observed.health.insert(m.name.clone(), health);
            } else {
                observed.health.insert(m.name.clone(), Health::default());
                observed.serving.insert(m.name.clone());
            }
        }
        observed
    }

    #[test]
    fn scale_out_adds_one_at_a_time_and_scale_in_removes() {
        let three = vec![member("e1", "h1"), member("e2", "h2"), member("e3", "h3")];
        let mut five = three.clone();
        five.extend([member("e4", "h4"), member("e5", "h5")]);
        assert_eq!(
            plan_membership(&three, &five, &seen(&three, &[])),
            vec![Step::Add(at("e4", "h4")), Step::Add(at("e5", "h5"))]
        );
        assert_eq!(
            plan_membership(&five, &three, &seen(&five, &[])),
            vec![Step::Remove(at("e4", "h4")), Step::Remove(at("e5", "h5"))]
        );
        assert_eq!(plan_membership(&three, &three, &seen(&three, &[])), vec![]);
    }

    #[test]
    fn a_failed_leaving_member_goes_first_and_a_healthy_one_after_each_add() {
        let from = vec![member("e1", "h1"), member("e2", "h2"), member("e3", "h3")];
        let to = vec![member("e1", "h1"), member("e4", "h4"), member("e5", "h5")];
        assert_eq!(
            plan_membership(&from, &to, &seen(&from, &["e3"])),
            vec![
                Step::Remove(at("e3", "h3")),
                Step::Add(at("e4", "h4")),
                Step::Remove(at("e2", "h2")),
                Step::Add(at("e5", "h5")),
            ]
        );
    }

    #[test]
    fn a_move_removes_the_old_place_just_before_the_new_one() {
        let from = vec![member("e1", "h1"), member("e2", "h2"), member("e3", "h3")];
        let to = vec![member("e1", "h1"), member("e2", "h2"), member("e3", "h9")];
        assert_eq!(
            plan_membership(&from, &to, &seen(&from, &[])),
            vec![Step::Remove(at("e3", "h3")), Step::Add(at("e3", "h9"))]
        );
    }

    #[test]
    fn nothing_changes_while_a_staying_member_is_unhealthy() {
        let from = vec![member("e1", "h1"), member("e2", "h2"), member("e3", "h3")];
        let mut to = from.clone();
        to.push(member("e4", "h4"));
        let steps = plan_membership(&from, &to, &seen(&from, &["e2"]));
        assert_eq!(steps.len(), 1);
        assert!(matches!(&steps[0], Step::Refuse(why) if why.contains("e2 (unhealthy: refused)")));
    }
}
