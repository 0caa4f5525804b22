//! Phase: tear a cluster down (destroy).
//!
//! Changes: etcd is stopped on every member and the provider's files are
//! removed (unit, config, certificates, binaries it installed). Data
//! directories stay unless `purge_data` is set.
//!
//! Nothing to do: a host that no longer has the files is left as it is.
//!
//! Steps: every member in parallel. Safe: the whole cluster goes, so no
//! quorum is kept on purpose; the data, unless purging, is kept.
//!
//! Interrupted or failed: Terraform keeps the resource in state; the next
//! destroy runs the teardown again, and what is already removed is skipped.

use super::member_steps::{close_all, connect_all};
use super::ClusterSpec;
use crate::member::install;

/// Stops and removes every member's installation.
pub async fn teardown(spec: &ClusterSpec, purge_data: bool) -> Result<(), String> {
    let hosts = connect_all(&spec.members).await;
    let removals = spec
        .members
        .iter()
        .zip(&hosts)
        .map(|(member, host)| async move {
            let host = host.as_ref().map_err(Clone::clone)?;
            install::uninstall(host, &spec.settings, purge_data)
                .await
                .map_err(|e| format!("member {}: {e}", member.name))
        });
    let results = futures::future::join_all(removals).await;
    close_all(hosts).await;
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}
