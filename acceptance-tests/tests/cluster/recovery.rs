//! Quorum lost: for a while (a partition that heals, and nothing is
//! restored), then for good (two of three hosts replaced by empty
//! machines), recovered from the newest scheduled backup with
//! `terraform apply -replace`.

use std::time::{Duration, Instant};

use acceptance_tests::fixtures::{lab_vars, retry_etcdctl, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{example, hcl_string, Workspace};
use acceptance_tests::tools;

fn cluster_id(ws: &Workspace) -> String {
    ws.state_json()["values"]["root_module"]["resources"][1]["values"]["cluster_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Snapshots the job on `host` has written so far (its journal).
fn runs(lab: &Lab, host: &str) -> usize {
    lab.ssh_ok(host, "journalctl -q -u etcd-backup.service -o cat")
        .matches("/etcd-scheduled-")
        .count()
}

#[test]
fn lost_quorum_is_shown_never_restored_by_itself_and_recovered_from_a_backup() {
    let lab = Lab::up(LabId::Recovery, 3);
    let terraform = tools::newest_terraform();
    // The backups example, with a snapshot every 20 s, purging data on
    // destroy: the replace below must still keep the survivor's data.
    let config = example("backups").replace(
        "  name         = \"etcd-backed-up\"\n",
        "  name         = \"etcd-backed-up\"\n  purge_data_on_destroy = true\n",
    );
    assert!(config.contains("purge_data_on_destroy"));
    let ws = crate::cluster3_workspace(&lab, &terraform, &config);
    let hosts: Vec<&str> = ["h1", "h2", "h3"].iter().map(|h| lab.address(h)).collect();
    let mut vars = lab_vars(&lab, &hosts, &tools::etcd_release("3.6"));
    vars.push(("backup_schedule", hcl_string("*:*:0/20")));
    ws.set_vars(&vars);
    ws.apply();
    let first_id = cluster_id(&ws);
    lab.etcdctl("h1", KUBEADM_PKI, "put /precious before-the-backup");

    // Two more runs on h1: the second began after the write.
    let wanted = runs(&lab, "h1") + 2;
    let deadline = Instant::now() + Duration::from_secs(120);
    while runs(&lab, "h1") < wanted {
        assert!(
            Instant::now() < deadline,
            "no scheduled snapshot after the write"
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    // Every member cut off from the others: no quorum, for a while.
    lab.fault("partition", "h1", &["h2", "h3"]);
    lab.fault("partition", "h2", &["h3"]);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.text().contains("Quorum lost"), "{}", run.text());
    lab.fault("heal", "h1", &[]);
    lab.fault("heal", "h2", &[]);
    retry_etcdctl(&lab, "h3", "endpoint health --cluster");
    // A scheduled run that fell into the partition failed (no quorum read,
    // no snapshot), which is drift until the job's next run succeeds.
    let deadline = Instant::now() + Duration::from_secs(90);
    for host in ["h1", "h2", "h3"] {
        while lab
            .ssh_ok(host, "systemctl show -p Result --value etcd-backup.service")
            .trim()
            != "success"
        {
            assert!(
                Instant::now() < deadline,
                "{host}: no backup succeeded after the heal"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "after the partition healed:\n{}", run.text());
    assert_eq!(cluster_id(&ws), first_id, "the cluster was replaced");
    for host in ["h1", "h2", "h3"] {
        assert!(
            !lab.ssh_ok(host, "ls -d /var/lib/etcd*").contains("moved"),
            "{host}: data was moved aside after a partition"
        );
    }

    // Two hosts lost for good: empty machines at the same addresses.
    lab.fault("replace", "h2", &[]);
    lab.fault("replace", "h3", &[]);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    let words = run.words();
    assert!(
        words.contains("Quorum lost")
            && words.contains("Members whose data directory is empty: e2, e3")
            && words.contains("e2\" = \"etcd is not installed on the host; its data directory holds no etcd data\""),
        "the plan does not say that quorum is lost for good:\n{}",
        run.text()
    );

    // The steps the plan gives: the newest backup, then -replace.
    let newest = lab.ssh_ok(
        "h1",
        "ls -t /var/backups/etcd/etcd-scheduled-*.db | head -n 1",
    );
    let snapshot = ws.path().join("restore.db");
    lab.download("h1", newest.trim(), &snapshot);
    vars.push((
        "initial_snapshot_path",
        hcl_string(snapshot.display().to_string()),
    ));
    ws.set_vars(&vars);
    let replaced = ws.run_ok(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-replace=etcd_cluster.main",
    ]);
    assert!(
        replaced
            .words()
            .contains("no member answered a quorum read, so the cluster's data was moved aside"),
        "{}",
        replaced.text()
    );
    let health = lab.etcdctl("h2", KUBEADM_PKI, "endpoint health --cluster");
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    for host in ["h1", "h2", "h3"] {
        let value = lab.etcdctl(
            host,
            KUBEADM_PKI,
            "get /precious --print-value-only --consistency=s",
        );
        assert_eq!(value.trim(), "before-the-backup", "{host}");
    }
    assert_ne!(cluster_id(&ws), first_id, "not a new cluster");
    assert!(
        lab.ssh_ok("h1", "ls -d /var/lib/etcd*")
            .contains("/var/lib/etcd.moved-"),
        "the survivor's old data was not kept aside"
    );
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "after the recovery:\n{}", run.text());
    assert!(run.text().contains("No changes"), "{}", run.text());

    // Destroy gets through a host that is gone, and says so.
    lab.fault("stop", "h3", &[]);
    let destroyed = ws.run_ok(&["destroy", "-auto-approve", "-input=false"]);
    let words = destroyed.words();
    assert!(
        words.contains("Member host not reachable at destroy")
            && words.contains("member e3 was not reachable"),
        "{}",
        destroyed.text()
    );
}
