//! A cluster whose database reaches its quota (`quota-backend-bytes`):
//! etcd raises NOSPACE and refuses every write while every member still
//! answers health checks. The plan must show it (exit 2, the alarm in
//! `status`), and an apply that also raises the quota must clear it as
//! etcd's maintenance guide does (a snapshot first, compaction,
//! defragmentation member by member, the alarm disarmed) and roll the new
//! quota out, keeping every key's current value.

use acceptance_tests::fixtures::KUBEADM_PKI;
use acceptance_tests::lab::{etcdctl_command, Lab};
use acceptance_tests::labs::LabId;
use acceptance_tests::tools;

use crate::scaling_vars;

use super::{cluster3_workspace, SCALING};

/// Overwrites one key with 20 kB values until etcd refuses a write (at
/// most 200 times); returns etcdctl's last words.
fn fill_until_refused(lab: &Lab) -> String {
    lab.ssh_ok(
        "h1",
        &format!(
            "v=$(head -c 20000 /dev/zero | tr '\\0' x); for i in $(seq 200); do \
             {} >/root/put.out 2>&1 || break; done; tail -1 /root/put.out",
            etcdctl_command(KUBEADM_PKI, "put /filled \"$v\"")
        ),
    )
}

#[test]
fn a_full_database_is_drift_and_apply_compacts_defragments_and_disarms() {
    let lab = Lab::up(LabId::SpaceAlarm, 3);
    let terraform = tools::newest_terraform();
    let ws = cluster3_workspace(&lab, &terraform, SCALING);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let mut vars = scaling_vars(&lab, &hosts, "3.6");
    // Names that YAML would read as numbers (010 is 8, 1.10 is 1.1).
    vars.push(("names", r#"["010", "1.10", "e3"]"#.into()));
    vars.push(("flags", r#"{ "quota-backend-bytes" = "1048576" }"#.into()));
    ws.set_vars(&vars);
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    let members = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    for name in ["010", "1.10", "e3"] {
        assert!(
            members.contains(&format!(", {name}, https://")),
            "{members}"
        );
    }

    let refused = fill_until_refused(&lab);
    assert!(
        refused.contains("database space exceeded"),
        "the quota was not reached: {refused}"
    );
    let (code, plan) = ws.plan_exit_code();
    assert_eq!(code, 2, "a full database is not drift:\n{}", plan.text());
    assert!(plan.text().contains("alarm NOSPACE"), "{}", plan.text());

    // The apply that clears it also raises the quota (a rolling change):
    // etcd grants no lease for the change lock while the database is full,
    // so the alarm is cleared first, then the roll runs under the lock.
    vars.pop();
    vars.push(("flags", r#"{ "quota-backend-bytes" = "2097152" }"#.into()));
    ws.set_vars(&vars);
    let run = ws.apply();
    assert!(run.stdout.contains("1 changed"), "{}", run.stdout);
    let (code, plan) = ws.plan_exit_code();
    assert_eq!(code, 0, "the alarm is still there:\n{}", plan.text());
    for host in ["h1", "h2", "h3"] {
        let config = lab.ssh_ok(host, "cat /etc/etcd/etcd.conf.yml");
        assert!(
            config.contains("quota-backend-bytes: 2097152"),
            "{host}: {config}"
        );
    }
    lab.etcdctl("h2", KUBEADM_PKI, "put /after-the-alarm accepted");
    let alarms = lab.etcdctl("h3", KUBEADM_PKI, "alarm list");
    assert!(alarms.trim().is_empty(), "alarms left: {alarms}");
    // The key's current value is kept; its older revisions are gone.
    let value = lab.etcdctl("h3", KUBEADM_PKI, "get /filled --print-value-only");
    assert_eq!(value.trim().len(), 20000, "the current value was lost");
    let history = lab.ssh(
        "h3",
        &etcdctl_command(KUBEADM_PKI, "get /filled --rev 2 2>&1"),
    );
    assert!(
        String::from_utf8_lossy(&history.stdout).contains("compacted"),
        "no compaction"
    );
    let snapshots = lab.ssh_ok("h1", "ls /var/backups/etcd; true")
        + &lab.ssh_ok("h2", "ls /var/backups/etcd; true")
        + &lab.ssh_ok("h3", "ls /var/backups/etcd; true");
    assert!(
        snapshots.contains("etcd-before-compaction-"),
        "no snapshot before the compaction: {snapshots}"
    );
    let sizes = lab.etcdctl("h1", KUBEADM_PKI, "endpoint status --cluster -w json");
    eprintln!("after the apply: {sizes}");
    ws.destroy();
}
