//! What the provider reads back of a member's backup job (see `backup`)
//! in the member's one inspection round trip (`inspect`), and the problems
//! it finds in it: files missing or changed, the timer not enabled or not
//! running, the last run failed, no recent snapshot.
//!
//! The units' state comes from the inspection's `systemctl show`; the
//! schedule's interval is asked of systemd once a day per host and kept in
//! a memo beside the script, so that a look at a host starts few processes.

use std::collections::BTreeMap;

use super::backup::{files, script_file, SCHEDULED, SERVICE_FILE, TIMER_FILE};
use super::backup_drill::{self, DrillState};
use super::upload_state::{self, UploadState};
use super::ClusterSettings;
use crate::ssh::quote;

/// The job's units, as `systemctl show` names them.
pub const TIMER_UNIT: &str = "etcd-backup.timer";
pub const SERVICE_UNIT: &str = "etcd-backup.service";

/// One unit's properties, as `systemctl show` prints them.
pub type Properties = BTreeMap<String, String>;

/// The backup job on a host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupState {
    /// The timer's unit file state (`enabled`, `disabled`...; empty: no
    /// unit) and active state.
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
    /// The uploads to `backup.s3`, if it is set.
    pub uploads: UploadState,
    /// The restore drills, if `backup.drill` is set.
    pub drill: DrillState,
}

/// The job's files whose sums the inspection reads (all of them, with a
/// schedule or without: a timer left from an earlier schedule is drift).
pub fn paths(settings: &ClusterSettings) -> Vec<String> {
    let mut paths = vec![
        script_file(&settings.layout),
        SERVICE_FILE.to_string(),
        TIMER_FILE.to_string(),
    ];
    paths.extend(backup_drill::paths(settings));
    paths
}

/// With a schedule, shell that prints the host's clock (`now`, `uptime`),
/// the schedule's `interval` and every `snapshot MTIME NAME` in the backup
/// directory; ages are worked out from these with the host's own clocks.
pub fn schedule_command(settings: &ClusterSettings) -> Option<String> {
    let backup = &settings.backup;
    let schedule = backup.schedule.as_ref()?;
    Some(format!(
        r#"now=$(date +%s); echo "now $now"
read -r up _ < /proc/uptime; echo "uptime ${{up%.*}}"
{interval}
find {dir} -maxdepth 1 -type f -name 'etcd-{SCHEDULED}-*.db' -printf 'snapshot %T@ %f\n' 2>/dev/null
{uploads}
{drills}
true"#,
        interval = interval_command(
            schedule,
            &settings.layout.backup_interval_memo(),
            "interval"
        ),
        dir = quote(&backup.dir),
        uploads = upload_state::status_command(settings).unwrap_or_default(),
        drills = backup_drill::status_command(settings).unwrap_or_default(),
    ))
}

/// Shell (after `now` is set) that prints `NAME SECONDS`, the time between
/// two runs of `schedule` as systemd computes it, asked once a day per
/// schedule and kept in `memo`.
pub(super) fn interval_command(schedule: &str, memo: &str, name: &str) -> String {
    let (schedule, memo) = (quote(schedule), quote(memo));
    format!(
        r#"want="$((now / 86400)) "{schedule}; iv= key=
{{ IFS= read -r iv; IFS= read -r key; }} 2>/dev/null < {memo}
if [ "$key" != "$want" ]; then
  iv=$(set -- $(systemd-analyze calendar --iterations=2 {schedule} 2>/dev/null | sed -n 's/^ *\(Next elapse\|Iter\. #2\): //p' | while read -r t; do date -d "$t" +%s; done); [ $# -eq 2 ] && echo $(( $2 - $1 )))
  [ -n "$iv" ] && {{ printf '%s\n%s\n' "$iv" "$want" > {memo}; }} 2>/dev/null
fi
[ -n "$iv" ] && echo "{name} $iv""#
    )
}

/// The job's state from the inspection: its units' properties, the sums
/// of its files (by path, those of other files are ignored) and what
/// [`schedule_command`] printed.
pub fn parse(
    settings: &ClusterSettings,
    units: &BTreeMap<String, Properties>,
    sums: &[(String, String)],
    schedule_text: &str,
) -> BackupState {
    let property = |unit: &str, name: &str| {
        units
            .get(unit)
            .and_then(|p| p.get(name))
            .cloned()
            .unwrap_or_default()
    };
    let mut clock = BTreeMap::new();
    let mut newest: Option<(&str, f64)> = None;
    for line in schedule_text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "now" | "uptime" | "interval" => {
                if let Ok(n) = value.trim().parse::<u64>() {
                    clock.insert(key, n);
                }
            }
            "snapshot" => {
                let Some((mtime, name)) = value.split_once(' ') else {
                    continue;
                };
                let Ok(mtime) = mtime.parse::<f64>() else {
                    continue;
                };
                if is_scheduled_snapshot(name) && newest.is_none_or(|(n, _)| name > n) {
                    newest = Some((name, mtime));
                }
            }
            _ => {}
        }
    }
    let entered = property(TIMER_UNIT, "ActiveEnterTimestampMonotonic")
        .parse::<u64>()
        .unwrap_or(0);
    let paths = paths(settings);
    BackupState {
        enabled: property(TIMER_UNIT, "UnitFileState"),
        active: property(TIMER_UNIT, "ActiveState"),
        result: property(SERVICE_UNIT, "Result"),
        interval: clock.get("interval").copied(),
        timer_age: match (clock.get("uptime"), entered) {
            (Some(uptime), entered) if entered > 0 => {
                Some(uptime.saturating_sub(entered / 1_000_000))
            }
            _ => None,
        },
        newest_age: match (clock.get("now"), newest) {
            (Some(now), Some((_, mtime))) => Some(now.saturating_sub(mtime as u64)),
            _ => None,
        },
        sums: sums
            .iter()
            .filter(|(path, _)| paths.contains(path))
            .cloned()
            .collect(),
        uploads: upload_state::parse_status(schedule_text, clock.get("now").copied()),
        drill: backup_drill::parse(
            units,
            schedule_text,
            clock.get("now").copied(),
            clock.get("uptime").copied(),
        ),
    }
}

