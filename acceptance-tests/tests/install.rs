//! Installed as users install it: `provider/release` makes the release
//! files (SHA256SUMS signed with a throwaway RSA key), and on every
//! Terraform version present `terraform init` installs the archive from a
//! filesystem mirror in the packed layout and from the implied local
//! plugin directory, without `dev_overrides`; the lock file holds the
//! archive's hash, and the installed provider runs a plan.

use std::path::{Path, PathBuf};
use std::process::Command;

use acceptance_tests::terraform::{Install, Workspace};
use acceptance_tests::tools;

const CONFIG: &str = r#"terraform {
  required_providers {
    etcd = { source = "terraform-provider-etcd/etcd" }
  }
}
resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}
"#;

fn run(command: &mut Command) -> String {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throwaway RSA signing key in its own GnuPG home; its fingerprint.
fn throwaway_key(home: &Path) -> String {
    run(Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--passphrase", "", "--quick-gen-key"])
        .args([
            "release test <release-test@example.invalid>",
            "rsa3072",
            "sign",
            "1d",
        ]));
    let keys = run(Command::new("gpg").env("GNUPGHOME", home).args([
        "--batch",
        "--with-colons",
        "--list-secret-keys",
    ]));
    keys.lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .map(|l| l.trim_matches(':').to_string())
        .expect("a fingerprint")
}

/// The release files in `out`; the archive's path.
fn release(out: &Path, gnupg: &Path, key: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let listed = run(Command::new(root.join("provider/release"))
        .arg(out)
        .env("PROVIDER_BINARY", tools::provider_binary())
        .env("GNUPGHOME", gnupg)
        .env("GPG_KEY_ID", key));
    let version = env!("CARGO_PKG_VERSION");
    let prefix = format!("terraform-provider-etcd_{version}");
    for file in ["_linux_amd64.zip", "_manifest.json", "_SHA256SUMS"] {
        assert!(listed.contains(&format!("{prefix}{file}")), "{listed}");
    }
    out.join(format!("{prefix}_linux_amd64.zip"))
}

#[test]
fn the_release_installs_from_a_packed_mirror_and_the_local_plugin_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let gnupg = scratch.path().join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let key = throwaway_key(&gnupg);
    let out = scratch.path().join("dist");
    let archive = release(&out, &gnupg, &key);
    let sums = archive.with_file_name(format!(
        "terraform-provider-etcd_{}_SHA256SUMS",
        env!("CARGO_PKG_VERSION")
    ));
    // The signature verifies, and the sums match the files.
    let verified = Command::new("gpg")
        .env("GNUPGHOME", &gnupg)
        .args(["--batch", "--verify"])
        .arg(out.join(format!(
            "{}.sig",
            sums.file_name().unwrap().to_string_lossy()
        )))
        .arg(&sums)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    run(Command::new("sha256sum")
        .arg("-c")
        .arg(&sums)
        .current_dir(&out));
    // Terraform's hash of a package ("h1:"): SHA-256 over the sorted
    // "SHA256  NAME" lines of the files in the archive, base64.
    let h1 = run(Command::new("python3").arg("-c").arg(
        "import base64, hashlib, sys, zipfile\n\
         z = zipfile.ZipFile(sys.argv[1])\n\
         lines = ''.join(f'{hashlib.sha256(z.read(n)).hexdigest()}  {n}\\n' for n in sorted(z.namelist()))\n\
         print('h1:' + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode())",
    ).arg(&archive));
    let h1 = h1.trim();

    for terraform in tools::terraform_versions() {
        for install in [
            Install::PackedMirror(archive.clone()),
            Install::ImpliedLocalDirectory(archive.clone()),
        ] {
            let ws = Workspace::new(&terraform, install.clone(), CONFIG);
            let lock = std::fs::read_to_string(ws.path().join(".terraform.lock.hcl")).unwrap();
            assert!(lock.contains(env!("CARGO_PKG_VERSION")), "{lock}");
            assert!(
                lock.contains(&format!("\"{h1}\"")),
                "{}: {install:?}: the lock file does not hold the release's hash {h1}:\n{lock}",
                terraform.display()
            );
            let (code, run) = ws.plan_exit_code();
            assert_eq!(
                code,
                2,
                "{}: {install:?}:\n{}",
                terraform.display(),
                run.text()
            );
        }
    }
}
