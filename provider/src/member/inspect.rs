//! What is on a member host now, and how it differs from what the provider
//! wrote there: one SSH round trip, and few processes on the host (a look
//! at every host is part of every plan). etcd's unit's state from its
//! control group when it runs, else from `systemctl is-active` (with a
//! backup schedule, one `systemctl show` for it and the job's units), one
//! `sha256sum` for every managed file, the binary's hash from its memo, the
//! server certificate.

use std::collections::BTreeMap;

use super::backup_drill;
use super::backup_state::{self, BackupState, Properties, SERVICE_UNIT, TIMER_UNIT};
use super::binaries::binary_hash_command;
use super::install::Fingerprints;
use super::ClusterSettings;
use crate::ssh::{quote, Host, SshError};

/// A member host as one SSH round trip sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// etcd's unit's active state: active, inactive, failed, activating...,
    /// or [`UNIT_RUNNING`].
    pub unit: String,
    /// SHA-256 of each managed file that exists, by fingerprint name.
    pub files: Fingerprints,
    /// The member's server certificate (PEM), to tell when it expires.
    pub server_cert_pem: String,
    /// Its peer certificate (PEM), to tell whether it carries the peer
    /// name (`PEER_COMMON_NAME`).
    pub peer_cert_pem: String,
    /// Whether the data directory holds etcd data (`member/`).
    pub data: DataDir,
    /// The scheduled backup job.
    pub backup: BackupState,
}

/// What the host says of the member's data directory. Only `Absent` is
/// evidence that the data is gone: a directory the SSH user may not read
/// (no root, no sudo) tells nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// It holds `member/`.
    Present,
    /// It does not exist, or is readable and holds no `member/`.
    Absent,
    /// The SSH user cannot look inside it.
    Unreadable,
}

const ETCD_UNIT: &str = "etcd.service";

/// etcd's unit's state when its control group holds a process: active, or
/// starting, stopping or reloading. Read from the cgroup file by the shell,
/// without asking systemd (a `systemctl` call costs a host about 6 ms of
/// CPU, most of a look at it, at every plan).
pub const UNIT_RUNNING: &str = "running";

/// Where systemd keeps the unit's control group: the unified hierarchy,
/// then the hybrid and legacy layouts.
const CGROUP_ROOTS: [&str; 3] = [
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup/systemd",
];

/// The sections of the command's output, each after a line `--- NAME ---`.
const UNITS: &str = "units";
const DATA: &str = "member data";
const SUMS: &str = "sums";
const BACKUPS: &str = "backups";
const CERTIFICATE: &str = "server certificate";
const PEER_CERTIFICATE: &str = "peer certificate";

fn heading(section: &str) -> String {
    format!("echo '--- {section} ---'")
}

pub async fn observe(host: &Host, settings: &ClusterSettings) -> Result<HostState, SshError> {
    let l = &settings.layout;
    let mut paths: BTreeMap<String, String> = BTreeMap::new();
    paths.insert(l.config_file(), "config".into());
    paths.insert(l.unit_file(), "unit".into());
    paths.insert(l.etcdctl_env_file(), "etcdctl.env".into());
    for (name, cert, _) in l.certificate_files() {
        paths.insert(cert, name.into());
    }
    let summed: Vec<String> = paths
        .keys()
        .cloned()
        .chain(backup_state::paths(settings))
        .map(|p| quote(&p))
        .collect();
    paths.insert(l.etcd(), "etcd".into());
    let backups = backup_state::schedule_command(settings)
        .map(|command| format!("{}\n{command}\n", heading(BACKUPS)))
        .unwrap_or_default();
    let units = match &settings.backup.schedule {
        Some(_) => format!(
            "systemctl show -p Id -p ActiveState -p UnitFileState -p Result \
             -p ActiveEnterTimestampMonotonic {ETCD_UNIT} {TIMER_UNIT} {SERVICE_UNIT} {} 2>/dev/null",
            if settings.backup.drill.is_some() { backup_drill::TIMER_UNIT } else { "" }
        ),
        // Without a backup job, etcd's state alone, asked the way that
        // costs the host least.
        None => etcd_state_command(&CGROUP_ROOTS),
    };
    let script = format!(
        "{heading}\n{units}\n\
         {data}\nif [ -d {data_dir}/member ]; then echo present; \
         elif [ ! -e {data_dir} ] || {{ [ -r {data_dir} ] && [ -x {data_dir} ]; }}; then echo absent; \
         else echo unreadable; fi\n\
         {sums}\nsha256sum {summed} 2>/dev/null\n{binary}\n\
         {backups}{certificate}\n{cat_cert}\n{peer_certificate}\n{cat_peer_cert}\ntrue",
        heading = heading(UNITS),
        data_dir = quote(&l.data_dir),
        data = heading(DATA),
        sums = heading(SUMS),
        summed = summed.join(" "),
        binary = binary_hash_command(&l.etcd(), &l.binary_hash_memo("etcd")),
        certificate = heading(CERTIFICATE),
        cat_cert = print_text_file(&format!("{}/server.crt", l.pki_dir())),
        peer_certificate = heading(PEER_CERTIFICATE),
        cat_peer_cert = print_text_file(&format!("{}/peer.crt", l.pki_dir())),
    );
    let out = host.run(&script).await?;
    Ok(parse(settings, &out.stdout, &paths))
}

