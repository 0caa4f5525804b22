//! How the provider reaches members and binaries: the client API through
//! SSH tunnels, members known by DNS names, and etcd from the
//! distribution's packages.

use std::time::Duration;

use acceptance_tests::fixtures::{assert_started_members, check_writes, start_writer, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{example, Install, Workspace};
use acceptance_tests::tools;

use crate::cluster3_workspace;

#[test]
fn client_api_through_ssh_tunnels_when_the_client_port_is_unreachable() {
    let lab = Lab::up(LabId::Tunnels, 3);
    let members = members_over_second_addresses(&lab);
    let config = tunnelled_cluster(&lab, "tunnelled", &members);
    // The members' own addresses (in their URLs and certificates) are out of
    // this machine's reach; only their second addresses answer, for SSH.
    for (name, address) in &lab.hosts {
        lab.fault("hide", name, &[]);
        let direct = std::net::TcpStream::connect_timeout(
            &format!("{address}:22").parse().unwrap(),
            Duration::from_secs(1),
        );
        assert!(direct.is_err(), "{address} is still reachable");
    }
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::DevOverrides, &config);
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    let members = lab.ssh_ok(
        &lab.second_addresses[0],
        "etcdctl --cacert /etc/etcd/pki/ca.crt --cert /etc/etcd/pki/server.crt \
         --key /etc/etcd/pki/server.key --endpoints https://127.0.0.1:2379 member list",
    );
    assert_eq!(members.matches(", started, ").count(), 3, "{members}");

    lab.ssh_ok(&lab.second_addresses[1], "systemctl stop etcd");
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    ws.destroy();
}

#[test]
fn members_that_serve_out_of_this_machines_reach_are_never_restarted() {
    let lab = Lab::up(LabId::ClientPortOutOfReach, 3);
    let members = members_over_second_addresses(&lab);
    // Reached directly (no tunnel), with SSH over the second addresses.
    let config = tunnelled_cluster(&lab, "out-of-reach", &members)
        .replace("    tunnel = true\n", "")
        .replace(
            "  ssh {\n",
            &format!("  pki_dir = \"{KUBEADM_PKI}\"\n  ssh {{\n"),
        );
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::DevOverrides, &config);
    ws.apply();
    start_writer(&lab);
    let pids = || -> Vec<String> {
        lab.second_addresses
            .iter()
            .map(|h| lab.ssh_ok(h, "systemctl show -p MainPID --value etcd"))
            .collect()
    };
    let before = pids();
    // This machine loses the members' client port (and every other port of
    // their first addresses); SSH over the second addresses still works.
    for (name, _) in &lab.hosts {
        lab.fault("hide", name, &[]);
    }
    let run = ws.plan_saying("serves on its host", 3);
    assert!(!run.text().contains("Quorum lost"), "{}", run.text());
    let run = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(run.code, 0, "{}", run.text());
    assert!(
        run.words().contains("restarts no member that serves"),
        "{}",
        run.text()
    );
    assert_eq!(pids(), before, "a member that serves was restarted");
    for (name, _) in &lab.hosts {
        lab.fault("unhide", name, &[]);
    }
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "{}", run.text());
    check_writes(&lab, "h2");
    ws.destroy();
}

/// Member blocks e1.. for the lab's hosts, each reached over SSH at the
/// host's second address.
fn members_over_second_addresses(lab: &Lab) -> String {
    lab.hosts
        .iter()
        .zip(&lab.second_addresses)
        .enumerate()
        .map(|(i, ((_, address), second))| {
            format!("  member {{\n    name = \"e{}\"\n    host = \"{address}\"\n    ssh_host = \"{second}\"\n  }}\n", i + 1)
        })
        .collect()
}

/// A CA and a cluster `name` of `members` (HCL blocks) whose client API
/// is reached through SSH tunnels.
fn tunnelled_cluster(lab: &Lab, name: &str, members: &str) -> String {
    let release = tools::etcd_release("3.7");
    format!(
        "terraform {{\n  required_providers {{\n    etcd = {{ source = \"terraform-provider-etcd/etcd\" }}\n  }}\n}}\n\
         resource \"etcd_ca\" \"main\" {{\n  common_name = \"etcd-ca\"\n}}\n\
         resource \"etcd_cluster\" \"main\" {{\n  name = \"{name}\"\n  ca_cert_pem = etcd_ca.main.cert_pem\n  \
         ca_key_pem = etcd_ca.main.private_key_pem\n  etcd_version = \"{release}\"\n  \
         binary_source {{\n    local_path = \"{}\"\n  }}\n  \
         ssh {{\n    user = \"root\"\n    private_key_path = \"{}\"\n    known_hosts_path = \"{}\"\n    tunnel = true\n  }}\n{members}}}\n",
        tools::etcd_dir(&release).display(),
        lab.client_key().display(),
        lab.known_hosts().display()
    )
}

/// The lab's hosts as members `eN.etcd.test` (SSH to their IPs, the
/// client API through tunnels, so this machine resolves no name), with
/// `extra` members appended.
fn named_cluster(lab: &Lab, extra: &str) -> String {
    let members: String = lab
        .hosts
        .iter()
        .enumerate()
        .map(|(i, (_, address))| {
            format!(
                "  member {{\n    name = \"e{n}\"\n    host = \"e{n}.etcd.test\"\n    ssh_host = \"{address}\"\n  }}\n",
                n = i + 1
            )
        })
        .collect();
    tunnelled_cluster(lab, "named", &(members + extra))
}

