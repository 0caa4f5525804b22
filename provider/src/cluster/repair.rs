//! Phase: repair drift, one member at a time.
//!
//! Changes: a member whose backup job alone is broken gets it rewritten and
//! its timer restarted (etcd is not touched); a serving member whose
//! certificates alone are due gets new ones without a restart (etcd reads
//! its certificate files for every new connection; a TLS handshake must
//! show the new one, or it is restarted after all); a member that is
//! stopped, has a changed or missing file, or is a learner is rewritten and
//! restarted; a member removed out of band is re-added (its old data moved
//! aside, never deleted); live members the configuration does not list
//! are removed.
//!
//! Nothing to do: every member is healthy and none is unmanaged.
//!
//! Refused: a member served by an etcd the provider did not start (a
//! hand-made unit after an import); installing ours would start a second
//! etcd on its ports and data.
//!
//! Steps (the order is `plan::repair`'s, and tested there; every step
//! runs through the runner and its guards, `runner.rs`):
//! 1. Bring back every listed member that does not serve (on its host's
//!    evidence), all together, then wait until the cluster is healthy.
//!    Safe: a member that does not serve can only restore a voter;
//!    together, because while a majority is down no one member can become
//!    healthy alone.
//! 2. Remove unmanaged members, one at a time and only while every
//!    configured member serves.
//! 3. Then for each member in turn, judged on an observation taken after
//!    the last step: reinstall a broken backup job, renew certificates in
//!    place, or (only while every other voter serves, after the snapshot
//!    `before-repair`) restart a drifted member or re-add a removed one
//!    (or one whose data is gone: removed from the list first, never
//!    started under its old ID without its log, and added back as a
//!    learner); wait until the cluster is healthy before the next.
//!
//! Interrupted: nothing in state depends on the repair; the next plan
//! observes the drift that is left and the next apply repairs it.
//!
//! Its looks at the hosts go over one SSH connection per host, kept open
//! for the whole repair (`hosts`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::hosts::Hosts;
use super::plan::repair::plan_repair;
use super::runner::{Record, Runner};
use super::{ChangeWarning, ClusterSpec};
use crate::framework::Context;
use crate::member::install::Fingerprints;

/// Brings drifted members back (see the module's steps).
pub async fn repair(
    ctx: &Context,
    spec: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let hosts = Hosts::default();
    let record = Record {
        fingerprints,
        warnings,
    };
    let repaired = async {
        let mut runner = Runner::new(
            ctx,
            spec,
            &hosts,
            timeout,
            record,
            ("repair", "before-repair"),
        )
        .await?;
        let names: Vec<&str> = spec.members.iter().map(|m| m.name.as_str()).collect();
        loop {
            let done = runner.done.clone();
            let steps = plan_repair(&names, runner.observed().await, &done);
            let Some(step) = steps.first() else {
                return Ok(());
            };
            runner.run(step).await?;
        }
    }
    .await;
    hosts.close().await;
    repaired
}
