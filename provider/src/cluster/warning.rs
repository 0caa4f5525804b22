//! What a change did, or could not do, that the user should know although
//! the change went on: shown as a Terraform warning with its own summary.

use std::fmt;

/// One warning of a change.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeWarning {
    /// A data directory in the way was moved aside (never deleted).
    DataMovedAside(String),
    /// The snapshot before the change was taken and kept on the member, but
    /// could not be copied to the backup host (or the copies could not be
    /// set up): the change went on.
    BackupCopyFailed(String),
    /// A member's host did not answer at destroy: what is left on it.
    HostUnreachable(String),
}

impl ChangeWarning {
    /// The warning's one-line summary.
    pub fn summary(&self) -> &'static str {
        match self {
            ChangeWarning::DataMovedAside(_) => "Data moved aside",
            ChangeWarning::BackupCopyFailed(_) => "Snapshot not copied to the backup host",
            ChangeWarning::HostUnreachable(_) => "Member host not reachable at destroy",
        }
    }
}

impl fmt::Display for ChangeWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeWarning::DataMovedAside(detail)
            | ChangeWarning::BackupCopyFailed(detail)
            | ChangeWarning::HostUnreachable(detail) => f.write_str(detail),
        }
    }
}
