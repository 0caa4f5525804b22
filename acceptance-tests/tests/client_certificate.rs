//! `etcd_client_certificate` with real Terraform, sshd and etcd: issued
//! from the cluster's CA and installed on a consumer host that is not a
//! member, where etcdctl uses it; a deleted file is drift and restored
//! (with the reload command run), a certificate in its renewal window is
//! reissued in place and reinstalled, bad input is refused at plan time
//! with no host touched, destroy removes the files, and a consumer is
//! never refused while the cluster rotates to a new CA.

use acceptance_tests::fixtures::lab_access_vars;
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{hcl_string, Install, Workspace};
use acceptance_tests::tools;

const DIR: &str = "/etc/app/etcd";

/// A one-member cluster on `member` and a certificate for `app`
/// installed on `consumer`; `extra` goes into the certificate.
fn config(member: &str, consumer: &str, extra: &str) -> String {
    let version = tools::etcd_release("3.6");
    format!(
        r#"terraform {{
  required_providers {{
    etcd = {{ source = "terraform-provider-etcd/etcd" }}
  }}
}}
variable "ssh_private_key_path" {{ type = string }}
variable "known_hosts_path" {{ type = string }}
variable "etcd_binaries" {{ type = string }}
resource "etcd_ca" "main" {{
  common_name = "etcd-ca"
}}
resource "etcd_cluster" "main" {{
  name                = "consumers"
  ca_cert_pem         = etcd_ca.main.cert_pem
  ca_key_pem          = etcd_ca.main.private_key_pem
  etcd_version        = "{version}"
  cert_validity_hours = 87600
  binary_source {{
    local_path = var.etcd_binaries
  }}
  ssh {{
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }}
  member {{
    name = "e1"
    host = "{member}"
  }}
}}
resource "etcd_client_certificate" "app" {{
  ca_cert_pem = etcd_ca.main.cert_pem
  ca_key_pem  = etcd_ca.main.private_key_pem
  common_name = "app"
{extra}  ssh {{
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }}
  install {{
    host           = "{consumer}"
    cert_path      = "{DIR}/client.crt"
    key_path       = "{DIR}/client.key"
    ca_path        = "{DIR}/ca.crt"
    reload_command = "date +%s%N >> /var/log/app-reloads"
  }}
}}
"#
    )
}

#[test]
fn a_client_certificate_is_installed_kept_renewed_and_removed() {
    let lab = Lab::up(LabId::ClientCertificates, 2);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(
        &terraform,
        Install::FilesystemMirror,
        &config(lab.address("h1"), lab.address("h2"), ""),
    );
    ws.set_vars(&lab_access_vars(&lab, &tools::etcd_release("3.6")));
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);

    // The consumer: etcdctl on h2, with nothing but the installed files.
    lab.upload(
        &tools::etcd_dir(&tools::etcd_release("3.6")).join("etcdctl"),
        "h2",
        "/usr/local/bin/etcdctl",
    );
    let consumer = |args: &str| {
        lab.ssh(
            "h2",
            &format!(
                "etcdctl --cacert {DIR}/ca.crt --cert {DIR}/client.crt --key {DIR}/client.key \
                 --endpoints https://{}:2379 {args}",
                lab.address("h1")
            ),
        )
    };
    assert!(consumer("put /app/leader h2").status.success());
    let modes = lab.ssh_ok(
        "h2",
        &format!("stat -c '%n %a %U' {DIR}/client.key {DIR}/client.crt"),
    );
    assert!(
        modes.contains("client.key 600 root") && modes.contains("client.crt 644 root"),
        "{modes}"
    );
    let reloads = || {
        lab.ssh_ok("h2", "wc -l < /var/log/app-reloads")
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(reloads(), 1);

    // A deleted key: drift, restored by apply, and the consumer reloaded.
    lab.ssh_ok("h2", &format!("rm {DIR}/client.key"));
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(
        run.stdout.contains("client.key is missing"),
        "{}",
        run.stdout
    );
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    assert_eq!(reloads(), 2);
    assert!(consumer("get /app/leader").status.success());

    // A reload that fails is owed until it succeeds: drift, run again.
    lab.ssh_ok(
        "h2",
        &format!("rm {DIR}/client.key; mv /var/log/app-reloads /var/log/kept && mkdir /var/log/app-reloads"),
    );
    let failed = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(failed.code, 0, "{}", failed.text());
    assert!(
        failed.words().contains("the next apply runs it again"),
        "{}",
        failed.text()
    );
    lab.ssh_ok(
        "h2",
        "rmdir /var/log/app-reloads && mv /var/log/kept /var/log/app-reloads",
    );
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(
        run.words().contains("the reload command has not succeeded"),
        "{}",
        run.text()
    );
    ws.apply();
    assert_eq!(reloads(), 3);
    assert_eq!(ws.plan_exit_code().0, 0);

    // 8100 hours on, the one-year certificate is inside its 720-hour window.
    let before = lab.ssh_ok("h2", &format!("sha256sum < {DIR}/client.crt"));
    let mut ws = ws;
    ws.set_clock_ahead(8100);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.stdout.contains("ready_for_renewal"), "{}", run.stdout);
    assert!(!run.stdout.contains("must be replaced"), "{}", run.stdout);
    ws.apply();
    ws.reset_clock();
    assert_ne!(
        lab.ssh_ok("h2", &format!("sha256sum < {DIR}/client.crt")),
        before
    );
    assert_eq!(reloads(), 4);
    assert!(consumer("get /app/leader").status.success());
    assert_eq!(ws.plan_exit_code().0, 0);

    ws.destroy();
    assert!(
        !lab.ssh(
            "h2",
            &format!("ls {DIR}/client.key {DIR}/client.crt {DIR}/ca.crt")
        )
        .status
        .success(),
        "destroy left files on the consumer"
    );
}

