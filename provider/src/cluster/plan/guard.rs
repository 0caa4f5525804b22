//! The quorum guards, as pure judgements on one observation. Quorum is
//! judged from the live voter list: a voter the configuration does not
//! list (added by hand, or never started) counts like any other, so a
//! step never leaves fewer voters serving than the cluster needs.

use super::super::Observed;

/// Refuses a restart or a membership change of `target` unless every other
/// configured member and every unmanaged voter serves (answers a quorum
/// read, here or on its own host).
pub fn others_serve<'a>(
    configured: impl IntoIterator<Item = &'a str>,
    observed: &Observed,
    target: &str,
) -> Result<(), String> {
    let mut not_serving: Vec<String> = configured
        .into_iter()
        .filter(|name| *name != target && !observed.serving.contains(*name))
        .map(|name| format!("{name} ({})", observed.health_of(name)))
        .collect();
    not_serving.extend(
        observed
            .unmanaged
            .iter()
            .filter(|m| m.voter && !m.serving)
            .map(|m| {
                format!(
                    "{}: a voter the configuration does not list, which does not serve",
                    m.label()
                )
            }),
    );
    if not_serving.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "member {target}: refusing to restart, add or remove it while other voting members do not serve \
             (that could lose quorum): {}",
            not_serving.join("; ")
        ))
    }
}

/// Whether every configured member serves (the condition to remove a
/// member the configuration does not list).
pub fn all_serve<'a>(configured: impl IntoIterator<Item = &'a str>, observed: &Observed) -> bool {
    configured
        .into_iter()
        .all(|name| observed.serving.contains(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::observe::Unmanaged;

    fn observed(serving: &[&str], unmanaged: Vec<Unmanaged>) -> Observed {
        Observed {
            serving: serving.iter().map(|s| s.to_string()).collect(),
            unmanaged,
            ..Default::default()
        }
    }

    fn voter(serving: bool) -> Unmanaged {
        Unmanaged {
            id: 0xabc,
            name: String::new(),
            voter: true,
            serving,
        }
    }

    #[test]
    fn an_unstarted_voter_added_by_hand_blocks_a_restart() {
        // 3 listed + 1 unstarted voter: restarting one leaves 2 of 4.
        let seen = observed(&["e1", "e2", "e3"], vec![voter(false)]);
        let refused = others_serve(["e1", "e2", "e3"], &seen, "e1").unwrap_err();
        assert!(refused.contains("unstarted (abc)"), "{refused}");
        let serving_extra = observed(&["e1", "e2", "e3"], vec![voter(true)]);
        assert_eq!(
            others_serve(["e1", "e2", "e3"], &serving_extra, "e1"),
            Ok(())
        );
        let learner = Unmanaged {
            voter: false,
            ..voter(false)
        };
        let with_learner = observed(&["e1", "e2", "e3"], vec![learner]);
        assert_eq!(
            others_serve(["e1", "e2", "e3"], &with_learner, "e1"),
            Ok(())
        );
    }

    #[test]
    fn the_target_itself_may_be_down_but_no_other_member() {
        let seen = observed(&["e2", "e3"], vec![]);
        assert_eq!(others_serve(["e1", "e2", "e3"], &seen, "e1"), Ok(()));
        let refused = others_serve(["e1", "e2", "e3"], &seen, "e2").unwrap_err();
        assert!(refused.contains("e1 ("), "{refused}");
        assert!(!all_serve(["e1", "e2", "e3"], &seen));
        assert!(all_serve(["e2", "e3"], &seen));
    }
}
