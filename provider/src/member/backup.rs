//! A member's backups: the script that takes a verified snapshot of the
//! local member into the backup directory and prunes old ones, the systemd
//! timer that runs it on a schedule, and what the provider reads back to
//! tell a broken backup job (as drift) from a working one.
//!
//! Every member runs the job against its own local member, so each host
//! keeps a full set (losing hosts loses no backups while one host is left),
//! the work is spread over the members (none goes through the leader), and
//! the schedule has no gap while one member is down. A member that does not
//! answer a quorum read takes no snapshot (its data may be stale) and its
//! job fails, which shows as drift.

use super::backup_copy::{self, CopyTo};
use super::{ClusterSettings, Layout};
use crate::ssh::{quote, FileToWrite, Host, SshError};

pub const DEFAULT_DIR: &str = "/var/backups/etcd";
pub const DEFAULT_KEEP: i64 = 24;

/// The label of scheduled snapshots; a change's snapshot is labelled with
/// the change (e.g. `before-roll`), and each label is pruned on its own.
pub const SCHEDULED: &str = "scheduled";

const SERVICE_FILE: &str = "/etc/systemd/system/etcd-backup.service";
const TIMER_FILE: &str = "/etc/systemd/system/etcd-backup.timer";

/// Where snapshots go and how many of each label are kept; a schedule when
/// the member takes them by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSettings {
    /// A systemd calendar expression (`hourly`, `*:0/15`); `None`: no
    /// scheduled job, only the snapshots taken before changes.
    pub schedule: Option<String>,
    pub keep: u32,
    pub dir: String,
    /// A backup host that gets a copy of every snapshot.
    pub copy_to: Option<CopyTo>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            schedule: None,
            keep: DEFAULT_KEEP as u32,
            dir: DEFAULT_DIR.to_string(),
            copy_to: None,
        }
    }
}

fn script_file(layout: &Layout) -> String {
    format!("{}/etcd-backup.sh", layout.config_dir)
}

/// The backup script: `sh etcd-backup.sh LABEL`, run as `etcd`.
fn script(settings: &ClusterSettings) -> String {
    let backup = &settings.backup;
    format!(
        r#"#!/bin/sh
# Managed by terraform-provider-etcd: changes here show up as drift.
# Takes a snapshot of the local member into {dir} as
# etcd-LABEL-<UTC time>-rev<revision>.db, verifies it, and keeps the newest
# {keep} of that label. Nothing else in the directory is touched.
set -eu
umask 077
label="${{1:-{SCHEDULED}}}"
case "$label" in ''|*[!a-z0-9-]*) echo "invalid label: $label" >&2; exit 2;; esac
dir={dir}
set -a; . {env}; set +a
etcdctl={etcdctl}
# A member that does not answer a quorum read may hold stale data.
"$etcdctl" endpoint health >/dev/null
stamp=$(date -u +%Y%m%dT%H%M%SZ)
partial="$dir/.etcd-$label-$stamp.partial"
trap 'rm -f "$partial"' EXIT
"$etcdctl" snapshot save "$partial" >/dev/null
# etcd appends the SHA-256 of the snapshot to it.
want=$(tail -c 32 "$partial" | od -An -v -tx1 | tr -d ' \n')
got=$(head -c -32 "$partial" | sha256sum | cut -d' ' -f1)
[ "$want" = "$got" ] || {{ echo "snapshot checksum mismatch" >&2; exit 1; }}
revision=$("$etcdctl" snapshot status "$partial" -w json | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
[ -n "$revision" ] || {{ echo "snapshot status gave no revision" >&2; exit 1; }}
final="$dir/etcd-$label-$stamp-rev$revision.db"
mv "$partial" "$final"
{copy}echo "$final"
ls "$dir" | grep -E "^etcd-$label-[0-9]{{8}}T[0-9]{{6}}Z-rev[0-9]+\.db$" | sort -r | tail -n +{first_pruned} |
  while read -r old; do rm -f "$dir/$old"; done
"#,
        dir = quote(&backup.dir),
        keep = backup.keep,
        env = quote(&settings.layout.etcdctl_env_file()),
        etcdctl = quote(&settings.layout.etcdctl()),
        first_pruned = backup.keep + 1,
        copy = backup
            .copy_to
            .as_ref()
            .map(|copy| backup_copy::copy_command(settings, copy))
            .unwrap_or_default(),
    )
}