/// Prints `Id=etcd.service` and `ActiveState=` with [`UNIT_RUNNING`] when
/// the unit's control group (under the first of `roots` that has it) holds a
/// process, else with what `systemctl is-active` says: exact for a unit that
/// is stopped, failed, or waiting to restart. A unit placed in another
/// slice by a drop-in is always asked of systemd.
fn etcd_state_command(roots: &[&str]) -> String {
    let procs: Vec<String> = roots
        .iter()
        .map(|root| quote(&format!("{root}/system.slice/{ETCD_UNIT}/cgroup.procs")))
        .collect();
    format!(
        "printf 'Id={ETCD_UNIT}\\nActiveState='; pid=; \
         for f in {procs}; do if [ -r \"$f\" ]; then {{ read -r pid < \"$f\"; }} 2>/dev/null || true; break; fi; done; \
         if [ -n \"$pid\" ]; then echo {UNIT_RUNNING}; else systemctl is-active {ETCD_UNIT}; fi",
        procs = procs.join(" ")
    )
}

/// Whether the member answers a quorum read on its own host (its local
/// client URL, with the host's etcdctl identity): the evidence, when the
/// machine running Terraform gets no answer from it, that it serves all
/// the same and only cannot be reached from there.
pub async fn serves_locally(host: &Host, settings: &ClusterSettings) -> bool {
    let check = format!(
        "set -a; . {env}; set +a; {etcdctl} get --keys-only --command-timeout=3s health >/dev/null 2>&1 && echo serves; true",
        env = quote(&settings.layout.etcdctl_env_file()),
        etcdctl = quote(&settings.layout.etcdctl()),
    );
    host.run(&check)
        .await
        .is_ok_and(|out| out.stdout.trim() == "serves")
}

/// Whether etcd's unit runs, as far as the provider's checks go.
pub fn unit_runs(state: &str) -> bool {
    state == "active" || state == UNIT_RUNNING
}

/// Prints a small text file with the shell's own `read` (no process;
/// a missing file prints nothing).
fn print_text_file(path: &str) -> String {
    format!(
        "{{ while IFS= read -r line || [ -n \"$line\" ]; do printf '%s\\n' \"$line\"; done; }} 2>/dev/null < {}",
        quote(path)
    )
}

