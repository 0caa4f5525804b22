//! Scheduled backups on the members: exactly `keep` verified snapshots per
//! member and as many copies on a separate backup host, nothing else in
//! those directories touched, a member's key good for nothing but adding
//! snapshots there, stale snapshots and a stopped timer shown as drift and
//! repaired, the snapshot a rolling change takes first, and a backup host
//! outage that neither fills a member's disk nor blocks a change.

use std::time::{Duration, Instant};

use acceptance_tests::fixtures::{expect_drift, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{hcl_string, Install, Workspace};
use acceptance_tests::tools;

use crate::{scaling_vars, SCALING};

const DIR: &str = "/var/backups/etcd";
/// On the backup host h4, owned by its user `deploy`.
const COPIES: &str = "/home/deploy/etcd-backups";

/// Snapshot files of `label` in the backup directory of `host`.
fn snapshots(lab: &Lab, host: &str, label: &str) -> Vec<String> {
    let listing = lab.ssh_ok(host, &format!("ls {DIR}"));
    listing
        .lines()
        .filter(|f| f.starts_with(&format!("etcd-{label}-")) && f.ends_with(".db"))
        .map(str::to_string)
        .collect()
}

/// The provider's snapshot files among `files`, sorted.
fn ours_sorted(files: &[String]) -> Vec<&str> {
    let mut ours: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| f.contains("-rev"))
        .collect();
    ours.sort();
    ours
}

/// How many snapshots the job on `host` has written so far (its journal).
fn runs(lab: &Lab, host: &str) -> usize {
    lab.ssh_ok(host, "journalctl -q -u etcd-backup.service -o cat")
        .matches("/etcd-scheduled-")
        .count()
}

