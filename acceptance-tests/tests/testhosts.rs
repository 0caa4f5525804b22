//! The proving ground itself: test hosts with real systemd and sshd, etcd
//! 3.4 started on them by hand, fault injection, and a clean teardown.

use std::process::Command;
use std::time::{Duration, Instant};

use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::tools;

/// `etcdctl endpoint health` over every member: (healthy, total).
fn health(endpoints: &[String]) -> (usize, usize) {
    let etcdctl = tools::etcd_dir(&tools::etcd_release("3.6")).join("etcdctl");
    let out = Command::new(etcdctl)
        .args([
            "--dial-timeout=1s",
            "--command-timeout=2s",
            "endpoint",
            "health",
            "-w",
            "json",
        ])
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .output()
        .expect("etcdctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let healthy = text.matches("\"health\":true").count();
    (healthy, endpoints.len())
}

fn wait_for_health(endpoints: &[String], want: usize) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = health(endpoints);
        if seen.0 == want || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn start_etcd(lab: &Lab, name: &str, cluster: &str, state: &str) {
    let ip = lab.address(name);
    lab.ssh_ok(
        name,
        &format!(
            "systemd-run --unit=etcd-smoke --property=Restart=no /usr/local/bin/etcd --name {name} \
             --data-dir /var/lib/etcd-smoke --listen-peer-urls http://{ip}:2380 \
             --listen-client-urls http://{ip}:2379 --advertise-client-urls http://{ip}:2379 \
             --initial-advertise-peer-urls http://{ip}:2380 --initial-cluster {cluster} \
             --initial-cluster-state {state} --initial-cluster-token smoke"
        ),
    );
}

#[test]
fn three_hosts_run_etcd_survive_a_kill_and_leave_nothing_behind() {
    let lab = Lab::up(LabId::TesthostsSmoke, 3);
    let names = ["h1", "h2", "h3"];
    for name in names {
        // Strict host key checking is on in the exported ssh_config.
        assert_eq!(lab.ssh_ok(name, "hostname").trim(), name);
        assert_eq!(
            lab.ssh_ok(name, "systemctl is-system-running").trim(),
            "running"
        );
    }
    let ids: std::collections::BTreeSet<String> = names
        .iter()
        .map(|n| lab.ssh_ok(n, "cat /etc/machine-id"))
        .collect();
    assert_eq!(ids.len(), 3, "machine-ids are not unique");

    // A host whose key is not the one in known_hosts is refused.
    let wrong_known_hosts = lab.state.join("wrong_known_hosts");
    let h2_key = std::fs::read_to_string(lab.known_hosts())
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1
        .to_string();
    std::fs::write(
        &wrong_known_hosts,
        format!("{} {h2_key}\n", lab.address("h1")),
    )
    .unwrap();
    let refused = Command::new("ssh")
        .args([
            "-F",
            lab.ssh_config().to_str().unwrap(),
            "-o",
            "BatchMode=yes",
        ])
        .arg(format!(
            "-oUserKnownHostsFile={}",
            wrong_known_hosts.display()
        ))
        .args([lab.address("h1"), "true"])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "ssh accepted a host key that is not in known_hosts"
    );

    let etcd = tools::etcd_dir(&tools::etcd_release("3.6")).join("etcd");
    let cluster: Vec<String> = names
        .iter()
        .map(|n| format!("{n}=http://{}:2380", lab.address(n)))
        .collect();
    let cluster = cluster.join(",");
    for name in names {
        lab.upload(&etcd, name, "/usr/local/bin/etcd");
        start_etcd(&lab, name, &cluster, "new");
    }
    let endpoints: Vec<String> = names
        .iter()
        .map(|n| format!("http://{}:2379", lab.address(n)))
        .collect();
    assert_eq!(wait_for_health(&endpoints, 3), (3, 3));
    let members = Command::new(tools::etcd_dir(&tools::etcd_release("3.6")).join("etcdctl"))
        .args(["member", "list", &format!("--endpoints={}", endpoints[0])])
        .output()
        .unwrap();
    let members = String::from_utf8_lossy(&members.stdout);
    assert_eq!(members.matches(", started, ").count(), 3, "{members}");

    lab.fault("kill", "h3", &[]);
    assert_eq!(wait_for_health(&endpoints, 2), (2, 3));

    // The host comes back with its disk: etcd rejoins from its data dir.
    lab.fault("start", "h3", &[]);
    start_etcd(&lab, "h3", &cluster, "existing");
    assert_eq!(wait_for_health(&endpoints, 3), (3, 3));

    // Cut h1 off entirely, then only from its peers: the cluster keeps
    // quorum through both, and heals back to 3 of 3.
    lab.fault("partition", "h1", &[]);
    assert_eq!(wait_for_health(&endpoints, 2), (2, 3));
    lab.fault("heal", "h1", &[]);
    assert_eq!(wait_for_health(&endpoints, 3), (3, 3));
    lab.fault("partition", "h1", &["h2", "h3"]);
    // Still reachable from this machine, but not from its peers.
    assert_eq!(lab.ssh_ok("h1", "hostname").trim(), "h1");
    assert_eq!(wait_for_health(&endpoints, 2), (2, 3));
    lab.fault("heal", "h1", &[]);
    assert_eq!(wait_for_health(&endpoints, 3), (3, 3));

    let said = lab.down();
    assert!(said.contains("down and clean"), "{said}");
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("tpe1h"),
        "links left behind"
    );
}