/// The output's sections by name; a section printed twice keeps the last.
fn sections(stdout: &str) -> BTreeMap<&str, String> {
    let mut sections = BTreeMap::new();
    let mut current: Option<(&str, String)> = None;
    for line in stdout.lines() {
        let name = line
            .strip_prefix("--- ")
            .and_then(|rest| rest.strip_suffix(" ---"));
        match name {
            Some(name) => {
                if let Some((done, text)) = current.replace((name, String::new())) {
                    sections.insert(done, text);
                }
            }
            None => {
                if let Some((_, text)) = &mut current {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    if let Some((done, text)) = current {
        sections.insert(done, text);
    }
    sections
}

/// `systemctl show` of several units: their properties by unit `Id`.
fn unit_properties(text: &str) -> BTreeMap<String, Properties> {
    let mut units = BTreeMap::new();
    for block in text.split("\n\n") {
        let properties: Properties = block
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(id) = properties.get("Id") {
            units.insert(id.clone(), properties);
        }
    }
    units
}

fn parse(settings: &ClusterSettings, stdout: &str, paths: &BTreeMap<String, String>) -> HostState {
    let sections = sections(stdout);
    let text = |name: &str| sections.get(name).map(String::as_str).unwrap_or_default();
    let units = unit_properties(text(UNITS));
    let sums: Vec<(String, String)> = text(SUMS)
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(sum, path)| (path.trim().to_string(), sum.to_string()))
        .collect();
    let files = sums
        .iter()
        .filter_map(|(path, sum)| paths.get(path).map(|name| (name.clone(), sum.clone())))
        .collect();
    HostState {
        unit: units
            .get(ETCD_UNIT)
            .and_then(|p| p.get("ActiveState"))
            .filter(|state| !state.is_empty())
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        files,
        server_cert_pem: text(CERTIFICATE).trim().to_string(),
        peer_cert_pem: text(PEER_CERTIFICATE).trim().to_string(),
        data: match text(DATA).trim() {
            "present" => DataDir::Present,
            "absent" => DataDir::Absent,
            _ => DataDir::Unreadable,
        },
        backup: backup_state::parse(settings, &units, &sums, text(BACKUPS)),
    }
}

/// Whether none of the provider's files is on the host (a new or wiped
/// machine).
pub fn nothing_installed(seen: &HostState) -> bool {
    seen.files.is_empty() && !unit_runs(&seen.unit)
}

/// Human descriptions of what differs from `expected`.
pub fn differences(expected: &Fingerprints, seen: &HostState) -> Vec<String> {
    if nothing_installed(seen) && !expected.is_empty() {
        return vec!["etcd is not installed on the host".to_string()];
    }
    let mut problems = Vec::new();
    if !unit_runs(&seen.unit) {
        problems.push(format!("etcd unit is {}", seen.unit));
    }
    for (name, sum) in expected {
        match seen.files.get(name) {
            None => problems.push(format!("{name} is missing")),
            Some(found) if found != sum => problems.push(format!("{name} changed on the host")),
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_unit_is_read_from_its_control_group_and_any_other_asked_of_systemd() {
        let dir = std::env::temp_dir().join(format!("unit-state-{}", std::process::id()));
        let (unified, legacy, bin) = (dir.join("unified"), dir.join("legacy"), dir.join("bin"));
        std::fs::create_dir_all(&bin).unwrap();
        // A systemctl that says what it was asked, to count the calls.
        let systemctl = bin.join("systemctl");
        std::fs::write(&systemctl, "#!/bin/sh\necho \"asked $*\"\n").unwrap();
        std::fs::set_permissions(
            &systemctl,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let state = || {
            let roots = [unified.to_str().unwrap(), legacy.to_str().unwrap()];
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("set -e; {}", etcd_state_command(&roots)))
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let procs = |root: &std::path::Path, pids: &str| {
            let group = root.join("system.slice/etcd.service");
            std::fs::create_dir_all(&group).unwrap();
            std::fs::write(group.join("cgroup.procs"), pids).unwrap();
        };
        let asked = "Id=etcd.service\nActiveState=asked is-active etcd.service\n";
        assert_eq!(state(), asked, "no control group: stopped or failed");
        procs(&legacy, "4242\n4250\n");
        assert_eq!(
            state(),
            "Id=etcd.service\nActiveState=running\n",
            "legacy layout"
        );
        procs(&unified, "");
        assert_eq!(
            state(),
            asked,
            "an empty group: the first layout found decides"
        );
        procs(&unified, "4242\n");
        assert_eq!(state(), "Id=etcd.service\nActiveState=running\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_text_file_is_printed_by_the_shell_itself() {
        let file = std::env::temp_dir().join(format!("print-text-{}", std::process::id()));
        let print = || {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "{}; echo end",
                    print_text_file(file.to_str().unwrap())
                ))
                .output()
                .unwrap();
            (String::from_utf8(out.stdout).unwrap(), out.stderr)
        };
        let pem = "-----BEGIN CERTIFICATE-----\n  MIIB \\n*\n-----END CERTIFICATE-----";
        std::fs::write(&file, pem).unwrap();
        assert_eq!(print().0, format!("{pem}\nend\n"), "no newline at the end");
        std::fs::write(&file, format!("{pem}\n")).unwrap();
        assert_eq!(print().0, format!("{pem}\nend\n"));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            print(),
            ("end\n".to_string(), Vec::new()),
            "missing: nothing"
        );
    }

    /// What the command prints on a host (`systemctl show` as systemd 252
    /// prints it), with etcd's unit in `state`.
    fn output(state: &str, data: &str, sums: &str) -> String {
        format!(
            "--- units ---\nId=etcd.service\nActiveState={state}\nUnitFileState=enabled\nResult=success\n\
             ActiveEnterTimestampMonotonic=5000000\n\nId=etcd-backup.timer\nActiveState=inactive\n\
             UnitFileState=\nResult=success\nActiveEnterTimestampMonotonic=0\n\nId=etcd-backup.service\n\
             ActiveState=inactive\nUnitFileState=\nResult=success\nActiveEnterTimestampMonotonic=0\n\
             --- member data ---\n{data}\n--- sums ---\n{sums}--- server certificate ---\n-----BEGIN CERTIFICATE-----\nMIIB\n",
        )
    }

    #[test]
    fn parses_unit_state_and_sums() {
        let settings = crate::member::backup::tests::settings(None);
        let paths: BTreeMap<String, String> =
            [("/etc/etcd/etcd.conf.yml".to_string(), "config".to_string())].into();
        let timer = format!(
            "{}  /etc/systemd/system/etcd-backup.timer\n",
            "t".repeat(64)
        );
        let seen = parse(
            &settings,
            &output(
                "failed",
                "absent",
                &format!("abc  /etc/etcd/etcd.conf.yml\n{timer}"),
            ),
            &paths,
        );
        assert_eq!(seen.data, DataDir::Absent);
        let data = |word| parse(&settings, &output("active", word, ""), &paths).data;
        assert_eq!(data("present"), DataDir::Present);
        assert_eq!(data("unreadable"), DataDir::Unreadable);
        let running = parse(
            &settings,
            &output("running", "present", "x  /etc/etcd/etcd.conf.yml\n"),
            &paths,
        );
        assert_eq!(running.unit, UNIT_RUNNING);
        let config: Fingerprints = [("config".to_string(), "x".to_string())].into();
        assert!(
            differences(&config, &running).is_empty(),
            "a running unit is no drift"
        );
        assert_eq!(seen.server_cert_pem, "-----BEGIN CERTIFICATE-----\nMIIB");
        assert_eq!(seen.unit, "failed");
        assert_eq!(seen.files.get("config").map(String::as_str), Some("abc"));
        assert_eq!(seen.files.len(), 1, "the timer's sum is the backup job's");
        assert_eq!(seen.backup.sums.len(), 1);
        assert_eq!(
            (seen.backup.enabled.as_str(), seen.backup.active.as_str()),
            ("", "inactive")
        );
        let expected: Fingerprints = [
            ("config".to_string(), "abd".to_string()),
            ("etcd".to_string(), "x".to_string()),
        ]
        .into();
        assert_eq!(
            differences(&expected, &seen),
            vec![
                "etcd unit is failed",
                "config changed on the host",
                "etcd is missing"
            ]
        );
        let wiped = parse(&settings, &output("inactive", "absent", ""), &paths);
        assert_eq!(
            differences(&expected, &wiped),
            vec!["etcd is not installed on the host"]
        );
        for no_systemctl in ["", "Id=etcd.service\nActiveState=\n"] {
            let seen = parse(
                &settings,
                &format!("--- units ---\n{no_systemctl}--- sums ---\n"),
                &paths,
            );
            assert_eq!(seen.unit, "unknown");
        }
    }
}
