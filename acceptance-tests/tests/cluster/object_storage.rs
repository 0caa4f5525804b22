//! Backups in object storage (`backup.s3`) against a real S3 server
//! (Versity's gateway on a test host, over TLS with its own CA, a bucket
//! with object lock): credentials the bucket refuses are drift that names
//! them, fixed by a new secret version; each member keeps exactly `keep`
//! gzipped objects per label there, each one restorable by etcd's own tool and
//! matching the SHA-256 in its metadata; a locked version cannot be
//! deleted with the members' credentials; the secret is in no state.
//! Restore drills pass and are recorded; a corrupt newest object makes its
//! member's drill fail, which is drift naming it. Credentials from a file
//! the members already have replace the provider's.

use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{hcl_string, Install, Workspace};
use acceptance_tests::tools;

use crate::scaling_vars;

const CONFIG: &str = r#"
terraform {
  required_providers {
    etcd = { source = "terraform-provider-etcd/etcd" }
  }
}
variable "hosts" { type = list(string) }
variable "ssh_private_key_path" { type = string }
variable "known_hosts_path" { type = string }
variable "etcd_binaries" { type = string }
variable "etcd_version" { type = string }
variable "s3_endpoint" { type = string }
variable "s3_ca" { type = string }
variable "s3_secret" {
  type      = string
  sensitive = true
  ephemeral = true
}
variable "s3_secret_version" { type = number }
variable "s3_credentials_file" {
  type    = string
  default = null
}
resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}
resource "etcd_cluster" "main" {
  name         = "objstore"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
  etcd_version = var.etcd_version
  binary_source {
    local_path = var.etcd_binaries
  }
  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }
  backup {
    schedule = "*:*:0/20"
    keep     = 3
    s3 {
      endpoint                     = var.s3_endpoint
      bucket                       = "etcd-backups"
      path_style                   = true
      access_key_id                = var.s3_credentials_file == null ? "backup" : null
      secret_access_key_wo         = var.s3_credentials_file == null ? var.s3_secret : null
      secret_access_key_wo_version = var.s3_secret_version
      credentials_file             = var.s3_credentials_file
      object_lock_days             = 1
      ca_cert_pem                  = var.s3_ca
      compression                  = "gzip"
    }
    drill {
      schedule = "minutely"
    }
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

/// The S3 server's credentials (its root account, which the members use).
const ACCESS: &str = "backup";
const SECRET: &str = "s3cret-of-the-test-bucket";
const PORT: u16 = 7070;

/// Starts the S3 gateway on `host` (TLS, a self-signed certificate for its
/// address, which is also the CA the members get) and makes the bucket
/// with object lock; returns the endpoint and the certificate.
fn start_s3_server(lab: &Lab, host: &str) -> (String, String) {
    let address = lab.address(host).to_string();
    lab.upload(&tools::versitygw(), host, "/usr/local/bin/versitygw");
    let cert = lab.ssh_ok(
        host,
        &format!(
            "set -e; mkdir -p /srv/s3/data /srv/s3/versions /srv/s3/iam; cd /srv/s3
             openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=s3 \
               -addext subjectAltName=IP:{address} -keyout key.pem -out cert.pem 2>/dev/null
             systemd-run --quiet --unit s3 /usr/local/bin/versitygw --port :{PORT} --cert /srv/s3/cert.pem \
               --key /srv/s3/key.pem --access {ACCESS} --secret {SECRET} --iam-dir /srv/s3/iam \
               posix --versioning-dir /srv/s3/versions /srv/s3/data
             cat cert.pem"
        ),
    );
    let endpoint = format!("https://{address}:{PORT}");
    lab.ssh_ok(
        host,
        &format!(
            "printf 'user = \"{ACCESS}:{SECRET}\"\\ncacert = \"/srv/s3/cert.pem\"\\n' > /srv/s3/curl.conf
             for i in $(seq 50); do curl -s -o /dev/null -K /srv/s3/curl.conf {endpoint}/ && break; sleep 0.2; done
             code=$(curl -sS -K /srv/s3/curl.conf --aws-sigv4 aws:amz:us-east-1:s3 -X PUT -o /dev/null -w '%{{http_code}}' \
               -H 'x-amz-content-sha256: {EMPTY}' -H 'x-amz-bucket-object-lock-enabled: true' {endpoint}/etcd-backups)
             [ \"$code\" = 200 ] || {{ echo \"bucket not made: $code\" >&2; exit 1; }}"
        ),
    );
    (endpoint, cert)
}

/// SHA-256 of nothing: the payload hash of a request without a body.
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A signed request from `host` with its credentials file (a member's,
/// or the S3 host's own); returns the HTTP status and the body.
fn s3(
    lab: &Lab,
    host: &str,
    endpoint: &str,
    method: &str,
    target: &str,
    out: &str,
) -> (String, String) {
    let conf = if host == "h4" {
        "/srv/s3/curl.conf"
    } else {
        "/etc/etcd/backup-s3.conf"
    };
    let text = lab.ssh_ok(
        host,
        &format!(
            "curl -sS -K {conf} --aws-sigv4 aws:amz:us-east-1:s3 -X {method} \
               -H 'x-amz-content-sha256: {EMPTY}' -o {out} -w '%{{http_code}}\\n' '{endpoint}/etcd-backups{target}'; \
             [ {out} = /dev/null ] || [ ! -f {out} ] || case {out} in *.db) ;; *) cat {out};; esac"
        ),
    );
    let (code, body) = text.split_once('\n').unwrap_or((&text, ""));
    (code.to_string(), body.to_string())
}

/// The keys of `member`'s scheduled snapshots in the bucket, sorted.
fn scheduled_keys(lab: &Lab, endpoint: &str, member: &str) -> Vec<String> {
    let (code, body) = s3(
        lab,
        "h4",
        endpoint,
        "GET",
        &format!("?list-type=2&prefix=etcd%2Fobjstore%2F{member}%2Fscheduled-"),
        "/tmp/list.xml",
    );
    assert_eq!(code, "200", "{body}");
    let mut keys: Vec<String> = body
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
        .collect();
    keys.sort();
    keys
}

/// Runs every member's backup job now, `times` times, 2.6 s apart: the
/// snapshots are named to the second, and systemd refuses a sixth start
/// of a unit within 10 s (the timer may start one too).
fn run_backups(lab: &Lab, times: usize) {
    for _ in 0..times {
        for host in ["h1", "h2", "h3"] {
            lab.ssh_ok(host, "systemctl start etcd-backup.service || true");
        }
        std::thread::sleep(std::time::Duration::from_millis(2600));
    }
}

#[test]
fn snapshots_go_to_a_locked_bucket_and_refused_credentials_are_drift() {
    let lab = Lab::up(LabId::ObjectStorage, 4);
    let (endpoint, cert) = start_s3_server(&lab, "h4");
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, CONFIG);
    let hosts: Vec<&str> = ["h1", "h2", "h3"].iter().map(|h| lab.address(h)).collect();
    let vars = |secret: &str, version: u32| {
        let mut vars = scaling_vars(&lab, &hosts, "3.6");
        vars.push(("s3_endpoint", hcl_string(&endpoint)));
        vars.push(("s3_ca", hcl_string(&cert)));
        vars.push(("s3_secret", hcl_string(secret)));
        vars.push(("s3_secret_version", version.to_string()));
        vars
    };

    // A secret the bucket refuses: the job fails, and the plan names why.
    ws.set_vars(&vars("not-the-secret", 1));
    ws.apply();
    run_backups(&lab, 1);
    let (code, plan) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", plan.text());
    assert!(
        plan.stdout.contains("SignatureDoesNotMatch")
            && plan
                .stdout
                .contains("check backup.s3.access_key_id and secret_access_key_wo"),
        "{}",
        plan.stdout
    );
    let conf = lab.ssh_ok("h1", "stat -c '%a %U' /etc/etcd/backup-s3.conf");
    assert_eq!(conf.trim(), "600 etcd");

    // The right secret under a new version: written to every member.
    ws.set_vars(&vars(SECRET, 2));
    ws.apply();
    for key in ["a", "b", "c"] {
        lab.etcdctl("h1", "/etc/etcd/pki", &format!("put /drill/{key} {key}"));
    }
    run_backups(&lab, 4);
    let (code, plan) = ws.plan_exit_code();
    assert_eq!(code, 0, "{}", plan.text());
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap();
    assert!(!state.contains(SECRET), "the secret is in the state");

    // Exactly `keep` objects per member, each etcd's snapshot gzipped, with
    // the SHA-256 its metadata says.
    for member in ["e1", "e2", "e3"] {
        let keys = scheduled_keys(&lab, &endpoint, member);
        assert_eq!(keys.len(), 3, "{member}: {keys:?}");
        for key in &keys {
            let checked = lab.ssh_ok(
                "h1",
                &format!(
                    "set -e; cd /tmp; rm -f o.db o.db.gz h.txt
                     curl -sS -f -K /etc/etcd/backup-s3.conf --aws-sigv4 aws:amz:us-east-1:s3 \
                       -H 'x-amz-content-sha256: {EMPTY}' -D h.txt -o o.db.gz '{endpoint}/etcd-backups/{key}'
                     gzip -dc o.db.gz > o.db
                     meta=$(sed -n 's/^x-amz-meta-sha256: *\\([0-9a-f]*\\).*/\\1/Ip' h.txt)
                     [ \"$meta\" = \"$(sha256sum o.db | cut -d' ' -f1)\" ] || {{ echo \"metadata $meta differs\" >&2; exit 1; }}
                     /usr/local/bin/etcdutl snapshot status o.db -w json"
                ),
            );
            assert!(key.ends_with(".db.gz"), "{key}");
            let revision = key
                .rsplit_once("-rev")
                .unwrap()
                .1
                .trim_end_matches(".db.gz");
            assert!(
                checked.contains(&format!("\"revision\":{revision},")),
                "{key}: {checked}"
            );
        }
    }

    // A locked version cannot be deleted with the members' credentials.
    let key = &scheduled_keys(&lab, &endpoint, "e1")[0];
    let (code, versions) = s3(
        &lab,
        "h1",
        &endpoint,
        "GET",
        &format!("?prefix={}&versions=", key.replace('/', "%2F")),
        "/tmp/versions.xml",
    );
    assert_eq!(code, "200", "{versions}");
    let version = versions
        .split("<VersionId>")
        .nth(1)
        .and_then(|rest| rest.split_once("</VersionId>"))
        .map(|(id, _)| id.to_string())
        .expect("a version id");
    let (code, refusal) = s3(
        &lab,
        "h1",
        &endpoint,
        "DELETE",
        &format!("/{key}?versionId={version}"),
        "/tmp/refusal.xml",
    );
    assert!(
        code.starts_with('4'),
        "deleting a locked version: {code} {refusal}"
    );
    let (code, _) = s3(
        &lab,
        "h1",
        &endpoint,
        "GET",
        &format!("/{key}?versionId={version}"),
        "/tmp/kept.db",
    );
    assert_eq!(code, "200", "the locked version is still there");

    // A drill restores the newest object and checks it against the cluster.
    let passed = drill(&lab, "h1");
    assert!(
        passed.starts_with("ok ") && passed.contains(", 3 keys, hashkv equal to the cluster's"),
        "{passed}"
    );
    // Garbage as e2's newest object: its drill fails, and the plan says so.
    let garbage = "etcd/objstore/e2/scheduled-20991231T000000Z-rev1.db";
    lab.ssh_ok(
        "h4",
        &format!(
            "set -e; cd /srv/s3; head -c 4096 /dev/urandom > garbage
             code=$(curl -sS -K curl.conf --aws-sigv4 aws:amz:us-east-1:s3 -X PUT -T garbage -o /dev/null -w '%{{http_code}}' \
               -H \"x-amz-content-sha256: $(sha256sum garbage | cut -d' ' -f1)\" \
               -H \"Content-MD5: $(openssl md5 -binary garbage | base64)\" {endpoint}/etcd-backups/{garbage})
             [ \"$code\" = 200 ] || {{ echo \"garbage not uploaded: $code\" >&2; exit 1; }}"
        ),
    );
    let failed = drill(&lab, "h2");
    assert!(failed.starts_with("failed "), "{failed}");
    let (code, plan) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", plan.text());
    assert!(
        plan.stdout
            .contains("\"e2\" = \"the last restore drill failed")
            && plan
                .stdout
                .contains("its SHA-256 is not the one in its metadata"),
        "{}",
        plan.stdout
    );
    // The garbage gone, the next drill passes and the drift with it.
    let (code, _) = s3(
        &lab,
        "h1",
        &endpoint,
        "DELETE",
        &format!("/{garbage}"),
        "/dev/null",
    );
    assert_eq!(code, "204");
    assert!(drill(&lab, "h2").starts_with("ok "));
    let (code, plan) = ws.plan_exit_code();
    assert_eq!(code, 0, "{}", plan.text());

    // The members' own credentials file instead: the provider's is removed,
    // and the uploads go on with the keys the hosts hold.
    for host in ["h1", "h2", "h3"] {
        lab.ssh_ok(
            host,
            &format!(
                "install -d -m 0750 -o root -g etcd /etc/etcd-s3 && umask 027 && \
                 printf '[other]\\naws_access_key_id = nobody\\n[default]\\naws_access_key_id = {ACCESS}\\naws_secret_access_key = {SECRET}\\n' \
                   > /etc/etcd-s3/credentials && chgrp etcd /etc/etcd-s3/credentials"
            ),
        );
    }
    let mut file_vars = vars("unused", 2);
    file_vars.push((
        "s3_credentials_file",
        hcl_string("/etc/etcd-s3/credentials"),
    ));
    ws.set_vars(&file_vars);
    ws.apply();
    let before = scheduled_keys(&lab, &endpoint, "e1");
    assert!(lab
        .ssh("h1", "test -e /etc/etcd/backup-s3.conf")
        .status
        .code()
        .is_some_and(|code| code != 0));
    run_backups(&lab, 1);
    let after = scheduled_keys(&lab, &endpoint, "e1");
    assert!(after.last() > before.last(), "{before:?} then {after:?}");
    let (code, plan) = ws.plan_exit_code();
    assert_eq!(code, 0, "{}", plan.text());

    ws.destroy();
    lab.down();
}

/// Runs the restore drill on `host` now; returns its status line. (Twice:
/// a start while the timer's drill runs only waits for that one.)
fn drill(lab: &Lab, host: &str) -> String {
    lab.ssh_ok(
        host,
        "for i in 1 2; do systemctl start etcd-drill.service || true; done; \
         cat /var/backups/etcd/.etcd-drill-status",
    )
}
