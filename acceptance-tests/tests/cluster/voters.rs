//! Who votes and who speaks raft. Quorum is judged on the live voters,
//! not the configured members: a voter added by hand and never started
//! counts towards the quorum without serving, so with it a roll's restart
//! would leave 2 of 4 voters serving; the roll removes it before it
//! restarts anyone. And the peer port accepts members only: a client
//! certificate of the same CA (a consumer's) is refused there.

use acceptance_tests::fixtures::{check_writes, retry_etcdctl, start_writer, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{Install, Workspace};
use acceptance_tests::tools;

use crate::{scaling_vars, settled_since, SCALING};

#[test]
fn an_unstarted_voter_added_by_hand_is_removed_before_a_roll_restarts_anyone() {
    let lab = Lab::up(LabId::HandAddedVoter, 3);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::DevOverrides, SCALING);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let mut vars = scaling_vars(&lab, &hosts, "3.6");
    ws.set_vars(&vars);
    ws.apply();
    peer_port_takes_members_only(&lab, hosts[1]);
    start_writer(&lab);
    // A voter nobody starts, at a port of h1 where nothing listens (etcd
    // takes it once every member has been connected for a while).
    retry_etcdctl(
        &lab,
        "h1",
        &format!("member add by-hand --peer-urls=https://{}:2390", hosts[0]),
    );
    let members = lab.etcdctl("h2", KUBEADM_PKI, "member list");
    assert_eq!(members.lines().count(), 4, "{members}");
    let since = settled_since(&lab);

    vars.push(("flags", r#"{ "snapshot-count" = "5000" }"#.to_string()));
    ws.set_vars(&vars);
    ws.apply();

    let removed_at = lab
        .hosts
        .iter()
        .filter_map(|(name, _)| first_time(&lab, name, &since, "removed member"))
        .fold(f64::INFINITY, f64::min);
    let started: Vec<f64> = lab
        .hosts
        .iter()
        .filter_map(|(name, _)| first_time(&lab, name, &since, "Started etcd"))
        .collect();
    assert_eq!(started.len(), 3, "every member rolled");
    assert!(
        started.iter().all(|&start| removed_at < start),
        "the unstarted voter was removed at {removed_at}, after a restart: {started:?}"
    );
    let members = lab.etcdctl("h2", KUBEADM_PKI, "member list");
    assert_eq!(members.lines().count(), 3, "{members}");
    assert!(!members.contains("unstarted"), "{members}");
    assert_eq!(ws.plan_exit_code().0, 0);
    check_writes(&lab, "h2");
}

/// From h1, a request to the peer port of the member at `address` with
/// h1's etcdctl certificate (a client certificate of the cluster's CA) is
/// refused; with h1's peer certificate it is answered.
fn peer_port_takes_members_only(lab: &Lab, address: &str) {
    let ask = |identity: &str| {
        lab.ssh(
            "h1",
            &format!(
                "curl -sS --http1.1 --max-time 5 --cacert {KUBEADM_PKI}/ca.crt --cert {KUBEADM_PKI}/{identity}.crt \
                 --key {KUBEADM_PKI}/{identity}.key https://{address}:2380/version"
            ),
        )
    };
    let member = ask("peer");
    let answer = String::from_utf8_lossy(&member.stdout);
    assert!(
        member.status.success() && answer.contains("etcdserver"),
        "{answer} {}",
        String::from_utf8_lossy(&member.stderr)
    );
    let consumer = ask("etcdctl");
    assert!(
        !consumer.status.success(),
        "the peer port answered a client certificate: {}",
        String::from_utf8_lossy(&consumer.stdout)
    );
}

/// When `host`'s etcd unit first logged a line containing `what` since
/// `since` (seconds since the epoch), if it did.
fn first_time(lab: &Lab, host: &str, since: &str, what: &str) -> Option<f64> {
    let log = lab.ssh_ok(
        host,
        &format!("journalctl -q -u etcd --since @{since} -o short-unix"),
    );
    log.lines()
        .find(|line| line.contains(what))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|time| time.parse().ok())
}