fn service(settings: &ClusterSettings) -> String {
    format!(
        "# Managed by terraform-provider-etcd: changes here show up as drift.\n\
         [Unit]\n\
         Description=etcd snapshot into {dir}\n\
         After=etcd.service\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         User=etcd\n\
         Group=etcd\n\
         ExecStart=/bin/sh {script} {SCHEDULED}\n\
         TimeoutStartSec=3600\n",
        dir = settings.backup.dir,
        script = script_file(&settings.layout),
    )
}

fn timer(schedule: &str) -> String {
    format!(
        "# Managed by terraform-provider-etcd: changes here show up as drift.\n\
         [Unit]\n\
         Description=Scheduled etcd snapshots\n\
         \n\
         [Timer]\n\
         OnCalendar={schedule}\n\
         AccuracySec=1s\n\
         Persistent=true\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    )
}

/// The files of the job as they should be: (path, content).
fn files(settings: &ClusterSettings) -> Vec<(String, String)> {
    let mut files = vec![(script_file(&settings.layout), script(settings))];
    if let Some(schedule) = &settings.backup.schedule {
        files.push((SERVICE_FILE.to_string(), service(settings)));
        files.push((TIMER_FILE.to_string(), timer(schedule)));
    }
    files
}

/// Writes the script and the backup directory, and with a schedule the
/// units (systemd reloads them only when one changed), enabling the timer
/// (a failed last run is forgotten, so that its next run shows whether
/// the job works now). Without a schedule, a timer
/// left from an earlier one is removed. Never touches a snapshot.
pub async fn install(host: &Host, settings: &ClusterSettings) -> Result<(), SshError> {
    let check = match &settings.backup.schedule {
        Some(schedule) => format!(
            "systemd-analyze calendar {} >/dev/null || {{ echo 'backup.schedule: systemd does not accept {}' >&2; exit 1; }}\n",
            quote(schedule),
            schedule.replace('\'', "")
        ),
        None => String::new(),
    };
    host.run_ok(&format!(
        "{check}install -d -m 0700 -o etcd -g etcd {}",
        quote(&settings.backup.dir)
    ))
    .await?;
    let units = if settings.backup.schedule.is_some() {
        "{ { [ -z \"$changed\" ] && ! systemctl show -p NeedDaemonReload --value etcd-backup.timer \
           etcd-backup.service | grep -qx yes; } || systemctl daemon-reload; } && \
         { systemctl reset-failed etcd-backup.service 2>/dev/null || true; } && \
         { systemctl is-enabled --quiet etcd-backup.timer || systemctl enable --quiet etcd-backup.timer; } && \
         systemctl restart etcd-backup.timer"
            .to_string()
    } else {
        remove_units()
    };
    let files = files(settings);
    let files: Vec<FileToWrite> = files
        .iter()
        .map(|(path, content)| FileToWrite {
            path,
            content: content.as_bytes(),
            mode: 0o644,
            owner: "root:root",
        })
        .collect();
    host.write_files_then(&files, &units).await?;
    Ok(())
}

/// Stops and removes the job's units, if there are any (systemd is
/// reloaded only then).
fn remove_units() -> String {
    format!(
        "if [ -e {SERVICE_FILE} ] || [ -e {TIMER_FILE} ]; then \
           systemctl disable --now --quiet etcd-backup.timer 2>/dev/null || true; \
           rm -f {SERVICE_FILE} {TIMER_FILE}; systemctl daemon-reload; \
         fi"
    )
}

/// Removes the job's units, script and copy key; the snapshots stay.
pub async fn uninstall(host: &Host, layout: &Layout) -> Result<(), SshError> {
    host.run_ok(&format!(
        "{}; rm -f {}; rm -rf {}",
        remove_units(),
        quote(&script_file(layout)),
        quote(&backup_copy::key_dir(layout))
    ))
    .await?;
    Ok(())
}

/// Takes a snapshot labelled `label` now with the installed script (see
/// [`install`]); returns the snapshot's path on the host.
pub async fn take_now(
    host: &Host,
    settings: &ClusterSettings,
    label: &str,
) -> Result<String, SshError> {
    let out = host
        .run_ok(&format!(
            "runuser -u etcd -- /bin/sh {} {}",
            quote(&script_file(&settings.layout)),
            quote(label)
        ))
        .await?;
    Ok(out.trim().to_string())
}

/// Printed before the job's state in a member's inspection.
pub const MARKER: &str = "--- backup job ---";

/// The backup job on a host as [`inspect_command`] prints it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupState {
    /// `systemctl is-enabled` and `is-active` of the timer (empty: no unit).
    pub enabled: String,
    pub active: String,
    /// `Result` of the service's last run (`success`, `exit-code`, ...).
    pub result: String,
    /// Seconds between two runs of the schedule, as systemd computes it.
    pub interval: Option<u64>,
    /// Seconds since the timer was (re)started.
    pub timer_age: Option<u64>,
    /// Seconds since the newest scheduled snapshot was written.
    pub newest_age: Option<u64>,
    /// SHA-256 of each of the job's files found, by path.
    pub sums: Vec<(String, String)>,
}

