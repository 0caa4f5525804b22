//! Installing a member on its host over SSH: the `etcd` user, directories,
//! certificates, configuration and unit (the binaries: `binaries`), then
//! starting it; and
//! taking it off again. Every step is idempotent, so a failed or
//! interrupted run is finished by running it again.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::render::{self, InitialState};
use super::{backup, binaries};
use super::{BinarySource, ClusterSettings, Layout, MemberSpec, UNIT_FILE};
use crate::pki::{self, KeyAlgorithm, KeyedCertificate, LeafRequest, PkiError, Usage};
use crate::ssh::{quote, FileToWrite, Host, SshError};

/// SHA-256 (hex) of what the provider wrote, by file: `config`, `unit`,
/// `etcdctl.env`, `ca.crt`, `server.crt`, `peer.crt`, `etcdctl.crt`, `etcd`.
pub type Fingerprints = BTreeMap<String, String>;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 (hex) of a local file, read in pieces (a snapshot may be large).
pub async fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

/// A member's certificates: the CA certificates it trusts, its own two,
/// and the client certificate of the tools on its host.
pub struct Certificates {
    pub trusted_ca_pem: String,
    pub server: KeyedCertificate,
    pub peer: KeyedCertificate,
    /// Common name `root`: etcdctl and the backup job keep their access
    /// when authentication is on (the host holds the data anyway).
    pub etcdctl: KeyedCertificate,
}

/// Issues the server and peer certificates of `member` from the CA
/// `ca_cert_pem`; the member trusts `trusted_ca_pem` (that CA, or during a
/// CA rotation both the old and the new). The server certificate also
/// names the loopback address, which etcd listens on.
pub fn issue_certificates(
    member: &MemberSpec,
    settings: &ClusterSettings,
    ca_cert_pem: &str,
    ca_key_pem: &str,
    trusted_ca_pem: &str,
    now: OffsetDateTime,
) -> Result<Certificates, PkiError> {
    let mut peer_names = vec![member.host.clone()];
    peer_names.extend(member.extra_sans.iter().cloned());
    let mut server_names = peer_names.clone();
    server_names.extend(["127.0.0.1".to_string(), "localhost".to_string()]);
    let (not_before, not_after) = pki::validity_window(now, settings.cert_validity_hours);
    let issue = |usage, names: &[String]| {
        pki::issue(
            ca_cert_pem,
            ca_key_pem,
            &LeafRequest {
                organization: None,
                common_name: match usage {
                    Usage::Client => crate::etcd::auth::ROOT,
                    Usage::Server => &member.name,
                    Usage::Peer => super::PEER_COMMON_NAME,
                },
                usage,
                names,
                algorithm: KeyAlgorithm::EcdsaP256,
                not_before,
                not_after,
            },
        )
    };
    Ok(Certificates {
        trusted_ca_pem: trusted_ca_pem.to_string(),
        server: issue(Usage::Server, &server_names)?,
        peer: issue(Usage::Peer, &peer_names)?,
        etcdctl: issue(Usage::Client, &[])?,
    })
}

/// Writes a member's peer certificate and key alone (etcd reads them for
/// every new peer connection: no restart); returns the certificate's
/// fingerprint.
pub async fn write_peer_certificate(
    host: &Host,
    settings: &ClusterSettings,
    certs: &Certificates,
) -> Result<String, SshError> {
    let [_, _, (_, peer_path, Some(peer_key)), _] = settings.layout.certificate_files() else {
        unreachable!("the layout lists the CA, server, peer and etcdctl files in that order")
    };
    let files = [
        file(&peer_path, &certs.peer.cert_pem, 0o644, "root:etcd"),
        file(&peer_key, &certs.peer.key_pem, 0o600, "etcd:etcd"),
    ];
    host.write_files_then(&files, "true").await?;
    Ok(sha256_hex(certs.peer.cert_pem.as_bytes()))
}

/// What the provider writes in a data directory: etcd's `member/` and the
/// marker of the snapshot it was restored from (and a file system's
/// `lost+found`, when the directory is a disk of its own).
const DATA_DIR_ENTRIES: &str = r"member|\.restored-from|lost\+found";

