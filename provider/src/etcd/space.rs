//! The space a cluster's keyspace takes, through the client API: the
//! alarms members raise (a status lists them), compaction, the
//! defragmentation of one member, disarming an alarm.

use std::fmt;
use std::time::Duration;

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, CompactionOptions};

use super::{text, Client};

/// What an alarm says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlarmKind {
    /// A member's database reached `quota-backend-bytes`: etcd refuses
    /// every write (reads go on) until the alarm is disarmed.
    NoSpace,
    /// A member's data differs from the others' (corruption check).
    Corrupt,
    /// An alarm this provider does not know, by etcd's name.
    Other(String),
}

impl fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlarmKind::NoSpace => f.write_str("NOSPACE"),
            AlarmKind::Corrupt => f.write_str("CORRUPT"),
            AlarmKind::Other(name) => f.write_str(name),
        }
    }
}

/// An alarm one member raised. Alarms are kept by the cluster: every
/// member's status lists all of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Alarm {
    pub member_id: u64,
    pub kind: AlarmKind,
}

impl Alarm {
    /// Reads an entry of a status's `errors` as etcd writes an alarm there
    /// (`memberID:3319814642761637952 alarm:NOSPACE `); other entries
    /// ("etcdserver: no leader") are not alarms.
    pub fn parse(entry: &str) -> Option<Alarm> {
        let mut member_id = None;
        let mut kind = None;
        for field in entry.split_whitespace() {
            match field.split_once(':') {
                Some(("memberID", id)) => member_id = id.parse().ok(),
                Some(("alarm", "NOSPACE")) => kind = Some(AlarmKind::NoSpace),
                Some(("alarm", "CORRUPT")) => kind = Some(AlarmKind::Corrupt),
                Some(("alarm", other)) => kind = Some(AlarmKind::Other(other.to_string())),
                _ => {}
            }
        }
        Some(Alarm {
            member_id: member_id?,
            kind: kind?,
        })
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compaction {
    /// Compacted at this revision.
    Done(i64),
    /// The keyspace was compacted at this revision already (an earlier,
    /// interrupted run; no write came since).
    AlreadyDone(i64),
}

impl Client {
    /// Compacts the keyspace at its current revision: every key keeps its
    /// current value, the revisions before it are dropped. Physical: the
    /// call returns once the answering member has removed them from its
    /// database, within `limit`.
    pub async fn compact_at_current_revision(&self, limit: Duration) -> Result<Compaction, String> {
        let (_, endpoint, revision) = self.first_answering(None).await?;
        let mut client = self
            .client_allowing(std::slice::from_ref(&endpoint), limit)
            .await?;
        match client
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
        {
            Ok(_) => Ok(Compaction::Done(revision)),
            // etcd's ErrGRPCCompacted.
            Err(etcd_client::Error::GRpcStatus(status))
                if status.code() == tonic::Code::OutOfRange =>
            {
                Ok(Compaction::AlreadyDone(revision))
            }
            Err(e) => Err(format!(
                "{endpoint}: compaction at revision {revision}: {}",
                text(e)
            )),
        }
    }

    /// Defragments the database of the member at `endpoint` (it answers
    /// nothing else meanwhile) within `limit`: its file shrinks to what it
    /// holds.
    pub async fn defragment(&self, endpoint: &str, limit: Duration) -> Result<(), String> {
        let mut client = self.client_allowing(&[endpoint.to_string()], limit).await?;
        client
            .defragment()
            .await
            .map(drop)
            .map_err(|e| format!("{endpoint}: defragmentation: {}", text(e)))
    }

    /// Disarms `alarm`.
    pub async fn disarm(&self, alarm: &Alarm) -> Result<(), String> {
        let alarm_type = match alarm.kind {
            AlarmKind::NoSpace => AlarmType::Nospace,
            AlarmKind::Corrupt => AlarmType::Corrupt,
            AlarmKind::Other(_) => return Err(format!("cannot disarm alarm {}", alarm.kind)),
        };
        let mut options = AlarmOptions::new();
        options.with_member(alarm.member_id);
        let mut client = self.any_client().await?;
        client
            .alarm(AlarmAction::Deactivate, alarm_type, Some(options))
            .await
            .map(drop)
            .map_err(|e| format!("disarming alarm {}: {}", alarm.kind, text(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_are_read_from_a_status_as_etcd_writes_them() {
        assert_eq!(
            Alarm::parse("memberID:3319814642761637952 alarm:NOSPACE "),
            Some(Alarm {
                member_id: 3319814642761637952,
                kind: AlarmKind::NoSpace
            })
        );
        assert_eq!(
            Alarm::parse("memberID:7 alarm:CORRUPT").map(|a| a.kind),
            Some(AlarmKind::Corrupt)
        );
        assert_eq!(
            Alarm::parse("memberID:7 alarm:SOMETHING").map(|a| a.kind.to_string()),
            Some("SOMETHING".to_string())
        );
        assert_eq!(Alarm::parse("etcdserver: no leader"), None);
        assert_eq!(Alarm::parse("alarm:NOSPACE"), None, "no member");
    }
}