/// Shell that prints the job's state after [`MARKER`], for the member's
/// one inspection round trip.
pub fn inspect_command(settings: &ClusterSettings) -> String {
    let backup = &settings.backup;
    let dir = quote(&backup.dir);
    let paths: Vec<String> = [
        script_file(&settings.layout),
        SERVICE_FILE.into(),
        TIMER_FILE.into(),
    ]
    .iter()
    .map(|p| quote(p))
    .collect();
    let Some(schedule) = &backup.schedule else {
        return format!(
            "echo '{MARKER}'; sha256sum {} 2>/dev/null; true",
            quote(TIMER_FILE)
        );
    };
    let schedule = quote(schedule);
    format!(
        r#"echo '{MARKER}'
echo "enabled $(systemctl is-enabled etcd-backup.timer 2>/dev/null)"
echo "active $(systemctl is-active etcd-backup.timer 2>/dev/null)"
echo "result $(systemctl show -p Result --value etcd-backup.service 2>/dev/null)"
now=$(date +%s)
set -- $(systemd-analyze calendar --iterations=2 {schedule} 2>/dev/null | sed -n 's/^ *\(Next elapse\|Iter\. #2\): //p' | while read -r t; do date -d "$t" +%s; done)
[ $# -eq 2 ] && echo "interval $(( $2 - $1 ))"
since=$(systemctl show -p ActiveEnterTimestamp --value etcd-backup.timer 2>/dev/null)
[ -n "$since" ] && echo "timer_age $(( now - $(date -d "$since" +%s) ))"
newest=$(ls {dir} 2>/dev/null | grep -E '^etcd-{SCHEDULED}-[0-9]{{8}}T[0-9]{{6}}Z-rev[0-9]+\.db$' | sort | tail -n 1)
[ -n "$newest" ] && echo "newest_age $(( now - $(stat -c %Y {dir}/"$newest") ))"
sha256sum {paths} 2>/dev/null
true"#,
        paths = paths.join(" "),
    )
}

/// Reads what [`inspect_command`] printed (the text after [`MARKER`]).
pub fn parse(text: &str) -> BackupState {
    let mut state = BackupState::default();
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim();
        match key {
            "enabled" => state.enabled = value.to_string(),
            "active" => state.active = value.to_string(),
            "result" => state.result = value.to_string(),
            "interval" => state.interval = value.parse().ok(),
            "timer_age" => state.timer_age = value.parse().ok(),
            "newest_age" => state.newest_age = value.parse().ok(),
            sum if sum.len() == 64 => state
                .sums
                .push((value.trim_start().to_string(), sum.to_string())),
            _ => {}
        }
    }
    state
}

