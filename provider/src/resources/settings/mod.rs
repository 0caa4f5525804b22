//! What `etcd_cluster` and `etcd_member` share: the schema of a member's
//! settings ([`schema`]), the cluster's `backup` block ([`backup`]),
//! their plan-time validation ([`validate`]),
//! reading them into the domain's types ([`read`]), the rule for settings
//! rolled through running members ([`rolled`]), and the diagnostics and
//! values both write from what they observed.

mod backup;
mod backup_s3;
mod directories;
mod host_inputs;
mod read;
mod rolled;
mod schema;
mod validate;

use std::collections::BTreeMap;

pub use backup::{backup_block, validate_backup};
pub use backup_s3::s3_secret;
pub use directories::directory_problem;
pub use host_inputs::{ssh_host_problem, validate_cluster_name, validate_ssh};
pub use read::{member_spec, settings, timeout};
pub use rolled::{plan_rolled_change, plan_version_warnings};
pub use schema::{
    binary_source_block, member_attributes, settings_attributes, ssh_block, timeouts_block,
};
pub use validate::{
    is_valid_host, validate_binary_source, validate_ca_pair, validate_endpoints, validate_member,
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

/// A warning for each thing a change did, or could not do, that the user
/// should know (data moved aside, a snapshot not copied).
pub fn warn_all(diags: &mut Diagnostics, warnings: &[crate::cluster::ChangeWarning]) {
    for warning in warnings {
        diags.warning(warning.summary(), warning.to_string());
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

/// When no member serves, a warning that says so and how to recover if a
/// majority is lost for good; nothing restores by itself.
pub fn warn_if_quorum_lost(diags: &mut Diagnostics, observed: &Observed, backup_dir: &str) {
    if !observed.quorum_lost() {
        return;
    }
    let without_data = observed.members_without_data();
    let lost = if without_data.is_empty() {
        String::new()
    } else {
        format!(
            " Members whose data directory is empty: {}.",
            without_data.join(", ")
        )
    };
    diags.warning(
        "Quorum lost",
        format!(
            "No member of the cluster answers a quorum read.{lost}\n\n\
             If members are only down for a while (rebooting, a network partition), bring them back: apply \
             restarts members that do not serve, and the cluster recovers with its data. Nothing is restored \
             by itself.\n\n\
             If a majority of the members is lost for good, recover from a backup:\n\
             1. Copy the newest snapshot from a surviving member to this machine, e.g.\n   \
             scp HOST:{backup_dir}/NEWEST.db ./restore.db   (list them with: ssh HOST ls -t {backup_dir})\n\
             2. Set initial_snapshot_path = \"restore.db\" on this etcd_cluster.\n\
             3. terraform apply -replace=ADDRESS (this etcd_cluster's address): every member's data is \
             restored from the snapshot (data on the hosts is moved aside, never deleted) and the members \
             form a new cluster with a new cluster ID. Writes made after the snapshot are lost."
        ),
    );
}

/// A map of strings as a value.
pub fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::string(v)))
            .collect(),
    )
}