/// A shell check that `dir`, if it exists and is not the etcd user's yet,
/// holds nothing but entries whose whole names match `ours` (an extended
/// regex); else it fails, naming what else is there. Run before the
/// provider takes a directory over (makes it etcd's): a directory that
/// holds anything else (another program's data, the system's files) is not
/// given to etcd. Once it is etcd's, files others add there are theirs:
/// they block nothing, and the provider deletes only its own.
pub fn holds_only_ours(dir: &str, ours: &str, attribute: &str) -> String {
    format!(
        "if [ -d {dir} ] && [ \"$(stat -c %U {dir})\" != etcd ]; then others=$(ls -A {dir} | grep -vxE {ours} | head -n 3 | tr '\\n' ' '); \
         if [ -n \"$others\" ]; then echo \"{attribute} {shown} holds files the provider did not write \
         ($others): it gives that directory to etcd alone, so choose one of its own\" >&2; exit 3; fi; fi\n",
        dir = quote(dir),
        ours = quote(ours),
        shown = dir.replace('"', ""),
    )
}

/// Creates the `etcd` user and the directories. Returns whether the data
/// directory already holds member data. Refused if the data directory
/// holds anything the provider did not write (see [`holds_only_ours`]).
pub async fn prepare(host: &Host, settings: &ClusterSettings) -> Result<bool, SshError> {
    let l = &settings.layout;
    let script = format!(
        "set -e\n\
         {only_ours}\
         getent group etcd >/dev/null || groupadd --system etcd\n\
         getent passwd etcd >/dev/null || useradd --system --gid etcd --home-dir {data} \
           --no-create-home --shell \"$(command -v nologin || echo /bin/false)\" etcd\n\
         install -d -m 0755 -o root -g root {config} {bin}\n\
         install -d -m 0750 -o root -g etcd {pki}\n\
         install -d -m 0700 -o etcd -g etcd {data}\n\
         if [ -d {data}/member ]; then echo has-data; fi\n",
        only_ours = holds_only_ours(&l.data_dir, DATA_DIR_ENTRIES, "data_dir"),
        data = quote(&l.data_dir),
        config = quote(&l.config_dir),
        bin = quote(&l.bin_dir),
        pki = quote(&l.pki_dir()),
    );
    Ok(host.run_ok(&script).await?.contains("has-data"))
}

/// A text file to write with `mode` and `owner`.
fn file<'a>(path: &'a str, content: &'a str, mode: u32, owner: &'a str) -> FileToWrite<'a> {
    FileToWrite {
        path,
        content: content.as_bytes(),
        mode,
        owner,
    }
}

/// Writes certificates, configuration and unit; returns their fingerprints
/// together with the binary's.
pub async fn write_files(
    host: &Host,
    member: &MemberSpec,
    settings: &ClusterSettings,
    certs: &Certificates,
    initial_cluster: &[String],
    state: InitialState,
) -> Result<Fingerprints, SshError> {
    let l = &settings.layout;
    let [(_, ca_path, _), (_, server_path, Some(server_key)), (_, peer_path, Some(peer_key)), (_, etcdctl_path, Some(etcdctl_key))] =
        l.certificate_files()
    else {
        unreachable!("the layout lists the CA, server, peer and etcdctl files in that order")
    };
    let config = render::config_file(member, settings, initial_cluster, state);
    let unit = render::unit_file(settings);
    let etcdctl_env = render::etcdctl_env(settings);
    let (config_path, unit_path, etcdctl_env_path) =
        (l.config_file(), l.unit_file(), l.etcdctl_env_file());
    let files = [
        file(&ca_path, &certs.trusted_ca_pem, 0o644, "root:etcd"),
        file(&server_path, &certs.server.cert_pem, 0o644, "root:etcd"),
        file(&server_key, &certs.server.key_pem, 0o600, "etcd:etcd"),
        file(&peer_path, &certs.peer.cert_pem, 0o644, "root:etcd"),
        file(&peer_key, &certs.peer.key_pem, 0o600, "etcd:etcd"),
        file(&etcdctl_path, &certs.etcdctl.cert_pem, 0o644, "root:etcd"),
        file(&etcdctl_key, &certs.etcdctl.key_pem, 0o600, "etcd:etcd"),
        file(&config_path, &config, 0o644, "root:etcd"),
        file(&unit_path, &unit, 0o644, "root:root"),
        file(&etcdctl_env_path, &etcdctl_env, 0o644, "root:root"),
    ];
    // The binary's fingerprint in the same round trip.
    let binary = host
        .write_files_then(
            &files,
            &binaries::binary_hash_command(&l.etcd(), &l.binary_hash_memo("etcd")),
        )
        .await?;
    let mut prints = Fingerprints::new();
    prints.insert("config".into(), sha256_hex(config.as_bytes()));
    prints.insert("unit".into(), sha256_hex(unit.as_bytes()));
    prints.insert("etcdctl.env".into(), sha256_hex(etcdctl_env.as_bytes()));
    prints.insert("ca.crt".into(), sha256_hex(certs.trusted_ca_pem.as_bytes()));
    prints.insert(
        "server.crt".into(),
        sha256_hex(certs.server.cert_pem.as_bytes()),
    );
    prints.insert(
        "peer.crt".into(),
        sha256_hex(certs.peer.cert_pem.as_bytes()),
    );
    prints.insert(
        "etcdctl.crt".into(),
        sha256_hex(certs.etcdctl.cert_pem.as_bytes()),
    );
    prints.insert(
        "etcd".into(),
        binary
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    );
    Ok(prints)
}

