//! The settings a running member takes on by being rewritten and restarted
//! (a rolling change in `etcd_cluster`, a rewrite in `etcd_member`), and
//! what a plan says about the etcd version: a change etcd does not support
//! is refused on `etcd_version`, a downgrade is named, and a version past
//! its end of life is warned about.

use crate::framework::{AttributePath, Plan};
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
/// end of life.
pub fn plan_version_warnings(plan: &mut Plan<'_>) {
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
