//! Rolling changes: flags (version changes are upgrades.rs'), certificate renewal
//! (without a restart), pre-vote keeping a cut-off follower from deposing
//! the leader, an interrupted roll finished by the next apply, two applies of the
//! same change at once, and a run that loses the change lock mid-roll.

use std::time::Duration;

use acceptance_tests::fixtures::{check_writes, lab_vars, start_writer, wait_for, KUBEADM_PKI};
use acceptance_tests::lab::{etcdctl_command, Lab};
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{hcl_string, interrupt, Install, Run, Workspace};
use acceptance_tests::tools;

use crate::{scaling_vars, settled_since, starts_since, SCALING};

#[test]
fn rolling_flag_change_waits_for_the_change_lock_without_losing_a_write() {
    let lab = Lab::up(LabId::Rolling, 3);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let set_vars = |version: &str, flags: &str| {
        let mut vars = lab_vars(&lab, &hosts, version);
        vars.extend([
            ("etcd_version", hcl_string(version)),
            ("flags", flags.to_string()),
        ]);
        ws.set_vars(&vars);
    };
    let current = tools::etcd_release("3.6");
    set_vars(&current, "{}");
    ws.apply();
    an_isolated_follower_does_not_depose_the_leader(&lab);
    start_writer(&lab);

    set_vars(&current, r#"{ "snapshot-count" = "5000" }"#);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    // Another run holds the cluster's change lock for ten seconds (here an
    // operator with etcdctl): the apply waits for it and changes nothing
    // meanwhile, then rolls.
    lab.ssh_ok(
        "h2",
        &format!(
            "systemd-run --unit=holder sh -c '{}'",
            etcdctl_command(KUBEADM_PKI, "lock terraform-provider-etcd/changes sleep 10")
        ),
    );
    std::thread::sleep(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let apply = ws.spawn_apply();
    std::thread::sleep(Duration::from_secs(6));
    for (name, _) in &lab.hosts {
        assert!(
            !snapshot_count_is(&lab, name, 5000),
            "{name} was changed while another run held the change lock"
        );
    }
    let out = Run::from(apply.wait_with_output().unwrap());
    assert_eq!(out.code, 0, "{}", out.text());
    eprintln!(
        "rolling flag change after waiting for the lock: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(ws.plan_exit_code().0, 0);
    for (name, _) in &lab.hosts {
        assert!(snapshot_count_is(&lab, name, 5000), "{name}");
    }

    check_writes(&lab, "h3");
}

#[test]
fn member_certificates_are_renewed_without_a_restart_when_due() {
    let lab = Lab::up(LabId::CertRenewal, 3);
    let terraform = tools::newest_terraform();
    let config = SCALING.replace(
        "  extra_flags  = var.flags\n",
        "  extra_flags  = var.flags\n  cert_validity_hours      = 720\n  cert_early_renewal_hours = 24\n",
    );
    assert!(config.contains("cert_early_renewal_hours = 24"));
    let mut ws = Workspace::new(&terraform, Install::FilesystemMirror, &config);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    ws.set_vars(&scaling_vars(&lab, &hosts, "3.7"));
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    let before = lab.ssh_ok(
        "h1",
        &format!("sha256sum {KUBEADM_PKI}/server.crt {KUBEADM_PKI}/peer.crt"),
    );
    let pids = || -> Vec<String> {
        lab.hosts
            .iter()
            .map(|(name, _)| lab.ssh_ok(name, "systemctl show -p MainPID --value etcd"))
            .collect()
    };
    let pids_before = pids();
    start_writer(&lab);

    // 700 hours on, the 720-hour certificates are inside their 24-hour window.
    ws.set_clock_ahead(700);
    ws.plan_saying("due for renewal", 3);
    let started = std::time::Instant::now();
    ws.apply();
    eprintln!(
        "certificate renewal: {:.1} s per member",
        started.elapsed().as_secs_f64() / 3.0
    );
    assert_eq!(
        ws.plan_exit_code().0,
        0,
        "renewed certificates are still due"
    );
    let after = lab.ssh_ok(
        "h1",
        &format!("sha256sum {KUBEADM_PKI}/server.crt {KUBEADM_PKI}/peer.crt"),
    );
    assert_ne!(before, after, "certificates were not reissued");
    // etcd takes up the new files without a restart, and serves them.
    assert_eq!(
        pids(),
        pids_before,
        "a member was restarted for its certificates"
    );
    let served = lab.ssh_ok(
        "h1",
        &format!(
            "openssl s_client -connect 127.0.0.1:2379 -cert {KUBEADM_PKI}/etcdctl.crt -key {KUBEADM_PKI}/etcdctl.key \
             </dev/null 2>/dev/null | openssl x509 -outform der | sha256sum; openssl x509 -in {KUBEADM_PKI}/server.crt \
             -outform der | sha256sum"
        ),
    );
    let lines: Vec<&str> = served.lines().collect();
    assert_eq!(lines.len(), 2, "{served}");
    assert_eq!(
        lines[0], lines[1],
        "h1 serves another certificate than its file"
    );
    ws.reset_clock();
    assert_eq!(ws.plan_exit_code().0, 0);
    let health = lab.etcdctl("h3", KUBEADM_PKI, "endpoint health --cluster");
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    check_writes(&lab, "h2");
}

#[test]
fn an_interrupted_upgrade_is_named_and_finished_by_the_next_apply_without_redoing_members() {
    let lab = Lab::up(LabId::InterruptedRoll, 3);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let set_flags = |minor: &str, flags: &str| {
        let mut vars = scaling_vars(&lab, &hosts, minor);
        vars.extend([("flags", flags.to_string())]);
        ws.set_vars(&vars);
    };
    set_flags("3.5", "{}");
    ws.apply();
    start_writer(&lab);

    // e2 and e3 take 8 s to start, so that e3 is still untouched for a while
    // after e1 runs the new version.
    for host in ["h2", "h3"] {
        lab.slow_etcd_start(host, 8);
    }
    let new_version = tools::etcd_release("3.6");
    set_flags("3.6", r#"{ "snapshot-count" = "7000" }"#);
    let apply = ws.spawn_apply();
    // (The status call fails while e1 restarts.)
    wait_for("e1 was never upgraded", || {
        let status = lab.ssh("h1", &etcdctl_command(KUBEADM_PKI, "endpoint status"));
        String::from_utf8_lossy(&status.stdout).contains(&new_version)
    });
    // Ctrl-C once e1 runs the new version.
    let text = interrupt(apply);
    assert!(text.contains("Rolling change stopped"), "{text}");
    let rolled: Vec<bool> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| snapshot_count_is(&lab, h, 7000))
        .collect();
    assert_ne!(
        rolled,
        vec![true, true, true],
        "the interrupt came too late to test anything"
    );
    let started = |host: &str| {
        lab.ssh_ok(
            host,
            "systemctl show -p ExecMainStartTimestampMonotonic --value etcd",
        )
    };

    // The change is still planned, e1 is named as running the new
    // version, and the next apply finishes it.
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.stdout.contains("snapshot-count"), "{}", run.stdout);
    assert!(
        run.words().contains("Members run another etcd version")
            && run.words().contains(&format!("e1 runs {new_version}")),
        "{}",
        run.text()
    );
    // Let e1 settle if it was caught between rewrite and restart.
    std::thread::sleep(Duration::from_secs(2));
    let e1_before = started("h1");
    let e1_fresh = lab.ssh_ok("h1", "pid=$(systemctl show -p MainPID --value etcd); [ /proc/$pid -nt /etc/etcd/etcd.conf.yml ] && echo fresh; true");
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    for host in ["h1", "h2", "h3"] {
        assert!(snapshot_count_is(&lab, host, 7000), "{host}");
    }
    if e1_fresh.contains("fresh") {
        assert_eq!(
            started("h1"),
            e1_before,
            "e1 was rolled again although it was done"
        );
    }
    check_writes(&lab, "h3");
}

#[test]
fn two_applies_of_one_change_at_once_never_interleave() {
    let lab = Lab::up(LabId::ConcurrentApplies, 3);
    let terraform = tools::newest_terraform();
    // Two CI jobs with the same state, as two workspaces.
    let mut first = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let mut second = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    // Each run's provider log, shown when an assertion fails.
    for ws in [&mut first, &mut second] {
        let log = ws.path().join("provider.log");
        ws.set_env("TF_LOG_PROVIDER", "INFO");
        ws.set_env("TF_LOG_PATH", log.to_str().unwrap());
    }
    let provider_logs = || {
        [&first, &second]
            .iter()
            .map(|ws| {
                std::fs::read_to_string(ws.path().join("provider.log"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("etcd."))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let set_flags = |flags: &str| {
        let mut vars = scaling_vars(&lab, &hosts, "3.6");
        vars.push(("flags", flags.to_string()));
        first.set_vars(&vars);
        second.set_vars(&vars);
    };
    set_flags("{}");
    first.apply();
    std::fs::copy(
        first.path().join("terraform.tfstate"),
        second.path().join("terraform.tfstate"),
    )
    .unwrap();
    start_writer(&lab);
    // Every etcd waits 8 s before it starts (a drop-in the provider does
    // not own), so that the roll outlasts the change lock's 15 s lease: the
    // runs must renew their leases through another member while the one
    // they first reached restarts.
    for (name, _) in &lab.hosts {
        lab.slow_etcd_start(name, 8);
    }

    set_flags(r#"{ "snapshot-count" = "5000" }"#);
    let since = settled_since(&lab);
    std::thread::sleep(Duration::from_secs(1));
    let applies = [first.spawn_apply(), second.spawn_apply()];
    for apply in applies {
        let out = Run::from(apply.wait_with_output().unwrap());
        assert_eq!(
            out.code,
            0,
            "{}\nthe runs' logs:\n{}",
            out.text(),
            provider_logs()
        );
    }
    // One run rolled the members; the other waited for the change lock and
    // found nothing left to do: every member restarted exactly once.
    for (name, _) in &lab.hosts {
        assert_eq!(
            starts_since(&lab, name, &since),
            1,
            "{name} was not restarted exactly once; its journal:\n{}\nthe runs' logs:\n{}",
            lab.ssh_ok(
                name,
                &format!(
                    "journalctl -q -u etcd --since @{} -o short-precise | grep -v ' etcd\\[' ",
                    &since
                )
            ),
            provider_logs()
        );
    }
    assert_eq!(first.plan_exit_code().0, 0);
    assert_eq!(second.plan_exit_code().0, 0);

    // An operator ends a run's lock in the middle of its roll (revokes its
    // lease once the run has rewritten h1): the run stops before its next
    // member, since another run could now take the lock; the next apply
    // finishes the roll.
    set_flags(r#"{ "snapshot-count" = "6000" }"#);
    let apply = first.spawn_apply();
    let rolled = |host: &str| snapshot_count_is(&lab, host, 6000);
    // Revokes `lease`; `apply` must then fail, saying `why`.
    let revoke_and_expect_failure = |lease: i64, apply: std::process::Child, why: &str| {
        lab.etcdctl("h3", KUBEADM_PKI, &format!("lease revoke {lease:x}"));
        let out = Run::from(apply.wait_with_output().unwrap());
        assert!(
            out.code != 0 && out.words().contains(why),
            "{}\nthe runs' logs:\n{}",
            out.text(),
            provider_logs()
        );
    };
    wait_for("h1 rewritten by the roll", || rolled("h1"));
    let holder = *lock_leases(&lab)
        .first()
        .expect("no change lock held during the roll");
    revoke_and_expect_failure(holder, apply, "change lock was lost");
    for host in ["h2", "h3"] {
        assert!(!rolled(host), "{host} was rolled after the lock was lost");
    }
    assert_eq!(first.plan_exit_code().0, 2);
    first.apply();
    for host in ["h1", "h2", "h3"] {
        assert!(rolled(host), "{host} was not rolled by the apply after");
    }
    assert_eq!(first.plan_exit_code().0, 0);

    // A run waiting for the lock (an operator holds it) whose own lease is
    // revoked meanwhile gives up and changes nothing.
    lab.ssh_ok(
        "h2",
        &format!(
            "systemd-run --unit=long-holder sh -c '{}'",
            etcdctl_command(KUBEADM_PKI, "lock terraform-provider-etcd/changes sleep 60")
        ),
    );
    wait_for("the operator's lock", || lock_leases(&lab).len() == 1);
    set_flags(r#"{ "snapshot-count" = "7000" }"#);
    let apply = first.spawn_apply();
    wait_for("a run waiting for the lock", || {
        lock_leases(&lab).len() == 2
    });
    let waiter = lock_leases(&lab)[1];
    revoke_and_expect_failure(waiter, apply, "is gone (expired or revoked)");
    for (name, _) in &lab.hosts {
        assert!(
            !snapshot_count_is(&lab, name, 7000),
            "{name} was changed by a run without the lock"
        );
    }
    lab.ssh_ok("h2", "systemctl stop long-holder");
    check_writes(&lab, "h3");
}

/// Whether `host`'s etcd config sets `snapshot-count` (the setting these
/// tests roll) to `count`.
fn snapshot_count_is(lab: &Lab, host: &str, count: u32) -> bool {
    lab.ssh_ok(host, "cat /etc/etcd/etcd.conf.yml")
        .contains(&format!("snapshot-count: {count}\n"))
}

/// The leases of the keys under the change lock's name, oldest key first:
/// the holder's, then any waiter's.
fn lock_leases(lab: &Lab) -> Vec<i64> {
    let held = lab.etcdctl(
        "h3",
        KUBEADM_PKI,
        "get --prefix terraform-provider-etcd/changes -w json",
    );
    let all: serde_json::Value =
        serde_json::from_str(&held).unwrap_or_else(|e| panic!("{e}: {held}"));
    let mut keys: Vec<(i64, i64)> = all["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    (
                        kv["create_revision"].as_i64().unwrap_or_default(),
                        kv["lease"].as_i64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys.into_iter().map(|(_, lease)| lease).collect()
}

/// Cuts a follower off from the other members for three election timeouts,
/// heals the cut, and checks that the leader and the raft term stay: with
/// pre-vote (on by default; etcd 3.4 has it off) the cut-off member asks
/// before it campaigns, so it does not come back with a higher term that
/// deposes a working leader and pauses every write for an election.
fn an_isolated_follower_does_not_depose_the_leader(lab: &Lab) {
    let status = |host: &str| {
        let out = lab.etcdctl(host, KUBEADM_PKI, "endpoint status -w json");
        let all: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let status = &all[0]["Status"];
        (
            status["header"]["member_id"].as_u64().unwrap_or_default(),
            status["leader"].as_u64().unwrap_or_default(),
            status["raftTerm"].as_u64().unwrap_or_default(),
        )
    };
    let (_, leader, term) = status("h1");
    assert!(
        leader != 0 && term != 0,
        "no leader or term: {:?}",
        status("h1")
    );
    let names: Vec<&str> = lab.hosts.iter().map(|(name, _)| name.as_str()).collect();
    let follower = *names
        .iter()
        .find(|name| status(name).0 != leader)
        .expect("a follower");
    let others: Vec<&str> = names.iter().copied().filter(|n| *n != follower).collect();
    lab.fault("partition", follower, &others);
    for other in &others {
        lab.fault("partition", other, &[follower]);
    }
    std::thread::sleep(Duration::from_secs(3));
    for name in &names {
        lab.fault("heal", name, &[]);
    }
    wait_for(&format!("{follower} healthy after the cut"), || {
        lab.etcdctl(follower, KUBEADM_PKI, "endpoint health")
            .contains("is healthy")
    });
    let (_, now_leader, now_term) = status(follower);
    assert_eq!(
        (now_leader, now_term),
        (leader, term),
        "{follower}, cut off, caused an election on its return (leader, raft term)"
    );
}
