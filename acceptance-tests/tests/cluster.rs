//! `etcd_cluster` with real Terraform, sshd, systemd and etcd: bootstrap
//! from bare hosts, drift detected by `plan -detailed-exitcode` and repaired
//! by apply with no data lost, interrupted bootstrap, destroy.

use std::time::Duration;

use acceptance_tests::fixtures::{
    check_writes, expect_drift, start_cluster_by_hand, start_writer, KUBEADM_PKI,
};
use acceptance_tests::lab::Lab;
use acceptance_tests::terraform::{example, hcl_list, hcl_string, Install, Workspace};
use acceptance_tests::tools;

/// The variables every cluster configuration of these tests takes: the
/// member addresses, the lab's SSH key and known_hosts, and the etcd binaries.
fn lab_vars(lab: &Lab, hosts: &[&str], etcd_version: &str) -> Vec<(&'static str, String)> {
    vec![
        ("hosts", hcl_list(hosts)),
        (
            "ssh_private_key_path",
            hcl_string(lab.client_key().display().to_string()),
        ),
        (
            "known_hosts_path",
            hcl_string(lab.known_hosts().display().to_string()),
        ),
        (
            "etcd_binaries",
            hcl_string(tools::etcd_dir(etcd_version).display().to_string()),
        ),
    ]
}

fn cluster3_workspace(lab: &Lab, terraform: &std::path::Path, config: &str) -> Workspace {
    let ws = Workspace::new(terraform, Install::FilesystemMirror, config);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    ws.set_vars(&lab_vars(lab, &hosts, "3.4.23"));
    ws
}

