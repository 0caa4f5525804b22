//! `etcd_ca` with real Terraform (every version present), installed through
//! a filesystem mirror and through dev_overrides, checked with openssl.

use std::process::Command;

use acceptance_tests::fixtures::new_p256_key;
use acceptance_tests::terraform::{example, Install, Workspace};
use acceptance_tests::tools;

fn openssl(args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The full lifecycle on the CA example: apply, an empty second plan,
/// renewal-window replacement, destroy.
fn lifecycle(terraform: &std::path::Path, install: Install) {
    let mut ws = Workspace::new(terraform, install.clone(), &example("ca"));
    let label = format!("{} via {install:?}", ws.version());
    ws.apply();
    let cert = ws.output("ca_cert_pem");
    let text = openssl(&["x509", "-noout", "-text"], &cert);
    assert!(text.contains("CA:TRUE"), "{label}: not a CA:\n{text}");
    assert!(
        text.contains("CN = etcd-ca") && text.contains("O = infrastructure"),
        "{label}: subject:\n{text}"
    );
    assert!(
        text.contains("Certificate Sign"),
        "{label}: key usage:\n{text}"
    );
    assert!(
        text.contains("prime256v1"),
        "{label}: key algorithm:\n{text}"
    );
    let cert_file = ws.path().join("ca.pem");
    std::fs::write(&cert_file, &cert).unwrap();
    let verify = openssl(
        &[
            "verify",
            "-CAfile",
            cert_file.to_str().unwrap(),
            cert_file.to_str().unwrap(),
        ],
        "",
    );
    assert!(verify.contains("OK"), "{label}: {verify}");

    let (code, run) = ws.plan_exit_code();
    assert_eq!(
        code,
        0,
        "{label}: second plan is not empty:\n{}",
        run.text()
    );

    // Inside the renewal window (720 h before the end) the plan replaces the CA.
    let end = ws.output("ca_expires");
    let end =
        time::OffsetDateTime::parse(&end, &time::format_description::well_known::Rfc3339).unwrap();
    let inside = (end - time::Duration::hours(719))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    ws.set_env("ETCD_PROVIDER_FAKE_NOW", &inside);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(
        code,
        2,
        "{label}: renewal window not planned:\n{}",
        run.text()
    );
    assert!(
        run.stdout.contains("ready_for_renewal") && run.stdout.contains("forces replacement"),
        "{label}:\n{}",
        run.stdout
    );
    ws.apply();
    assert_ne!(
        ws.output("ca_cert_pem"),
        cert,
        "{label}: renewal did not make a new CA"
    );
    let (code, run) = ws.plan_exit_code();
    assert_eq!(
        code,
        0,
        "{label}: plan after renewal is not empty:\n{}",
        run.text()
    );
    ws.remove_env("ETCD_PROVIDER_FAKE_NOW");

    ws.destroy();
    let state = ws.state_json();
    assert!(
        state["values"].is_null(),
        "{label}: state not empty after destroy: {state}"
    );
}

#[test]
fn ca_lifecycle_with_every_terraform_and_install_method() {
    for terraform in tools::terraform_versions() {
        for install in [Install::FilesystemMirror, Install::DevOverrides] {
            lifecycle(&terraform, install);
        }
    }
}

const CA_CONFIG: &str = r#"
terraform {
  required_providers {
    etcd = { source = "terraform-provider-etcd/etcd" }
  }
}
resource "etcd_ca" "main" {
  common_name           = "kubeadm-etcd-ca"
  key_algorithm         = "RSA_2048"
  validity_period_hours = 87600
  early_renewal_hours   = 720
}
"#;

#[test]
fn import_of_a_ca_made_with_openssl_plans_empty() {
    for terraform in tools::terraform_versions() {
        let ws = Workspace::new(&terraform, Install::FilesystemMirror, CA_CONFIG);
        let (key, crt) = (ws.path().join("ca.key"), ws.path().join("ca.crt"));
        // The shape kubeadm makes: an RSA key in PKCS#1 and a ten-year CA.
        let run = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "3650",
                "-subj",
                "/CN=kubeadm-etcd-ca",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let pkcs1 = Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&key)
            .output()
            .unwrap();
        std::fs::write(&key, &pkcs1.stdout).unwrap();

        // A key that is not the certificate's is refused, and nothing is imported.
        let other = ws.path().join("other.key");
        new_p256_key(&other);
        let bad = ws.run(&[
            "import",
            "etcd_ca.main",
            &format!("{},{}", crt.display(), other.display()),
        ]);
        assert_eq!(bad.code, 1, "{}", bad.text());
        assert!(
            bad.text().contains("does not belong to the certificate"),
            "{}",
            bad.text()
        );

        let id = format!("{},{}", crt.display(), key.display());
        ws.run_ok(&["import", "etcd_ca.main", &id]);
        let (code, run) = ws.plan_exit_code();
        assert_eq!(code, 0, "plan after import is not empty:\n{}", run.text());
        let state = ws.state_json();
        let values = &state["values"]["root_module"]["resources"][0]["values"];
        assert_eq!(values["key_algorithm"], "RSA_2048");
        assert_eq!(values["common_name"], "kubeadm-etcd-ca");
        let imported = values["cert_pem"].as_str().unwrap();
        assert_eq!(
            imported.trim(),
            std::fs::read_to_string(&crt).unwrap().trim()
        );
    }
}