#[test]
fn bad_client_certificate_input_fails_at_plan_time() {
    let terraform = tools::newest_terraform();
    for (extra, path_from, path_to, summary) in [
        (
            "  key_algorithm = \"DSA\"\n",
            "",
            "",
            "Unknown key algorithm",
        ),
        (
            "",
            "cert_path      = \"/etc/app/etcd/client.crt\"",
            "cert_path      = \"client.crt\"",
            "Invalid path",
        ),
        (
            "",
            "reload_command",
            "key_mode = \"0800\"\n    reload_command",
            "Invalid mode",
        ),
    ] {
        let config = config("127.0.0.2", "127.0.0.3", extra).replace(path_from, path_to);
        let ws = Workspace::new(&terraform, Install::FilesystemMirror, &config);
        ws.set_vars(&[
            ("ssh_private_key_path", hcl_string("/nonexistent")),
            ("known_hosts_path", hcl_string("/nonexistent")),
            (
                "etcd_binaries",
                hcl_string(
                    tools::etcd_dir(&tools::etcd_release("3.6"))
                        .display()
                        .to_string(),
                ),
            ),
        ]);
        let (code, run) = ws.plan_exit_code();
        assert_eq!(code, 1, "{summary}: {}", run.text());
        assert!(run.text().contains(summary), "{summary}:\n{}", run.text());
    }
}

#[test]
fn the_kubernetes_example_installs_kubeadms_client_certificates() {
    let lab = Lab::up(LabId::KubernetesExample, 4);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(
        &terraform,
        Install::FilesystemMirror,
        &acceptance_tests::terraform::example("kubernetes-external-etcd"),
    );
    let etcd: Vec<&str> = ["h1", "h2", "h3"].iter().map(|h| lab.address(h)).collect();
    let mut vars = lab_access_vars(&lab, &tools::etcd_release("3.6"));
    vars.push(("etcd_hosts", acceptance_tests::terraform::hcl_list(&etcd)));
    vars.push((
        "control_plane_hosts",
        acceptance_tests::terraform::hcl_list(&[lab.address("h4")]),
    ));
    ws.set_vars(&vars);
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    // kube-apiserver's view: its certificate and the CA where kubeadm puts them.
    lab.upload(
        &tools::etcd_dir(&tools::etcd_release("3.6")).join("etcdctl"),
        "h4",
        "/usr/local/bin/etcdctl",
    );
    let health = lab.ssh_ok(
        "h4",
        &format!(
            "etcdctl --cacert /etc/kubernetes/pki/etcd/ca.crt \
             --cert /etc/kubernetes/pki/apiserver-etcd-client.crt --key /etc/kubernetes/pki/apiserver-etcd-client.key \
             --endpoints https://{}:2379 endpoint health --cluster 2>&1",
            lab.address("h2")
        ),
    );
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    let subject = lab.ssh_ok(
        "h4",
        "sed '1d;$d' /etc/kubernetes/pki/etcd/healthcheck-client.crt | base64 -d | tr -c '[:print:]' ' '",
    );
    assert!(
        subject.contains("kube-etcd-healthcheck-client"),
        "{subject}"
    );
    let output = ws.output("kubeadm_etcd_external");
    assert!(
        output.contains(&format!("- \"https://{}:2379\"", lab.address("h3")))
            && output.contains("\"certFile\": \"/etc/kubernetes/pki/apiserver-etcd-client.crt\""),
        "{output}"
    );
    ws.destroy();
}

