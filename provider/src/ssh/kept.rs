//! SSH connections kept open between runs of the provider (ssh's
//! `ControlPersist`, which Ansible also uses by default): the next run that
//! reaches a host the same way (the apply after its plan, the next drift
//! check) skips the TCP and SSH handshakes, which on five hosts were three
//! quarters of the time a no-change plan spends on them.
//!
//! Rules:
//! - A kept connection ends by itself after `Target::keep_open` without
//!   use; zero keeps none (each run opens and ends its own).
//! - Control sockets live in a directory only the user running Terraform
//!   can open: `$XDG_RUNTIME_DIR/terraform-provider-etcd`, else
//!   `terraform-provider-etcd-<uid>` in the temporary directory. A
//!   directory that is a symlink, not the user's, or open to others is not
//!   used, and the run keeps no connection.
//! - Only identical targets share a connection: its directory is named by
//!   a hash of everything that decides where and how ssh logs in (the
//!   settings, and the size, time and inode of the key, known_hosts and
//!   ssh_config files), so a changed setting or file opens a new connection
//!   (the host key checked again).
//! - A kept connection is used only once it ran `true` within
//!   [`PROBE_DEADLINE`]: one whose host rebooted or went away is ended and
//!   a new one opened. One that passed that check less than
//!   [`VERIFIED_FOR`] ago is used as it is (back-to-back runs: the apply
//!   right after its plan); a command that then fails on the connection
//!   itself withdraws that, so the next run checks again.
//! - A run never ends a kept connection (another run may be using it);
//!   port forwards never go over one (they would outlive the run).

use std::fs;
use std::num::NonZeroUsize;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssh::{ControlPersist, Session, SessionBuilder};
use sha2::{Digest, Sha256};

use super::Target;

/// How long a kept connection has to run `true` before it is given up.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// How long a connection that ran `true` is trusted without running it
/// again: no host reboots and comes back in that time, and a host that
/// went away fails the next command as it would fail the check.
const VERIFIED_FOR: Duration = Duration::from_secs(5);

/// The file whose time says when a kept connection last passed the check.
const VERIFIED: &str = "verified";

/// The prefix openssh gives the directory of each master connection.
const MASTER_PREFIX: &str = ".ssh-connection";

/// A master's directory without a socket this long is left over from a
/// run that was killed; younger ones may be another run's, still logging in.
const ABANDONED_AFTER: Duration = Duration::from_secs(300);

/// Unix socket paths hold at most 107 bytes, and ssh first binds
/// `/.ssh-connectionXXXXXX/master.` and 16 random characters under the
/// directory. A longer directory keeps no connection.
const MAX_DIRECTORY_LEN: usize = 60;

/// The directory for kept connections to `target`, created if missing;
/// `None` when there is no private place for them.
pub(super) fn directory(target: &Target) -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) if !runtime.is_empty() => {
            PathBuf::from(runtime).join("terraform-provider-etcd")
        }
        _ => std::env::temp_dir().join(format!("terraform-provider-etcd-{}", euid())),
    };
    let dir = base.join(target_key(target));
    if dir.as_os_str().len() > MAX_DIRECTORY_LEN {
        log::debug!(
            "{} is too long a path for ssh's control socket: SSH connections are not kept between runs",
            dir.display()
        );
        return None;
    }
    (is_private(&base) && is_private(&dir)).then_some(dir)
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (0700) if missing; whether it is a directory, not a
/// symlink, owned by this user and closed to everyone else.
fn is_private(dir: &Path) -> bool {
    let _ = fs::DirBuilder::new().mode(0o700).create(dir);
    let private = fs::symlink_metadata(dir).is_ok_and(|meta| {
        meta.is_dir() && meta.uid() == euid() && meta.permissions().mode() & 0o077 == 0
    });
    if !private {
        log::warn!(
            "{} is not a private directory of this user: SSH connections are not kept between runs",
            dir.display()
        );
    }
    private
}

/// A short name for everything that decides where and how ssh logs in.
fn target_key(target: &Target) -> String {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let home_ssh =
        |name: &str| std::env::var_os("HOME").map(|home| Path::new(&home).join(".ssh").join(name));
    let known_hosts = target
        .known_hosts_path
        .clone()
        .or_else(|| home_ssh("known_hosts"));
    let config = target.config_file.clone().or_else(|| home_ssh("config"));
    let parts = [
        Some(target.address.clone()),
        target.user.clone(),
        target.port.map(|p| p.to_string()),
        path(&target.private_key_path),
        path(&target.known_hosts_path),
        path(&target.config_file),
        Some(target.strict_host_key_checking.to_string()),
        Some(stamp(&target.private_key_path)),
        Some(stamp(&known_hosts)),
        Some(stamp(&config)),
    ];
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.unwrap_or_default());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..8])
}

