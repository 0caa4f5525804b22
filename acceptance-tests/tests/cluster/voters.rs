//! Who votes and who speaks raft. Quorum is judged on the live voters,
//! not the configured members: a voter added by hand and never started
//! counts towards the quorum without serving, so with it a roll's restart
//! would leave 2 of 4 voters serving; the roll removes it before it
//! restarts anyone. And the peer port accepts members only: a client
//! certificate of the same CA (a consumer's) is refused there; members
//! made before that rule get the peer name before any member restarts
//! with it, even in a CA rotation.

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

#[test]
fn members_made_before_the_peer_name_get_it_before_a_ca_rotation_restarts_any() {
    let lab = Lab::up(LabId::PeerNameMigration, 3);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::DevOverrides, SCALING);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    ws.set_vars(&scaling_vars(&lab, &hosts, "3.6"));
    ws.apply();
    start_writer(&lab);
    // Members as an earlier provider made them: a peer port that takes any
    // certificate of the CA (one at a time, each back before the next),
    // then peer certificates named for the member, taken up without a
    // restart.
    for (name, _) in &lab.hosts {
        lab.ssh_ok(
            name,
            "sed -i '/allowed-cn/d' /etc/etcd/etcd.conf.yml && systemctl restart etcd",
        );
        retry_etcdctl(&lab, name, "endpoint health");
    }
    let ca = ws.resource_values("etcd_ca.main");
    let dir = tempfile::tempdir().unwrap();
    let ca_key = dir.path().join("ca.key");
    std::fs::write(&ca_key, ca["private_key_pem"].as_str().unwrap()).unwrap();
    for (i, (name, address)) in lab.hosts.iter().enumerate() {
        lab.upload(&ca_key, name, "/root/ca.key");
        lab.ssh_ok(
            name,
            &format!(
                "cd /root && printf 'subjectAltName=IP:{address}\\nextendedKeyUsage=serverAuth,clientAuth\\n' > ext.cnf && \
                 openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=e{n} \
                   -keyout peer.key -out peer.csr 2>/dev/null && \
                 openssl x509 -req -in peer.csr -CA {KUBEADM_PKI}/ca.crt -CAkey ca.key -days 2 -extfile ext.cnf \
                   -out peer.crt 2>/dev/null && \
                 install -m 0600 -o etcd -g etcd peer.key {KUBEADM_PKI}/peer.key && \
                 install -m 0644 -o root -g etcd peer.crt {KUBEADM_PKI}/peer.crt && rm -f ca.key peer.* ext.cnf",
                n = i + 1
            ),
        );
    }
    retry_etcdctl(&lab, "h1", "endpoint health --cluster");

    // A new CA: its first stage restarts every member; none may restart
    // with the peer name required while a peer lacks it.
    ws.replace_ca_in_two_applies("etcd_ca.main");
    assert_eq!(ws.plan_exit_code().0, 0);
    for (name, _) in &lab.hosts {
        let seen = lab.ssh_ok(
            name,
            &format!(
                "openssl x509 -noout -subject -in {KUBEADM_PKI}/peer.crt; grep -c allowed-cn /etc/etcd/etcd.conf.yml"
            ),
        );
        assert!(
            seen.contains("CN = etcd-peer") && seen.ends_with("1\n"),
            "{name}: {seen}"
        );
    }
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
