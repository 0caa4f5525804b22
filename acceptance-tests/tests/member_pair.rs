//! Two `etcd_member`s of one apply, which Terraform changes in parallel:
//! the cluster's change lock makes them join and restart one at a time,
//! never down together, with a client writing throughout.

use acceptance_tests::fixtures::{
    check_writes, hand_ca_vars, lab_access_vars, start_cluster_by_hand, start_writer, KUBEADM_PKI,
};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{hcl_list, hcl_string, Install, Workspace};
use acceptance_tests::tools;

/// When etcd.service on `host` was down: (stopping, started again) in
/// microseconds, from the journal.
fn down_windows(lab: &Lab, host: &str) -> Vec<(u64, u64)> {
    let journal = lab.ssh_ok(host, "journalctl -u etcd -o short-unix --no-pager");
    let mut windows = Vec::new();
    let mut stopping = None;
    for line in journal.lines() {
        let Some((time, message)) = line.split_once(' ') else {
            continue;
        };
        let Ok(seconds) = time.parse::<f64>() else {
            continue;
        };
        let micros = (seconds * 1e6) as u64;
        if message.contains("Stopping etcd") {
            stopping = Some(micros);
        } else if message.contains("Started etcd") {
            if let Some(start) = stopping.take() {
                windows.push((start, micros));
            }
        }
    }
    windows
}

#[test]
fn two_members_changed_in_one_apply_are_never_down_together() {
    let lab = Lab::up(LabId::MemberPair, 5);
    let pki = tempfile::tempdir().unwrap();
    start_cluster_by_hand(&lab, pki.path(), 3, "etcd");
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(
        &terraform,
        Install::FilesystemMirror,
        include_str!("member_pair.tf"),
    );
    let endpoints: Vec<String> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| format!("https://{}:2379", lab.address(h)))
        .collect();
    let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let set_vars = |flags: &str| {
        let mut vars = vec![
            (
                "hosts",
                format!(
                    "{{ e4 = {}, e5 = {} }}",
                    hcl_string(lab.address("h4")),
                    hcl_string(lab.address("h5"))
                ),
            ),
            ("cluster_endpoints", hcl_list(&endpoints)),
            ("extra_flags", flags.to_string()),
        ];
        vars.extend(hand_ca_vars(pki.path()));
        vars.extend(lab_access_vars(&lab, &tools::etcd_release("3.6")));
        ws.set_vars(&vars);
    };
    set_vars("{}");
    ws.apply_timed("two members join");
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert_eq!(list.matches(", started, ").count(), 5, "{list}");
    start_writer(&lab);

    set_vars(r#"{ "snapshot-count" = "5000" }"#);
    ws.apply_timed("a flag changed on both members");
    let e4 = down_windows(&lab, "h4");
    let e5 = down_windows(&lab, "h5");
    assert!(
        !e4.is_empty() && !e5.is_empty(),
        "no restarts: {e4:?} {e5:?}"
    );
    for a in &e4 {
        for b in &e5 {
            assert!(
                a.1 <= b.0 || b.1 <= a.0,
                "e4 ({a:?}) and e5 ({b:?}) were down at the same time"
            );
        }
    }
    check_writes(&lab, "h2");
}
