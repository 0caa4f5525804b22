//! The etcd binaries on a member's host: uploaded from the machine running
//! Terraform (staged ahead of a roll, then renamed into place), downloaded
//! and checked on the host, or installed from the distribution's packages;
//! the version they report, and the hash memos that spare the host hashing
//! them at every look.

use super::{BinarySource, ClusterSettings, Layout};
use crate::ssh::{quote, FileToWrite, Host, SshError};

use super::install::sha256_hex;
use crate::version::EtcdVersion;

/// The programs a member host gets for `version`: `etcd` and `etcdctl`,
/// and `etcdutl` where the version has it (it checks and restores
/// snapshots from etcd 3.5 on; see `crate::version`).
pub fn names(version: &str) -> &'static [&'static str] {
    if EtcdVersion::parse(version).is_some_and(EtcdVersion::has_etcdutl) {
        &["etcd", "etcdctl", "etcdutl"]
    } else {
        &["etcd", "etcdctl"]
    }
}

/// One binary read from the machine running Terraform.
struct LocalBinary {
    name: &'static str,
    bytes: Vec<u8>,
    /// Its SHA-256 (hex), hashed once: each member's step compares it.
    sha256: String,
}

/// The binaries of a version, read from a directory on the machine running
/// Terraform.
pub struct LocalBinaries(Vec<LocalBinary>);

impl LocalBinaries {
    pub fn load(dir: &str, version: &str) -> Result<LocalBinaries, String> {
        names(version)
            .iter()
            .map(|&name| {
                let bytes = std::fs::read(format!("{dir}/{name}"))
                    .map_err(|e| format!("{dir}/{name}: {e}"))?;
                Ok(LocalBinary {
                    name,
                    sha256: sha256_hex(&bytes),
                    bytes,
                })
            })
            .collect::<Result<_, String>>()
            .map(LocalBinaries)
    }

    /// Each binary on a host: its paths and memos, content and SHA-256.
    fn files<'a>(&'a self, layout: &Layout) -> Vec<HostBinary<'a>> {
        self.0
            .iter()
            .map(|b| HostBinary {
                path: layout.binary(b.name),
                memo: layout.binary_hash_memo(b.name),
                staged: staged(&layout.binary(b.name)),
                staged_memo: layout.staged_hash_memo(b.name),
                bytes: b.bytes.as_slice(),
                sha256: b.sha256.as_str(),
            })
            .collect()
    }
}

/// One of the local binaries as it goes to a host.
struct HostBinary<'a> {
    path: String,
    /// Its hash memo (see `binary_hash_command`).
    memo: String,
    staged: String,
    staged_memo: String,
    bytes: &'a [u8],
    sha256: &'a str,
}

impl HostBinary<'_> {
    /// Whether `sums` (as `binary_sums` prints them) has it installed.
    fn installed(&self, sums: &str) -> bool {
        sums.contains(&format!("{}  {}", self.sha256, self.path))
    }

    /// Whether `sums` has it staged.
    fn staged(&self, sums: &str) -> bool {
        sums.contains(&format!("{}  {}", self.sha256, self.staged))
    }
}

/// The version `etcd --version` reports on the host, if etcd is installed.
pub async fn installed_version(
    host: &Host,
    settings: &ClusterSettings,
) -> Result<Option<String>, SshError> {
    // "|| true": a missing binary exits 127, which openssh reports as an error.
    let etcd = quote(&settings.layout.etcd());
    let out = host
        .run(&format!("{etcd} --version 2>/dev/null || true"))
        .await?;
    Ok(out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .map(|v| v.trim().to_string()))
}

/// Where a binary waits, uploaded ahead of its member's turn in a roll:
/// beside it, hidden, so that putting it in place is a rename.
pub(super) fn staged(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.staged"),
        None => format!(".{path}.staged"),
    }
}