/// Whether `name` is a scheduled snapshot as the script names it:
/// `etcd-scheduled-<YYYYMMDD>T<HHMMSS>Z-rev<revision>.db`.
fn is_scheduled_snapshot(name: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let Some(rest) = name
        .strip_prefix("etcd-")
        .and_then(|r| r.strip_prefix(SCHEDULED))
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".db"))
    else {
        return false;
    };
    match (
        rest.get(..8),
        rest.get(8..9),
        rest.get(9..15),
        rest.get(15..),
    ) {
        (Some(day), Some("T"), Some(time), Some(tail)) => {
            digits(day, 8)
                && digits(time, 6)
                && tail
                    .strip_prefix("Z-rev")
                    .is_some_and(|rev| !rev.is_empty() && rev.bytes().all(|b| b.is_ascii_digit()))
        }
        _ => false,
    }
}

/// What is wrong with the job on a host, as text for `status`: files
/// missing or changed, the timer not enabled or not running, the last run
/// failed, or no snapshot within twice the schedule's interval and the
/// host's delay after the scheduled time (counted
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
    let allowed = state
        .interval
        .map(|interval| 2 * interval + super::backup::RANDOM_DELAY_SECONDS);
    problems.extend(backup_drill::problems(settings, &state.drill));
    if let Some(target) = &settings.backup.s3 {
        problems.extend(upload_state::problems(
            target,
            settings,
            &state.uploads,
            allowed,
            state.timer_age,
        ));
    }
    if let (Some(allowed), Some(timer_age)) = (allowed, state.timer_age) {
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
mod tests {
    use super::*;
    use crate::member::backup::tests::settings;
    use crate::member::install::sha256_hex;

    /// `systemctl show` of a timer that entered `active` at `entered` s of
    /// uptime, and of a service whose last run ended with `result`.
    fn units(
        enabled: &str,
        active: &str,
        entered: u64,
        result: &str,
    ) -> BTreeMap<String, Properties> {
        let props = |pairs: &[(&str, String)]| -> Properties {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        [
            (
                TIMER_UNIT.to_string(),
                props(&[
                    ("UnitFileState", enabled.into()),
                    ("ActiveState", active.into()),
                    (
                        "ActiveEnterTimestampMonotonic",
                        (entered * 1_000_000).to_string(),
                    ),
                ]),
            ),
            (
                SERVICE_UNIT.to_string(),
                props(&[("Result", result.into())]),
            ),
        ]
        .into()
    }

    /// The sums of the job's files as rendered.
    fn rendered(settings: &ClusterSettings) -> Vec<(String, String)> {
        files(settings)
            .iter()
            .map(|(path, content)| (path.clone(), sha256_hex(content.as_bytes())))
            .collect()
    }

    /// A job whose files are as rendered and whose timer started at 1000 s
    /// of uptime, the host's clocks at `now` and `uptime`.
    fn working(settings: &ClusterSettings, text: &str) -> BackupState {
        let units = units("enabled", "active", 1000, "success");
        parse(settings, &units, &rendered(settings), text)
    }

    const NAME: &str = "etcd-scheduled-20261127T010000Z-rev12.db";

    #[test]
    fn a_working_job_has_no_problems_and_a_stale_one_does() {
        let settings = settings(Some("*:*:0/20"));
        let clock = "now 2000000000\nuptime 1300\ninterval 20\n";
        let fresh = working(
            &settings,
            &format!("{clock}snapshot 1999999985.25 {NAME}\n"),
        );
        assert_eq!(
            (fresh.interval, fresh.timer_age, fresh.newest_age),
            (Some(20), Some(300), Some(15))
        );
        assert_eq!(problems(&settings, &fresh), Vec::<String>::new());
        // Twice the interval, and the host's delay after the scheduled time.
        let late = working(&settings, &format!("{clock}snapshot 1999999951 {NAME}\n"));
        assert_eq!(problems(&settings, &late), Vec::<String>::new());
        let stale = working(&settings, &format!("{clock}snapshot 1999999949 {NAME}\n"));
        assert_eq!(
            problems(&settings, &stale),
            vec!["the newest backup is 51 s old, more than twice the schedule (*:*:0/20)"]
        );
        // A new timer gets twice the interval for its first snapshot.
        let new = working(&settings, "now 2000000000\nuptime 1060\ninterval 3600\n");
        assert!(problems(&settings, &new).is_empty());
        let never = working(&settings, "now 2000000000\nuptime 1060\ninterval 20\n");
        assert_eq!(
            problems(&settings, &never),
            vec!["no backup taken in 60 s on the schedule *:*:0/20"]
        );
    }

    #[test]
    fn the_newest_scheduled_snapshot_is_the_one_with_the_latest_name() {
        let settings = settings(Some("hourly"));
        let state = working(
            &settings,
            &format!(
                "now 2000000000\nuptime 1300\ninterval 3600\n\
                 snapshot 1999999000 etcd-scheduled-20261127T000000Z-rev10.db\n\
                 snapshot 1999999900 {NAME}\n\
                 snapshot 1999999990 etcd-before-roll-20261127T020000Z-rev13.db\n\
                 snapshot 1999999995 etcd-scheduled-20261127T020000Z-revx.db\n"
            ),
        );
        assert_eq!(state.newest_age, Some(100));
        assert!(is_scheduled_snapshot(NAME));
        for name in [
            "etcd-scheduled-20261127T010000Z-rev.db",
            "etcd-scheduled-2026112T010000Z-rev1.db",
            ".etcd-scheduled-20261127T010000Z.partial",
            "etcd-scheduled-20261127T010000Z-rev1.db.tmp",
        ] {
            assert!(!is_scheduled_snapshot(name), "{name}");
        }
    }

    #[test]
    fn a_stopped_failed_or_edited_job_is_named() {
        let settings = settings(Some("hourly"));
        let mut sums = rendered(&settings);
        sums[0].1 = "0".repeat(64);
        sums.pop();
        let broken = units("enabled", "inactive", 1000, "exit-code");
        let state = parse(&settings, &broken, &sums, "");
        assert_eq!(
            problems(&settings, &state),
            vec![
                "backup job file /etc/etcd/etcd-backup.sh changed on the host",
                "backup job file /etc/systemd/system/etcd-backup.timer is missing",
                "backup timer is inactive",
                "the last backup failed (exit-code)",
            ]
        );
        let none = parse(&settings, &units("", "inactive", 0, "success"), &sums, "");
        assert!(problems(&settings, &none)
            .contains(&"backup timer is not enabled (no such unit)".to_string()));
        assert_eq!(none.timer_age, None, "never active");
    }

    #[test]
    fn without_a_schedule_only_a_leftover_timer_is_a_problem() {
        let settings = settings(None);
        let units = units("", "inactive", 0, "success");
        assert!(problems(&settings, &parse(&settings, &units, &[], "")).is_empty());
        let leftover = [(TIMER_FILE.to_string(), "a".repeat(64))];
        let other = [("/etc/etcd/etcd.conf.yml".to_string(), "b".repeat(64))];
        assert!(parse(&settings, &units, &other, "").sums.is_empty());
        assert_eq!(
            problems(&settings, &parse(&settings, &units, &leftover, "")),
            vec!["a backup timer is left from an earlier schedule"]
        );
    }

    #[test]
    fn the_interval_is_asked_of_systemd_once_a_day_and_again_for_a_new_schedule() {
        let dir = std::env::temp_dir().join(format!("backup-interval-{}", std::process::id()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        // systemd-analyze as systemd 252 prints it, counting its calls.
        let fake = bin.join("systemd-analyze");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho called >> {calls}\n\
                 echo '  Original form: hourly'\necho '    Next elapse: Fri 2026-11-27 03:00:00 UTC'\n\
                 echo '       Iter. #2: Fri 2026-11-27 04:00:00 UTC'\n",
                calls = dir.join("calls").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(dir.join(NAME), b"snapshot").unwrap();
        let mut settings = settings(Some("hourly"));
        settings.layout.config_dir = dir.display().to_string();
        settings.backup.dir = dir.display().to_string();
        let run = |settings: &ClusterSettings| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(schedule_command(settings).unwrap())
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let calls = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
            (text, calls.lines().count())
        };
        let (text, calls) = run(&settings);
        assert!(text.contains("\ninterval 3600\n"), "{text}");
        assert!(text.contains(&format!(" {NAME}\n")), "{text}");
        assert_eq!(calls, 1);
        let state = parse(&settings, &BTreeMap::new(), &[], &text);
        assert_eq!(state.interval, Some(3600));
        assert!(state.newest_age.is_some_and(|age| age < 60), "{state:?}");
        assert_eq!(run(&settings).1, 1, "the memo answers");
        settings.backup.schedule = Some("*:0/30".into());
        assert_eq!(run(&settings).1, 2, "a new schedule is asked again");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