/// Size, modification time and inode of a file: changes whenever the file
/// is written or replaced (its content, a key's included, is never read).
fn stamp(file: &Option<PathBuf>) -> String {
    let meta = file.as_ref().and_then(|f| fs::metadata(f).ok());
    meta.map(|m| format!("{}:{}.{}:{}", m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
        .unwrap_or_default()
}

/// A kept connection in `dir` that still reaches its host, and its
/// master's directory. Those that do not are ended and their directories
/// removed.
pub(super) async fn find(dir: &Path) -> Option<(Session, PathBuf)> {
    let entries = fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let master_dir = entry.path();
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(MASTER_PREFIX)
        {
            continue;
        }
        let socket = master_dir.join("master");
        if !socket.exists() {
            let abandoned = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > ABANDONED_AFTER);
            if abandoned {
                let _ = fs::remove_dir_all(&master_dir);
            }
            continue;
        }
        let session = resume(&master_dir);
        if recently_verified(&master_dir) || answers(&session).await {
            mark_verified(&master_dir);
            return Some((session, master_dir));
        }
        log::debug!(
            "kept SSH connection {} no longer answers: ended",
            master_dir.display()
        );
        let _ = session.close().await;
        let _ = fs::remove_dir_all(&master_dir);
    }
    None
}

/// Opens a connection that stays up `keep_open` after its last use, with
/// its socket in `dir`.
pub(super) async fn open(
    builder: &mut SessionBuilder,
    dir: &Path,
    address: &str,
    keep_open: Duration,
) -> Result<(Session, PathBuf), openssh::Error> {
    let seconds = NonZeroUsize::new(keep_open.as_secs() as usize).unwrap_or(NonZeroUsize::MIN);
    builder
        .control_directory(dir)
        .control_persist(ControlPersist::IdleFor(seconds));
    let master_dir = builder.launch_master(address).await?.keep();
    mark_verified(&master_dir);
    Ok((resume(&master_dir), master_dir))
}

fn recently_verified(master_dir: &Path) -> bool {
    fs::metadata(master_dir.join(VERIFIED))
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < VERIFIED_FOR))
}

/// Notes that the connection in `master_dir` just reached its host (the
/// `verified` file's time; a file in the private directory).
fn mark_verified(master_dir: &Path) {
    let _ = fs::write(master_dir.join(VERIFIED), b"");
}

/// Withdraws the note: a command failed on the connection itself, so the
/// next run checks it before use.
pub(super) fn forget_verified(master_dir: &Path) {
    let _ = fs::remove_file(master_dir.join(VERIFIED));
}

/// A session over the master in `master_dir`; dropping it leaves the
/// master running.
fn resume(master_dir: &Path) -> Session {
    Session::resume_mux(
        master_dir.join("master").into_boxed_path(),
        Some(master_dir.join("log").into_boxed_path()),
    )
}

/// Whether the connection runs a command on its host in time.
async fn answers(session: &Session) -> bool {
    let ran = tokio::time::timeout(PROBE_DEADLINE, session.command("true").status()).await;
    matches!(ran, Ok(Ok(status)) if status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(address: &str) -> Target {
        Target {
            address: address.into(),
            user: Some("root".into()),
            port: None,
            private_key_path: Some("/keys/id".into()),
            known_hosts_path: None,
            config_file: None,
            strict_host_key_checking: true,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(600),
            keep_open: Duration::from_secs(60),
            sudo: false,
            stop: Default::default(),
        }
    }

    #[test]
    fn only_identical_logins_share_a_connection() {
        let base = target("10.0.0.11");
        assert_eq!(target_key(&base), target_key(&target("10.0.0.11")));
        let changed = [
            target("10.0.0.12"),
            Target {
                user: Some("admin".into()),
                ..target("10.0.0.11")
            },
            Target {
                private_key_path: Some("/keys/other".into()),
                ..target("10.0.0.11")
            },
            Target {
                strict_host_key_checking: false,
                ..target("10.0.0.11")
            },
            Target {
                known_hosts_path: Some("/keys/known_hosts".into()),
                ..target("10.0.0.11")
            },
        ];
        for other in changed {
            assert_ne!(target_key(&base), target_key(&other), "{other:?}");
        }
        // What does not change the login does not split connections.
        let sudo = Target {
            sudo: true,
            ..target("10.0.0.11")
        };
        assert_eq!(target_key(&base), target_key(&sudo));
    }

    #[test]
    fn a_rewritten_known_hosts_file_opens_a_new_connection() {
        let file = std::env::temp_dir().join(format!("kept-known-hosts-{}", std::process::id()));
        fs::write(&file, "10.0.0.11 ssh-ed25519 AAAA\n").unwrap();
        let with_file = Target {
            known_hosts_path: Some(file.clone()),
            ..target("10.0.0.11")
        };
        let before = target_key(&with_file);
        assert_eq!(before, target_key(&with_file));
        fs::write(&file, "10.0.0.11 ssh-ed25519 BBBBBB\n").unwrap();
        assert_ne!(before, target_key(&with_file));
        fs::remove_file(&file).unwrap();
    }

    #[test]
    fn a_connection_checked_just_now_is_trusted_until_a_command_fails_on_it() {
        let dir = std::env::temp_dir().join(format!("kept-verified-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(!recently_verified(&dir), "never checked");
        mark_verified(&dir);
        assert!(recently_verified(&dir));
        forget_verified(&dir);
        assert!(!recently_verified(&dir));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_open_to_others_is_refused() {
        let dir = std::env::temp_dir().join(format!("kept-test-{}", std::process::id()));
        assert!(is_private(&dir));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!is_private(&dir));
        let link = dir.with_extension("link");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(!is_private(&link));
        fs::remove_file(&link).unwrap();
        fs::remove_dir(&dir).unwrap();
    }
}
