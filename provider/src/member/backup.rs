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
use super::backup_drill::{self, DrillSettings};
use super::backup_s3::{self, S3Target};
use super::{ClusterSettings, Layout};
use crate::ssh::{quote, FileToWrite, Host, SshError};

pub const DEFAULT_DIR: &str = "/var/backups/etcd";
pub const DEFAULT_KEEP: i64 = 24;

/// The label of scheduled snapshots; a change's snapshot is labelled with
/// the change (e.g. `before-roll`), and each label is pruned on its own.
pub const SCHEDULED: &str = "scheduled";

pub(super) const SERVICE_FILE: &str = "/etc/systemd/system/etcd-backup.service";
pub(super) const TIMER_FILE: &str = "/etc/systemd/system/etcd-backup.timer";

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
    /// A bucket that gets a copy of every snapshot.
    pub s3: Option<S3Target>,
    /// Restore drills of the newest snapshot.
    pub drill: Option<DrillSettings>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            schedule: None,
            keep: DEFAULT_KEEP as u32,
            dir: DEFAULT_DIR.to_string(),
            copy_to: None,
            s3: None,
            drill: None,
        }
    }
}

pub(super) fn script_file(layout: &Layout) -> String {
    format!("{}/etcd-backup.sh", layout.config_dir)
}

/// The exit status of the script when the snapshot was taken, verified
/// and pruned, but its copy to the backup host or its upload failed.
const COPY_FAILED: i32 = 3;

/// The backup script: `sh etcd-backup.sh LABEL`, run as `etcd`. In this
/// order, so that an outage of the backup host never fills a member's
/// disk: a quorum read (a member that does not answer may hold stale
/// data), a check that the directory has room for the snapshot with as
/// much again left free (the data usually shares its file system, and
/// etcd stops when that is full), the snapshot and its check, the pruning
/// to `keep`, and only then the copy and the upload (`backup_s3`), whose
/// failures leave everything else done (exit status [`COPY_FAILED`]).
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
# The version's snapshot checker; etcdctl on a member whose upgrade from
# etcd 3.4 (no etcdutl) has not reached it yet.
snapshot_tool={snapshot_tool}
[ -x "$snapshot_tool" ] || snapshot_tool="$etcdctl"
{s3_functions}
# A member that does not answer a quorum read may hold stale data. A read,
# not "endpoint health", which fails under any alarm from etcd 3.5 on: a full
# database (NOSPACE) must still be backed up before it is compacted.
"$etcdctl" get --keys-only health >/dev/null
size=$("$etcdctl" endpoint status -w json | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
free=$(df -P -B1 "$dir" | awk 'NR == 2 {{ print $4 }}')
[ -n "$size" ] && [ -n "$free" ] || {{ echo "could not read the database size or the free space of $dir" >&2; exit 1; }}
if [ "$free" -lt $((size * 2)) ]; then
  echo "no snapshot: $dir has $free bytes free; a snapshot of this database takes up to $size, and as much again must stay free" >&2
  exit 1
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
partial="$dir/.etcd-$label-$stamp.partial"
trap 'rm -f "$partial"; [ -z "${{s3_work:-}}" ] || rm -rf "$s3_work"' EXIT
"$etcdctl" snapshot save "$partial" >/dev/null
# etcd appends the SHA-256 of the snapshot to it.
want=$(tail -c 32 "$partial" | od -An -v -tx1 | tr -d ' \n')
got=$(head -c -32 "$partial" | sha256sum | cut -d' ' -f1)
[ "$want" = "$got" ] || {{ echo "snapshot checksum mismatch" >&2; exit 1; }}
revision=$("$snapshot_tool" snapshot status "$partial" -w json | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
[ -n "$revision" ] || {{ echo "snapshot status gave no revision" >&2; exit 1; }}
final="$dir/etcd-$label-$stamp-rev$revision.db"
mv "$partial" "$final"
echo "$final"
ls "$dir" | grep -E "^etcd-$label-[0-9]{{8}}T[0-9]{{6}}Z-rev[0-9]+\.db$" | sort -r | tail -n +{first_pruned} |
  while read -r old; do rm -f "$dir/$old"; done
failed=
{copy}{upload}[ -z "$failed" ] || exit {COPY_FAILED}
"#,
        dir = quote(&backup.dir),
        keep = backup.keep,
        env = quote(&settings.layout.etcdctl_env_file()),
        etcdctl = quote(&settings.layout.etcdctl()),
        snapshot_tool = quote(&settings.snapshot_tool()),
        first_pruned = backup.keep + 1,
        copy = backup
            .copy_to
            .as_ref()
            .map(|copy| {
                format!(
                    "{} || {{ echo \"$final was kept here, but its copy to the backup host failed\" >&2; failed=1; }}\n",
                    backup_copy::copy_command(settings, copy)
                )
            })
            .unwrap_or_default(),
        s3_functions = backup
            .s3
            .as_ref()
            .map(|target| backup_s3::upload_functions(settings, target))
            .unwrap_or_default(),
        upload = if backup.s3.is_some() {
            "s3_upload \"$final\" \"$label\" || { echo \"$final was kept here, but its upload failed\" >&2; failed=1; }\n"
        } else {
            ""
        },
    )
}

