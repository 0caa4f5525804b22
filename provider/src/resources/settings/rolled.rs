//! The settings a running member takes on by being rewritten and restarted
//! (a rolling change in `etcd_cluster`, a rewrite in `etcd_member`), and
//! what a plan says about the etcd version: a change etcd does not support
//! is refused on `etcd_version`, a downgrade is named, and a version past
//! its end of life is warned about.

use crate::framework::{AttributePath, Plan, Value};
use crate::version::{end_of_life_warning, version_change, VersionChange};

/// Settings a running member takes on by being rewritten and restarted
/// (member by member in a cluster; a new CA by a CA rotation there).
const ROLLED: &[&str] = &[
    "ca_cert_pem",
    "etcd_version",
    "extra_flags",
    "metrics_url",
    "cert_validity_hours",
];

/// For a plan on a running cluster or member: refuses an unsupported
/// version change, names a downgrade, and tells whether any rolled setting
/// changes.
pub fn plan_rolled_change(plan: &mut Plan<'_>) -> bool {
    if let (Some(from), Some(to)) = (
        plan.prior.get("etcd_version").as_str(),
        plan.planned.get("etcd_version").as_str(),
    ) {
        let at = AttributePath::root("etcd_version");
        match version_change(from, to) {
            Err(why) => plan
                .diags
                .error_at(at, "Unsupported version change", why),
            Ok(VersionChange::Downgrade) => plan.diags.warning_at(
                at,
                "etcd downgrade",
                format!(
                    "{from} -> {to} is a downgrade: apply checks it with etcd (downgrade validate), lowers the \
                     cluster version (downgrade enable), waits until every member's storage is at {to}'s \
                     version, then rolls the members to {to} one at a time, each healthy before the next."
                ),
            ),
            Ok(VersionChange::Upgrade | VersionChange::None) => {}
        }
    }
    ROLLED
        .iter()
        .any(|name| plan.prior.get(name) != plan.planned.get(name))
}

/// For every plan: a warning, once, when the planned version is past its
/// end of life, and one naming the members that run another version than
/// the state's (a rolling change that did not finish: the apply continues
/// it).
pub fn plan_version_warnings(plan: &mut Plan<'_>) {
    let others = members_on_other_versions(plan.prior);
    if !others.is_empty() {
        plan.diags.warning_at(
            AttributePath::root("etcd_version"),
            "Members run another etcd version",
            format!(
                "{} (the state says {}): a version change that did not finish. The next apply continues it \
                 member by member.",
                others.join(", "),
                plan.prior.get("etcd_version").as_str().unwrap_or_default()
            ),
        );
    }
    if let Some(warning) = plan
        .planned
        .get("etcd_version")
        .as_str()
        .and_then(end_of_life_warning)
    {
        plan.diags.warning_at(
            AttributePath::root("etcd_version"),
            "etcd version past its end of life",
            warning,
        );
    }
}

/// `NAME runs VERSION` for each member whose reported version (an
/// `etcd_cluster`'s `member_versions`, an `etcd_member`'s `version`) is not
/// the state's `etcd_version`.
fn members_on_other_versions(prior: &Value) -> Vec<String> {
    let Some(expected) = prior.get("etcd_version").as_str() else {
        return Vec::new();
    };
    let differs = |v: &&str| !v.is_empty() && *v != expected;
    match (prior.get("member_versions"), prior.get("version").as_str()) {
        (Value::Map(versions), _) => versions
            .iter()
            .filter_map(|(name, v)| {
                v.as_str()
                    .filter(differs)
                    .map(|v| format!("{name} runs {v}"))
            })
            .collect(),
        (_, Some(version)) if differs(&version) => vec![format!("the member runs {version}")],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_on_another_version_than_the_state_are_named() {
        let cluster = |versions: &[(&str, &str)]| {
            Value::object([
                ("etcd_version", Value::string("3.5.36")),
                (
                    "member_versions",
                    Value::object(versions.iter().map(|(k, v)| (*k, Value::string(*v)))),
                ),
            ])
        };
        assert_eq!(
            members_on_other_versions(&cluster(&[("e1", "3.6.17"), ("e2", "3.5.36")])),
            vec!["e1 runs 3.6.17"]
        );
        assert!(members_on_other_versions(&cluster(&[("e1", "3.5.36")])).is_empty());
        let member = Value::object([
            ("etcd_version", Value::string("3.5.36")),
            ("version", Value::string("3.6.17")),
        ]);
        assert_eq!(
            members_on_other_versions(&member),
            vec!["the member runs 3.6.17"]
        );
        assert!(members_on_other_versions(&Value::Null).is_empty());
    }
}
