//! Copies of the backups on a separate backup host (`backup.copy_to`).
//!
//! Each member has an SSH key of its own, made on the member (the private
//! key never leaves it; 0600, owned by `etcd`). The provider logs in to the
//! backup host as the `copy_to` user and lists each member's public key in
//! that user's `authorized_keys` with `restrict` and a forced command: the
//! receiver script, which only takes one snapshot on stdin under a strict
//! name into the member's own subdirectory, checks etcd's checksum, and
//! prunes that member's older snapshots of the same label beyond `keep`.
//! So a member's key can do nothing but add snapshots there. The members
//! check the backup host's key against the key the provider read over its
//! own verified connection.

use super::{ClusterSettings, Layout};
use crate::ssh::{quote, Host, SshError};

/// Where the member copies its snapshots to.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyTo {
    pub host: String,
    pub user: String,
    pub port: Option<u16>,
    pub dir: String,
}

/// The receiver script, in the `copy_to` user's home on the backup host.
const RECEIVER: &str = ".etcd-backup-receive";

/// The member's backup key and the backup host's key live here.
pub fn key_dir(layout: &Layout) -> String {
    format!("{}/backup-ssh", layout.config_dir)
}

fn key_file(layout: &Layout) -> String {
    format!("{}/id_ed25519", key_dir(layout))
}

fn known_hosts_file(layout: &Layout) -> String {
    format!("{}/known_hosts", key_dir(layout))
}

/// The name the backup host's key is known by (ssh's `[host]:port` form
/// for a port other than 22).
fn known_name(copy: &CopyTo) -> String {
    match copy.port {
        Some(port) if port != 22 => format!("[{}]:{port}", copy.host),
        _ => copy.host.clone(),
    }
}

/// The command by which the backup script sends a final snapshot
/// (`$final`) to the backup host. A connection that goes silent (the
/// backup host or the network gone mid-copy) ends within 15 s: a copy
/// that hung would hold the job, and every later run, for its hour.
pub fn copy_command(settings: &ClusterSettings, copy: &CopyTo) -> String {
    let layout = &settings.layout;
    format!(
        "ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o UserKnownHostsFile={known} \
         -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 \
         -o ServerAliveCountMax=3 -p {port} {target} \
         put \"$(basename \"$final\")\" < \"$final\"",
        key = quote(&key_file(layout)),
        known = quote(&known_hosts_file(layout)),
        port = copy.port.unwrap_or(22),
        target = quote(&format!("{}@{}", copy.user, copy.host)),
    )
}

/// The receiver: `sh RECEIVER DIR MEMBER KEEP`, forced for a member's key;
/// the client's command must be `put NAME`.
fn receiver() -> String {
    r#"#!/bin/sh
# Managed by terraform-provider-etcd: the only command a member's backup key
# may run. Takes one snapshot on stdin as DIR/MEMBER/NAME.
set -eu
umask 077
dir=$1; member=$2; keep=$3
set -f
set -- ${SSH_ORIGINAL_COMMAND:-}
[ "$#" -eq 2 ] && [ "$1" = put ] || { echo "only 'put NAME' is allowed" >&2; exit 2; }
name=$2
pattern='^etcd-[a-z0-9-]+-[0-9]{8}T[0-9]{6}Z-rev[0-9]+\.db$'
printf '%s\n' "$name" | grep -Eq "$pattern" || { echo "not a snapshot name: $name" >&2; exit 2; }
label=$(printf '%s\n' "$name" | sed -E 's/^etcd-(.*)-[0-9]{8}T[0-9]{6}Z-rev[0-9]+\.db$/\1/')
mkdir -p "$dir/$member"
partial="$dir/$member/.partial-$$"
trap 'rm -f "$partial"' EXIT
cat > "$partial"
want=$(tail -c 32 "$partial" | od -An -v -tx1 | tr -d ' \n')
got=$(head -c -32 "$partial" | sha256sum | cut -d' ' -f1)
[ "$want" = "$got" ] || { echo "snapshot checksum mismatch" >&2; exit 1; }
mv "$partial" "$dir/$member/$name"
ls "$dir/$member" | grep -E "^etcd-$label-[0-9]{8}T[0-9]{6}Z-rev[0-9]+\.db$" | sort -r | tail -n +$((keep + 1)) |
  while read -r old; do rm -f "$dir/$member/$old"; done
"#
    .to_string()
}

/// The comment that marks a member's entry in `authorized_keys`.
fn entry_marker(settings: &ClusterSettings, member: &str) -> String {
    format!("etcd-backup:{}/{member}", settings.token)
}

