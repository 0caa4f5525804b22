//! Plan-time checks of the directories a member uses: they go into the
//! unit, `etcdctl.env` and `install`/`chown`/`rm` commands, so each must be
//! a plain absolute path; none may be a system directory; the data and
//! snapshot directories, given to etcd alone, only where etcd may have one
//! (an allow rule). Whether one holds anything else is checked on the host
//! (`member::install::holds_only_ours`).

use std::collections::BTreeMap;

use super::schema::{DEFAULT_BIN_DIR, DEFAULT_CONFIG_DIR, DEFAULT_DATA_DIR, DEFAULT_PKI_DIR};
use crate::framework::{AttributePath, Diagnostics, Value};

/// Directories the provider must never own, fill or delete as a member's
/// configuration, certificate or data directory.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/etc/kubernetes",
    "/etc/kubernetes/pki",
    "/etc/ssh",
    "/etc/systemd",
    "/etc/systemd/system",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/run",
    "/var/tmp",
];

/// The directories a member uses, their defaults, and whether a system
/// directory is refused for it (`bin_dir` only gets the two binaries).
const DIRECTORIES: &[(&str, &str, bool)] = &[
    ("bin_dir", DEFAULT_BIN_DIR, false),
    ("config_dir", DEFAULT_CONFIG_DIR, true),
    ("pki_dir", DEFAULT_PKI_DIR, true),
    ("data_dir", DEFAULT_DATA_DIR, true),
];

/// Where a directory the provider gives to etcd alone (chowned, pruned,
/// purged on destroy) may be: strictly inside one of these, or named for
/// etcd (`/data/etcd`, `/mnt/etcd-disk`).
const DEDICATED_ROOTS: [&str; 4] = ["/var/lib/", "/var/backups/", "/srv/", "/opt/"];

/// Where no directory named for etcd is given to it alone: the system's
/// configuration, programs and runtime state.
const SYSTEM_ROOTS: [&str; 8] = [
    "/etc/", "/usr/", "/boot/", "/run/", "/tmp/", "/proc/", "/sys/", "/dev/",
];

/// Why `path` (a valid directory) may not be given to etcd alone (the
/// data directory, the snapshots' directory), if it may not. An allow
/// rule: a deny-list of system directories misses `/etc/etcd`'s neighbours
/// and other programs' data. Whether the directory holds anything else is
/// checked on the host (`member::install`).
pub fn dedicated_dir_problem(path: &str) -> Option<String> {
    let inside = DEDICATED_ROOTS
        .iter()
        .any(|root| path.len() > root.len() && path.starts_with(root));
    let named = path
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains("etcd"))
        && !SYSTEM_ROOTS.iter().any(|root| path.starts_with(root));
    (!inside && !named).then(|| {
        format!(
            "{path:?} would be given to etcd alone (owned by the etcd user, pruned or purged): use a directory \
             inside /var/lib, /var/backups, /srv or /opt, or one outside the system's directories whose name \
             says etcd (e.g. /data/etcd)."
        )
    })
}

/// Why `path` is not acceptable as a directory on the hosts, if it is not.
pub fn directory_problem(path: &str, system_refused: bool) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("{path:?} is not an absolute path."));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._/-".contains(*c)))
    {
        return Some(format!(
            "{path:?} has {c:?}; use letters, digits, '.', '_', '-' and '/'."
        ));
    }
    let normal = path.len() == 1
        || (!path.ends_with('/')
            && path.split('/').skip(1).all(|part| {
                !part.is_empty() && part != "." && part != ".." && !part.starts_with('-')
            }));
    if !normal {
        return Some(format!(
            "{path:?} is not a normalised path (no empty, '.' or '..' parts, no part starting with '-', no trailing '/')."
        ));
    }
    if system_refused && SYSTEM_DIRS.contains(&path) {
        return Some(format!(
            "{path:?} is a system directory; the provider sets its owner and mode (and may delete a data \
             directory), so give the member a directory of its own, e.g. /var/lib/etcd or /etc/etcd."
        ));
    }
    None
}