#[test]
fn bad_input_is_reported_on_the_attribute_at_plan_time() {
    let cases = [
        ("validity_period_hours = 0", "validity_period_hours"),
        ("validity_period_hours = -4", "validity_period_hours"),
        (
            "validity_period_hours = 10\n  early_renewal_hours = 20",
            "early_renewal_hours",
        ),
        ("key_algorithm = \"DSA_1024\"", "key_algorithm"),
    ];
    for terraform in tools::terraform_versions() {
        for (setting, attribute) in cases {
            let config = format!(
                "terraform {{\n  required_providers {{\n    etcd = {{ source = \"terraform-provider-etcd/etcd\" }}\n  }}\n}}\nresource \"etcd_ca\" \"bad\" {{\n  common_name = \"x\"\n  {setting}\n}}\n"
            );
            let ws = Workspace::new(&terraform, Install::DevOverrides, &config);
            let (code, run) = ws.plan_exit_code();
            assert_eq!(code, 1, "{setting}: plan should fail:\n{}", run.text());
            let text = run.text();
            assert!(text.contains("with etcd_ca.bad,"), "{setting}: {text}");
            assert!(
                text.contains(&format!("{attribute} =")),
                "{setting}: diagnostic not on {attribute}:\n{text}"
            );
            assert!(!text.contains("panic"), "{text}");
        }
    }
}

#[test]
fn logs_reach_terraform_and_never_hold_the_private_key() {
    let terraform = tools::newest_terraform();
    let mut ws = Workspace::new(&terraform, Install::DevOverrides, &example("ca"));
    ws.set_env("TF_LOG", "TRACE");
    let run = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(run.code, 0, "{}", run.text());
    // Parsed as hclog JSON by Terraform: the message is plain text and the
    // module is a field, not a raw JSON line.
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("created CA \"etcd-ca\""))
        .expect("provider log line in TF_LOG output");
    assert!(
        line.contains("[INFO]") && line.contains("@module=etcd.ca"),
        "not parsed as hclog: {line}"
    );
    let state = ws.state_json();
    let key = state["values"]["root_module"]["resources"][0]["values"]["private_key_pem"]
        .as_str()
        .unwrap()
        .to_string();
    let body = key.lines().nth(1).unwrap();
    assert!(
        !run.stderr.contains(body),
        "the CA private key appears in the logs"
    );
    assert!(
        !run.stdout.contains("BEGIN PRIVATE KEY"),
        "the private key is shown in the plan output"
    );
    ws.remove_env("TF_LOG");
    ws.destroy();
}

#[test]
fn the_provider_serves_without_tls_when_terraform_disables_it() {
    for terraform in tools::terraform_versions() {
        let mut ws = Workspace::new(&terraform, Install::FilesystemMirror, &example("ca"));
        ws.set_env("TF_DISABLE_PLUGIN_TLS", "1");
        ws.set_env("TF_LOG", "warn");
        let run = ws.run(&["apply", "-auto-approve", "-input=false"]);
        assert_eq!(run.code, 0, "{}: {}", ws.version(), run.text());
        assert!(
            run.stderr.contains("serving without TLS"),
            "{}: the provider did not say it serves without TLS:\n{}",
            ws.version(),
            run.stderr
        );
        assert_eq!(ws.plan_exit_code().0, 0);
        ws.destroy();
    }
}
