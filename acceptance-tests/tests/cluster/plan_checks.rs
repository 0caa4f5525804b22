//! Bad input refused at plan time, on its attribute, with no host touched.

use acceptance_tests::terraform::{Install, Workspace};
use acceptance_tests::tools;

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
    let current = tools::etcd_release("3.6");
    let binaries = tools::etcd_dir(&current).display().to_string();
    let release = |minor: &str| {
        let version = tools::etcd_release(minor);
        let dir = tools::etcd_dir(&version).display().to_string();
        format!("  etcd_version = \"{version}\"\n  binary_source {{\n    local_path = \"{dir}\"\n  }}\n")
    };
    let old_binaries = tools::etcd_dir("3.4.23").display().to_string();
    let cluster = |body: &str| {
        format!(
            "terraform {{\n  required_providers {{\n    etcd = {{ source = \"terraform-provider-etcd/etcd\" }}\n  }}\n}}\n{ca}\
             resource \"etcd_cluster\" \"bad\" {{\n  name = \"c\"\n  ca_cert_pem = etcd_ca.a.cert_pem\n  \
             ca_key_pem = etcd_ca.a.private_key_pem\n  ssh {{\n    config_file = \"{}\"\n  }}\n{body}\n}}\n",
            ssh_config.display()
        )
    };
    let source = release("3.6");
    let members = |hosts: &[(&str, &str)]| -> String {
        hosts
            .iter()
            .map(|(n, h)| format!("  member {{\n    name = \"{n}\"\n    host = \"{h}\"\n  }}\n"))
            .collect()
    };
    let three = members(&[("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")]);
    let valid = format!("{source}{three}");
    let with = |extra: &str| cluster(&format!("{source}{extra}{three}"));
    // A backup block with an s3 block, `line` in place of its default.
    let s3 = |line: &str| {
        let defaults = [
            ("endpoint", "\"https://s3.example.net\""),
            ("bucket", "\"backups\""),
            ("access_key_id", "\"key\""),
            ("secret_access_key_wo", "\"secret\""),
        ];
        let given = line.trim_start().split(' ').next().unwrap_or("");
        let kept: String = defaults
            .iter()
            .filter(|(name, _)| *name != given)
            .map(|(name, value)| format!("    {name} = {value}\n"))
            .collect();
        format!("  backup {{\n    schedule = \"hourly\"\n    s3 {{\n{kept}{line}    }}\n  }}\n")
    };
    let in_ssh = |extra: &str| cluster(&valid).replace("  ssh {\n", &format!("  ssh {{\n{extra}"));
    // (configuration, the diagnostic's summary, a line of the attribute it points at)
    let cases: Vec<(String, &str, &str)> = vec![
        (cluster(&format!("{source}{}", members(&[("a", "127.0.0.2"), ("a", "127.0.0.3"), ("c", "127.0.0.4")]))), "Duplicate member name", "name = \"a\""),
        (cluster(&format!("{source}{}", members(&[("a", "127.0.0.2"), ("b", "127.0.0.2"), ("c", "127.0.0.4")]))), "Duplicate host", "host = \"127.0.0.2\""),
        (cluster(&format!("{source}{}", members(&[("a", "127.0.0.2"), ("b", "not a host!"), ("c", "127.0.0.4")]))), "Invalid host", "host = \"not a host!\""),
        (cluster(&format!("{source}{}", members(&[("a", "127.0.0.2"), ("b c", "127.0.0.3"), ("c", "127.0.0.4")]))), "Invalid member name", "name = \"b c\""),
        (cluster(&format!("{source}{}", members(&[("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")]).replacen("host = \"127.0.0.2\"", "host = \"127.0.0.2\"\n    ssh_host = \"-oProxyCommand=touch /tmp/x\"", 1))), "Invalid SSH host", "ssh_host = "),
        (cluster(&format!("  etcd_version = \"3.4\"\n  binary_source {{\n    local_path = \"{binaries}\"\n  }}\n{three}")), "Invalid etcd version", "etcd_version = \"3.4\""),
        (cluster(&format!("  etcd_version = \"3.4.23.1\"\n  binary_source {{\n    local_path = \"{binaries}\"\n  }}\n{three}")), "Invalid etcd version", "etcd_version = \"3.4.23.1\""),
        (cluster(&format!("  etcd_version = \"{current}\"\n{three}")), "Missing binary source", "with etcd_cluster.bad"),
        (cluster(&format!("  etcd_version = \"{current}\"\n  binary_source {{\n    url = \"http://127.0.0.1:1/e.tgz\"\n    sha256 = \"xyz\"\n  }}\n{three}")), "Invalid checksum", "sha256 = \"xyz\""),
        (cluster(&format!("  etcd_version = \"{current}\"\n  binary_source {{\n    url = \"ftp://127.0.0.1/e.tgz\"\n    sha256 = \"{}\"\n  }}\n{three}", "a".repeat(64))), "Invalid URL", "url = \"ftp://"),
        (cluster(&format!("  etcd_version = \"{current}\"\n  binary_source {{\n    local_path = \"/nonexistent\"\n  }}\n{three}")), "etcd binaries not found", "local_path = \"/nonexistent\""),
        (with(&s3("    endpoint = \"s3.example.net/path\"\n")), "Invalid S3 endpoint", "endpoint = \"s3.example.net/path\""),
        (with(&s3("    bucket = \"Backups_1\"\n")), "Invalid bucket name", "bucket = \"Backups_1\""),
        (with(&s3("    prefix = \"etcd/../x y\"\n")), "Invalid prefix", "prefix = \"etcd/../x y\""),
        (with(&s3("    object_lock_days = 0\n")), "Invalid object_lock_days", "object_lock_days = 0"),
        (with(&s3("    access_key_id = null\n")), "Missing S3 credentials", "access_key_id = null"),
        (with(&s3("    credentials_file = \"/etc/etcd-s3/credentials\"\n")), "Two kinds of credentials", "credentials_file = "),
        (with(&s3("    object_lock_mode = \"compliance\"\n")), "Invalid object_lock_mode", "object_lock_mode = \"compliance\""),
        (with("  extra_flags = { \"data-dir\" = \"/tmp\" }\n"), "Flag managed by the provider", "extra_flags = {"),
        (with("  extra_flags = { \"enable-v2\" = \"true\" }\n"), "Setting not read by this etcd version", "extra_flags = {"),
        (cluster(&format!("{}  extra_flags = {{ \"experimental-initial-corrupt-check\" = \"false\" }}\n{three}", release("3.7"))), "Setting not read by this etcd version", "extra_flags = {"),
        (cluster(&format!("{}  extra_flags = {{ \"feature-gates\" = \"CompactHashCheck=false\" }}\n{three}", release("3.5"))), "Setting not read by this etcd version", "extra_flags = {"),
        (cluster(&format!("  etcd_version = \"3.3.27\"\n  binary_source {{\n    local_path = \"{binaries}\"\n  }}\n{three}")), "Unsupported etcd version", "etcd_version = \"3.3.27\""),
        (cluster(&format!("  etcd_version = \"{current}\"\n  binary_source {{\n    local_path = \"{old_binaries}\"\n  }}\n{three}")), "etcdutl does not exist", "local_path = "),
        (with("  extra_flags = { \"--snapshot-count\" = \"5\" }\n"), "Invalid flag name", "extra_flags = {"),
        (with("  extra_flags = { \"force-new-cluster\" = \"true\" }\n"), "Flag refused", "extra_flags = {"),
        (with("  extra_flags = { \"wal-dir\" = \"/var/lib/etcd-wal\" }\n"), "Flag refused", "extra_flags = {"),
        (with("  extra_flags = { \"discovery-srv\" = \"example.com\" }\n"), "Flag refused", "extra_flags = {"),
        (with("  extra_flags = { \"data-dir \" = \"/tmp\" }\n"), "Invalid flag name", "extra_flags = {"),
        (with("  extra_flags = { \"a\\nb\" = \"1\" }\n"), "Invalid flag name", "extra_flags = {"),
        (with("  extra_flags = { \"log-level\" = \"info\\ndata-dir: /tmp\" }\n"), "Invalid flag value", "extra_flags = {"),
        (with("  pki_dir = \"/etc\"\n"), "Invalid directory", "pki_dir = \"/etc\""),
        (with("  data_dir = \"/var/lib\"\n"), "Invalid directory", "data_dir = \"/var/lib\""),
        (with("  data_dir = \"/\"\n"), "Invalid directory", "data_dir = \"/\""),
        (with("  config_dir = \"etc/etcd\"\n"), "Invalid directory", "config_dir = \"etc/etcd\""),
        (with("  bin_dir = \"/usr/local/bin\\nExecStartPre=/bin/sh\"\n"), "Invalid directory", "bin_dir = "),
        (with("  config_dir = \"/etc/etcd/../ssh\"\n"), "Invalid directory", "config_dir = "),
        (with("  data_dir = \"/var/lib/$(id)\"\n"), "Invalid directory", "data_dir = "),
        (with("  data_dir = \"-rf\"\n"), "Invalid directory", "data_dir = \"-rf\""),
        (with("  data_dir = \"/home/postgres\"\n"), "Invalid directory", "data_dir = \"/home/postgres\""),
        (with("  data_dir = \"/etc/etcd-data\"\n"), "Invalid directory", "data_dir = \"/etc/etcd-data\""),
        (with("  pki_dir = \"/etc/etcd\"\n"), "Directories overlap", "pki_dir = \"/etc/etcd\""),
        (with("  pki_dir = \"/var/lib/etcd/pki\"\n"), "Directories overlap", "pki_dir = "),
        (with("  cert_validity_hours = 100000000\n"), "Invalid validity", "cert_validity_hours = 100000000"),
        (with("  cert_early_renewal_hours = 9000\n"), "Invalid early renewal", "cert_early_renewal_hours = 9000"),
        (with("  timeouts {\n    create = \"99999999999h\"\n  }\n"), "Invalid duration", "create = \"99999999999h\""),
        (with("  timeouts {\n    update = \"5x\"\n  }\n"), "Invalid duration", "update = \"5x\""),
        (with("  backup {\n    schedule = \"hourly; rm -rf /\"\n  }\n"), "Invalid schedule", "schedule = \"hourly; rm -rf /\""),
        (with("  backup {\n    schedule = \"hourly\"\n    keep = 0\n  }\n"), "Invalid keep", "keep = 0"),
        (with("  backup {\n    schedule = \"hourly\"\n    dir = \"/var/lib/etcd/backups\"\n  }\n"), "Invalid backup directory", "dir = \"/var/lib/etcd/backups\""),
        (with("  backup {\n    schedule = \"hourly\"\n    dir = \"/etc\"\n  }\n"), "Invalid backup directory", "dir = \"/etc\""),
        (with("  backup {\n    schedule = \"hourly\"\n    dir = \"/etc/etcd\"\n  }\n"), "Invalid backup directory", "dir = \"/etc/etcd\""),
        (with("  backup {\n    schedule = \"hourly\"\n    dir = \"/home/deploy\"\n  }\n"), "Invalid backup directory", "dir = \"/home/deploy\""),
        (with("  backup {\n    schedule = \"hourly\"\n    copy_to {\n      host = \"backup host\"\n      user = \"b\"\n      dir = \"/srv/b\"\n    }\n  }\n"), "Invalid host", "host = \"backup host\""),
        (with("  backup {\n    schedule = \"hourly\"\n    copy_to {\n      host = \"10.0.0.9\"\n      user = \"-oProxyCommand=x\"\n      dir = \"/srv/b\"\n    }\n  }\n"), "Invalid SSH user", "user = \"-oProxyCommand=x\""),
        (with("  backup {\n    schedule = \"hourly\"\n    copy_to {\n      host = \"10.0.0.9\"\n      user = \"b\"\n      dir = \"srv/b\"\n    }\n  }\n"), "Invalid backup directory", "dir = \"srv/b\""),
        (cluster(&format!("{source}{}", members(&[("a", "127.0.0.2"), ("..", "127.0.0.3"), ("c", "127.0.0.4")]))), "Invalid member name", "name = \"..\""),
        (with("  client_port = 0\n"), "Invalid port", "client_port = 0"),
        (with("  client_port = 2380\n"), "Ports collide", "peer_port"),
        (with("  metrics_url = \"ftp://127.0.0.1:2381\"\n"), "Invalid metrics URL", "metrics_url = "),
        (cluster(&valid).replace("name = \"c\"", "name = \"c d\""), "Invalid name", "name = \"c d\""),
        (in_ssh("    port = 70000\n"), "Invalid port", "port = 70000"),
        (in_ssh("    user = \"-oProxyCommand=x\"\n"), "Invalid SSH user", "user = "),
    ];
    assert!(cases.len() >= 30);
    let terraform = tools::newest_terraform();
    for (config, summary, attribute) in cases {
        let ws = Workspace::new(&terraform, Install::DevOverrides, &config);
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
        assert!(
            !run.text().contains("panic") && !run.text().contains("Request cancelled"),
            "{summary}: the provider crashed:\n{}",
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
    // Even member count: a warning that explains quorum, not an error;
    // and etcd 3.4, past its end of life, warned about once.
    let even = cluster(&format!(
        "{}{}",
        release("3.4"),
        members(&[("a", "127.0.0.2"), ("b", "127.0.0.3")])
    ));
    let ws = Workspace::new(&terraform, Install::DevOverrides, &even);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(run.text().contains("quorum is 2 of 2"), "{}", run.text());
    assert_eq!(
        run.text().matches("reached its end of life").count(),
        1,
        "{}",
        run.text()
    );
    assert!(!touched.exists(), "a plan touched a host over SSH");
}