/// Makes the member's data directory from a snapshot with `snapshot
/// restore` (by the version's tool: etcdutl from 3.5, etcdctl before) (its name, peer URL and the new cluster's initial
/// cluster and token), for a new cluster that starts from a backup. The
/// snapshot is streamed from `snapshot` (never held in memory) to a 0600
/// file beside the data directory, removed after. Its
/// cluster token is [`restored_token`]'s, not the cluster's own. The
/// snapshot's SHA-256 (`digest`) is recorded in the data directory, so that
/// an interrupted bootstrap knows the data as restored from it.
pub async fn restore_snapshot(
    host: &Host,
    member: &MemberSpec,
    settings: &ClusterSettings,
    snapshot: impl tokio::io::AsyncRead + Unpin,
    digest: &str,
    initial_cluster: &[String],
) -> Result<(), SshError> {
    let l = &settings.layout;
    let upload = format!("{}.snapshot", l.data_dir);
    host.write_file_from(&upload, snapshot, 0o600, "root:root")
        .await?;
    let script = format!(
        "set -e\n\
         tmp={restoring}; upload={upload}\n\
         trap 'rm -rf \"$tmp\" \"$upload\"' EXIT\n\
         rm -rf \"$tmp\"\n\
         {tool} snapshot restore \"$upload\" --name {name} --initial-cluster {initial} \
           --initial-cluster-token {token} --initial-advertise-peer-urls {peer} --data-dir \"$tmp\" >/dev/null\n\
         install -d -m 0700 -o etcd -g etcd {data}\n\
         mv \"$tmp/member\" {data}/member\n\
         echo {digest} > {marker}\n\
         chown -R etcd:etcd {data}\n",
        restoring = quote(&format!("{}.restoring", l.data_dir)),
        upload = quote(&upload),
        tool = quote(&settings.snapshot_tool()),
        name = quote(&member.name),
        initial = quote(&initial_cluster.join(",")),
        token = quote(&restored_token(settings, digest)),
        peer = quote(&member.peer_url(settings)),
        data = quote(&l.data_dir),
        digest = quote(digest),
        marker = quote(&restored_marker(l)),
    );
    host.run_ok(&script).await?;
    Ok(())
}

/// The cluster token a restore uses: the cluster's name and the snapshot's
/// digest, so that the restored cluster gets new member and cluster IDs
/// (etcd derives them from the token and the peer URLs) and a member of the
/// old cluster that comes back can never join it.
fn restored_token(settings: &ClusterSettings, digest: &str) -> String {
    format!(
        "{}-restored-{}",
        settings.token,
        &digest[..digest.len().min(12)]
    )
}

fn restored_marker(layout: &Layout) -> String {
    format!("{}/.restored-from", layout.data_dir)
}

/// The SHA-256 of the snapshot the member's data was restored from, if
/// [`restore_snapshot`] made it.
pub async fn restored_from(
    host: &Host,
    settings: &ClusterSettings,
) -> Result<Option<String>, SshError> {
    let out = host
        .run(&format!(
            "cat {} 2>/dev/null",
            quote(&restored_marker(&settings.layout))
        ))
        .await?;
    Ok(Some(out.stdout.trim().to_string()).filter(|s| !s.is_empty()))
}

