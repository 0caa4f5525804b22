//! Scheduled backups on the members: exactly `keep` verified snapshots per
//! member and nothing else in the directory touched, a stopped timer shown
//! as drift and repaired, and the snapshot a rolling change takes first.

use std::time::{Duration, Instant};

use acceptance_tests::fixtures::{expect_drift, lab_vars, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{hcl_string, Install, Workspace};
use acceptance_tests::tools;

use crate::SCALING;

const DIR: &str = "/var/backups/etcd";

/// Snapshot files of `label` in the backup directory of `host`.
fn snapshots(lab: &Lab, host: &str, label: &str) -> Vec<String> {
    let listing = lab.ssh_ok(host, &format!("ls {DIR}"));
    listing
        .lines()
        .filter(|f| f.starts_with(&format!("etcd-{label}-")) && f.ends_with(".db"))
        .map(str::to_string)
        .collect()
}

/// How many snapshots the job on `host` has written so far (its journal).
fn runs(lab: &Lab, host: &str) -> usize {
    lab.ssh_ok(host, "journalctl -q -u etcd-backup.service -o cat")
        .matches("/etcd-scheduled-")
        .count()
}

#[test]
fn scheduled_backups_keep_verified_snapshots_and_a_broken_job_is_drift() {
    let lab = Lab::up(LabId::Backups, 3);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let hosts: Vec<&str> = ["h1", "h2", "h3"].iter().map(|h| lab.address(h)).collect();
    let vars = |flags: &str| {
        let mut vars = lab_vars(&lab, &hosts, "3.4.23");
        vars.push(("backup_schedule", hcl_string("*:*:0/20")));
        vars.push(("backup_keep", "3".into()));
        vars.push(("flags", flags.to_string()));
        vars
    };
    ws.set_vars(&vars("{}"));
    ws.apply();
    lab.etcdctl("h1", KUBEADM_PKI, "put /precious from-before-the-backups");
    // Someone else's files in the backup directory, one named much like ours.
    for host in ["h1", "h2", "h3"] {
        lab.ssh_ok(
            host,
            &format!("echo notes > {DIR}/notes.txt; echo other > {DIR}/etcd-scheduled-by-hand.db"),
        );
    }

    // Every 20 s: wait for the fifth snapshot on every member (two pruned).
    let deadline = Instant::now() + Duration::from_secs(240);
    while ["h1", "h2", "h3"].iter().any(|h| runs(&lab, h) < 5) {
        assert!(
            Instant::now() < deadline,
            "fewer than 5 scheduled snapshots in 4 minutes"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    for host in ["h1", "h2", "h3"] {
        let kept = snapshots(&lab, host, "scheduled");
        let ours: Vec<&String> = kept.iter().filter(|f| f.contains("-rev")).collect();
        assert_eq!(ours.len(), 3, "{host} keeps {kept:?}");
        for file in ours {
            let status = lab.etcdctl(
                host,
                KUBEADM_PKI,
                &format!("snapshot status {DIR}/{file} -w json"),
            );
            assert!(status.contains("\"revision\""), "{host} {file}: {status}");
            let mode = lab.ssh_ok(host, &format!("stat -c '%a %U' {DIR}/{file}"));
            assert_eq!(mode.trim(), "600 etcd", "{host} {file}");
        }
        let untouched = lab.ssh_ok(
            host,
            &format!("cat {DIR}/notes.txt {DIR}/etcd-scheduled-by-hand.db"),
        );
        assert_eq!(
            untouched, "notes\nother\n",
            "{host}: other files were touched"
        );
    }
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "{}", run.text());

    lab.ssh_ok("h2", "systemctl stop etcd-backup.timer");
    expect_drift(
        &ws,
        "stopped backup timer",
        "e2",
        "backup timer is inactive",
    );
    assert_eq!(
        lab.ssh_ok("h2", "systemctl is-active etcd-backup.timer")
            .trim(),
        "active"
    );

    // A rolling change takes its snapshot first.
    ws.set_vars(&vars(r#"{ "snapshot-count" = "5000" }"#));
    ws.apply();
    let before_roll: Vec<String> = ["h1", "h2", "h3"]
        .iter()
        .flat_map(|h| snapshots(&lab, h, "before-roll"))
        .collect();
    assert_eq!(before_roll.len(), 1, "{before_roll:?}");
    ws.destroy();
    assert!(
        lab.ssh("h1", "test -e /etc/systemd/system/etcd-backup.timer")
            .status
            .code()
            == Some(1),
        "destroy left the backup timer"
    );
    assert!(
        snapshots(&lab, "h1", "scheduled").len() >= 3,
        "destroy removed snapshots"
    );
}
