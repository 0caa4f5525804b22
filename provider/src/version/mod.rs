//! etcd versions as data: one table says, per minor version, which tool
//! checks and restores snapshots, how the settings we write are spelled,
//! whether the v2 API exists, from which patch the next minor may follow,
//! whether etcd can go back to the previous minor, and whether the minor
//! is past its end of life. Everything that renders a config, a backup job
//! or a restore, and every plan-time check of a version change, asks this
//! module; nothing else compares version numbers.
//!
//! Sources: etcd's upgrade guides (3.5 -> 3.6 needs 3.5.26 or later, whose
//! members cannot bring removed "zombie" members back; 3.6 -> 3.7 needs
//! 3.6.11 or later), etcd 3.6's changelog (the v2 API and `etcdctl
//! snapshot restore|status` removed, `experimental-*` flags renamed or made
//! feature gates, downgrades), etcd 3.7's (the `experimental-*` flags gone).

use std::fmt;

mod settings;

pub use settings::{corruption_check_settings, flag_refusal, flags_touch_feature_gates};

/// A release version like `3.6.17`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EtcdVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The program that checks (`snapshot status`) and restores snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotTool {
    /// `etcdctl` (etcd 3.4; etcd 3.5 has both and deprecates etcdctl's).
    Etcdctl,
    /// `etcdutl`, installed beside etcdctl (etcd 3.5 and later; the only
    /// one from 3.6).
    Etcdutl,
}

/// How the boolean `experimental-*` settings of a minor are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spelling {
    /// `experimental-initial-corrupt-check: true` (3.4, 3.5).
    Experimental,
    /// `feature-gates: InitialCorruptCheck=true`; the old flags are
    /// deprecated but read (3.6).
    FeatureGatesBesideExperimental,
    /// Feature gates only; an `experimental-*` key is silently ignored (3.7).
    FeatureGates,
}

/// What one minor version of etcd is like.
#[derive(Debug)]
struct Minor {
    minor: u32,
    snapshot_tool: SnapshotTool,
    spelling: Spelling,
    /// The v2 API and `enable-v2` (removed in 3.6).
    has_v2: bool,
    /// The lowest patch of this minor from which the next minor may follow.
    next_minor_from_patch: u32,
    /// Whether a cluster of this minor can go back to the previous one
    /// (`etcdctl downgrade validate|enable`, from 3.6).
    downgrades_to_previous: bool,
    /// Whether the provider turns etcd's corruption checks on (not on 3.4,
    /// past its end of life: its clusters keep the files they have).
    corruption_checks: bool,
    /// When it reached its end of life, if it has.
    end_of_life: Option<&'static str>,
}

