//! How each etcd version spells the settings the provider writes and the
//! user's `extra_flags`: experimental flags (3.4, 3.5), feature gates beside
//! them (3.6), feature gates only (3.7); the v2 flags gone from 3.6.

use super::{EtcdVersion, Spelling};

/// Boolean `experimental-*` flags that etcd 3.6 turned into feature gates.
const FEATURE_GATE_FLAGS: &[(&str, &str)] = &[
    ("experimental-initial-corrupt-check", "InitialCorruptCheck"),
    (
        "experimental-compact-hash-check-enabled",
        "CompactHashCheck",
    ),
    (
        "experimental-stop-grpc-service-on-defrag",
        "StopGRPCServiceOnDefrag",
    ),
    (
        "experimental-txn-mode-write-with-shared-buffer",
        "TxnModeWriteWithSharedBuffer",
    ),
    ("experimental-enable-lease-checkpoint", "LeaseCheckpoint"),
    (
        "experimental-enable-lease-checkpoint-persist",
        "LeaseCheckpointPersist",
    ),
];

/// Flags of etcd 3.5 that etcd 3.6 removed with the v2 API.
const V2_FLAGS: &[&str] = &["enable-v2", "experimental-enable-v2v3"];

/// The settings that turn on etcd's corruption checks (the check of a
/// member's data against the others' before it serves, and the leader's
/// comparison of the followers' hashes after each compaction), spelled for
/// `version`. None for etcd 3.4 (end of life: its clusters keep their
/// files). Written unless `extra_flags` set one of the keys or, from 3.6,
/// any flag etcd maps to a feature gate (etcd refuses a gate given twice).
pub fn corruption_check_settings(version: &str) -> Vec<(&'static str, &'static str)> {
    let Some(version) = EtcdVersion::parse(version) else {
        return Vec::new();
    };
    if !version.row().is_some_and(|row| row.corruption_checks) {
        return Vec::new();
    }
    match version.spelling() {
        Spelling::Experimental => vec![
            ("experimental-initial-corrupt-check", "true"),
            ("experimental-compact-hash-check-enabled", "true"),
        ],
        Spelling::FeatureGatesBesideExperimental | Spelling::FeatureGates => {
            vec![(
                "feature-gates",
                "InitialCorruptCheck=true,CompactHashCheck=true",
            )]
        }
    }
}

/// Whether `extra_flags` already say something about feature gates for
/// `version`, so that a default `feature-gates` line would clash.
pub fn flags_touch_feature_gates<'a>(
    version: &str,
    mut keys: impl Iterator<Item = &'a str>,
) -> bool {
    let gates = EtcdVersion::parse(version).is_some_and(|v| v.spelling() != Spelling::Experimental);
    gates
        && keys.any(|key| {
            key == "feature-gates" || FEATURE_GATE_FLAGS.iter().any(|(flag, _)| *flag == key)
        })
}

/// Why `extra_flags` may not hold `key` on `version`, naming the setting
/// that version takes instead; `None` when the version knows the key (or
/// is not a version: validation reports that).
pub fn flag_refusal(version: &str, key: &str) -> Option<String> {
    let v = EtcdVersion::parse(version)?;
    let gate = FEATURE_GATE_FLAGS
        .iter()
        .find(|(flag, _)| *flag == key)
        .map(|(_, gate)| *gate);
    if V2_FLAGS.contains(&key) && !v.has_v2() {
        return Some(format!(
            "etcd {} removed the v2 API, so {key:?} does nothing there: v2 clients (vip-manager 1.0, \
             flannel's etcd backend) need etcd 3.5 or a v3 client.",
            v.minor_name()
        ));
    }
    match (v.spelling(), gate) {
        (Spelling::Experimental, _) if key == "feature-gates" => Some(format!(
            "etcd {} has no feature gates: use the experimental- flag (e.g. \
             \"experimental-initial-corrupt-check\").",
            v.minor_name()
        )),
        (Spelling::FeatureGates, Some(gate)) => Some(format!(
            "etcd {} has no {key:?}: use \"feature-gates\" = \"{gate}=true\" (or =false).",
            v.minor_name()
        )),
        (Spelling::FeatureGates, None) if key.starts_with("experimental-") => {
            let new = key.trim_start_matches("experimental-");
            Some(format!(
                "etcd {} has no experimental- flags: use {new:?} (etcd 3.6 renamed {key:?}).",
                v.minor_name()
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_checks_are_spelled_for_the_version() {
        assert!(corruption_check_settings("3.4.23").is_empty());
        assert_eq!(
            corruption_check_settings("3.5.36"),
            vec![
                ("experimental-initial-corrupt-check", "true"),
                ("experimental-compact-hash-check-enabled", "true")
            ]
        );
        for gates in ["3.6.17", "3.7.4"] {
            assert_eq!(
                corruption_check_settings(gates),
                vec![(
                    "feature-gates",
                    "InitialCorruptCheck=true,CompactHashCheck=true"
                )]
            );
        }
        let keys = ["snapshot-count", "experimental-initial-corrupt-check"];
        assert!(flags_touch_feature_gates("3.6.17", keys.into_iter()));
        assert!(!flags_touch_feature_gates("3.5.36", keys.into_iter()));
        assert!(!flags_touch_feature_gates(
            "3.7.4",
            ["snapshot-count"].into_iter()
        ));
    }

    #[test]
    fn old_spellings_are_refused_where_the_version_no_longer_reads_them() {
        let refused = |version: &str, key: &str| flag_refusal(version, key);
        assert!(refused("3.6.17", "enable-v2")
            .unwrap()
            .contains("removed the v2 API"));
        assert!(refused("3.7.4", "experimental-enable-v2v3").is_some());
        assert_eq!(refused("3.5.36", "enable-v2"), None);
        assert!(refused("3.7.4", "experimental-initial-corrupt-check")
            .unwrap()
            .contains("\"feature-gates\" = \"InitialCorruptCheck=true\""));
        assert!(refused("3.7.4", "experimental-compaction-batch-limit")
            .unwrap()
            .contains("\"compaction-batch-limit\""));
        // 3.6 still reads the old spelling (deprecated).
        assert_eq!(
            refused("3.6.17", "experimental-initial-corrupt-check"),
            None
        );
        assert_eq!(
            refused("3.5.36", "experimental-initial-corrupt-check"),
            None
        );
        assert!(refused("3.5.36", "feature-gates").is_some());
        assert_eq!(refused("3.6.17", "feature-gates"), None);
        assert_eq!(refused("3.7.4", "snapshot-count"), None);
        assert_eq!(refused("not a version", "enable-v2"), None);
    }
}