/// Starts `terraform apply` in the background.
fn spawn_apply(ws: &Workspace) -> std::process::Child {
    ws.command(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits up to a minute for `ready`; fails the test with `what` otherwise.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ctrl-C to a running apply, as a user would (Terraform then calls
/// StopProvider); the apply must fail. Returns its output.
fn interrupt(apply: std::process::Child) -> String {
    assert!(std::process::Command::new("kill")
        .args(["-INT", &apply.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = apply.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the interrupted apply succeeded:\n{text}"
    );
    text
}

/// Starts `terraform apply` in the background and returns once `host`'s
/// member is installed and enabled (its start is under way).
fn apply_until_installed(ws: &Workspace, lab: &Lab, host: &str) -> std::process::Child {
    let apply = spawn_apply(ws);
    wait_for(&format!("{host} was never installed"), || {
        lab.ssh(host, "systemctl is-enabled etcd").status.success()
    });
    apply
}

fn retry_etcdctl(lab: &Lab, args: &str) {
    for _ in 0..60 {
        let command = format!(
            "ETCDCTL_API=3 etcdctl --cacert {KUBEADM_PKI}/ca.crt --cert {KUBEADM_PKI}/server.crt \
             --key {KUBEADM_PKI}/server.key --endpoints https://127.0.0.1:2379 {args}"
        );
        if lab.ssh("h1", &command).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("etcdctl {args} kept failing");
}

/// Every one of the three members reports `version` in the state.
fn assert_member_versions(ws: &Workspace, version: &str) {
    let cluster = &ws.state_json()["values"]["root_module"]["resources"][1]["values"];
    let expected = serde_json::json!({"e1": version, "e2": version, "e3": version});
    assert_eq!(cluster["member_versions"], expected);
}

fn assert_started_members(lab: &Lab, want: usize) {
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert_eq!(
        list.matches(", started, ").count(),
        want,
        "member list:\n{list}"
    );
}

#[test]
fn three_members_bootstrap_show_drift_repair_it_and_destroy() {
    let lab = Lab::up(3, 3);
    let terraform = tools::newest_terraform();
    let ws = cluster3_workspace(&lab, &terraform, &example("cluster-3"));
    ws.apply();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "second plan is not empty:\n{}", run.text());
    assert_started_members(&lab, 3);
    assert_member_versions(&ws, "3.4.23");
    let health = lab.etcdctl("h2", KUBEADM_PKI, "endpoint health --cluster");
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");

    // Each member's files as the runbooks and the issue ask.
    let modes = lab.ssh_ok(
        "h1",
        &format!(
            "stat -c '%n %a %U' /var/lib/etcd {KUBEADM_PKI}/server.key {KUBEADM_PKI}/peer.key; \
             systemctl show etcd -p Type -p Restart -p User -p LimitNOFILE"
        ),
    );
    for expected in [
        "/var/lib/etcd 700 etcd",
        "server.key 600 etcd",
        "peer.key 600 etcd",
        "Type=notify",
        "Restart=on-failure",
        "User=etcd",
        "LimitNOFILE=65536",
    ] {
        assert!(modes.contains(expected), "{expected} not in:\n{modes}");
    }
    let san = lab.ssh_ok("h2", &format!("openssl x509 -noout -ext subjectAltName -in {KUBEADM_PKI}/server.crt 2>/dev/null || cat {KUBEADM_PKI}/server.crt"));
    assert!(
        san.contains(lab.address("h2")) || san.contains("BEGIN CERTIFICATE"),
        "{san}"
    );
    assert!(
        lab.ssh("h1", "ls /etc/kubernetes/pki/etcd/ca.key")
            .status
            .code()
            != Some(0),
        "the CA key reached a member"
    );

    lab.etcdctl("h1", KUBEADM_PKI, "put /precious before-drift");

    lab.ssh_ok("h2", "systemctl stop etcd");
    expect_drift(&ws, "stopped member", "e2", "etcd unit is inactive");

    lab.ssh_ok("h3", "echo '# hand edit' >> /etc/etcd/etcd.conf.yml");
    expect_drift(&ws, "changed config", "e3", "config changed on the host");

    // A certificate replaced by hand (here: the peer cert swapped for the server cert).
    lab.ssh_ok(
        "h1",
        &format!("cp {KUBEADM_PKI}/server.crt {KUBEADM_PKI}/peer.crt"),
    );
    expect_drift(
        &ws,
        "replaced certificate",
        "e1",
        "peer.crt changed on the host",
    );

    // A wrong binary (etcd 3.5.1 where 3.4.23 belongs).
    lab.upload(&tools::etcd_dir("3.5.1").join("etcd"), "h3", "/tmp/etcd");
    lab.ssh_ok("h3", "mv /tmp/etcd /usr/local/bin/etcd");
    expect_drift(&ws, "wrong binary", "e3", "etcd changed on the host");
    assert!(lab
        .ssh_ok("h3", "/usr/local/bin/etcd --version")
        .contains("3.4.23"));

    let id = lab
        .etcdctl("h1", KUBEADM_PKI, "member list")
        .lines()
        .find(|l| l.contains(", e3,"))
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    // etcd refuses membership changes until e3 (just restarted) has been
    // connected for a few seconds.
    retry_etcdctl(&lab, &format!("member remove {id}"));
    expect_drift(
        &ws,
        "member removed out of band",
        "e3",
        "not a member of the cluster",
    );
    assert_started_members(&lab, 3);
    assert!(
        lab.ssh_ok("h3", "ls -d /var/lib/etcd.removed-*")
            .contains("removed-"),
        "old data dir not kept"
    );

    retry_etcdctl(
        &lab,
        &format!(
            "member add intruder --peer-urls=https://{}:2390",
            lab.address("h1")
        ),
    );
    expect_drift(&ws, "member added out of band", "unmanaged", "unstarted");

    // A crash is systemd's to fix (Restart=on-failure): no drift remains.
    lab.ssh_ok("h2", "pkill -KILL -x etcd");
    std::thread::sleep(Duration::from_secs(7));
    let (code, run) = ws.plan_exit_code();
    assert_eq!(
        code,
        0,
        "a crashed member was not restarted by systemd:\n{}",
        run.text()
    );

    assert_eq!(
        lab.etcdctl("h3", KUBEADM_PKI, "get /precious --print-value-only")
            .trim(),
        "before-drift"
    );

    ws.destroy();
    for (name, _) in &lab.hosts {
        let left = lab.ssh_ok(name, "pgrep -x etcd; systemctl list-unit-files etcd.service --no-legend; ls /usr/local/bin; true");
        assert!(left.trim().is_empty(), "{name} still has etcd: {left}");
        assert!(
            lab.ssh(name, "test -d /var/lib/etcd/member")
                .status
                .success(),
            "{name}: data dir not kept"
        );
    }
}

#[test]
fn five_members_download_and_check_the_release_tarball() {
    let lab = Lab::up(4, 5);
    let releases = tools::tools_dir().join("releases");
    let server = lab.serve(&releases, 8379);
    let sha =
        std::fs::read_to_string(releases.join("etcd-v3.4.23-linux-amd64.tar.gz.sha256")).unwrap();
    let sha = sha.split_whitespace().next().unwrap().to_string();
    let terraform = tools::oldest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, &example("cluster-5"));
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let url = format!("{}/etcd-v3.4.23-linux-amd64.tar.gz", server.url);
    let vars = |sum: &str| {
        vec![
            ("hosts", hcl_list(&hosts)),
            (
                "ssh_private_key_path",
                hcl_string(lab.client_key().display().to_string()),
            ),
            (
                "known_hosts_path",
                hcl_string(lab.known_hosts().display().to_string()),
            ),
            ("etcd_url", hcl_string(&url)),
            ("etcd_sha256", hcl_string(sum)),
        ]
    };

    // A tarball that does not match its checksum is refused on the host.
    ws.set_vars(&vars(&"0".repeat(64)));
    let run = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.text().contains("FAILED") || run.text().contains("sha256"),
        "{}",
        run.text()
    );
    assert!(
        !lab.ssh("h1", "test -e /usr/local/bin/etcd")
            .status
            .success(),
        "unchecked binary installed"
    );

    ws.set_vars(&vars(&sha));
    ws.apply();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "second plan is not empty:\n{}", run.text());
    let members = lab.etcdctl("h5", "/etc/etcd/pki", "member list");
    assert_eq!(members.matches(", started, ").count(), 5, "{members}");
    assert!(lab
        .ssh_ok("h4", "cat /etc/etcd/etcd.conf.yml")
        .contains("snapshot-count: 10000"));
    ws.destroy();
    assert!(lab
        .ssh_ok("h1", "pgrep -x etcd || echo none")
        .contains("none"));
}

#[test]
fn a_host_killed_during_bootstrap_then_apply_again_converges() {
    let lab = Lab::up(5, 3);
    let terraform = tools::newest_terraform();
    let config = example("cluster-3").replace(
        "  pki_dir      = \"/etc/kubernetes/pki/etcd\"\n",
        "  pki_dir      = \"/etc/kubernetes/pki/etcd\"\n\n  timeouts {\n    create = \"30s\"\n  }\n",
    );
    assert!(config.contains("create = \"30s\""));
    let ws = cluster3_workspace(&lab, &terraform, &config);
    // Kill h3 once its member is installed and starting.
    let apply = apply_until_installed(&ws, &lab, "h3");
    lab.fault("kill", "h3", &[]);
    let first = apply.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&first.stdout).to_string()
        + &String::from_utf8_lossy(&first.stderr);
    // Terraform wraps diagnostics: compare with whitespace collapsed.
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if first.status.success() {
        // h3 died after the cluster had formed: the cluster is in state,
        // with a warning and e3's status as drift (never tainted).
        assert!(
            words.contains("Cluster not healthy right after bootstrap")
                && words.contains("\"e3\": \"unreachable"),
            "apply succeeded without a word about the dead member:\n{text}"
        );
    } else {
        assert!(
            words.contains("late: e3"),
            "the error does not name the late member:\n{text}"
        );
    }

    lab.fault("start", "h3", &[]);
    ws.apply();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(
        code,
        0,
        "plan after the second apply is not empty:\n{}",
        run.text()
    );
    assert_started_members(&lab, 3);
    ws.destroy();
}

#[test]
fn single_member_example_warns_and_purges_its_data_on_destroy() {
    let lab = Lab::up(6, 1);
    let terraform = tools::oldest_terraform();
    let ws = Workspace::new(&terraform, Install::DevOverrides, &example("single-member"));
    ws.set_vars(&[
        ("host", hcl_string(lab.address("h1"))),
        (
            "ssh_config_file",
            hcl_string(lab.ssh_config().display().to_string()),
        ),
        (
            "etcd_binaries",
            hcl_string(tools::etcd_dir("3.4.23").display().to_string()),
        ),
    ]);
    let run = ws.apply();
    assert!(
        run.text().contains("no fault tolerance"),
        "no quorum warning:\n{}",
        run.text()
    );
    assert_eq!(ws.plan_exit_code().0, 0);
    ws.destroy();
    assert!(
        !lab.ssh("h1", "test -e /var/lib/etcd").status.success(),
        "data dir not purged"
    );
}

#[test]
fn bad_cluster_input_fails_at_plan_time_and_touches_no_host() {
    let marker = tempfile::tempdir().unwrap();
    let touched = marker.path().join("touched");
    let ssh_config = marker.path().join("ssh_config");
    // Any SSH connection at all would leave the marker behind.
    std::fs::write(
        &ssh_config,
        format!(
            "Host *\n  ProxyCommand sh -c 'touch {}; exit 1'\n",
            touched.display()
        ),
    )
    .unwrap();
    let ca = "resource \"etcd_ca\" \"a\" {\n  common_name = \"a\"\n}\nresource \"etcd_ca\" \"b\" {\n  common_name = \"b\"\n}\n";
    let binaries = tools::etcd_dir("3.4.23").display().to_string();
    let cluster = |body: &str| {
        format!(
            "terraform {{\n  required_providers {{\n    etcd = {{ source = \"terraform-provider-etcd/etcd\" }}\n  }}\n}}\n{ca}\
             resource \"etcd_cluster\" \"bad\" {{\n  name = \"c\"\n  ca_cert_pem = etcd_ca.a.cert_pem\n  \
             ca_key_pem = etcd_ca.a.private_key_pem\n  ssh {{\n    config_file = \"{}\"\n  }}\n{body}\n}}\n",
            ssh_config.display()
        )
    };
    let source = format!(
        "  etcd_version = \"3.4.23\"\n  binary_source {{\n    local_path = \"{binaries}\"\n  }}\n"
    );
    let members = |hosts: &[(&str, &str)]| -> String {
        hosts
            .iter()
            .map(|(n, h)| format!("  member {{\n    name = \"{n}\"\n    host = \"{h}\"\n  }}\n"))
            .collect()
    };
    let three = members(&[("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")]);
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("{source}{}", members(&[("a", "127.0.0.2"), ("a", "127.0.0.3"), ("c", "127.0.0.4")])), "Duplicate member name", "name = \"a\""),
        (format!("{source}{}", members(&[("a", "127.0.0.2"), ("b", "127.0.0.2"), ("c", "127.0.0.4")])), "Duplicate host", "host = \"127.0.0.2\""),
        (format!("{source}{}", members(&[("a", "127.0.0.2"), ("b", "not a host!"), ("c", "127.0.0.4")])), "Invalid host", "host = \"not a host!\""),
        (format!("  etcd_version = \"3.4\"\n  binary_source {{\n    local_path = \"{binaries}\"\n  }}\n{three}"), "Invalid etcd version", "etcd_version = \"3.4\""),
        (format!("  etcd_version = \"3.4.23\"\n{three}"), "Missing binary source", "with etcd_cluster.bad"),
        (format!("  etcd_version = \"3.4.23\"\n  binary_source {{\n    url = \"http://127.0.0.1:1/e.tgz\"\n    sha256 = \"xyz\"\n  }}\n{three}"), "Invalid checksum", "sha256 = \"xyz\""),
        (format!("{source}  extra_flags = {{ \"data-dir\" = \"/tmp\" }}\n{three}"), "Flag managed by the provider", "extra_flags = {"),
    ];
    let terraform = tools::newest_terraform();
    for (body, summary, attribute) in cases {
        let ws = Workspace::new(&terraform, Install::DevOverrides, &cluster(&body));
        let (code, run) = ws.plan_exit_code();
        assert_eq!(code, 1, "{summary}: plan should fail:\n{}", run.text());
        assert!(
            run.text().contains(summary),
            "{summary} missing:\n{}",
            run.text()
        );
        assert!(
            run.text().contains(attribute),
            "{summary}: not on {attribute}:\n{}",
            run.text()
        );
    }
    // A CA key that does not belong to the certificate.
    let mismatched = cluster(&format!("{source}{three}")).replace(
        "ca_key_pem = etcd_ca.a.private_key_pem",
        "ca_key_pem = etcd_ca.b.private_key_pem",
    );
    let ws = Workspace::new(&terraform, Install::DevOverrides, &mismatched);
    ws.apply_targets(&["etcd_ca.a", "etcd_ca.b"]);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 1, "{}", run.text());
    assert!(
        run.text().contains("CA certificate and key do not fit"),
        "{}",
        run.text()
    );
    // Even member count: a warning that explains quorum, not an error.
    let even = cluster(&format!(
        "{source}{}",
        members(&[("a", "127.0.0.2"), ("b", "127.0.0.3")])
    ));
    let ws = Workspace::new(&terraform, Install::DevOverrides, &even);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.text().contains("quorum is 2 of 2"), "{}", run.text());
    assert!(!touched.exists(), "a plan touched a host over SSH");
}