/// The supported minors of etcd 3, oldest first. A later minor than the
/// last is taken to be like the last.
const MINORS: &[Minor] = &[
    Minor {
        minor: 4,
        snapshot_tool: SnapshotTool::Etcdctl,
        spelling: Spelling::Experimental,
        has_v2: true,
        next_minor_from_patch: 0,
        downgrades_to_previous: false,
        corruption_checks: false,
        end_of_life: Some("June 2026"),
    },
    Minor {
        minor: 5,
        snapshot_tool: SnapshotTool::Etcdutl,
        spelling: Spelling::Experimental,
        has_v2: true,
        next_minor_from_patch: 26,
        downgrades_to_previous: false,
        corruption_checks: true,
        end_of_life: None,
    },
    Minor {
        minor: 6,
        snapshot_tool: SnapshotTool::Etcdutl,
        spelling: Spelling::FeatureGatesBesideExperimental,
        has_v2: false,
        next_minor_from_patch: 11,
        downgrades_to_previous: true,
        corruption_checks: true,
        end_of_life: None,
    },
    Minor {
        minor: 7,
        snapshot_tool: SnapshotTool::Etcdutl,
        spelling: Spelling::FeatureGates,
        has_v2: false,
        next_minor_from_patch: 0,
        downgrades_to_previous: true,
        corruption_checks: true,
        end_of_life: None,
    },
];

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

    /// This version's row of the table; `None` before 3.4 (unsupported).
    fn row(self) -> Option<&'static Minor> {
        let newest = MINORS.last()?;
        match (self.major, self.minor) {
            (3, minor) if minor > newest.minor => Some(newest),
            (3, minor) => MINORS.iter().find(|row| row.minor == minor),
            (major, _) if major > 3 => Some(newest),
            _ => None,
        }
    }

    /// Why the provider cannot run this version at all (before 3.4).
    pub fn unsupported(self) -> Option<String> {
        self.row().is_none().then(|| {
            format!(
                "etcd {self} is not supported: use etcd 3.5 or later (3.4 for existing clusters)."
            )
        })
    }

    /// etcd has learners (non-voting members that catch up first) from 3.4 on.
    pub fn has_learners(self) -> bool {
        (self.major, self.minor) >= (3, 4)
    }

    /// Which program checks and restores snapshots.
    pub fn snapshot_tool(self) -> SnapshotTool {
        self.row()
            .map_or(SnapshotTool::Etcdctl, |row| row.snapshot_tool)
    }

    /// Whether `etcdutl` is installed beside `etcd` and `etcdctl`.
    pub fn has_etcdutl(self) -> bool {
        self.snapshot_tool() == SnapshotTool::Etcdutl
    }

    /// Whether etcd serves the v2 API (`enable-v2`).
    pub fn has_v2(self) -> bool {
        self.row().is_some_and(|row| row.has_v2)
    }

    fn spelling(self) -> Spelling {
        self.row()
            .map_or(Spelling::Experimental, |row| row.spelling)
    }

    fn end_of_life(self) -> Option<&'static str> {
        self.row().and_then(|row| row.end_of_life)
    }

    /// `3.6` for 3.6.17.
    pub fn minor_name(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A warning for a cluster on a minor version past its end of life.
pub fn end_of_life_warning(version: &str) -> Option<String> {
    let v = EtcdVersion::parse(version)?;
    let when = v.end_of_life()?;
    Some(format!(
        "etcd {} reached its end of life in {when} and gets no more fixes. Upgrade one minor version \
         at a time: to the newest 3.5 (3.5.26 or later), then to 3.6.",
        v.minor_name()
    ))
}

/// How a cluster may go from one version to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionChange {
    /// The same version.
    None,
    /// A newer patch, or the next minor: a rolling upgrade.
    Upgrade,
    /// The previous minor, which etcd supports from 3.6: the cluster
    /// version is lowered first (`downgrade enable`), then members roll.
    Downgrade,
}

