//! Access control with real Terraform, sshd and etcd: `etcd_role` and
//! `etcd_user` with the cluster's `auth_enabled`. `examples/shared-cluster`
//! gives a certificate user and a password user each one prefix, which they
//! read and write and nothing else (the password user is Patroni, through
//! etcd's HTTP gateway, where a named certificate is refused); out-of-band grants
//! and a changed password are drift that apply reverts; users and roles
//! import with an empty plan. A second test keeps auth on through a
//! snapshot, a CA replacement, a rolling upgrade and backups.

use acceptance_tests::fixtures::{lab_access_vars, lab_vars};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::patroni;
use acceptance_tests::terraform::{example, hcl_list, hcl_string, Install, Workspace};
use acceptance_tests::tools;

const PASSWORD: &str = "patroni-secret-1";
const PKI: &str = "/etc/kubernetes/pki";

/// etcdctl on the consumer host h4 with the apiserver's certificate and
/// `extra` arguments (a `--user`); its output and whether it succeeded.
fn consumer(lab: &Lab, extra: &str, args: &str) -> (bool, String) {
    let out = lab.ssh(
        "h4",
        &format!(
            "etcdctl --cacert {PKI}/etcd/ca.crt --cert {PKI}/apiserver-etcd-client.crt \
             --key {PKI}/apiserver-etcd-client.key --endpoints https://{}:2379 {extra} {args} 2>&1",
            lab.address("h1")
        ),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// etcdctl as root on member h1 (its `etcdctl.env`).
fn as_root(lab: &Lab, args: &str) -> String {
    lab.ssh_ok(
        "h1",
        &format!("set -a; . /etc/etcd/etcdctl.env; set +a; etcdctl {args} 2>&1"),
    )
}

fn assert_allowed(lab: &Lab, user: &str, args: &str) {
    let (ok, out) = consumer(lab, user, args);
    assert!(ok, "{user} {args}: {out}");
}

fn assert_denied(lab: &Lab, user: &str, args: &str) {
    let (ok, out) = consumer(lab, user, args);
    assert!(
        !ok && out.contains("permission denied"),
        "{user} {args} was not refused: {out}"
    );
}

#[test]
fn each_consumer_reaches_only_its_keys_and_drift_is_reverted() {
    let lab = Lab::up(LabId::SharedCluster, 4);
    patroni::install(&lab, "h4");
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(
        &terraform,
        Install::FilesystemMirror,
        &example("shared-cluster"),
    );
    let etcd: Vec<&str> = ["h1", "h2", "h3"].iter().map(|h| lab.address(h)).collect();
    let mut vars = lab_access_vars(&lab, &tools::etcd_release("3.6"));
    vars.push(("etcd_hosts", hcl_list(&etcd)));
    vars.push(("apiserver_hosts", hcl_list(&[lab.address("h4")])));
    vars.push(("patroni_hosts", hcl_list(&[lab.address("h4")])));
    vars.push(("patroni_password", hcl_string(PASSWORD)));
    ws.set_vars(&vars);
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    assert_eq!(
        ws.resource_values("etcd_cluster.main")["auth_enabled"],
        serde_json::Value::Bool(true)
    );
    lab.upload(
        &tools::etcd_dir(&tools::etcd_release("3.6")).join("etcdctl"),
        "h4",
        "/usr/local/bin/etcdctl",
    );

    // The certificate user: its prefix only.
    assert_allowed(&lab, "", "put /registry/pods/a 1");
    assert_allowed(&lab, "", "get /registry/pods/a");
    assert_denied(&lab, "", "put /service/x 1");
    assert_denied(&lab, "", "get /other");
    // The password user: its prefix only; a wrong password is refused.
    let patroni = format!("--user patroni:{PASSWORD}");
    assert_allowed(&lab, &patroni, "put /service/by-hand/x 1");
    assert_denied(&lab, &patroni, "put /registry/x 1");
    let (ok, out) = consumer(&lab, "--user patroni:wrong", "get /service/by-hand/x");
    assert!(
        !ok && out.contains("authentication failed"),
        "a wrong password: {out}"
    );
    // Patroni through the HTTP gateway, with its password and a
    // certificate without a name, keeps its keys under /service/.
    patroni::start(&lab, "h4", &ws.output("patroni_etcd3"));
    assert_eq!(
        as_root(&lab, "get --print-value-only /service/demo/leader").trim(),
        "pg1"
    );
    // A certificate with a name is refused there once auth is on.
    let named = lab.ssh_ok(
        "h4",
        &format!(
            "curl -s --cacert {PKI}/etcd/ca.crt --cert {PKI}/apiserver-etcd-client.crt \
             --key {PKI}/apiserver-etcd-client.key https://{}:2379/v3/kv/range -d '{{\"key\":\"L3NlcnZpY2Uv\"}}'",
            lab.address("h2")
        ),
    );
    assert!(named.contains("CommonName"), "{named}");

    // Out of band: a permission granted, a role granted, a password changed.
    as_root(&lab, "role grant-permission kubernetes readwrite /other");
    as_root(&lab, "user grant-role patroni kubernetes");
    lab.ssh_ok(
        "h1",
        "set -a; . /etc/etcd/etcdctl.env; set +a; echo changed-by-hand | etcdctl user passwd patroni --interactive=false",
    );
    assert_allowed(&lab, "", "get /other");
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    assert_denied(&lab, "", "get /other");
    assert_denied(&lab, &patroni, "put /registry/x 1");
    assert_allowed(&lab, &patroni, "get /service/by-hand/x");

    // Import of a user and a role plans no change.
    let endpoints: Vec<String> = etcd.iter().map(|a| format!("https://{a}:2379")).collect();
    let ca = ws.resource_values("etcd_ca.main");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
    std::fs::write(&cert, ca["cert_pem"].as_str().unwrap()).unwrap();
    std::fs::write(&key, ca["private_key_pem"].as_str().unwrap()).unwrap();
    for (address, name) in [
        ("etcd_role.kubernetes", "kubernetes"),
        ("etcd_user.apiserver", "kube-apiserver-etcd-client"),
    ] {
        ws.run_ok(&["state", "rm", address]);
        let id = format!(
            "{},{},{},{name}",
            endpoints.join(" "),
            cert.display(),
            key.display()
        );
        ws.run_ok(&["import", "-input=false", address, &id]);
    }
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 0, "import planned a change:\n{}", run.text());

    // A user whose password is write-only: it logs in, no state file holds
    // it, and a new version sets a new one.
    let reader = |password: &str, version: u32| {
        format!(
            "resource \"etcd_user\" \"reader\" {{\n  name = \"reader\"\n  password_wo = \"{password}\"\n  \
             password_wo_version = {version}\n  roles = [etcd_role.patroni.name]\n  \
             cluster_endpoints = etcd_cluster.main.client_endpoints\n  ca_cert_pem = etcd_ca.main.cert_pem\n  \
             ca_key_pem = etcd_ca.main.private_key_pem\n}}\n"
        )
    };
    std::fs::write(ws.path().join("reader.tf"), reader("first-secret", 1)).unwrap();
    ws.apply();
    assert_allowed(&lab, "--user reader:first-secret", "get /service/by-hand/x");
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap();
    assert!(state.contains("\"reader\"") && !state.contains("first-secret"));
    assert_eq!(ws.plan_exit_code().0, 0);
    std::fs::write(ws.path().join("reader.tf"), reader("second-secret", 2)).unwrap();
    ws.apply();
    assert_allowed(
        &lab,
        "--user reader:second-secret",
        "get /service/by-hand/x",
    );
    let (ok, out) = consumer(&lab, "--user reader:first-secret", "get /service/by-hand/x");
    assert!(!ok, "the old password still logs in: {out}");

    ws.destroy();
}

#[test]
fn auth_stays_on_through_a_snapshot_a_ca_replacement_an_upgrade_and_backups() {
    let lab = Lab::up(LabId::AuthThroughChanges, 3);
    let terraform = tools::newest_terraform();
    let snapshot = std::env::temp_dir().join(format!("auth-snapshot-{}.db", std::process::id()));
    let config = format!(
        "{}\nresource \"etcd_snapshot\" \"before\" {{\n  cluster_endpoints = etcd_cluster.main.client_endpoints\n  \
         ca_cert_pem = etcd_ca.main.cert_pem\n  ca_key_pem = etcd_ca.main.private_key_pem\n  path = {}\n  \
         delete_file_on_destroy = true\n}}\n",
        include_str!("cluster/scaling.tf").replace(
            "  extra_flags  = var.flags\n",
            "  extra_flags  = var.flags\n  auth_enabled = true\n",
        ),
        hcl_string(snapshot.display().to_string())
    );
    assert!(config.contains("auth_enabled = true"));
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, &config);
    let hosts: Vec<&str> = lab.hosts.iter().map(|(_, a)| a.as_str()).collect();
    let set_vars = |version: &str| {
        let mut vars = lab_vars(&lab, &hosts, version);
        vars.push(("etcd_version", hcl_string(version)));
        vars.push(("backup_schedule", hcl_string("hourly")));
        ws.set_vars(&vars);
    };
    let (from, to) = (tools::etcd_release("3.5"), tools::etcd_release("3.6"));
    set_vars(&from);
    ws.apply();
    assert!(snapshot.is_file(), "no snapshot with auth on");
    // Someone without a user is refused: auth is on.
    let refused = lab.ssh(
        "h2",
        "etcdctl --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/server.crt \
         --key /etc/kubernetes/pki/etcd/server.key --endpoints https://127.0.0.1:2379 put /x 1",
    );
    assert!(!refused.status.success(), "auth is not on");

    // A new CA (two applies), then 3.5 -> 3.6, one member at a time; each
    // change snapshots the cluster first through the backup job, as root.
    ws.replace_ca_in_two_applies("etcd_ca.main");
    set_vars(&to);
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);
    let versions = ws.resource_values("etcd_cluster.main")["member_versions"].clone();
    assert_eq!(versions["e3"], to.as_str(), "{versions}");
    let backups = lab.ssh_ok("h1", "ls /var/backups/etcd");
    assert!(
        backups.contains("etcd-before-ca-rotation-") && backups.contains("etcd-before-roll-"),
        "{backups}"
    );
    let status = lab.ssh_ok(
        "h3",
        "set -a; . /etc/etcd/etcdctl.env; set +a; etcdctl auth status 2>&1",
    );
    assert!(status.contains("Authentication Status: true"), "{status}");
    let refused = lab.ssh(
        "h3",
        "etcdctl --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/server.crt \
         --key /etc/kubernetes/pki/etcd/server.key --endpoints https://127.0.0.1:2379 put /x 1",
    );
    assert!(
        !refused.status.success(),
        "auth was turned off by the changes"
    );
    // delete_file_on_destroy deletes the snapshot it saved, nothing else
    // (a refresh would already drop the resource for the changed file).
    std::fs::write(&snapshot, "someone else's file").unwrap();
    let destroyed = ws.run_ok(&["destroy", "-auto-approve", "-input=false", "-refresh=false"]);
    assert!(
        destroyed
            .words()
            .contains("is no longer the snapshot this resource saved"),
        "{}",
        destroyed.text()
    );
    assert_eq!(
        std::fs::read_to_string(&snapshot).unwrap(),
        "someone else's file"
    );
    std::fs::remove_file(&snapshot).unwrap();
}

