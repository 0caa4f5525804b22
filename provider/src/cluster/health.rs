//! A member's health as the provider judges it: healthy, or the typed
//! problems found (drift, unreachable, not a member, an alarm, ...). The
//! phases decide on the problems; `status` shows them as text.

use std::fmt;

use crate::etcd;

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
