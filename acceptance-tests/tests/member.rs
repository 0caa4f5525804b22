//! `etcd_member` with real Terraform, sshd, systemd and etcd: a member joins
//! a cluster started by hand, drifts and is repaired, takes a changed flag,
//! is refused removal while another member is down, and leaves on destroy,
//! with a client writing throughout.

use std::time::Duration;

use acceptance_tests::fixtures::{
    check_writes, expect_drift, hand_ca_vars, lab_access_vars, start_cluster_by_hand, start_writer,
    KUBEADM_PKI,
};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{example, hcl_list, hcl_string, Install, Workspace};
use acceptance_tests::tools;

/// Lines of `etcdctl member list` on h1 that name `member`.
fn listed(lab: &Lab, member: &str) -> Vec<String> {
    lab.etcdctl("h1", KUBEADM_PKI, "member list")
        .lines()
        .filter(|l| l.contains(&format!(", {member}, ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_member_joins_a_cluster_made_by_hand_is_repaired_changed_and_leaves() {
    let lab = Lab::up(LabId::Member, 4);
    let pki = tempfile::tempdir().unwrap();
    start_cluster_by_hand(&lab, pki.path(), 3, "etcd");
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, &example("member"));
    let endpoints: Vec<String> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| format!("https://{}:2379", lab.address(h)))
        .collect();
    let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let set_vars = |endpoints: &[&str], flags: &str| {
        let mut vars = vec![
            ("host", hcl_string(lab.address("h4"))),
            ("cluster_endpoints", hcl_list(endpoints)),
            ("extra_flags", flags.to_string()),
        ];
        vars.extend(hand_ca_vars(pki.path()));
        vars.extend(lab_access_vars(&lab, &tools::etcd_release("3.6")));
        ws.set_vars(&vars);
    };

    // Bad input is refused at plan time, and no host is touched.
    let plain_http = format!("http://{}:2379", lab.address("h1"));
    set_vars(&[&plain_http], "{}");
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 1, "{}", run.text());
    assert!(
        run.text().contains("Invalid cluster endpoint"),
        "{}",
        run.text()
    );
    assert!(lab
        .ssh("h4", "test -e /etc/etcd || systemctl is-enabled etcd")
        .status
        .code()
        .is_some_and(|c| c != 0));

    start_writer(&lab);
    set_vars(&endpoints, "{}");
    ws.apply_timed("join e4");
    let e4 = listed(&lab, "e4");
    assert_eq!(e4.len(), 1, "{e4:?}");
    assert!(
        e4[0].contains(", started, ") && e4[0].ends_with("false"),
        "e4 is not a started voting member: {e4:?}"
    );
    let member_id = ws.output("member_id");
    assert!(
        e4[0].starts_with(member_id.trim_matches('"')),
        "{member_id} vs {e4:?}"
    );
    let perms = lab.ssh_ok(
        "h4",
        &format!("stat -c '%a %U' {KUBEADM_PKI}/server.key /var/lib/etcd"),
    );
    assert_eq!(perms, "600 etcd\n700 etcd\n");

    // Drift: the member stopped, then removed from the cluster out of band.
    lab.ssh_ok("h4", "systemctl stop etcd");
    expect_drift(&ws, "e4 stopped", "status", "etcd unit is");
    let id = listed(&lab, "e4")[0].split(',').next().unwrap().to_string();
    lab.etcdctl("h1", KUBEADM_PKI, &format!("member remove {id}"));
    expect_drift(
        &ws,
        "e4 removed out of band",
        "status",
        "not a member of the cluster",
    );
    assert_eq!(listed(&lab, "e4").len(), 1, "e4 was not re-added");

    // A changed flag: the member is rewritten and restarted.
    set_vars(&endpoints, r#"{ "snapshot-count" = "5000" }"#);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    ws.apply_timed("flag change on e4");
    assert!(lab
        .ssh_ok("h4", "cat /etc/etcd/etcd.conf.yml")
        .contains("snapshot-count: 5000"));

    // With e2 down, a drifted e4 that still serves is not restarted (3 of
    // 4 up; a restart would leave 2)...
    lab.ssh_ok("h2", "systemctl stop etcd");
    lab.ssh_ok("h4", "echo '# edited by hand' >> /etc/etcd/etcd.conf.yml");
    let refused = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(refused.code, 0, "{}", refused.text());
    assert!(
        refused.text().contains("refusing to restart"),
        "{}",
        refused.text()
    );
    assert_eq!(lab.ssh_ok("h4", "systemctl is-active etcd"), "active\n");
    // ...but a stopped e4 is brought back even so: that restores a voter.
    lab.ssh_ok("h4", "systemctl stop etcd");
    ws.apply();
    assert_eq!(lab.ssh_ok("h4", "systemctl is-active etcd"), "active\n");
    assert!(!lab
        .ssh_ok("h4", "cat /etc/etcd/etcd.conf.yml")
        .contains("edited by hand"));

    // Still with e2 down, removing e4 would leave 2 of 3 voters up: refused.
    let refused = ws.run(&["destroy", "-auto-approve", "-input=false"]);
    assert_ne!(refused.code, 0, "{}", refused.text());
    assert!(
        refused.text().contains("Could not remove the member")
            && refused.text().contains("refusing to restart"),
        "{}",
        refused.text()
    );
    assert_eq!(listed(&lab, "e4").len(), 1, "e4 was removed anyway");
    lab.ssh_ok("h2", "systemctl start etcd");
    std::thread::sleep(Duration::from_secs(2));

    let started = std::time::Instant::now();
    ws.destroy();
    eprintln!("e4 leaves: {:.1} s", started.elapsed().as_secs_f64());
    assert!(listed(&lab, "e4").is_empty(), "e4 is still a member");
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert_eq!(list.matches(", started, ").count(), 3, "{list}");
    assert!(lab
        .ssh_ok("h4", "pgrep -x etcd || echo none")
        .contains("none"));
    assert!(
        lab.ssh("h4", "test -d /var/lib/etcd/member")
            .status
            .success(),
        "the data dir was not kept"
    );
    check_writes(&lab, "h3");
}