#[test]
fn interrupting_a_bootstrap_stops_the_provider_and_the_next_apply_resumes() {
    let lab = Lab::up(11, 3);
    let terraform = tools::newest_terraform();
    let ws = cluster3_workspace(&lab, &terraform, &example("cluster-3"));
    // h3 cannot reach its peers: the bootstrap waits for e3 (5 minutes by default).
    lab.fault("partition", "h3", &["h1", "h2"]);
    let apply = apply_until_installed(&ws, &lab, "h3");
    std::thread::sleep(Duration::from_secs(2));
    let text = interrupt(apply);
    assert!(
        text.contains("stopped by Terraform"),
        "the provider did not stop at Terraform's request:\n{text}"
    );

    lab.fault("heal", "h3", &[]);
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    assert_started_members(&lab, 3);
    ws.destroy();
}

#[test]
fn a_cluster_started_by_hand_is_imported_and_then_managed() {
    let lab = Lab::up(12, 3);
    let pki = tempfile::tempdir().unwrap();
    start_cluster_by_hand(&lab, pki.path(), 3);
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
    // source, directories); the members are healthy, nothing is replaced.
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(
        !run.stdout.contains("must be replaced") && !run.stdout.contains("-> \"healthy\""),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("+ name"), "{}", run.stdout);
    ws.apply();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(
        code,
        0,
        "plan after adopting the settings is not empty:\n{}",
        run.text()
    );
    assert!(
        lab.ssh_ok("h2", "cat /etc/systemd/system/etcd.service")
            .contains("--name=e2"),
        "apply rewrote a host"
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

#[test]
fn client_api_through_ssh_tunnels_when_the_client_port_is_unreachable() {
    let lab = Lab::up(13, 3);
    let members: String = lab
        .hosts
        .iter()
        .zip(&lab.second_addresses)
        .enumerate()
        .map(|(i, ((_, address), second))| {
            format!("  member {{\n    name = \"e{}\"\n    host = \"{address}\"\n    ssh_host = \"{second}\"\n  }}\n", i + 1)
        })
        .collect();
    let config = format!(
        "terraform {{\n  required_providers {{\n    etcd = {{ source = \"terraform-provider-etcd/etcd\" }}\n  }}\n}}\n\
         resource \"etcd_ca\" \"main\" {{\n  common_name = \"etcd-ca\"\n}}\n\
         resource \"etcd_cluster\" \"main\" {{\n  name = \"tunnelled\"\n  ca_cert_pem = etcd_ca.main.cert_pem\n  \
         ca_key_pem = etcd_ca.main.private_key_pem\n  etcd_version = \"3.4.23\"\n  \
         binary_source {{\n    local_path = \"{}\"\n  }}\n  \
         ssh {{\n    user = \"root\"\n    private_key_path = \"{}\"\n    known_hosts_path = \"{}\"\n    tunnel = true\n  }}\n{members}}}\n",
        tools::etcd_dir("3.4.23").display(),
        lab.client_key().display(),
        lab.known_hosts().display()
    );
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
        "ETCDCTL_API=3 etcdctl --cacert /etc/etcd/pki/ca.crt --cert /etc/etcd/pki/server.crt \
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
fn binaries_from_the_distribution_packages() {
    let lab = Lab::up(14, 3);
    let server = lab.serve(&tools::tools_dir().join("apt"), 8380);
    for (name, _) in &lab.hosts {
        // The hosts' only package source: the etcd packages served here.
        lab.ssh_ok(
            name,
            &format!("rm -f /etc/apt/sources.list.d/*; echo 'deb [trusted=yes] {}/ ./' > /etc/apt/sources.list", server.url),
        );
    }
    let config = example("cluster-3").replace(
        "  binary_source {\n    local_path = var.etcd_binaries\n  }",
        "  binary_source {\n    os_package = true\n  }",
    );
    assert!(config.contains("os_package = true"));
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

/// Starts a client on h1 that writes a key every 50 ms and records each
/// acknowledged write in /root/acked (h1 must stay a member throughout).
const SCALING: &str = r#"
terraform {
  required_providers {
    etcd = { source = "terraform-provider-etcd/etcd" }
  }
}
variable "hosts" { type = list(string) }
variable "ssh_private_key_path" { type = string }
variable "known_hosts_path" { type = string }
variable "etcd_binaries" { type = string }
variable "etcd_version" {
  type    = string
  default = "3.4.23"
}
variable "flags" {
  type    = map(string)
  default = {}
}
resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}
resource "etcd_cluster" "main" {
  name         = "scaling"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
  etcd_version = var.etcd_version
  extra_flags  = var.flags
  pki_dir      = "/etc/kubernetes/pki/etcd"
  binary_source {
    local_path = var.etcd_binaries
  }
  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }
  dynamic "member" {
    for_each = var.hosts
    content {
      name = "e${member.key + 1}"
      host = member.value
    }
  }
}
"#;

#[test]
fn scale_out_and_in_and_replace_a_host_without_losing_a_write() {
    let lab = Lab::up(15, 5);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let set_hosts = |hosts: &[&str]| {
        let addresses: Vec<&str> = hosts.iter().map(|h| lab.address(h)).collect();
        ws.set_vars(&lab_vars(&lab, &addresses, "3.4.23"));
    };
    let timed_apply = |what: &str| {
        let started = std::time::Instant::now();
        ws.apply();
        eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
        assert_eq!(
            ws.plan_exit_code().0,
            0,
            "{what}: plan after apply is not empty"
        );
    };
    set_hosts(&["h1", "h2", "h3"]);
    timed_apply("bootstrap 3");

    start_writer(&lab);

    set_hosts(&["h1", "h2", "h3", "h4", "h5"]);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    timed_apply("scale 3 -> 5 (2 members added)");
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert_eq!(list.matches(", started, ").count(), 5, "{list}");
    assert!(
        !list.contains("true"),
        "a learner was left unpromoted:\n{list}"
    );

    set_hosts(&["h1", "h2", "h3"]);
    timed_apply("scale 5 -> 3 (2 members removed)");
    assert_started_members(&lab, 3);
    assert!(lab
        .ssh_ok("h5", "pgrep -x etcd || echo none")
        .contains("none"));
    assert!(
        lab.ssh("h5", "test -d /var/lib/etcd/member")
            .status
            .success(),
        "data dir of a removed member not kept"
    );

    // e3 moves from h3 to h4 (same name, new host): removed, then added.
    lab.ssh_ok("h4", "mv /var/lib/etcd /var/lib/etcd.old");
    set_hosts(&["h1", "h2", "h4"]);
    timed_apply("replace e3's host");
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert!(
        list.contains(&format!("e3, https://{}:2380", lab.address("h4"))),
        "{list}"
    );

    // With e2 down, removing e3 would leave e1 alone of two: refused at plan time.
    lab.ssh_ok("h2", "systemctl stop etcd");
    std::thread::sleep(Duration::from_secs(1));
    set_hosts(&["h1", "h2"]);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 1, "{}", run.text());
    assert!(
        run.text()
            .contains("Membership change refused while members are unhealthy"),
        "{}",
        run.text()
    );
    // The cluster is untouched: all three members are still in it.
    assert_started_members(&lab, 3);
    lab.ssh_ok("h2", "systemctl start etcd");
    set_hosts(&["h1", "h2", "h4"]);
    ws.apply();

    check_writes(&lab, "h4");
}

#[test]
fn rolling_flag_change_and_upgrade_from_3_4_to_3_5_without_losing_a_write() {
    let lab = Lab::up(16, 3);
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
    let timed_apply = |what: &str| {
        let started = std::time::Instant::now();
        ws.apply();
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("{what}: {seconds:.1} s, {:.1} s per member", seconds / 3.0);
        assert_eq!(
            ws.plan_exit_code().0,
            0,
            "{what}: plan after apply is not empty"
        );
    };
    set_vars("3.4.23", "{}");
    ws.apply();
    start_writer(&lab);

    set_vars("3.4.23", r#"{ "snapshot-count" = "5000" }"#);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    timed_apply("rolling flag change");
    for (name, _) in &lab.hosts {
        assert!(
            lab.ssh_ok(name, "cat /etc/etcd/etcd.conf.yml")
                .contains("snapshot-count: 5000"),
            "{name}"
        );
    }

    set_vars("3.5.1", r#"{ "snapshot-count" = "5000" }"#);
    timed_apply("rolling upgrade 3.4.23 -> 3.5.1");
    assert_member_versions(&ws, "3.5.1");
    let status = lab.etcdctl("h2", KUBEADM_PKI, "endpoint status --cluster");
    assert_eq!(status.matches("3.5.1").count(), 3, "{status}");

    set_vars("3.4.23", r#"{ "snapshot-count" = "5000" }"#);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 1, "{}", run.text());
    assert!(run.text().contains("is a downgrade"), "{}", run.text());

    check_writes(&lab, "h3");
}

#[test]
fn member_certificates_are_renewed_one_member_at_a_time_when_due() {
    let lab = Lab::up(17, 3);
    let terraform = tools::newest_terraform();
    let config = SCALING.replace(
        "  extra_flags  = var.flags\n",
        "  extra_flags  = var.flags\n  cert_validity_hours      = 720\n  cert_early_renewal_hours = 24\n",
    );
    assert!(config.contains("cert_early_renewal_hours = 24"));
    let mut ws = Workspace::new(&terraform, Install::FilesystemMirror, &config);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    ws.set_vars(&lab_vars(&lab, &hosts, "3.4.23"));
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    let before = lab.ssh_ok(
        "h1",
        &format!("sha256sum {KUBEADM_PKI}/server.crt {KUBEADM_PKI}/peer.crt"),
    );
    start_writer(&lab);

    // 700 hours on, the 720-hour certificates are inside their 24-hour window.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(700);
    ws.set_env(
        "ETCD_PROVIDER_FAKE_NOW",
        &later
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert_eq!(
        run.stdout.matches("due for renewal").count(),
        3,
        "{}",
        run.stdout
    );
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
    ws.remove_env("ETCD_PROVIDER_FAKE_NOW");
    assert_eq!(ws.plan_exit_code().0, 0);
    let health = lab.etcdctl("h3", KUBEADM_PKI, "endpoint health --cluster");
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    check_writes(&lab, "h2");
}

#[test]
fn an_interrupted_rolling_change_is_finished_by_the_next_apply_without_redoing_members() {
    let lab = Lab::up(18, 3);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let set_flags = |flags: &str| {
        let mut vars = lab_vars(&lab, &hosts, "3.4.23");
        vars.extend([("flags", flags.to_string())]);
        ws.set_vars(&vars);
    };
    set_flags("{}");
    ws.apply();
    start_writer(&lab);

    set_flags(r#"{ "snapshot-count" = "7000" }"#);
    let apply = spawn_apply(&ws);
    wait_for("e1 was never rolled", || {
        lab.ssh_ok("h1", "cat /etc/etcd/etcd.conf.yml")
            .contains("snapshot-count: 7000")
    });
    // Ctrl-C while e1 is being rolled.
    let text = interrupt(apply);
    assert!(text.contains("Rolling change stopped"), "{text}");
    let rolled: Vec<bool> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| {
            lab.ssh_ok(h, "cat /etc/etcd/etcd.conf.yml")
                .contains("snapshot-count: 7000")
        })
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

    // The change is still planned, and the next apply finishes it.
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.stdout.contains("snapshot-count"), "{}", run.stdout);
    // Let e1 settle if it was caught between rewrite and restart.
    std::thread::sleep(Duration::from_secs(2));
    let e1_before = started("h1");
    let e1_fresh = lab.ssh_ok("h1", "pid=$(systemctl show -p MainPID --value etcd); [ /proc/$pid -nt /etc/etcd/etcd.conf.yml ] && echo fresh; true");
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    for host in ["h1", "h2", "h3"] {
        assert!(
            lab.ssh_ok(host, "cat /etc/etcd/etcd.conf.yml")
                .contains("snapshot-count: 7000"),
            "{host}"
        );
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

/// A resource's values in `terraform show -json`, by address.
fn resource_values(ws: &Workspace, address: &str) -> serde_json::Value {
    let state = ws.state_json();
    state["values"]["root_module"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("{address} is not in the state"))["values"]
        .clone()
}

#[test]
fn ca_rotation_trusts_both_then_the_new_ca_only_and_resumes_after_an_interrupt() {
    let lab = Lab::up(19, 3);
    let terraform = tools::newest_terraform();
    // A second CA with the same name: members tell them apart by signature.
    let config = SCALING
        .replace(
            "resource \"etcd_ca\" \"main\" {\n  common_name = \"etcd-ca\"\n}\n",
            "resource \"etcd_ca\" \"main\" {\n  common_name = \"etcd-ca\"\n}\n\
             resource \"etcd_ca\" \"next\" {\n  common_name = \"etcd-ca\"\n}\n\
             variable \"next_ca\" {\n  type    = bool\n  default = false\n}\n",
        )
        .replace(
            "  ca_cert_pem  = etcd_ca.main.cert_pem\n  ca_key_pem   = etcd_ca.main.private_key_pem\n",
            "  ca_cert_pem  = var.next_ca ? etcd_ca.next.cert_pem : etcd_ca.main.cert_pem\n  \
             ca_key_pem   = var.next_ca ? etcd_ca.next.private_key_pem : etcd_ca.main.private_key_pem\n",
        );
    assert!(config.contains("etcd_ca.next.private_key_pem"));
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, &config);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let use_next_ca = |next: bool| {
        let mut vars = lab_vars(&lab, &hosts, "3.4.23");
        vars.push(("next_ca", next.to_string()));
        ws.set_vars(&vars);
    };
    use_next_ca(false);
    ws.apply();
    let old_ca = resource_values(&ws, "etcd_ca.main")["cert_pem"]
        .as_str()
        .unwrap()
        .to_string();
    let new_ca = resource_values(&ws, "etcd_ca.next")["cert_pem"]
        .as_str()
        .unwrap()
        .to_string();
    start_writer(&lab);

    use_next_ca(true);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.stdout.contains("ca_cert_pem"), "{}", run.stdout);

    // Interrupt once the first member trusts both CAs.
    let apply = spawn_apply(&ws);
    let started = std::time::Instant::now();
    let trusted = |host: &str| lab.ssh_ok(host, &format!("cat {KUBEADM_PKI}/ca.crt"));
    wait_for("e1 never trusted both CAs", || {
        trusted("h1").matches("BEGIN CERTIFICATE").count() >= 2
    });
    let text = interrupt(apply);
    assert!(text.contains("Rolling change stopped"), "{text}");
    assert!(
        trusted("h3").contains(old_ca.trim()),
        "e3 lost the old CA before the others had new certificates"
    );

    // The rotation is still planned; the next apply finishes it.
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    let resumed = std::time::Instant::now();
    ws.apply();
    eprintln!(
        "CA rotation (3 passes over 3 members): {:.1} s in all, the resumed apply {:.1} s",
        started.elapsed().as_secs_f64(),
        resumed.elapsed().as_secs_f64()
    );
    assert_eq!(
        ws.plan_exit_code().0,
        0,
        "plan after the rotation is not empty"
    );
    let files = tempfile::tempdir().unwrap();
    let new_ca_file = files.path().join("next-ca.crt");
    std::fs::write(&new_ca_file, &new_ca).unwrap();
    for (name, _) in &lab.hosts {
        assert_eq!(
            trusted(name).trim(),
            new_ca.trim(),
            "{name} trusts another set of CAs"
        );
        for kind in ["server", "peer"] {
            let cert = lab.ssh_ok(name, &format!("cat {KUBEADM_PKI}/{kind}.crt"));
            let local = files.path().join(format!("{name}-{kind}.crt"));
            std::fs::write(&local, cert).unwrap();
            let verify = std::process::Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(&new_ca_file)
                .arg(&local)
                .output()
                .unwrap();
            assert!(
                verify.status.success(),
                "{name} {kind}.crt is not from the new CA: {}",
                String::from_utf8_lossy(&verify.stdout)
            );
        }
    }
    let health = lab.etcdctl("h2", KUBEADM_PKI, "endpoint health --cluster");
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    check_writes(&lab, "h3");
}
