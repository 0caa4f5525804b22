//! The CA key outside state (`examples/ca-key-outside-state`) with real
//! Terraform, sshd, systemd and etcd: the key is in a file that only the
//! provider block and a write-only attribute read. No state or plan file
//! holds a private key through a cluster's creation, a snapshot, a drift
//! check and repair, and a CA rotation; a plan without the key says so on
//! `ca_key_pem`; a client certificate stands in for the CA key of a
//! snapshot; a Terraform without write-only attributes is refused.

use std::path::Path;
use std::process::Command;

use acceptance_tests::fixtures::{lab_vars, new_p256_key, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{example, hcl_string, Install, Workspace};
use acceptance_tests::tools;

/// Every piece of text in a saved plan (a zip archive): its entries,
/// uncompressed, and `terraform show -json` of it.
fn plan_text(ws: &Workspace, plan: &str) -> String {
    let entries = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\n\
             sys.stdout.buffer.write(b''.join(z.read(n) for n in z.namelist()))",
        ])
        .arg(ws.path().join(plan))
        .output()
        .unwrap();
    assert!(
        entries.status.success(),
        "{}",
        String::from_utf8_lossy(&entries.stderr)
    );
    let shown = ws.run_ok(&["show", "-json", plan]).stdout;
    format!("{}\n{shown}", String::from_utf8_lossy(&entries.stdout))
}

/// Fails if `text` (named `what`) holds any private key, or a line of one
/// of `keys`.
fn assert_no_private_key(text: &str, what: &str, keys: &[&str]) {
    assert!(!text.contains("PRIVATE KEY"), "{what} holds a private key");
    for key in keys {
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!text.contains(line), "{what} holds a line of the CA key");
        }
    }
}

fn state_text(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap()
}

#[test]
fn no_state_or_plan_file_holds_the_ca_key_through_creation_drift_and_rotation() {
    let lab = Lab::up(LabId::CaKeyOutsideState, 3);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(
        &terraform,
        Install::FilesystemMirror,
        &example("ca-key-outside-state"),
    );
    let files = tempfile::tempdir().unwrap();
    let (first_path, next_path) = (files.path().join("ca-1.key"), files.path().join("ca-2.key"));
    let first = new_p256_key(&first_path);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let set_vars = |key: &Path, previous: Option<&Path>, version: u32| {
        let mut vars = lab_vars(&lab, &hosts, &tools::etcd_release("3.6"));
        vars.push(("ca_key_path", hcl_string(key.display().to_string())));
        vars.push((
            "previous_ca_key_path",
            previous.map_or("null".to_string(), |p| hcl_string(p.display().to_string())),
        ));
        vars.push(("ca_key_version", version.to_string()));
        vars.push((
            "snapshot_path",
            hcl_string(files.path().join("etcd.db").display().to_string()),
        ));
        ws.set_vars(&vars);
    };
    set_vars(&first_path, None, 1);
    ws.run_ok(&["plan", "-input=false", "-out=create.tfplan"]);
    assert_no_private_key(
        &plan_text(&ws, "create.tfplan"),
        "the creation plan",
        &[&first],
    );
    ws.apply();
    assert!(
        files.path().join("etcd.db").is_file(),
        "no snapshot was taken"
    );
    assert_no_private_key(&state_text(&ws), "the state", &[&first]);
    let ca = ws.output("ca_cert_pem");
    assert!(
        lab.ssh_ok("h1", &format!("cat {KUBEADM_PKI}/ca.crt"))
            .contains(ca.trim()),
        "the members do not trust the CA"
    );

    // Drift checks and repairs work without the key in state.
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "plan after create is not empty:\n{}", run.text());
    lab.ssh_ok("h2", "systemctl stop etcd");
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "a stopped member is not drift:\n{}", run.text());
    ws.apply();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "the repair left drift:\n{}", run.text());

    // Without its key the provider refuses to plan, on ca_key_pem.
    let stranger_path = files.path().join("stranger.key");
    new_p256_key(&stranger_path);
    set_vars(&stranger_path, None, 1);
    let refused = ws.run(&["plan", "-input=false"]);
    assert_eq!(refused.code, 1, "{}", refused.text());
    assert!(
        refused.text().contains("No private key for the CA")
            && refused.text().contains("ca_key_pem"),
        "{}",
        refused.text()
    );

    // A CA rotation to a new key: both keys in the provider block.
    let next = new_p256_key(&next_path);
    set_vars(&next_path, Some(&first_path), 2);
    ws.run_ok(&["plan", "-input=false", "-out=rotate.tfplan"]);
    assert_no_private_key(
        &plan_text(&ws, "rotate.tfplan"),
        "the rotation plan",
        &[&first, &next],
    );
    ws.apply(); // stage 1: both CAs trusted
    ws.apply(); // stage 2: new certificates, the new CA only
    let new_ca = ws.output("ca_cert_pem");
    assert_ne!(new_ca, ca, "the CA was not replaced");
    for (name, _) in &lab.hosts {
        assert_eq!(
            lab.ssh_ok(name, &format!("cat {KUBEADM_PKI}/ca.crt"))
                .trim(),
            new_ca.trim(),
            "{name} does not trust the new CA alone"
        );
    }
    set_vars(&next_path, None, 2);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(
        code,
        0,
        "plan after the rotation is not empty:\n{}",
        run.text()
    );
    assert_no_private_key(
        &state_text(&ws),
        "the state after the rotation",
        &[&first, &next],
    );

    // A client certificate (issued with the provider's key) stands in for
    // the CA key of a snapshot.
    let by_certificate = files.path().join("by-certificate.db");
    std::fs::write(
        ws.path().join("client.tf"),
        format!(
            "resource \"etcd_client_certificate\" \"snapshots\" {{\n  ca_cert_pem = etcd_ca.main.cert_pem\n  \
             common_name = \"root\"\n}}\n\
             resource \"etcd_snapshot\" \"by_certificate\" {{\n  cluster_endpoints = etcd_cluster.main.client_endpoints\n  \
             ca_cert_pem       = etcd_ca.main.cert_pem\n  \
             client_cert_pem   = etcd_client_certificate.snapshots.cert_pem\n  \
             client_key_pem    = etcd_client_certificate.snapshots.private_key_pem\n  \
             path              = {}\n}}\n",
            hcl_string(by_certificate.display().to_string())
        ),
    )
    .unwrap();
    ws.apply();
    assert!(
        by_certificate.is_file(),
        "no snapshot with the client certificate"
    );
    assert_eq!(ws.plan_exit_code().0, 0);
    ws.destroy();
}

/// Terraform before 1.11 would store a write-only value, so the provider
/// refuses one there; 1.11 and later validate the same configuration.
#[test]
fn a_write_only_key_is_refused_by_terraform_without_write_only_attributes() {
    for terraform in tools::terraform_versions() {
        let ws = Workspace::new(
            &terraform,
            Install::FilesystemMirror,
            &example("ca-key-outside-state"),
        );
        let version = ws.version(); // "Terraform v1.11.4"
        let minor: u32 = version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("cannot read {version:?}"));
        let run = ws.run(&["validate", "-no-color"]);
        if minor < 11 {
            assert_eq!(run.code, 1, "{version}: {}", run.text());
            assert!(
                run.text().contains("needs Terraform or OpenTofu 1.11")
                    && run.text().contains("private_key_pem_wo"),
                "{version}: {}",
                run.text()
            );
        } else {
            assert_eq!(run.code, 0, "{version}: {}", run.text());
        }
    }
}