fn service(settings: &ClusterSettings) -> String {
    job_service(
        &format!("etcd snapshot into {}", settings.backup.dir),
        &format!("{} {SCHEDULED}", script_file(&settings.layout)),
        "",
    )
}

/// A job's service: `/bin/sh SCRIPT_AND_ARGUMENTS` once, as `etcd`, after
/// etcd, for up to an hour; `more` adds lines to its `[Service]`.
pub(super) fn job_service(description: &str, script_and_arguments: &str, more: &str) -> String {
    format!(
        "# Managed by terraform-provider-etcd: changes here show up as drift.\n\
         [Unit]\n\
         Description={description}\n\
         After=etcd.service\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         User=etcd\n\
         Group=etcd\n\
         ExecStart=/bin/sh {script_and_arguments}\n\
         TimeoutStartSec=3600\n\
         {more}"
    )
}

/// The most a host's run starts after the scheduled time (see [`timer`]).
pub const RANDOM_DELAY_SECONDS: u64 = 10;

/// The backup timer (see [`job_timer`]); a run missed while the host was
/// off is made up at boot.
fn timer(schedule: &str) -> String {
    job_timer("Scheduled etcd snapshots", schedule, true)
}

/// A job's timer: each host runs the job at a delay of its own after the
/// scheduled time (up to [`RANDOM_DELAY_SECONDS`], fixed per host), so
/// that the members do not all run it in the same second; `persistent`:
/// a run missed while the host was off is made up when it is back.
pub(super) fn job_timer(description: &str, schedule: &str, persistent: bool) -> String {
    format!(
        "# Managed by terraform-provider-etcd: changes here show up as drift.\n\
         [Unit]\n\
         Description={description}\n\
         \n\
         [Timer]\n\
         OnCalendar={schedule}\n\
         AccuracySec=1s\n\
         RandomizedDelaySec={RANDOM_DELAY_SECONDS}s\n\
         FixedRandomDelay=true\n\
         {persistent}\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        persistent = if persistent { "Persistent=true\n" } else { "" },
    )
}

/// The files of the job as they should be: (path, content).
pub(super) fn files(settings: &ClusterSettings) -> Vec<(String, String)> {
    let mut files = vec![(script_file(&settings.layout), script(settings))];
    if let Some(schedule) = &settings.backup.schedule {
        files.push((SERVICE_FILE.to_string(), service(settings)));
        files.push((TIMER_FILE.to_string(), timer(schedule)));
        files.extend(backup_drill::files(settings));
    }
    files
}

