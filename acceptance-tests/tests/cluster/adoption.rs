//! A cluster started by hand under its own unit (`etcd-hand.service`),
//! imported; the first apply changes nothing on the hosts, the provider
//! refuses to start a second etcd next to the hand-made one, and once the
//! hand-made unit is stopped it is managed like any other cluster. Also a
//! remote command that hangs, ended by its time limit.

use std::time::Duration;

use acceptance_tests::fixtures::{start_cluster_by_hand, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{example, hcl_string};
use acceptance_tests::tools;

use crate::cluster3_workspace;

#[test]
fn a_cluster_started_by_hand_is_imported_and_then_managed() {
    let lab = Lab::up(LabId::Import, 3);
    let pki = tempfile::tempdir().unwrap();
    start_cluster_by_hand(&lab, pki.path(), 3, "etcd-hand");
    let host_state = |host: &str| {
        lab.ssh_ok(
            host,
            "ls /etc/systemd/system; stat -c '%a %U:%G' /etc/kubernetes/pki/etcd; \
             sha256sum /etc/kubernetes/pki/etcd/* /etc/systemd/system/etcd-hand.service",
        )
    };
    let before: Vec<String> = ["h1", "h2", "h3"].iter().map(|h| host_state(h)).collect();
    lab.etcdctl("h1", KUBEADM_PKI, "put /made-by-hand yes");

    let terraform = tools::newest_terraform();
    let (crt, key) = (pki.path().join("ca.crt"), pki.path().join("ca.key"));
    let config = example("cluster-3")
        .replace(
            "ca_cert_pem  = etcd_ca.main.cert_pem",
            &format!(
                "ca_cert_pem  = file({})",
                hcl_string(crt.display().to_string())
            ),
        )
        .replace(
            "ca_key_pem   = etcd_ca.main.private_key_pem",
            &format!(
                "ca_key_pem   = file({})",
                hcl_string(key.display().to_string())
            ),
        );
    let config = config.replace(
        "output \"ca_cert_pem\" {\n  value = etcd_ca.main.cert_pem\n}\n",
        "",
    );
    assert!(!config.contains("etcd_ca.main.private_key_pem"));
    let ws = cluster3_workspace(&lab, &terraform, &config);
    ws.run_ok(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-target=etcd_ca.main",
    ]);

    let id = format!(
        "https://{}:2379,{},{}",
        lab.address("h1"),
        crt.display(),
        key.display()
    );
    ws.run_ok(&["import", "-input=false", "etcd_cluster.main", &id]);
    // The first plan records what the API cannot tell (name, ssh, binary
    // source, directories); nothing is replaced.
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(!run.stdout.contains("must be replaced"), "{}", run.stdout);
    assert!(run.stdout.contains("+ name"), "{}", run.stdout);
    ws.apply();
    let after: Vec<String> = ["h1", "h2", "h3"].iter().map(|h| host_state(h)).collect();
    assert_eq!(
        before, after,
        "the apply that adopted the import changed a host"
    );

    // The members run under the hand-made unit: the plan says so, and apply
    // refuses to start the provider's etcd next to them.
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(
        run.stdout
            .contains("served by an etcd the provider did not start"),
        "{}",
        run.stdout
    );
    let refused = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(refused.code, 1, "{}", refused.text());
    assert!(
        refused.text().contains("will not start a second etcd"),
        "{}",
        refused.text()
    );
    let after: Vec<String> = ["h1", "h2", "h3"].iter().map(|h| host_state(h)).collect();
    assert_eq!(before, after, "the refused apply changed a host");

    // The operator retires the hand-made units (the whole cluster is down);
    // one apply brings every member back under the provider's unit.
    for host in ["h1", "h2", "h3"] {
        lab.ssh_ok(host, "systemctl disable --now --quiet etcd-hand");
    }
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    ws.apply();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(
        code,
        0,
        "plan after taking over is not empty:\n{}",
        run.text()
    );
    assert!(
        lab.ssh_ok("h2", "cat /etc/systemd/system/etcd.service")
            .contains("Managed by terraform-provider-etcd"),
        "the provider's unit is not installed"
    );
    assert_eq!(
        lab.etcdctl("h2", KUBEADM_PKI, "get /made-by-hand --print-value-only")
            .trim(),
        "yes"
    );

    // From now on it is managed like any other cluster.
    lab.ssh_ok("h3", "systemctl stop etcd");
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    assert_eq!(
        lab.etcdctl("h3", KUBEADM_PKI, "get /made-by-hand --print-value-only")
            .trim(),
        "yes"
    );

    // A command that hangs on a host (sha256sum reading a FIFO put where the
    // etcd binary was) ends at its time limit: the plan finishes and says so.
    let limited = config.replace(
        "  pki_dir      = \"/etc/kubernetes/pki/etcd\"\n",
        "  pki_dir      = \"/etc/kubernetes/pki/etcd\"\n  timeouts {\n    command = \"5s\"\n  }\n",
    );
    assert_ne!(limited, config);
    std::fs::write(ws.path().join("main.tf"), &limited).unwrap();
    ws.apply();
    lab.ssh_ok(
        "h2",
        "mv /usr/local/bin/etcd /usr/local/bin/etcd.real && mkfifo /usr/local/bin/etcd",
    );
    let (code, run) = ws.plan_exit_code();
    lab.ssh_ok(
        "h2",
        "rm /usr/local/bin/etcd && mv /usr/local/bin/etcd.real /usr/local/bin/etcd",
    );
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.text().contains("time limit of 5s"), "{}", run.text());
    assert_eq!(ws.plan_exit_code().0, 0);

    // An unreachable host: a warning and a status, never a crash, and the
    // member stays in state.
    lab.fault("partition", "h2", &[]);
    let (code, run) = ws.plan_exit_code();
    lab.fault("heal", "h2", &[]);
    assert_eq!(code, 2, "{}", run.text());
    assert!(
        run.text().contains("Warning: Cluster member not reachable"),
        "{}",
        run.text()
    );
    assert!(
        run.stdout.contains("unreachable over SSH"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("- member {"),
        "the unreachable member was dropped:\n{}",
        run.stdout
    );
    // Once the network is back and e2 has caught up, nothing is left to do.
    let mut last = ws.plan_exit_code();
    for _ in 0..20 {
        if last.0 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        last = ws.plan_exit_code();
    }
    assert_eq!(last.0, 0, "{}", last.1.text());
}