/// What is wrong with the job on a host, as text for `status`: files
/// missing or changed, the timer not enabled or not running, the last run
/// failed, or no snapshot within twice the schedule's interval (counted
/// from the timer's start, so a new job gets that long for its first).
/// Without a schedule, only a timer left from an earlier one.
pub fn problems(settings: &ClusterSettings, state: &BackupState) -> Vec<String> {
    let found = |path: &str| {
        state
            .sums
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, sum)| sum.clone())
    };
    let Some(schedule) = &settings.backup.schedule else {
        return match found(TIMER_FILE) {
            Some(_) => vec!["a backup timer is left from an earlier schedule".into()],
            None => Vec::new(),
        };
    };
    let mut problems = Vec::new();
    for (path, content) in files(settings) {
        match found(&path) {
            None => problems.push(format!("backup job file {path} is missing")),
            Some(sum) if sum != super::install::sha256_hex(content.as_bytes()) => {
                problems.push(format!("backup job file {path} changed on the host"))
            }
            Some(_) => {}
        }
    }
    if state.enabled != "enabled" {
        problems.push(format!(
            "backup timer is not enabled ({})",
            or_none(&state.enabled)
        ));
    }
    if state.active != "active" {
        problems.push(format!("backup timer is {}", or_none(&state.active)));
    }
    if !matches!(state.result.as_str(), "success" | "") {
        problems.push(format!("the last backup failed ({})", state.result));
    }
    if let (Some(interval), Some(timer_age)) = (state.interval, state.timer_age) {
        let allowed = 2 * interval;
        match state.newest_age {
            Some(age) if age > allowed && timer_age > allowed => problems.push(format!(
                "the newest backup is {age} s old, more than twice the schedule ({schedule})"
            )),
            None if timer_age > allowed => problems.push(format!(
                "no backup taken in {timer_age} s on the schedule {schedule}"
            )),
            _ => {}
        }
    }
    problems
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "no such unit"
    } else {
        text
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::member::install::sha256_hex;
    use crate::member::{BinarySource, Layout};

    /// Settings with backups kept 3 at a time, on `schedule`.
    pub fn settings(schedule: Option<&str>) -> ClusterSettings {
        ClusterSettings {
            token: "c".into(),
            etcd_version: "3.4.23".into(),
            binary_source: BinarySource::OsPackage,
            client_port: 2379,
            peer_port: 2380,
            metrics_url: String::new(),
            layout: Layout {
                bin_dir: "/usr/bin".into(),
                config_dir: "/etc/etcd".into(),
                pki_dir: "/etc/etcd/pki".into(),
                data_dir: "/var/lib/etcd".into(),
            },
            extra_flags: Default::default(),
            cert_validity_hours: 8760,
            cert_early_renewal_hours: 720,
            backup: BackupSettings {
                schedule: schedule.map(str::to_string),
                keep: 3,
                dir: "/var/backups/etcd".into(),
                copy_to: None,
            },
        }
    }

    /// The inspection output of a job whose files are as rendered.
    fn working(settings: &ClusterSettings, lines: &str) -> BackupState {
        let sums: String = files(settings)
            .iter()
            .map(|(path, content)| format!("{}  {path}\n", sha256_hex(content.as_bytes())))
            .collect();
        parse(&format!(
            "\nenabled enabled\nactive active\nresult success\n{lines}{sums}"
        ))
    }

    #[test]
    fn a_working_job_has_no_problems_and_a_stale_one_does() {
        let settings = settings(Some("*:*:0/20"));
        let fresh = working(&settings, "interval 20\ntimer_age 300\nnewest_age 15\n");
        assert_eq!(fresh.interval, Some(20));
        assert_eq!(problems(&settings, &fresh), Vec::<String>::new());
        let stale = working(&settings, "interval 20\ntimer_age 300\nnewest_age 41\n");
        assert_eq!(
            problems(&settings, &stale),
            vec!["the newest backup is 41 s old, more than twice the schedule (*:*:0/20)"]
        );
        // A new timer gets twice the interval for its first snapshot.
        let new = working(&settings, "interval 3600\ntimer_age 60\n");
        assert!(problems(&settings, &new).is_empty());
        let never = working(&settings, "interval 20\ntimer_age 60\n");
        assert_eq!(
            problems(&settings, &never),
            vec!["no backup taken in 60 s on the schedule *:*:0/20"]
        );
    }

    #[test]
    fn a_stopped_failed_or_edited_job_is_named() {
        let settings = settings(Some("hourly"));
        let mut state = working(&settings, "");
        state.active = "inactive".into();
        state.result = "exit-code".into();
        state.sums[0].1 = "0".repeat(64);
        state.sums.pop();
        assert_eq!(
            problems(&settings, &state),
            vec![
                "backup job file /etc/etcd/etcd-backup.sh changed on the host",
                "backup job file /etc/systemd/system/etcd-backup.timer is missing",
                "backup timer is inactive",
                "the last backup failed (exit-code)",
            ]
        );
        let none = parse("\nenabled \nactive inactive\nresult success\n");
        assert!(problems(&settings, &none)
            .contains(&"backup timer is not enabled (no such unit)".to_string()));
    }

    #[test]
    fn without_a_schedule_only_a_leftover_timer_is_a_problem() {
        let settings = settings(None);
        assert!(problems(&settings, &parse("")).is_empty());
        let leftover = parse(&format!("\n{}  {TIMER_FILE}\n", "a".repeat(64)));
        assert_eq!(
            problems(&settings, &leftover),
            vec!["a backup timer is left from an earlier schedule"]
        );
    }

    #[test]
    fn the_script_prunes_only_its_own_label_and_keeps_the_newest() {
        let script = script(&settings(Some("hourly")));
        assert!(script.contains(
            r#"grep -E "^etcd-$label-[0-9]{8}T[0-9]{6}Z-rev[0-9]+\.db$" | sort -r | tail -n +4"#
        ));
        assert!(script.contains("endpoint health"));
        let timer = timer("*:0/15");
        assert!(timer.contains("OnCalendar=*:0/15\n") && timer.contains("AccuracySec=1s"));
    }
}