#[test]
fn scheduled_backups_keep_verified_snapshots_and_a_broken_job_is_drift() {
    let lab = Lab::up(LabId::Backups, 4);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let hosts: Vec<&str> = ["h1", "h2", "h3"].iter().map(|h| lab.address(h)).collect();
    let vars = |flags: &str| {
        let mut vars = scaling_vars(&lab, &hosts, "3.5");
        vars.push(("backup_schedule", hcl_string("*:*:0/20")));
        vars.push(("backup_keep", "3".into()));
        vars.push(("backup_copy_host", hcl_string(lab.address("h4"))));
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
    lab.ssh_ok(
        "h4",
        &format!(
            "echo notes > {COPIES}/notes.txt; install -d -o deploy -g deploy -m 0700 {COPIES}/e1; \
             echo other > {COPIES}/e1/etcd-scheduled-by-hand.db"
        ),
    );

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
            let status = lab.ssh_ok(
                host,
                &format!("etcdutl snapshot status {DIR}/{file} -w json"),
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
        // The same three on the backup host, each checked there.
        let member = format!("e{}", &host[1..]);
        let copies = lab.ssh_ok("h4", &format!("ls {COPIES}/{member}"));
        let copied: Vec<&str> = copies.lines().filter(|f| f.contains("-rev")).collect();
        assert_eq!(
            copied,
            ours_sorted(&kept),
            "copies of {member} on the backup host"
        );
        let owner = lab.ssh_ok(
            "h4",
            &format!("stat -c '%a %U' {COPIES}/{member}/{}", copied[0]),
        );
        assert_eq!(owner.trim(), "600 deploy");
    }
    let untouched = lab.ssh_ok(
        "h4",
        &format!("cat {COPIES}/notes.txt {COPIES}/e1/etcd-scheduled-by-hand.db"),
    );
    assert_eq!(
        untouched, "notes\nother\n",
        "the backup host's other files were touched"
    );

    // A member's key only adds snapshots: no shell, no other name.
    let as_member = |command: &str| {
        lab.ssh(
            "h1",
            &format!(
                "runuser -u etcd -- ssh -F /dev/null -i /etc/etcd/backup-ssh/id_ed25519 \
                 -o UserKnownHostsFile=/etc/etcd/backup-ssh/known_hosts -o BatchMode=yes deploy@{} {command} < /dev/null",
                lab.address("h4")
            ),
        )
    };
    let shell = as_member("'cat /etc/passwd'");
    assert!(!shell.status.success(), "the backup key ran a command");
    assert!(String::from_utf8_lossy(&shell.stderr).contains("only 'put NAME' is allowed"));
    let escape = as_member("'put ../../../home/deploy/.ssh/authorized_keys'");
    assert!(
        !escape.status.success(),
        "the backup key wrote outside its directory"
    );
    assert!(lab
        .ssh_ok("h4", "cat /home/deploy/.ssh/authorized_keys")
        .contains("ssh-ed25519"));
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "{}", run.text());

    // No new snapshot can land on h3 and its newest is ten minutes old:
    // stale against the schedule (the timer has run for over a minute),
    // judged with the host's own clocks; the apply repairs the directory.
    lab.ssh_ok(
        "h3",
        &format!("chmod 0500 {DIR} && touch -d '-10 min' {DIR}/etcd-scheduled-*Z-rev*.db"),
    );
    expect_drift(
        &ws,
        "stale backups",
        "e3",
        "more than twice the schedule (*:*:0/20)",
    );

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

    // The backup host is gone for several schedules: every member keeps
    // pruning (its disk never fills), each failed copy fails the job
    // (drift), and a rolling change still runs, taking its snapshot first
    // and warning that the copy failed.
    lab.fault("partition", "h4", &[]);
    let done: Vec<usize> = ["h1", "h2", "h3"].iter().map(|h| runs(&lab, h)).collect();
    // Two runs each: without pruning first, 3 kept + 2 would be 5 > keep + 1.
    // (A run can outlast the schedule on a loaded machine: the timer then
    // skips a turn.)
    let deadline = Instant::now() + Duration::from_secs(300);
    while ["h1", "h2", "h3"]
        .iter()
        .zip(&done)
        .any(|(h, n)| runs(&lab, h) < n + 2)
    {
        assert!(
            Instant::now() < deadline,
            "fewer than 2 runs in 5 minutes without the backup host"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    for host in ["h1", "h2", "h3"] {
        let kept = snapshots(&lab, host, "scheduled");
        assert!(
            ours_sorted(&kept).len() <= 4,
            "{host} keeps {kept:?} with keep = 3"
        );
        let log = lab.ssh_ok(host, "journalctl -q -u etcd-backup.service -o cat");
        assert!(
            log.contains("its copy to the backup host failed"),
            "{host}: {log}"
        );
    }
    // A run takes its 10 s SSH timeout of every 20 s: a plan during a run
    // sees it running, so the plan is asked again until it sees a failed one.
    let mut seen = String::new();
    let failed_run_seen = (0..8).any(|_| {
        let (code, run) = ws.plan_exit_code();
        seen = run.text();
        let failed = code == 2 && run.stdout.contains("the last backup failed");
        if !failed {
            std::thread::sleep(Duration::from_secs(4));
        }
        failed
    });
    assert!(failed_run_seen, "no plan showed the failed copies:\n{seen}");
    ws.set_vars(&vars(r#"{ "snapshot-count" = "5000" }"#));
    let run = ws.apply();
    assert!(
        run.text()
            .contains("Snapshot not copied to the backup host"),
        "{}",
        run.text()
    );
    for host in ["h1", "h2", "h3"] {
        let config = lab.ssh_ok(host, "cat /etc/etcd/etcd.conf.yml");
        assert!(
            config.contains("snapshot-count: 5000"),
            "{host}: not rolled"
        );
    }
    let before_roll: Vec<String> = ["h1", "h2", "h3"]
        .iter()
        .flat_map(|h| snapshots(&lab, h, "before-roll"))
        .collect();
    assert_eq!(before_roll.len(), 1, "{before_roll:?}");
    // The backup host is back: one run of each job copies again.
    lab.fault("heal", "h4", &[]);
    for host in ["h1", "h2", "h3"] {
        lab.ssh_ok(host, "systemctl start etcd-backup.service");
    }
    ws.apply();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "{}", run.text());
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
