//! Installed as users install it: `provider/release` makes the release
//! files (SHA256SUMS signed with a throwaway RSA key), and on every
//! Terraform version present `terraform init` installs the archive from a
//! filesystem mirror in the packed layout and from the implied local
//! plugin directory, without `dev_overrides`; the lock file holds the
//! archive's hash, and the installed provider runs a plan.

use std::process::Command;

use acceptance_tests::release::{package_hash, release, run, throwaway_key};
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
    let h1 = package_hash(&archive);
    let h1 = h1.as_str();

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
