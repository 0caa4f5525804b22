//! Phase: tear a cluster down (destroy).
//!
//! Changes: etcd is stopped on every member and the provider's files are
//! removed (unit, config, certificates, binaries it installed). Data
//! directories stay unless `purge_data` is set.
//!
//! Nothing to do: a host that no longer has the files is left as it is. A
//! host that does not answer over SSH (gone for good, e.g. before a
//! recovery with `-replace`) is skipped with a warning that says what may
//! be left on it: destroy gets through with lost hosts.
//!
//! Steps: every member in parallel. Safe: the whole cluster goes, so no
//! quorum is kept on purpose; the data, unless purging, is kept.
//!
//! Interrupted or failed: Terraform keeps the resource in state; the next
//! destroy runs the teardown again, and what is already removed is skipped.

use super::hosts::{close_all, connect_all};
use super::ClusterSpec;
use crate::member::install;

/// Stops and removes every member's installation; returns a warning for
/// each host that could not be reached.
pub async fn teardown(spec: &ClusterSpec, purge_data: bool) -> Result<Vec<String>, String> {
    let hosts = connect_all(&spec.members).await;
    let removals = spec
        .members
        .iter()
        .zip(&hosts)
        .map(|(member, host)| async move {
            let Ok(host) = host else {
                return Ok(()); // warned about below
            };
            install::uninstall(host, &spec.settings, purge_data)
                .await
                .map_err(|e| format!("member {}: {e}", member.name))
        });
    let results = futures::future::join_all(removals).await;
    let mut warnings = Vec::new();
    for (host, member) in hosts.iter().zip(&spec.members) {
        if let Err(e) = host {
            let left = if purge_data {
                "its etcd installation and data directory"
            } else {
                "its etcd installation"
            };
            warnings.push(format!(
                "member {} was not reachable ({e}); {left} may be left on that host",
                member.name
            ));
        }
    }
    close_all(hosts).await;
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors.join("\n"))
    }
}
