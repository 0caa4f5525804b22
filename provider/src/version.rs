//! etcd versions, parsed in one place: what a version must look like, which
//! versions have learners, and which version changes a rolling upgrade may
//! make.

use std::fmt;

/// A release version like `3.4.23`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EtcdVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl EtcdVersion {
    /// `MAJOR.MINOR.PATCH`, digits only; anything else is `None`.
    pub fn parse(text: &str) -> Option<EtcdVersion> {
        let mut parts = text.split('.').map(|part| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u32>().ok())
                .flatten()
        });
        let version = EtcdVersion {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(version)
    }

    /// etcd has learners (non-voting members that catch up first) from 3.4 on.
    pub fn has_learners(self) -> bool {
        (self.major, self.minor) >= (3, 4)
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why going from etcd `from` to `to` is not a supported rolling upgrade
/// (a downgrade, or a skipped minor version); `None` when it is, or when
/// either is not a version (validation reports that).
pub fn upgrade_refusal(from: &str, to: &str) -> Option<String> {
    let (old, new) = (EtcdVersion::parse(from)?, EtcdVersion::parse(to)?);
    if new < old {
        Some(format!(
            "{from} -> {to} is a downgrade; etcd supports rolling upgrades only."
        ))
    } else if new.major != old.major || new.minor > old.minor + 1 {
        Some(format!("{from} -> {to} skips a minor version; upgrade one minor version at a time (e.g. 3.4 -> 3.5)."))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(
            EtcdVersion::parse("3.4.23"),
            Some(EtcdVersion {
                major: 3,
                minor: 4,
                patch: 23
            })
        );
        for bad in ["3.4", "3.4.23.1", "v3.4.23", "3.4.x", "3..4", "", "3.4.+1"] {
            assert_eq!(EtcdVersion::parse(bad), None, "{bad:?}");
        }
        assert_eq!(EtcdVersion::parse("3.5.1").unwrap().to_string(), "3.5.1");
    }

    #[test]
    fn learners_exist_from_3_4() {
        assert!(EtcdVersion::parse("3.4.0").unwrap().has_learners());
        assert!(EtcdVersion::parse("4.0.0").unwrap().has_learners());
        assert!(!EtcdVersion::parse("3.3.27").unwrap().has_learners());
    }

    #[test]
    fn only_one_minor_version_up_at_a_time() {
        assert_eq!(upgrade_refusal("3.4.23", "3.5.1"), None);
        assert_eq!(upgrade_refusal("3.4.23", "3.4.24"), None);
        assert!(upgrade_refusal("3.5.1", "3.4.23")
            .unwrap()
            .contains("downgrade"));
        assert!(upgrade_refusal("3.3.27", "3.5.1")
            .unwrap()
            .contains("skips"));
        assert!(upgrade_refusal("3.5.1", "4.0.0").unwrap().contains("skips"));
    }
}
