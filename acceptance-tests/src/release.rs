//! The release files as users get them: `provider/release` run on the
//! built provider, its SHA256SUMS signed with a throwaway RSA key, for the
//! tests that install the archive (Terraform's and OpenTofu's `init`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools;

pub fn run(command: &mut Command) -> String {
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
pub fn throwaway_key(home: &Path) -> String {
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

/// The release files in `out`, signed with `key` from `gnupg`; the
/// archive's path.
pub fn release(out: &Path, gnupg: &Path, key: &str) -> PathBuf {
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

/// The release archive in a new temporary directory (kept until the guard
/// drops), signed with a throwaway key: (guard, archive).
pub fn release_archive() -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().expect("temp dir");
    let gnupg = scratch.path().join("gnupg");
    std::fs::create_dir_all(&gnupg).expect("gnupg home");
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod gnupg home");
    let key = throwaway_key(&gnupg);
    let archive = release(&scratch.path().join("dist"), &gnupg, &key);
    (scratch, archive)
}

/// Terraform's and OpenTofu's hash of a package ("h1:", as in the lock
/// file): SHA-256 over the sorted "SHA256  NAME" lines of the files in the
/// archive, base64.
pub fn package_hash(archive: &Path) -> String {
    run(Command::new("python3").arg("-c").arg(
        "import base64, hashlib, sys, zipfile\n\
         z = zipfile.ZipFile(sys.argv[1])\n\
         lines = ''.join(f'{hashlib.sha256(z.read(n)).hexdigest()}  {n}\\n' for n in sorted(z.namelist()))\n\
         print('h1:' + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode())",
    ).arg(archive))
    .trim()
    .to_string()
}