/// The binaries the host has installed and staged that could be `local`'s,
/// as `sha256sum` lists them: each is hashed only if it changed since its
/// memo (see `binary_hash_command`), a staged one only if it has
/// the size of the local one.
async fn binary_sums(
    host: &Host,
    settings: &ClusterSettings,
    local: &LocalBinaries,
) -> Result<String, SshError> {
    let script = local
        .files(&settings.layout)
        .iter()
        .map(|b| {
            format!(
                "{}; if [ \"$(stat -c %s {at} 2>/dev/null)\" = {size} ]; then {}; fi",
                binary_hash_command(&b.path, &b.memo),
                binary_hash_command(&b.staged, &b.staged_memo),
                at = quote(&b.staged),
                size = b.bytes.len(),
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(host.run(&script).await?.stdout)
}

/// Uploads the binaries that differ from the installed ones to their
/// staging place, without touching the running member: done for every
/// member at once before a roll restarts them one by one. Each staged
/// binary's memo is written with the sum of the bytes sent, so that the
/// member's own step finds it without hashing it again.
pub async fn stage_binaries(
    host: &Host,
    settings: &ClusterSettings,
    binaries: &LocalBinaries,
) -> Result<(), SshError> {
    let present = binary_sums(host, settings, binaries).await?;
    let missing: Vec<HostBinary> = binaries
        .files(&settings.layout)
        .into_iter()
        .filter(|b| !b.installed(&present) && !b.staged(&present))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let files: Vec<FileToWrite> = missing
        .iter()
        .map(|b| FileToWrite {
            path: &b.staged,
            content: b.bytes,
            mode: 0o755,
            owner: "root:root",
        })
        .collect();
    let memos: Vec<String> = missing
        .iter()
        .map(|b| write_hash_memo_command(&b.staged, &b.staged_memo, b.sha256))
        .collect();
    host.write_files_then(&files, &memos.join(" && ")).await?;
    Ok(())
}

/// Puts the requested etcd binaries in place, skipping what is already
/// there (a staged binary is renamed into place), and checks the version
/// they report.
pub async fn install_binaries(
    host: &Host,
    settings: &ClusterSettings,
    local: Option<&LocalBinaries>,
) -> Result<(), SshError> {
    let l = &settings.layout;
    match (&settings.binary_source, local) {
        (BinarySource::LocalPath(_), Some(binaries)) => {
            let present = binary_sums(host, settings, binaries).await?;
            let files = binaries.files(l);
            let mut renames = Vec::new();
            let mut uploads = Vec::new();
            for b in files.iter().filter(|b| !b.installed(&present)) {
                if b.staged(&present) {
                    renames.push(format!(
                        "mv -f {} {} && rm -f {} && {}",
                        quote(&b.staged),
                        quote(&b.path),
                        quote(&b.staged_memo),
                        write_hash_memo_command(&b.path, &b.memo, b.sha256)
                    ));
                } else {
                    uploads.push(FileToWrite {
                        path: &b.path,
                        content: b.bytes,
                        mode: 0o755,
                        owner: "root:root",
                    });
                }
            }
            // Uploads and renames in one command.
            let renames = renames.join(" && ");
            if !uploads.is_empty() {
                host.write_files_then(&uploads, &renames).await?;
            } else if !renames.is_empty() {
                host.run_ok(&renames).await?;
            }
        }
        (BinarySource::Url { url, sha256 }, _) => {
            // Skipped only when the release file says these binaries came
            // from this very tarball and the etcd binary is still the one
            // installed then.
            let script = format!(
                "set -e\n\
                 installed=$(sha256sum {etcd} 2>/dev/null | cut -d' ' -f1)\n\
                 [ \"$(cat {release} 2>/dev/null)\" = \"{sum} $installed\" ] && exit 0\n\
                 tmp=$(mktemp -d); trap 'rm -rf \"$tmp\"' EXIT\n\
                 curl -fsSL --connect-timeout 15 --retry 3 -o \"$tmp/etcd.tar.gz\" {url}\n\
                 echo {sum}'  '\"$tmp/etcd.tar.gz\" | sha256sum -c --quiet -\n\
                 mkdir \"$tmp/x\"; tar -xzf \"$tmp/etcd.tar.gz\" -C \"$tmp/x\" --strip-components=1\n\
                 cd \"$tmp/x\" && install -m 0755 {names} {bin}/\n\
                 echo \"{sum} $(sha256sum {etcd} | cut -d' ' -f1)\" > {release}\n",
                url = quote(url),
                sum = quote(sha256),
                bin = quote(&l.bin_dir),
                names = names(&settings.etcd_version).join(" "),
                etcd = quote(&l.etcd()),
                release = quote(&l.release_file()),
            );
            host.run_ok(&script).await?;
        }
        (BinarySource::OsPackage, _) => {
            // The packaged service must not start with the package's own
            // configuration: a policy-rc.d (ours only if there is none)
            // holds it back, and the unit written later replaces it.
            let script = "set -e\n\
                 installed=$(dpkg-query -W -f='${Status}\\n' etcd-server etcd-client 2>/dev/null | grep -c 'install ok installed' || true)\n\
                 [ \"$installed\" = 2 ] && exit 0\n\
                 command -v apt-get >/dev/null || { echo 'os_package needs apt-get on the host' >&2; exit 1; }\n\
                 if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d; \
                   chmod 0755 /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; fi\n\
                 export DEBIAN_FRONTEND=noninteractive\n\
                 apt='apt-get -o DPkg::Lock::Timeout=120'\n\
                 $apt install -y -q etcd-server etcd-client >/dev/null 2>&1 || \
                   { $apt update -q >/dev/null && $apt install -y -q etcd-server etcd-client >/dev/null; }\n";
            host.run_ok(script).await?;
        }
        (BinarySource::LocalPath(dir), None) => {
            return Err(SshError(format!(
                "the etcd binaries in {dir} were not loaded"
            )));
        }
    }
    match installed_version(host, settings).await? {
        Some(v) if v == settings.etcd_version => Ok(()),
        found => Err(SshError(format!(
            "{}: the installed etcd reports version {}, but etcd_version is {}",
            host.address,
            found.as_deref().unwrap_or("nothing"),
            settings.etcd_version
        ))),
    }
}

/// Prints `SHA256  BINARY` as `sha256sum` does, hashing the binary (tens
/// of megabytes, on every host at every plan) only when its size, times or
/// inode differ from those the memo was written for; the change time
/// moves with any write or rename, so a replaced binary is always hashed.
/// Safe under `set -e`: a missing or unwritable memo only costs a hash.
pub(super) fn binary_hash_command(binary: &str, memo: &str) -> String {
    let (binary, memo) = (quote(binary), quote(memo));
    format!(
        "if st=$(stat -c {MEMO_STAT} {binary} 2>/dev/null); then \
           m=; {{ IFS= read -r m; }} 2>/dev/null < {memo} || true; \
           if [ \"${{m%% *}}\" = \"$st\" ]; then h=${{m#* }}; \
           else h=$(sha256sum {binary} | cut -d' ' -f1); {{ echo \"$st $h\" > {memo}; }} 2>/dev/null || true; fi; \
           echo \"$h  \"{binary}; \
         fi"
    )
}

/// What a hash memo is keyed on: size, modification and change times,
/// inode.
const MEMO_STAT: &str = "'%s:%.9Y:%.9Z:%i'";

/// Writes the memo of [`binary_hash_command`] for `binary` with a `sha256`
/// known without hashing it on the host: that of the bytes just written
/// to it (the transfer is checked by SSH and the writing script's length
/// check), or of the staged file it was renamed from.
pub(super) fn write_hash_memo_command(binary: &str, memo: &str, sha256: &str) -> String {
    format!(
        "echo \"$(stat -c {MEMO_STAT} {binary}) {sha256}\" > {memo}",
        binary = quote(binary),
        memo = quote(memo),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcdutl_goes_to_hosts_from_3_5_on() {
        assert_eq!(names("3.4.23"), ["etcd", "etcdctl"]);
        for version in ["3.5.36", "3.6.17", "3.7.4"] {
            assert_eq!(names(version), ["etcd", "etcdctl", "etcdutl"], "{version}");
        }
    }

    #[test]
    fn a_staged_binary_waits_hidden_beside_its_place() {
        assert_eq!(staged("/usr/local/bin/etcd"), "/usr/local/bin/.etcd.staged");
        assert_eq!(
            staged("/opt/etcd/bin/etcdctl"),
            "/opt/etcd/bin/.etcdctl.staged"
        );
    }

    #[test]
    fn the_binary_is_hashed_again_only_after_it_changed() {
        let dir = std::env::temp_dir().join(format!("binary-memo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (binary, memo) = (dir.join("etcd"), dir.join("memo"));
        let hash = |bytes: &[u8]| crate::member::install::sha256_hex(bytes);
        // Under `set -e`, as after writing files (`Host::write_files_then`).
        let run_with = |memo: &std::path::Path| {
            let command = binary_hash_command(binary.to_str().unwrap(), memo.to_str().unwrap());
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("set -e; {command}"))
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let run = || run_with(&memo);
        std::fs::write(&binary, b"one").unwrap();
        let line = |bytes: &[u8]| format!("{}  {}\n", hash(bytes), binary.display());
        // No memo yet, and none can be written: hashed all the same.
        assert_eq!(run_with(&dir.join("missing/memo")), line(b"one"));
        assert_eq!(run(), line(b"one"));
        let memo_text = std::fs::read_to_string(&memo).unwrap();
        assert!(memo_text.trim_end().ends_with(&hash(b"one")), "{memo_text}");
        assert_eq!(run(), line(b"one"), "from the memo");
        // A binary replaced by a rename, as an install does.
        let next = dir.join("etcd.new");
        std::fs::write(&next, b"two").unwrap();
        std::fs::rename(&next, &binary).unwrap();
        assert_eq!(run(), line(b"two"));
        std::fs::remove_file(&binary).unwrap();
        assert_eq!(run(), "", "no binary, no line");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