#[test]
fn a_consumer_is_never_refused_through_a_ca_replacement() {
    let lab = Lab::up(LabId::ConsumerThroughRotation, 4);
    let terraform = tools::newest_terraform();
    let members: String = ["h1", "h2", "h3"]
        .iter()
        .enumerate()
        .map(|(i, h)| {
            format!(
                "  member {{\n    name = \"e{}\"\n    host = \"{}\"\n  }}\n",
                i + 1,
                lab.address(h)
            )
        })
        .collect();
    let single = format!(
        "  member {{\n    name = \"e1\"\n    host = \"{}\"\n  }}\n",
        lab.address("h1")
    );
    let config = config(
        lab.address("h1"),
        lab.address("h4"),
        "  trusted_ca_pem = etcd_cluster.main.trusted_ca_pem\n",
    )
    .replace(&single, &members);
    assert!(config.contains("name = \"e3\""));
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, &config);
    ws.set_vars(&lab_access_vars(&lab, &tools::etcd_release("3.6")));
    ws.apply();

    // The consumer on h4 writes all the time, with whatever files it has.
    lab.upload(
        &tools::etcd_dir(&tools::etcd_release("3.6")).join("etcdctl"),
        "h4",
        "/usr/local/bin/etcdctl",
    );
    let endpoints: Vec<String> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| format!("https://{}:2379", lab.address(h)))
        .collect();
    lab.ssh_ok(
        "h4",
        &format!(
            "systemd-run --unit=consumer sh -c 'i=0; while true; do i=$((i+1)); etcdctl \
             --dial-timeout=2s --command-timeout=3s --cacert {DIR}/ca.crt --cert {DIR}/client.crt \
             --key {DIR}/client.key --endpoints {} put /app/beat $i >/dev/null 2>>/root/consumer.err \
             && echo $i >> /root/consumer.ok; sleep 0.2; done'",
            endpoints.join(",")
        ),
    );
    std::thread::sleep(std::time::Duration::from_secs(2));

    // A new CA: the first apply has the members trust both and reissues the
    // consumer's certificate from the new CA; the second retires the old.
    ws.replace_ca_in_two_applies("etcd_ca.main");
    assert_eq!(ws.plan_exit_code().0, 0);
    std::thread::sleep(std::time::Duration::from_secs(2));
    lab.ssh_ok("h4", "systemctl stop consumer");

    let refused = lab.ssh_ok(
        "h4",
        "grep -ciE 'x509|certificate|tls|handshake' /root/consumer.err || true",
    );
    let errors = lab.ssh_ok(
        "h4",
        "cat /root/consumer.err 2>/dev/null | sort | uniq -c | sort -rn | head -5",
    );
    assert_eq!(
        refused.trim(),
        "0",
        "the consumer was refused during the rotation:\n{errors}"
    );
    let ok = lab
        .ssh_ok("h4", "wc -l < /root/consumer.ok")
        .trim()
        .parse::<u32>()
        .unwrap();
    assert!(ok > 20, "the consumer wrote only {ok} times");
    // It ends on the new CA alone, as the members do.
    let new_ca = ws.resource_values("etcd_ca.main")["cert_pem"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        lab.ssh_ok("h4", &format!("cat {DIR}/ca.crt")).trim(),
        new_ca.trim()
    );
    eprintln!("consumer writes during the rotation: {ok}; other errors (availability):\n{errors}");
}