/// How going from etcd `from` to `to` is done, or why it cannot be (a
/// skipped minor, a next minor from too old a patch, a downgrade etcd does
/// not support). Not a version on either side is `Ok(VersionChange::None)`: validation
/// reports that.
pub fn version_change(from: &str, to: &str) -> Result<VersionChange, String> {
    let (Some(old), Some(new)) = (EtcdVersion::parse(from), EtcdVersion::parse(to)) else {
        return Ok(VersionChange::None);
    };
    let same_minor = (new.major, new.minor) == (old.major, old.minor);
    let next_minor = new.major == old.major && new.minor == old.minor + 1;
    let previous_minor = new.major == old.major && new.minor + 1 == old.minor;
    if new == old {
        Ok(VersionChange::None)
    } else if same_minor && new > old {
        Ok(VersionChange::Upgrade)
    } else if same_minor {
        Err(format!(
            "{from} -> {to} is a patch downgrade, which etcd does not support: stay on {from} or go up."
        ))
    } else if next_minor {
        let least = old.row().map_or(0, |row| row.next_minor_from_patch);
        if old.patch < least {
            let first = EtcdVersion {
                patch: least,
                ..old
            };
            Err(format!(
                "{from} -> {to}: etcd {} may only follow {first} or later (older {} members can bring \
                 removed members back). Upgrade to the newest {} first ({first} or later), then to {to}.",
                new.minor_name(),
                old.minor_name(),
                old.minor_name()
            ))
        } else {
            Ok(VersionChange::Upgrade)
        }
    } else if previous_minor && old.row().is_some_and(|row| row.downgrades_to_previous) {
        Ok(VersionChange::Downgrade)
    } else if previous_minor {
        Err(format!(
            "{from} -> {to} is a downgrade, which etcd {} cannot do (etcd downgrades from 3.6 on, one \
             minor version at a time).",
            old.minor_name()
        ))
    } else {
        let step = if new > old {
            "upgrade one minor version at a time (e.g. 3.5 -> 3.6 -> 3.7)"
        } else {
            "downgrade one minor version at a time (e.g. 3.7 -> 3.6)"
        };
        Err(format!("{from} -> {to} skips a minor version; {step}."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> EtcdVersion {
        EtcdVersion::parse(text).unwrap()
    }

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
        assert_eq!(v("3.5.1").to_string(), "3.5.1");
    }

    #[test]
    fn versions_before_3_4_are_unsupported_and_later_ones_are_like_the_last() {
        assert!(v("3.3.27").unsupported().is_some());
        assert!(v("2.3.8").unsupported().is_some());
        for ok in ["3.4.23", "3.5.36", "3.6.17", "3.7.4", "3.8.0", "4.0.0"] {
            assert_eq!(v(ok).unsupported(), None, "{ok}");
        }
        assert!(!v("3.8.0").has_v2() && v("3.8.0").has_etcdutl());
    }

    #[test]
    fn learners_exist_from_3_4() {
        assert!(v("3.4.0").has_learners());
        assert!(v("4.0.0").has_learners());
        assert!(!v("3.3.27").has_learners());
    }

    #[test]
    fn snapshots_are_checked_by_etcdctl_on_3_4_and_by_etcdutl_later() {
        assert_eq!(v("3.4.23").snapshot_tool(), SnapshotTool::Etcdctl);
        for later in ["3.5.0", "3.6.17", "3.7.4"] {
            assert_eq!(v(later).snapshot_tool(), SnapshotTool::Etcdutl, "{later}");
        }
    }

    #[test]
    fn only_3_4_is_past_its_end_of_life() {
        assert!(end_of_life_warning("3.4.23")
            .unwrap()
            .contains("end of life"));
        for current in ["3.5.36", "3.6.17", "3.7.4"] {
            assert_eq!(end_of_life_warning(current), None, "{current}");
        }
    }

    #[test]
    fn version_changes_follow_etcd_upgrade_and_downgrade_paths() {
        use VersionChange::*;
        let table: &[(&str, &str, Result<VersionChange, &str>)] = &[
            ("3.4.23", "3.4.23", Ok(None)),
            ("3.4.23", "3.4.24", Ok(Upgrade)),
            ("3.4.23", "3.5.1", Ok(Upgrade)),
            ("3.5.26", "3.6.0", Ok(Upgrade)),
            ("3.5.36", "3.6.17", Ok(Upgrade)),
            ("3.6.11", "3.7.4", Ok(Upgrade)),
            (
                "3.5.21",
                "3.6.17",
                Err("upgrade to the newest 3.5 first (3.5.26 or later)"),
            ),
            ("3.6.10", "3.7.4", Err("3.6.11 or later")),
            ("3.5.36", "3.7.4", Err("skips a minor version")),
            ("3.3.27", "3.5.1", Err("skips a minor version")),
            ("3.5.1", "4.0.0", Err("skips a minor version")),
            ("3.7.4", "3.6.17", Ok(Downgrade)),
            ("3.6.17", "3.5.36", Ok(Downgrade)),
            (
                "3.6.17",
                "3.4.23",
                Err("downgrade one minor version at a time"),
            ),
            ("3.5.36", "3.4.23", Err("cannot do")),
            ("3.5.36", "3.5.30", Err("patch downgrade")),
            ("3.5", "3.7.4", Ok(None)),
        ];
        for (from, to, expected) in table {
            match (version_change(from, to), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{from} -> {to}"),
                (Err(got), Err(want)) => assert!(
                    got.to_lowercase().contains(&want.to_lowercase()),
                    "{from} -> {to}: {got}"
                ),
                (got, want) => panic!("{from} -> {to}: {got:?}, expected {want:?}"),
            }
        }
    }
}