#[test]
fn members_known_by_dns_names_listen_on_their_addresses_and_advertise_the_names() {
    let lab = Lab::up(LabId::DnsNames, 3);
    let names: String = lab
        .hosts
        .iter()
        .enumerate()
        .map(|(i, (_, address))| format!("{address} e{}.etcd.test\n", i + 1))
        .collect();
    for (name, _) in &lab.hosts {
        lab.ssh_ok(name, &format!("printf '{names}' >> /etc/hosts"));
    }
    let terraform = tools::newest_terraform();
    // A fourth member that is h1 again, under its IP: refused before any
    // host is touched.
    let twice = named_cluster(
        &lab,
        &format!(
            "  member {{\n    name = \"e4\"\n    host = \"{}\"\n  }}\n",
            lab.address("h1")
        ),
    );
    let ws = Workspace::new(&terraform, Install::DevOverrides, &twice);
    let run = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(run.code, 0, "{}", run.text());
    assert!(
        run.text().contains("are on the same machine"),
        "{}",
        run.text()
    );
    assert!(
        !lab.ssh("h1", "test -e /etc/etcd").status.success(),
        "h1 was touched"
    );

    std::fs::write(ws.path().join("main.tf"), named_cluster(&lab, "")).unwrap();
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    let etcdctl = "etcdctl --cacert /etc/etcd/pki/ca.crt --cert /etc/etcd/pki/server.crt \
                   --key /etc/etcd/pki/server.key";
    // Peers know each other by name; the name's certificate is checked.
    let members = lab.ssh_ok(
        "h2",
        &format!("{etcdctl} --endpoints https://e1.etcd.test:2379 member list"),
    );
    assert_eq!(
        members.matches(".etcd.test:2380, https://e").count(),
        3,
        "{members}"
    );
    let listening = lab.ssh_ok("h1", "ss -ltnH");
    assert!(
        listening.contains("0.0.0.0:2380") || listening.contains("*:2380"),
        "e1 does not listen on all its addresses:\n{listening}"
    );
    lab.ssh_ok("h3", "systemctl stop etcd");
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    ws.destroy();
}

#[test]
fn binaries_from_the_distribution_packages() {
    let lab = Lab::up(LabId::OsPackages, 3);
    let server = lab.serve(&tools::tools_dir().join("apt"), 8380);
    for (name, _) in &lab.hosts {
        lab.use_apt_repository(name, &server);
    }
    // Debian's package (bookworm's, on the test hosts) is etcd 3.4.23.
    let config = example("cluster-3")
        .replace(
            "  binary_source {\n    local_path = var.etcd_binaries\n  }",
            "  binary_source {\n    os_package = true\n  }",
        )
        .replace(
            &format!("etcd_version = \"{}\"", tools::etcd_release("3.6")),
            "etcd_version = \"3.4.23\"",
        );
    assert!(config.contains("os_package = true") && config.contains("\"3.4.23\""));
    let terraform = tools::newest_terraform();
    let ws = cluster3_workspace(&lab, &terraform, &config);
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    let unit = lab.ssh_ok("h1", "systemctl cat etcd; dpkg-query -W etcd-server");
    assert!(
        unit.contains("ExecStart=/usr/bin/etcd --config-file /etc/etcd/etcd.conf.yml"),
        "{unit}"
    );
    assert!(unit.contains("3.4.23"), "{unit}");
    assert!(
        !lab.ssh("h1", "test -e /usr/sbin/policy-rc.d")
            .status
            .success(),
        "policy-rc.d left behind"
    );
    assert_started_members(&lab, 3);
    ws.destroy();
    for (name, _) in &lab.hosts {
        // Nothing runs and nothing will start at boot; the package stays.
        let left = lab.ssh_ok(name, "pgrep -x etcd; systemctl is-enabled etcd; test -x /usr/bin/etcd && echo package-kept; true");
        assert_eq!(left.trim(), "disabled\npackage-kept", "{name}: {left}");
    }
}

#[test]
fn a_cluster_bootstrapped_and_rolled_through_a_user_with_sudo() {
    let lab = Lab::up(LabId::Sudo, 3);
    let terraform = tools::newest_terraform();
    // `deploy` has passwordless sudo and the lab's key; it owns nothing.
    let config = example("cluster-3").replace(
        "    user             = \"root\"\n",
        "    user             = \"deploy\"\n    sudo             = true\n",
    );
    assert!(config.contains("\"deploy\""));
    let ws = cluster3_workspace(&lab, &terraform, &config);
    ws.apply_timed("bootstrap through sudo");
    assert_started_members(&lab, 3);
    for (name, _) in &lab.hosts {
        let keys = lab.ssh_ok(
            name,
            "stat -c '%a %U' /etc/kubernetes/pki/etcd/server.key /etc/kubernetes/pki/etcd/peer.key",
        );
        assert_eq!(keys, "600 etcd\n600 etcd\n", "{name}");
    }
    let version = format!("  etcd_version = \"{}\"\n", tools::etcd_release("3.6"));
    let rolled = config.replace(
        &version,
        &format!("{version}  extra_flags  = {{ \"snapshot-count\" = \"5000\" }}\n"),
    );
    assert_ne!(rolled, config);
    std::fs::write(ws.path().join("main.tf"), rolled).unwrap();
    ws.apply_timed("rolling flag change through sudo");
    for (name, _) in &lab.hosts {
        assert!(
            lab.ssh_ok(name, "cat /etc/etcd/etcd.conf.yml")
                .contains("snapshot-count: 5000"),
            "{name}"
        );
    }
    let sessions = lab.ssh_ok(
        "h1",
        "journalctl -u ssh --no-pager | grep -c 'Accepted publickey for deploy' || true",
    );
    assert!(
        sessions.trim().parse::<u32>().unwrap_or(0) > 0,
        "no SSH session as deploy"
    );
}
