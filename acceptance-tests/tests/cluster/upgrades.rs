//! Version changes of one running cluster, with a writer throughout and
//! backups scheduled: rolling upgrades 3.4 -> 3.5 -> 3.6 -> 3.7, every
//! backup on the way checked by the tool of the version then running, the
//! version changes etcd does not support refused at plan time, and a
//! downgrade 3.7 -> 3.6.

use std::time::{Duration, Instant};

use acceptance_tests::fixtures::{check_writes, lab_vars, start_writer, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{hcl_string, Install, Run, Workspace};
use acceptance_tests::tools;

use crate::{assert_member_versions, SCALING};

const BACKUPS: &str = "/var/backups/etcd";

#[test]
fn upgrades_from_3_4_to_3_7_and_a_downgrade_to_3_6_lose_no_write() {
    let lab = Lab::up(LabId::Upgrades, 3);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let set_version = |version: &str| {
        let mut vars = lab_vars(&lab, &hosts, version);
        vars.extend([
            ("etcd_version", hcl_string(version)),
            ("backup_schedule", hcl_string("*:*:0/20")),
        ]);
        ws.set_vars(&vars);
    };
    let [v34, v35, v36, v37] = ["3.4", "3.5", "3.6", "3.7"].map(tools::etcd_release);
    set_version(&v34);
    ws.apply();
    start_writer(&lab);
    wait_for_scheduled_backups(&lab);
    backups_check_out(&lab, &v34);

    for (from, to) in [(&v34, &v35), (&v35, &v36), (&v36, &v37)] {
        set_version(to);
        let started = Instant::now();
        ws.apply();
        eprintln!(
            "rolling upgrade {from} -> {to}: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert_member_versions(&ws, to);
        let (code, run) = ws.plan_exit_code();
        assert_eq!(code, 0, "after {from} -> {to}:\n{}", run.text());
        backups_check_out(&lab, to);
        // Refused at plan time, on etcd_version: (running, planned, why).
        let refusals: &[(&str, &str, &str)] = match to.as_str() {
            // Had the cluster run 3.5.21, 3.6 could not follow it.
            _ if to == &v35 => &[
                ("3.5.21", &v36, "3.5.26 or later"),
                (&v35, &v37, "skips a minor version"),
            ],
            _ if to == &v36 => &[
                ("3.6.10", &v37, "3.6.11 or later"),
                (&v36, &v34, "one minor version at a time"),
            ],
            _ => &[(&v37, &v35, "one minor version at a time")],
        };
        for (running, planned, why) in refusals {
            set_version(planned);
            let run = plan_as_if_running(&ws, running);
            assert!(
                run.words().contains(why),
                "{running} -> {planned}: {}",
                run.text()
            );
            assert!(run.text().contains("etcd_version"), "{}", run.text());
        }
        set_version(to);
    }
    wait_for_scheduled_backups(&lab);
    backups_check_out(&lab, &v37);

    set_version(&v36);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(
        run.words().contains("is a downgrade: apply checks it"),
        "{}",
        run.text()
    );
    let started = Instant::now();
    ws.apply();
    eprintln!(
        "downgrade {v37} -> {v36}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_member_versions(&ws, &v36);
    let version = lab.ssh_ok(
        "h2",
        &format!(
            "curl -sf --cacert {KUBEADM_PKI}/ca.crt --cert {KUBEADM_PKI}/server.crt \
             --key {KUBEADM_PKI}/server.key https://127.0.0.1:2379/version"
        ),
    );
    assert!(version.contains("\"etcdcluster\":\"3.6.0\""), "{version}");
    assert_eq!(ws.plan_exit_code().0, 0);
    check_writes(&lab, "h3");
}

/// Waits until each member has taken a scheduled snapshot since now.
fn wait_for_scheduled_backups(lab: &Lab) {
    let count = |host: &str| {
        lab.ssh_ok(host, "journalctl -q -u etcd-backup.service -o cat")
            .matches("/etcd-scheduled-")
            .count()
    };
    let before: Vec<usize> = ["h1", "h2", "h3"].iter().map(|h| count(h)).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    while ["h1", "h2", "h3"]
        .iter()
        .zip(&before)
        .any(|(h, n)| count(h) <= *n)
    {
        assert!(Instant::now() < deadline, "no scheduled snapshot in 90 s");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Every snapshot on every member so far (scheduled, and those taken
/// before each roll) is read by the snapshot tool of `version`, installed
/// on the host: etcdctl on 3.4, etcdutl later. The scheduled job keeps
/// running and prunes old files, so the check reads hard links to the
/// files made in one step (a file pruned after that is still read).
fn backups_check_out(lab: &Lab, version: &str) {
    let tool = if version.starts_with("3.4.") {
        "etcdctl"
    } else {
        "etcdutl"
    };
    for host in ["h1", "h2", "h3"] {
        let held = "/var/tmp/backups-under-check";
        lab.ssh_ok(
            host,
            &format!(
                "rm -rf {held} && mkdir {held} && ln {BACKUPS}/*.db {held}/ 2>/dev/null; true"
            ),
        );
        let files = lab.ssh_ok(host, &format!("ls {held}"));
        let files: Vec<&str> = files.lines().filter(|f| f.ends_with(".db")).collect();
        assert!(!files.is_empty(), "{host}: no backups");
        for file in files {
            let status = lab.ssh_ok(
                host,
                &format!("{tool} snapshot status {held}/{file} -w json"),
            );
            assert!(
                status.contains("\"revision\""),
                "{host} {file} by {tool} of {version}: {status}"
            );
        }
        lab.ssh_ok(host, &format!("rm -rf {held}"));
    }
}

/// The plan for a cluster whose state says it runs `running` (the state
/// file edited, then put back; no refresh): the refusal of a version
/// change needs no cluster of that version, and touches no host.
fn plan_as_if_running(ws: &Workspace, running: &str) -> Run {
    let path = ws.path().join("terraform.tfstate");
    let real = std::fs::read_to_string(&path).unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&real).unwrap();
    let cluster = state["resources"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["type"] == "etcd_cluster")
        .expect("a cluster in state");
    cluster["instances"][0]["attributes"]["etcd_version"] = running.into();
    std::fs::write(&path, state.to_string()).unwrap();
    let run = ws.run(&[
        "plan",
        "-refresh=false",
        "-detailed-exitcode",
        "-input=false",
    ]);
    std::fs::write(&path, real).unwrap();
    assert_eq!(run.code, 1, "{}", run.text());
    run
}
