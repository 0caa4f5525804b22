//! CA rotation over two applies: both CAs trusted (resumed after an
//! interrupt), then the new one only.

use acceptance_tests::fixtures::{check_writes, start_writer, wait_for, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{interrupt, Install, Workspace};
use acceptance_tests::tools;

use crate::{scaling_vars, settled_since, starts_since, SCALING};

#[test]
fn ca_rotation_trusts_both_then_the_new_ca_only_and_resumes_after_an_interrupt() {
    let lab = Lab::up(LabId::CaRotation, 3);
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
        let mut vars = scaling_vars(&lab, &hosts, "3.7");
        vars.push(("next_ca", next.to_string()));
        ws.set_vars(&vars);
    };
    use_next_ca(false);
    ws.apply();
    let old_ca = ws.resource_values("etcd_ca.main")["cert_pem"]
        .as_str()
        .unwrap()
        .to_string();
    let new_ca = ws.resource_values("etcd_ca.next")["cert_pem"]
        .as_str()
        .unwrap()
        .to_string();
    start_writer(&lab);

    use_next_ca(true);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.stdout.contains("ca_cert_pem"), "{}", run.stdout);

    // Interrupt once the first member trusts both CAs.
    let apply = ws.spawn_apply();
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

    // The rotation is still planned; the next apply finishes its first
    // stage: every member trusts both CAs.
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    let resumed = std::time::Instant::now();
    ws.apply();
    for (name, _) in &lab.hosts {
        let trust = trusted(name);
        assert!(
            trust.contains(old_ca.trim()) && trust.contains(new_ca.trim()),
            "{name} does not trust both CAs after the first stage"
        );
    }
    // The second stage is planned, and the apply after finishes it.
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(
        run.stdout.contains("retiring_ca_cert_pem"),
        "{}",
        run.stdout
    );
    let second_stage = settled_since(&lab);
    ws.apply();
    // Pass 2 (new certificates) restarts nobody; pass 3 restarts each once.
    for (name, _) in &lab.hosts {
        assert_eq!(
            starts_since(&lab, name, &second_stage),
            1,
            "{name} was not restarted exactly once in the second stage"
        );
    }
    eprintln!(
        "CA rotation (3 passes over 3 members, two applies): {:.1} s in all, after the interrupt {:.1} s",
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
