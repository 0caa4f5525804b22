//! What `etcd_cluster` and `etcd_member` share: the schema of a member's
//! settings ([`schema`]), their plan-time validation ([`validate`]),
//! reading them into the domain's types ([`read`]), the rule for settings
//! rolled through running members ([`rolled`]), and the diagnostics and
//! values both write from what they observed.

mod host_inputs;
mod read;
mod rolled;
mod schema;
mod validate;

use std::collections::BTreeMap;

pub use host_inputs::validate_cluster_name;
pub use read::{member_spec, settings, timeout};
pub use rolled::plan_rolled_change;
pub use schema::{
    binary_source_block, member_attributes, settings_attributes, ssh_block, timeouts_block,
};
pub use validate::{
    validate_binary_source, validate_ca_pair, validate_endpoints, validate_member,
    validate_settings,
};

use crate::cluster::Observed;
use crate::framework::{Diagnostics, Value};

/// A warning for each host or endpoint that could not be reached.
pub fn warn_unreachable(diags: &mut Diagnostics, observed: &Observed) {
    for warning in &observed.warnings {
        diags.warning("Cluster member not reachable", warning.clone());
    }
}

/// A warning for each thing an operation did that the user should know
/// (data moved aside).
pub fn warn_all(diags: &mut Diagnostics, warnings: &[String]) {
    for warning in warnings {
        diags.warning("Data moved aside", warning.clone());
    }
}

/// After create: members that are not healthy yet are a warning, never an
/// error. An error would taint the resource, and Terraform replaces a
/// tainted resource; as `status` drift, the next apply repairs them.
pub fn warn_if_unhealthy(diags: &mut Diagnostics, summary: &str, observed: &Observed) {
    if !observed.all_healthy() {
        diags.warning(
            summary,
            format!(
                "{:?}\n\nThe next plan shows this as drift and apply repairs it.",
                observed.status_text()
            ),
        );
    }
}

/// A map of strings as a value.
pub fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::string(v)))
            .collect(),
    )
}