/// Makes the member's backup key if it has none and writes the backup
/// host's key for it; returns the member's public key.
pub async fn prepare_member(
    host: &Host,
    settings: &ClusterSettings,
    host_keys: &str,
) -> Result<String, SshError> {
    let layout = &settings.layout;
    let key = key_file(layout);
    host.run_ok(&format!(
        "install -d -m 0700 -o etcd -g etcd {dir} && \
         {{ [ -f {key} ] || runuser -u etcd -- ssh-keygen -q -t ed25519 -N '' -C etcd-backup -f {key}; }}",
        dir = quote(&key_dir(layout)),
        key = quote(&key),
    ))
    .await?;
    host.write_file(
        &known_hosts_file(layout),
        host_keys.as_bytes(),
        0o644,
        "root:root",
    )
    .await?;
    let public = host
        .run_ok(&format!("cat {}", quote(&format!("{key}.pub"))))
        .await?;
    Ok(public.trim().to_string())
}

/// On the backup host (connected as the `copy_to` user): makes the
/// directory and writes the receiver into the user's home; returns the
/// host's public keys as `known_hosts` lines for the members.
pub async fn prepare_backup_host(backup_host: &Host, copy: &CopyTo) -> Result<String, SshError> {
    let script = format!(
        "set -e; umask 077; mkdir -p {dir}; chmod 0700 {dir}; \
         tmp=$(mktemp ~/{RECEIVER}.XXXXXX); cat > \"$tmp\"; chmod 0700 \"$tmp\"; mv -f \"$tmp\" ~/{RECEIVER}; \
         cat /etc/ssh/ssh_host_*_key.pub",
        dir = quote(&copy.dir),
    );
    let out = backup_host
        .run_with_input(&script, receiver().as_bytes())
        .await?;
    if out.status != 0 {
        return Err(SshError(format!(
            "backup host {}: {}",
            copy.host,
            out.stderr.trim()
        )));
    }
    let name = known_name(copy);
    Ok(out
        .stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some(format!("{name} {} {}\n", parts.next()?, parts.next()?))
        })
        .collect())
}

/// The `authorized_keys` line of a member's key: `restrict` (no shell,
/// no forwarding, no pty) and the receiver as its forced command (`$HOME`
/// is expanded by the user's shell when sshd runs it).
fn entry(
    settings: &ClusterSettings,
    copy: &CopyTo,
    member: &str,
    public_key: &str,
) -> Option<String> {
    let mut key = public_key.split_whitespace();
    let (kind, blob) = (key.next()?, key.next()?);
    Some(format!(
        "restrict,command=\"/bin/sh $HOME/{RECEIVER} {dir} {member} {keep}\" {kind} {blob} {marker}",
        dir = copy.dir,
        keep = settings.backup.keep,
        marker = entry_marker(settings, member),
    ))
}

/// Lists `public_key` as the member's only key in the `copy_to` user's
/// `authorized_keys` (an earlier key of the member is replaced).
pub async fn authorize(
    backup_host: &Host,
    settings: &ClusterSettings,
    copy: &CopyTo,
    member: &str,
    public_key: &str,
) -> Result<(), SshError> {
    let entry = entry(settings, copy, member, public_key)
        .ok_or_else(|| SshError(format!("member {member}: no backup public key")))?;
    backup_host
        .run_ok(&format!(
            "set -e; umask 077; mkdir -p ~/.ssh; touch ~/.ssh/authorized_keys; \
             tmp=$(mktemp ~/.ssh/authorized_keys.XXXXXX); \
             awk -v m={marker} '$NF != m' ~/.ssh/authorized_keys > \"$tmp\"; \
             printf '%s\\n' {entry} >> \"$tmp\"; mv -f \"$tmp\" ~/.ssh/authorized_keys",
            marker = quote(&entry_marker(settings, member)),
            entry = quote(&entry),
        ))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_key_is_restricted_to_the_receiver_and_marked_as_its_own() {
        let mut settings = crate::member::backup::tests::settings(Some("hourly"));
        settings.token = "prod".into();
        let copy = CopyTo {
            host: "10.0.0.50".into(),
            user: "etcd-backup".into(),
            port: Some(2222),
            dir: "/srv/etcd".into(),
        };
        assert_eq!(
            entry(&settings, &copy, "e1", "ssh-ed25519 AAAAC3Nz etcd-backup\n").as_deref(),
            Some(
                "restrict,command=\"/bin/sh $HOME/.etcd-backup-receive /srv/etcd e1 3\" ssh-ed25519 AAAAC3Nz \
                 etcd-backup:prod/e1"
            )
        );
        assert_eq!(entry(&settings, &copy, "e1", ""), None);
        assert_eq!(known_name(&copy), "[10.0.0.50]:2222");
        let command = copy_command(&settings, &copy);
        assert!(
            command.contains("-o StrictHostKeyChecking=yes")
                && command.contains("-o ServerAliveInterval=5 -o ServerAliveCountMax=3")
                && command.contains("-p 2222 'etcd-backup@10.0.0.50' put"),
            "{command}"
        );
    }
}