/// Enables the unit and starts it without waiting for it to be ready:
/// with `Type=notify` a blocking start would wait for a quorum that the
/// other members may not have formed yet. A restart returns once the old
/// process has stopped (the unit's invocation changed), so that a health
/// check that follows can only see the new one.
pub async fn start(host: &Host, restart: bool) -> Result<(), SshError> {
    let (verb, until_restarted) = if restart {
        (
            "restart",
            "; while [ \"$(show InvocationID)\" = \"$old\" ]; do sleep 0.02; done",
        )
    } else {
        ("start", "")
    };
    // systemd reads the units again only when etcd's is not loaded from
    // the provider's file (a packaged unit is overridden) or that changed:
    // a reload costs more than the rest of this command. For the same
    // reason `enable` does not reload: its link only matters at boot,
    // when systemd reads everything anyway.
    host.run_ok(&format!(
        "set -e; show() {{ systemctl show -p \"$1\" --value etcd; }}; \
         {{ [ \"$(show LoadState)\" = loaded ] && [ \"$(show FragmentPath)\" = {unit} ] && \
           [ \"$(show NeedDaemonReload)\" = no ]; }} || systemctl daemon-reload; \
         old=$(show InvocationID); \
         systemctl is-enabled --quiet etcd || systemctl enable --quiet --no-reload etcd; \
         systemctl {verb} --no-block etcd{until_restarted}",
        unit = quote(UNIT_FILE)
    ))
    .await?;
    Ok(())
}

/// Stops and disables etcd and removes the files the provider installed
/// (the backup job's too; snapshots stay), and nothing else (a shared directory such as kubeadm's pki keeps its
/// other files). The data directory stays unless `purge_data` is set.
pub async fn uninstall(
    host: &Host,
    settings: &ClusterSettings,
    purge_data: bool,
) -> Result<(), SshError> {
    let l = &settings.layout;
    let mut files = vec![
        l.unit_file(),
        l.config_file(),
        l.etcdctl_env_file(),
        l.release_file(),
    ];
    // Every version's programs: a member may have run an older one.
    for name in ["etcd", "etcdctl", "etcdutl"] {
        files.extend([l.binary_hash_memo(name), l.staged_hash_memo(name)]);
        if settings.binary_source != BinarySource::OsPackage {
            // Packaged binaries belong to the package manager.
            files.extend([l.binary(name), binaries::staged(&l.binary(name))]);
        }
    }
    for (_, cert, key) in l.certificate_files() {
        files.push(cert);
        files.extend(key);
    }
    let files: Vec<String> = files.iter().map(|f| quote(f)).collect();
    let mut script = format!(
        "systemctl disable --now --quiet etcd 2>/dev/null || true\n\
         rm -f {files}\n\
         systemctl daemon-reload\n\
         rmdir {pki} {config_dir} 2>/dev/null || true\n",
        files = files.join(" "),
        pki = quote(&l.pki_dir()),
        config_dir = quote(&l.config_dir),
    );
    if purge_data {
        // Only what etcd and the provider wrote there; the directory goes
        // if nothing else is left in it.
        script.push_str(&format!(
            "rm -rf {data}/member {data}/.restored-from\nrmdir {data} 2>/dev/null || true\n",
            data = quote(&l.data_dir)
        ));
    }
    backup::uninstall(host, l).await?;
    host.run_ok(&script).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_taken_over_only_if_it_holds_nothing_but_ours() {
        let dir = tempfile_dir();
        let check = |path: &std::path::Path| {
            std::process::Command::new("sh")
                .args([
                    "-c",
                    &holds_only_ours(path.to_str().unwrap(), DATA_DIR_ENTRIES, "data_dir"),
                ])
                .output()
                .unwrap()
        };
        assert!(check(&dir.join("absent")).status.success());
        std::fs::create_dir_all(dir.join("member/wal")).unwrap();
        std::fs::write(dir.join(".restored-from"), "abc").unwrap();
        assert!(check(&dir).status.success());
        std::fs::write(dir.join("PG_VERSION"), "15").unwrap();
        let refused = check(&dir);
        let said = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(3), "{said}");
        assert!(
            said.contains("holds files the provider did not write (PG_VERSION )"),
            "{said}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("only-ours-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
