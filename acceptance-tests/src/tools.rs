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

/// Every Terraform the tests run against: the machine's own if present
/// and always 1.0.3 from `install-deps`.
pub fn terraform_versions() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let system = PathBuf::from("/usr/local/bin/terraform");
    if system.exists() {
        found.push(system);
    }
    let old = tools_dir().join("terraform-1.0.3/terraform");
    assert!(
        old.exists(),
        "{} is missing: run acceptance-tests/install-deps",
        old.display()
    );
    found.push(old);
    found
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