/// Writes the script and the backup directory, and with a schedule the
/// units (systemd reloads them only when one changed), enabling the timer
/// (a failed last run or upload is forgotten, so that its next run shows
/// whether the job works now). Without a schedule, a timer left from an
/// earlier one is removed. With `backup.s3`, the credentials file is
/// written when `s3_secret` is given (else the one there is kept), and
/// the endpoint's CA; without, both are removed. Never touches a snapshot.
pub async fn install(
    host: &Host,
    settings: &ClusterSettings,
    s3_secret: Option<&str>,
) -> Result<(), SshError> {
    let drill_schedule = settings.backup.drill.as_ref().map(|d| &d.schedule);
    let check: String = [
        ("backup.schedule", settings.backup.schedule.as_ref()),
        ("backup.drill.schedule", drill_schedule),
    ]
    .into_iter()
    .filter_map(|(name, schedule)| {
        schedule.map(|schedule| {
            format!(
                "systemd-analyze calendar {} >/dev/null || {{ echo '{name}: systemd does not accept {}' >&2; exit 1; }}\n",
                quote(schedule),
                schedule.replace('\'', "")
            )
        })
    })
    .collect();
    let only_ours = super::install::holds_only_ours(
        &settings.backup.dir,
        r"etcd-.*|\.etcd-.*\.partial|\.etcd-upload-.*|\.etcd-drill-.*|lost\+found",
        "backup.dir",
    );
    host.run_ok(&format!(
        "{check}{only_ours}install -d -m 0700 -o etcd -g etcd {}",
        quote(&settings.backup.dir)
    ))
    .await?;
    let units = if settings.backup.schedule.is_some() {
        "{ { [ -z \"$changed\" ] && ! systemctl show -p NeedDaemonReload --value etcd-backup.timer \
           etcd-backup.service | grep -qx yes; } || systemctl daemon-reload; } && \
         { systemctl reset-failed etcd-backup.service 2>/dev/null || true; } && \
         { systemctl is-enabled --quiet etcd-backup.timer || systemctl enable --quiet --no-reload etcd-backup.timer; } && \
         systemctl restart etcd-backup.timer"
            .to_string()
    } else {
        remove_units()
    };
    let (s3_files, s3_then) = backup_s3::install_parts(settings, s3_secret);
    let files = files(settings);
    let files: Vec<FileToWrite> = files
        .iter()
        .map(|(path, content)| FileToWrite {
            path,
            content: content.as_bytes(),
            mode: 0o644,
            owner: "root:root",
        })
        .chain(
            s3_files
                .iter()
                .map(|(path, content, mode, owner)| FileToWrite {
                    path,
                    content: content.as_bytes(),
                    mode: *mode,
                    owner,
                }),
        )
        .collect();
    let drill = backup_drill::units_command(settings);
    host.write_files_then(&files, &format!("{s3_then} && {units} && {drill}"))
        .await?;
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

/// Removes the job's units, script, copy key and bucket credentials; the
/// snapshots stay.
pub async fn uninstall(host: &Host, layout: &Layout) -> Result<(), SshError> {
    host.run_ok(&format!(
        "{}; {}; rm -f {} {} {} {}; rm -rf {}",
        remove_units(),
        backup_drill::remove_command(layout),
        quote(&script_file(layout)),
        quote(&layout.backup_interval_memo()),
        quote(&backup_s3::credentials_file(layout)),
        quote(&backup_s3::ca_file(layout)),
        quote(&backup_copy::key_dir(layout))
    ))
    .await?;
    Ok(())
}

/// A snapshot taken by the job's script.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    /// Its path on the member.
    pub path: String,
    /// Why its copy to the backup host failed, if it did (the snapshot is
    /// kept on the member all the same).
    pub copy_failed: Option<String>,
}

