//! The settings a running member takes on by being rewritten and restarted
//! (a rolling change in `etcd_cluster`, a rewrite in `etcd_member`), and
//! the plan-time refusal of version changes etcd does not support.

use crate::framework::{AttributePath, Plan};

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
/// version change, and tells whether any rolled setting changes.
pub fn plan_rolled_change(plan: &mut Plan<'_>) -> bool {
    if let (Some(from), Some(to)) = (
        plan.prior.get("etcd_version").as_str(),
        plan.planned.get("etcd_version").as_str(),
    ) {
        if let Some(why) = crate::cluster::upgrade_refusal(from, to) {
            plan.diags.error_at(
                AttributePath::root("etcd_version"),
                "Unsupported version change",
                why,
            );
        }
    }
    ROLLED
        .iter()
        .any(|name| plan.prior.get(name) != plan.planned.get(name))
}
