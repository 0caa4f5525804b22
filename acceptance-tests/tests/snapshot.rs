//! `etcd_snapshot` and `etcd_cluster.initial_snapshot_path` with real
//! Terraform, sshd, systemd and etcd: a snapshot is taken, checked by
//! `etcdutl snapshot status`, retaken when its file goes missing or its
//! trigger changes, and a cluster that lost all its data is rebuilt from it
//! (and `etcdctl` works on a member from the env file the provider wrote).

use std::os::unix::fs::PermissionsExt;

use acceptance_tests::fixtures::lab_access_vars;
use acceptance_tests::fixtures::KUBEADM_PKI;
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{example, hcl_list, hcl_string, Install, Workspace};
use acceptance_tests::tools;

/// The number of keys under `prefix`, read on h1.
fn count_keys(lab: &Lab, prefix: &str) -> usize {
    lab.etcdctl(
        "h1",
        KUBEADM_PKI,
        &format!("get {prefix} --prefix --keys-only"),
    )
    .lines()
    .filter(|l| !l.is_empty())
    .count()
}

#[test]
fn a_snapshot_is_taken_retaken_when_lost_and_restores_a_cluster_that_lost_its_data() {
    let lab = Lab::up(LabId::Snapshot, 3);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, &example("snapshot"));
    let files = tempfile::tempdir().unwrap();
    let snapshot = files.path().join("etcd.db");
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let set_vars = |day: &str, restore_from: Option<&std::path::Path>| {
        let mut vars = vec![
            ("hosts", hcl_list(&hosts)),
            ("snapshot_path", hcl_string(snapshot.display().to_string())),
            ("snapshot_day", hcl_string(day)),
            (
                "restore_from",
                restore_from.map_or("null".to_string(), |p| hcl_string(p.display().to_string())),
            ),
        ];
        vars.extend(lab_access_vars(&lab, &tools::etcd_release("3.6")));
        ws.set_vars(&vars);
    };
    set_vars("1", None);
    ws.apply_targets(&["etcd_cluster.main"]);
    lab.ssh_ok(
        "h1",
        &format!(
            "for i in $(seq 1 100); do etcdctl --cacert {KUBEADM_PKI}/ca.crt --cert {KUBEADM_PKI}/server.crt \
             --key {KUBEADM_PKI}/server.key --endpoints https://127.0.0.1:2379 put k$i v$i >/dev/null; done"
        ),
    );
    let started = std::time::Instant::now();
    ws.apply();
    eprintln!(
        "snapshot of 100 keys: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mode = std::fs::metadata(&snapshot).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the snapshot file is readable by others"
    );
    let revision: u64 = ws.output("snapshot_revision").parse().unwrap();

    // etcd's own tool reads the snapshot: every key, at least that revision.
    lab.upload(&snapshot, "h1", "/root/etcd.db");
    let status = lab.ssh_ok("h1", "etcdutl snapshot status /root/etcd.db -w json");
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert!(status["totalKey"].as_u64().unwrap() >= 100, "{status}");
    assert!(status["revision"].as_u64().unwrap() >= revision, "{status}");
    assert_eq!(ws.plan_exit_code().0, 0);

    // The file lost: the snapshot is gone, and the plan takes it again.
    std::fs::remove_file(&snapshot).unwrap();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    ws.apply();
    assert!(snapshot.is_file());
    // A new trigger value takes a new one.
    set_vars("2", None);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.stdout.contains("must be replaced"), "{}", run.stdout);
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);

    // A write after the snapshot, then every member loses its data.
    lab.etcdctl("h1", KUBEADM_PKI, "put after-snapshot yes");
    ws.destroy();
    assert!(snapshot.is_file(), "destroy removed the snapshot file");
    for (name, _) in &lab.hosts {
        lab.ssh_ok(name, "rm -rf /var/lib/etcd");
    }
    let backup = files.path().join("backup.db");
    std::fs::copy(&snapshot, &backup).unwrap();
    set_vars("3", Some(&backup));
    let started = std::time::Instant::now();
    ws.apply();
    eprintln!(
        "cluster of 3 restored from the snapshot, and a new snapshot: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(count_keys(&lab, "k"), 100, "keys from the snapshot missing");
    assert_eq!(
        count_keys(&lab, "after-snapshot"),
        0,
        "a key written after the snapshot is there"
    );
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert_eq!(list.matches(", started, ").count(), 3, "{list}");
    // An operator on a member host: etcdctl set up by the provider's env file.
    let health = lab.ssh_ok(
        "h2",
        "set -a; . /etc/etcd/etcdctl.env; set +a; etcdctl endpoint health --cluster 2>&1",
    );
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    assert_eq!(ws.plan_exit_code().0, 0);
    let left: Vec<String> = std::fs::read_dir(files.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".partial"))
        .collect();
    assert!(left.is_empty(), "temporary snapshot files left: {left:?}");
    ws.destroy();
}
