//! OpenTofu as a user runs it (`docs/guides/opentofu.md` quotes these
//! steps): `tofu init` installs the release archive from a filesystem
//! mirror in the packed layout and the lock file holds its hash; the
//! example with the CA key outside state builds three members (the key
//! reaches the provider as a write-only value, OpenTofu 1.11+, and no state
//! file holds it); the next plan is empty; a member stopped by hand is
//! drift (exit 2) that apply repairs; destroy.

use acceptance_tests::fixtures::{lab_vars, new_p256_key};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::release::{package_hash, release_archive};
use acceptance_tests::terraform::{example, hcl_string, Install, Workspace};
use acceptance_tests::tools;

#[test]
fn opentofu_installs_the_release_and_runs_a_cluster_through_drift_and_repair() {
    let lab = Lab::up(LabId::OpenTofu, 3);
    let (_release, archive) = release_archive();
    let tofu = tools::tofu();
    let ws = Workspace::new(
        &tofu,
        Install::PackedMirror(archive.clone()),
        &example("ca-key-outside-state"),
    );
    let lock = std::fs::read_to_string(ws.path().join(".terraform.lock.hcl")).unwrap();
    let hash = package_hash(&archive);
    assert!(
        lock.contains(&format!("\"{hash}\"")),
        "{hash} not in:\n{lock}"
    );
    assert!(ws.version().contains("OpenTofu"), "{}", ws.version());

    let files = tempfile::tempdir().unwrap();
    let key_path = files.path().join("ca.key");
    let key = new_p256_key(&key_path);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let mut vars = lab_vars(&lab, &hosts, &tools::etcd_release("3.6"));
    vars.push(("ca_key_path", hcl_string(key_path.display().to_string())));
    vars.push((
        "snapshot_path",
        hcl_string(files.path().join("etcd.db").display().to_string()),
    ));
    ws.set_vars(&vars);
    ws.apply();
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap();
    let key_body = key.lines().nth(1).expect("a PEM body line");
    assert!(
        state.contains("etcd_cluster") && !state.contains(key_body),
        "the CA key is in the state"
    );
    assert_eq!(ws.plan_exit_code().0, 0);

    lab.ssh_ok("h2", "systemctl stop etcd");
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.text().contains("etcd unit is"), "{}", run.text());
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    assert_eq!(
        lab.ssh_ok("h2", "systemctl is-active etcd").trim(),
        "active"
    );
    ws.destroy();
}