/// Takes a snapshot labelled `label` now with the installed script (see
/// [`install`]).
pub async fn take_now(
    host: &Host,
    settings: &ClusterSettings,
    label: &str,
) -> Result<Taken, SshError> {
    let command = format!(
        "runuser -u etcd -- /bin/sh {} {}",
        quote(&script_file(&settings.layout)),
        quote(label)
    );
    let out = host.run(&command).await?;
    let path = out.stdout.trim().to_string();
    match out.status {
        0 => Ok(Taken {
            path,
            copy_failed: None,
        }),
        COPY_FAILED if !path.is_empty() => Ok(Taken {
            path,
            copy_failed: Some(out.stderr.trim().to_string()),
        }),
        status => Err(SshError(format!(
            "{}: the backup script failed with status {status}: {}",
            host.address,
            out.stderr.trim()
        ))),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::member::backup_copy::CopyTo;
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
                s3: None,
                drill: None,
            },
            peer_names_only: true,
        }
    }

    #[test]
    fn the_script_prunes_only_its_own_label_and_keeps_the_newest() {
        let script = script(&settings(Some("hourly")));
        assert!(script.contains(
            r#"grep -E "^etcd-$label-[0-9]{8}T[0-9]{6}Z-rev[0-9]+\.db$" | sort -r | tail -n +4"#
        ));
        assert!(script.contains("get --keys-only health"));
        let timer = timer("*:0/15");
        assert!(timer.contains("OnCalendar=*:0/15\n") && timer.contains("AccuracySec=1s"));
        assert!(timer.contains("RandomizedDelaySec=10s\nFixedRandomDelay=true\n"));
    }

    #[test]
    fn the_units_are_those_members_already_have() {
        // Members installed before the units were shared with the drill
        // have these bytes: any change would show as drift on them all.
        assert_eq!(
            service(&settings(Some("hourly"))),
            "# Managed by terraform-provider-etcd: changes here show up as drift.\n[Unit]\n\
             Description=etcd snapshot into /var/backups/etcd\nAfter=etcd.service\n\n[Service]\n\
             Type=oneshot\nUser=etcd\nGroup=etcd\nExecStart=/bin/sh /etc/etcd/etcd-backup.sh scheduled\n\
             TimeoutStartSec=3600\n"
        );
        assert_eq!(
            timer("hourly"),
            "# Managed by terraform-provider-etcd: changes here show up as drift.\n[Unit]\n\
             Description=Scheduled etcd snapshots\n\n[Timer]\nOnCalendar=hourly\nAccuracySec=1s\n\
             RandomizedDelaySec=10s\nFixedRandomDelay=true\nPersistent=true\n\n[Install]\n\
             WantedBy=timers.target\n"
        );
        assert!(!job_timer("d", "daily", false).contains("Persistent"));
    }

    #[test]
    fn snapshots_are_checked_by_the_version_s_tool() {
        let mut current = settings(None);
        current.etcd_version = "3.6.17".into();
        assert!(script(&current).contains("snapshot_tool=/usr/bin/etcdutl\n"));
        assert!(script(&settings(None)).contains("snapshot_tool=/usr/bin/etcdctl\n"));
        assert!(script(&current).contains("revision=$(\"$snapshot_tool\" snapshot status"));
    }

    #[test]
    fn the_script_prunes_before_it_copies_and_checks_free_space_first() {
        let mut s = settings(Some("hourly"));
        s.backup.copy_to = Some(CopyTo {
            host: "10.0.0.9".into(),
            user: "backup".into(),
            port: None,
            dir: "/srv/etcd".into(),
        });
        let script = script(&s);
        let at = |needle: &str| {
            script
                .find(needle)
                .unwrap_or_else(|| panic!("{needle}: {script}"))
        };
        assert!(at("df -P -B1") < at("snapshot save"));
        assert!(at("tail -n +4") < at("ssh -F /dev/null"), "prune first");
        assert!(script.contains("failed=1; }"), "{script}");
        assert!(
            at("failed=1; }") < at("[ -z \"$failed\" ] || exit 3"),
            "{script}"
        );
        // The database size and the revision are read by sed's \1.
        assert_eq!(script.matches(r"\).*/\1/p'").count(), 2, "{script}");
    }
}
