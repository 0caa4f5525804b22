//! `etcd_cluster` with real Terraform, sshd, systemd and etcd, one file per
//! capability. Most tests apply `scaling.tf` or an example to a lab of test
//! hosts, with a client writing throughout where members change.

mod adoption;
mod backups;
mod bootstrap;
mod ca_rotation;
mod hangs;
mod moves;
mod object_storage;
mod plan_checks;
mod reach;
mod recovery;
mod rolling;
mod scaling;
mod space;
mod takeover;
mod upgrades;
mod versions;
mod voters;

use std::path::Path;

use acceptance_tests::fixtures::{lab_vars, wait_for};
use acceptance_tests::lab::Lab;
use acceptance_tests::terraform::{hcl_string, Install, Workspace};
use acceptance_tests::tools;

/// A CA and a cluster of one member per entry of `hosts` (e1, e2, ...) in
/// kubeadm's PKI layout, with version and flags as variables.
const SCALING: &str = include_str!("scaling.tf");

/// A workspace with `config` (cluster-3's shape, on the current etcd
/// release, 3.6) for the lab's first three hosts.
fn cluster3_workspace(lab: &Lab, terraform: &Path, config: &str) -> Workspace {
    let ws = Workspace::new(terraform, Install::FilesystemMirror, config);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    ws.set_vars(&lab_vars(lab, &hosts, &tools::etcd_release("3.6")));
    ws
}

/// [`lab_vars`] and the `etcd_version` that `scaling.tf` takes, for the
/// newest release of `minor` (`3.5`, ...).
fn scaling_vars(lab: &Lab, hosts: &[&str], minor: &str) -> Vec<(&'static str, String)> {
    let release = tools::etcd_release(minor);
    let mut vars = lab_vars(lab, hosts, &release);
    vars.push(("etcd_version", hcl_string(&release)));
    vars
}

/// Starts `terraform apply` in the background and returns once `host`'s
/// member is installed and enabled (its start is under way).
fn apply_until_installed(ws: &Workspace, lab: &Lab, host: &str) -> std::process::Child {
    let apply = ws.spawn_apply();
    wait_for(&format!("{host} was never installed"), || {
        lab.ssh(host, "systemctl is-enabled etcd").status.success()
    });
    apply
}

/// Every one of the three members reports `version` in the state.
fn assert_member_versions(ws: &Workspace, version: &str) {
    let cluster = &ws.state_json()["values"]["root_module"]["resources"][1]["values"];
    let expected = serde_json::json!({"e1": version, "e2": version, "e3": version});
    assert_eq!(cluster["member_versions"], expected);
}

/// A moment (seconds since the epoch, to the microsecond) after every
/// host's etcd has started, to count restarts from with [`starts_since`].
/// An apply returns once the members serve; a member's unit may be marked
/// started a few milliseconds later, and must not count as a restart.
pub(crate) fn settled_since(lab: &Lab) -> String {
    for (name, _) in &lab.hosts {
        wait_for(&format!("etcd on {name} never became active"), || {
            lab.ssh(name, "systemctl is-active etcd").stdout == b"active\n"
        });
    }
    lab.ssh_ok("h1", "date +%s.%6N").trim().to_string()
}

/// Starts of etcd on `host` since `since` (from [`settled_since`]).
pub(crate) fn starts_since(lab: &Lab, host: &str, since: &str) -> usize {
    lab.ssh_ok(
        host,
        &format!("journalctl -q -u etcd --since @{since} -o cat"),
    )
    .lines()
    .filter(|l| l.starts_with("Started "))
    .count()
}