#[test]
fn bad_role_and_user_input_fails_at_plan_time() {
    let terraform = tools::newest_terraform();
    let role = |permission: &str| {
        format!(
            "terraform {{\n  required_providers {{\n    etcd = {{ source = \"terraform-provider-etcd/etcd\" }}\n  }}\n}}\n\
             resource \"etcd_ca\" \"main\" {{\n  common_name = \"etcd-ca\"\n}}\n\
             resource \"etcd_role\" \"app\" {{\n  name = \"app\"\n  cluster_endpoints = [\"https://127.0.0.2:2379\"]\n  \
             ca_cert_pem = etcd_ca.main.cert_pem\n  ca_key_pem = etcd_ca.main.private_key_pem\n  \
             permission {{\n{permission}\n  }}\n}}\n\
             resource \"etcd_user\" \"root\" {{\n  name = \"root\"\n  cluster_endpoints = [\"https://127.0.0.2:2379\"]\n  \
             ca_cert_pem = etcd_ca.main.cert_pem\n  ca_key_pem = etcd_ca.main.private_key_pem\n}}\n"
        )
    };
    for (permission, summary) in [
        ("    key = \"/app/\"\n    prefix = true\n    permission = \"all\"", "Unknown permission"),
        ("    key = \"\"\n    permission = \"read\"", "Empty key"),
        (
            "    key = \"/app/\"\n    range_end = \"/app\"\n    permission = \"read\"",
            "Empty range",
        ),
        (
            "    key = \"/app/\"\n    range_end = \"/app0\"\n    prefix = true\n    permission = \"read\"",
            "Both range_end and prefix",
        ),
    ] {
        let ws = Workspace::new(&terraform, Install::FilesystemMirror, &role(permission));
        let (code, run) = ws.plan_exit_code();
        assert_eq!(code, 1, "{summary}: {}", run.text());
        for expected in [summary, "The root user belongs to the cluster"] {
            assert!(run.text().contains(expected), "{expected}:\n{}", run.text());
        }
    }
}