pub(super) fn validate_directories(config: &Value, diags: &mut Diagnostics) {
    let mut valid = BTreeMap::new();
    for (name, default, system_refused) in DIRECTORIES {
        // Unset: the default, which the plan fills in. Unknown: not yet.
        let path = match config.get(name) {
            Value::Null => *default,
            value => match value.as_str() {
                Some(path) => path,
                None => continue,
            },
        };
        let problem = directory_problem(path, *system_refused).or_else(|| {
            (*name == "data_dir")
                .then(|| dedicated_dir_problem(path))
                .flatten()
        });
        match problem {
            Some(problem) => {
                diags.error_at(AttributePath::root(name), "Invalid directory", problem)
            }
            None => {
                valid.insert(*name, path.to_string());
            }
        }
    }
    let inside = |dir: &str, parent: &str| dir == parent || dir.starts_with(&format!("{parent}/"));
    let named: Vec<(&str, &String)> = valid.iter().map(|(n, p)| (*n, p)).collect();
    for (i, (name, path)) in named.iter().enumerate() {
        for (other, other_path) in &named[i + 1..] {
            let overlap = path == other_path
                || ((*name == "data_dir" || *other == "data_dir")
                    && (inside(path, other_path) || inside(other_path, path)));
            if overlap {
                diags.error_at(
                    AttributePath::root(other),
                    "Directories overlap",
                    format!(
                        "{other} ({other_path}) and {name} ({path}) must be distinct, and the data directory \
                         may neither hold nor sit inside another."
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_must_be_absolute_plain_and_not_the_systems() {
        for good in [
            "/var/lib/etcd",
            "/etc/etcd/pki",
            "/srv/etcd-1/data",
            "/opt/etcd_2.0",
        ] {
            assert_eq!(directory_problem(good, true), None, "{good}");
        }
        assert_eq!(directory_problem("/usr/local/bin", false), None);
        for bad in [
            "var/lib/etcd",
            "/var/lib/etcd/",
            "/var//lib",
            "/var/lib/../etc",
            "/var/./lib",
            "/var/lib/$(id)",
            "/var/lib/etcd\nExecStartPre=/bin/sh",
            "/var/lib/e tcd",
            "/var/-rf",
            "",
        ] {
            assert!(directory_problem(bad, false).is_some(), "{bad:?}");
        }
        for system in ["/", "/etc", "/var/lib", "/usr", "/tmp", "/root"] {
            assert!(directory_problem(system, true).is_some(), "{system}");
        }
    }

    #[test]
    fn data_and_snapshots_go_only_where_etcd_may_have_a_directory_alone() {
        for good in [
            "/var/lib/etcd",
            "/var/backups/etcd",
            "/srv/etcd-1/data",
            "/opt/e1",
            "/data/etcd",
            "/mnt/etcd-disk",
        ] {
            assert_eq!(dedicated_dir_problem(good), None, "{good}");
        }
        for bad in [
            "/etc/etcd",
            "/home/deploy",
            "/var/lib",
            "/srv",
            "/mnt/disk",
            "/usr/share/data",
        ] {
            assert!(dedicated_dir_problem(bad).is_some(), "{bad}");
        }
    }

    fn errors(config: Value) -> Vec<String> {
        let mut diags = Diagnostics::default();
        validate_directories(&config, &mut diags);
        diags
            .0
            .iter()
            .map(|d| d.path.as_ref().map(|p| p.to_string()).unwrap_or_default())
            .collect()
    }

    #[test]
    fn overlapping_directories_are_refused() {
        let dirs = |config: &str, pki: &str, data: &str| {
            Value::object([
                ("bin_dir", Value::string("/usr/local/bin")),
                ("config_dir", Value::string(config)),
                ("pki_dir", Value::string(pki)),
                ("data_dir", Value::string(data)),
            ])
        };
        assert!(errors(dirs("/etc/etcd", "/etc/etcd/pki", "/var/lib/etcd")).is_empty());
        assert_eq!(
            errors(dirs("/etc/etcd", "/etc/etcd", "/var/lib/etcd")),
            vec!["pki_dir"]
        );
        assert_eq!(
            errors(dirs("/etc/etcd", "/var/lib/etcd/pki", "/var/lib/etcd")),
            vec!["pki_dir"]
        );
        assert_eq!(
            errors(dirs(
                "/srv/etcd/data/conf",
                "/etc/etcd/pki",
                "/srv/etcd/data"
            )),
            vec!["data_dir"]
        );
    }
}
