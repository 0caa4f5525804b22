//! Restore drills (`backup.drill`): proof, on a schedule, that the newest
//! backup restores.
//!
//! Each member's drill takes its newest scheduled snapshot: from the
//! bucket with `backup.s3` (its SHA-256 checked against the object's
//! metadata), else from the backup directory. It restores it with the
//! version's tool into a scratch directory inside the backup directory
//! (after checking room for it), starts a throwaway etcd on loopback ports
//! with it, and checks that it serves, that its revision is the
//! snapshot's, and, while the live member still has that revision, that
//! the key count and `hashkv` at that revision agree with the live
//! member's. Then the throwaway etcd is stopped and the scratch directory
//! removed. The outcome (time, revision, keys, seconds) goes to a status
//! file that the inspection reads: a failed drill, or none within twice
//! the drill's schedule, is drift.
//!
//! A drill never touches the member's data, ports, unit or snapshots. It
//! runs as `etcd` in a slice of its own, limited in CPU, memory and I/O
//! priority (systemd ends every process it started when it ends).

use super::backup::{job_service, job_timer, script_file, RANDOM_DELAY_SECONDS};
use super::backup_s3;
use super::backup_state::Properties;
use super::{ClusterSettings, Layout};
use crate::ssh::quote;
use std::collections::BTreeMap;

/// When drills run.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillSettings {
    /// A systemd calendar expression.
    pub schedule: String,
}

pub const SERVICE_FILE: &str = "/etc/systemd/system/etcd-drill.service";
pub const TIMER_FILE: &str = "/etc/systemd/system/etcd-drill.timer";
pub const TIMER_UNIT: &str = "etcd-drill.timer";
pub const SERVICE_UNIT: &str = "etcd-drill.service";

/// The last drill's outcome, in the backup directory: `ok TIME DETAILS` or
/// `failed TIME WHY`.
pub const STATUS_NAME: &str = ".etcd-drill-status";

fn drill_script_file(layout: &Layout) -> String {
    script_file(layout).replace("etcd-backup.sh", "etcd-drill.sh")
}

/// The drill's script (see the module), run as `etcd`.
fn script(settings: &ClusterSettings) -> String {
    let layout = &settings.layout;
    let (fetch, s3_functions) = match &settings.backup.s3 {
        Some(target) => (
            format!(
                r#"  s3_keys scheduled || fail "listing the bucket: $s3_error"
  source=$(grep -E '/scheduled-[0-9]{{8}}T[0-9]{{6}}Z-rev[0-9]+{ending}' "$s3_work/keys" | sort | tail -n 1)
  [ -n "$source" ] || fail "no scheduled snapshot of this member in the bucket"
  s3_body="$snap.download" s3 GET "$s3_objects$source" -H "x-amz-content-sha256: $s3_empty" -D "$work/headers" ||
    fail "downloading $source: $s3_error"
  case "$source" in
    *.gz) gzip -dc "$snap.download" > "$snap" 2>"$work/err" || fail "$source: not gzip: $(head -c 200 "$work/err")";;
    *) mv "$snap.download" "$snap";;
  esac
  rm -f "$snap.download"
  meta=$(sed -n 's/^x-amz-meta-sha256: *\([0-9a-f]*\).*/\1/Ip' "$work/headers")
  [ "$meta" = "$(sha256sum "$snap" | cut -d' ' -f1)" ] ||
    fail "$source: its SHA-256 is not the one in its metadata (${{meta:-none}})""#,
                ending = backup_s3::KEY_ENDING,
            ),
            backup_s3::upload_functions(settings, target),
        ),
        None => (
            r#"  source=$(ls "$dir" | grep -E '^etcd-scheduled-[0-9]{8}T[0-9]{6}Z-rev[0-9]+\.db$' | sort | tail -n 1)
  [ -n "$source" ] || fail "no scheduled snapshot in $dir"
  cp "$dir/$source" "$snap""#
                .to_string(),
            String::new(),
        ),
    };
    format!(
        r#"#!/bin/sh
# Managed by terraform-provider-etcd: changes here show up as drift.
# A restore drill: the newest scheduled snapshot restored into a scratch
# directory and served by a throwaway etcd on loopback ports, checked, and
# removed. Nothing of the member is touched.
set -eu
umask 077
dir={dir}
etcd={etcd}
etcdctl={etcdctl}
tool={snapshot_tool}
[ -x "$tool" ] || tool="$etcdctl"
env_file={env}
status="$dir/{STATUS_NAME}"
started=$(date +%s)
work=$(mktemp -d "$dir/.etcd-drill-XXXXXX")
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; [ -z "${{s3_work:-}}" ] || rm -rf "$s3_work"' EXIT
fail() {{ printf 'failed %s %s\n' "$(date +%s)" "$*" | tr -d '\r' > "$status"; echo "$*" >&2; exit 1; }}
# The live member, with its own client certificate.
live() {{ ( set -a; . "$env_file"; set +a; "$etcdctl" "$@" ); }}
{s3_functions}snap="$work/snapshot.db"
size=$(live endpoint status -w json | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
free=$(df -P -B1 "$dir" | awk 'NR == 2 {{ print $4 }}')
[ -n "$size" ] && [ -n "$free" ] && [ "$free" -gt $((size * 3)) ] ||
  fail "no room in $dir for a drill: a copy of the snapshot and its restored data need up to $((size * 2)) bytes, and as much again must stay free"
{{
{fetch}
}}
"$tool" snapshot status "$snap" -w json > "$work/status.json" 2>"$work/err" || fail "snapshot status of $source: $(head -c 300 "$work/err")"
revision=$(sed -n 's/.*"revision":\([0-9]*\).*/\1/p' "$work/status.json")
[ -n "$revision" ] || fail "snapshot status of $source gave no revision"
port=$((20000 + $$ % 20000)); peer=$((port + 1))
urls="drill=http://127.0.0.1:$peer"
"$tool" snapshot restore "$snap" --data-dir "$work/data" --name drill --initial-cluster "$urls" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer" >/dev/null 2>"$work/err" || fail "restoring $source: $(tail -c 300 "$work/err")"
rm -f "$snap"
"$etcd" --name drill --data-dir "$work/data" --listen-client-urls "http://127.0.0.1:$port" \
  --advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$peer" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "$urls" > "$work/etcd.log" 2>&1 &
pid=$!
drill() {{ "$etcdctl" --endpoints "http://127.0.0.1:$port" "$@"; }}
i=0
until drill get --keys-only drill-probe >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -lt 300 ] && kill -0 "$pid" 2>/dev/null ||
    fail "the etcd restored from $source did not serve: $(tail -n 2 "$work/etcd.log" | tr '\n' ' ' | head -c 300)"
  sleep 0.2
done
got=$(drill endpoint status -w json | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
[ "$got" = "$revision" ] || fail "the etcd restored from $source is at revision $got, the snapshot at $revision"
# The range's count, whatever the limit (etcdctl 3.4 has no --count-only).
count() {{ sed -n 's/^"Count" : \([0-9]*\)$/\1/p'; }}
keys=$(drill get "" --prefix --limit 1 -w fields | count)
checked="revision $revision, ${{keys:-0}} keys"
if live_hash=$(live endpoint hashkv --rev "$revision" -w json 2>/dev/null | sed -n 's/.*"hash":\([0-9]*\).*/\1/p') && [ -n "$live_hash" ]; then
  hash=$(drill endpoint hashkv --rev "$revision" -w json | sed -n 's/.*"hash":\([0-9]*\).*/\1/p')
  [ "$hash" = "$live_hash" ] || fail "the keyspace restored from $source differs from the cluster's at revision $revision (hashkv $hash, live $live_hash)"
  live_keys=$(live get "" --prefix --limit 1 --rev "$revision" -w fields | count)
  [ "${{live_keys:-0}}" = "${{keys:-0}}" ] || fail "the snapshot $source holds ${{keys:-0}} keys, the cluster held $live_keys at revision $revision"
  checked="$checked, hashkv equal to the cluster's"
fi
echo "ok $(date +%s) $source: $checked, $(( $(date +%s) - started )) s" > "$status"
"#,
        dir = quote(&settings.backup.dir),
        etcd = quote(&layout.etcd()),
        etcdctl = quote(&layout.etcdctl()),
        snapshot_tool = quote(&settings.snapshot_tool()),
        env = quote(&layout.etcdctl_env_file()),
    )
}

/// The drill's service, in a slice of its own with its limits.
fn service(settings: &ClusterSettings) -> String {
    job_service(
        "etcd restore drill",
        &drill_script_file(&settings.layout),
        "Slice=etcd-drill.slice\n\
         CPUQuota=50%\n\
         MemoryHigh=1G\n\
         MemoryMax=2G\n\
         Nice=10\n\
         IOSchedulingClass=idle\n",
    )
}

/// The drill's timer: a drill missed while the host was off is not made
/// up at boot, when the member has just started.
fn timer(schedule: &str) -> String {
    job_timer("Scheduled etcd restore drills", schedule, false)
}

/// The drill's files as they should be (path, content); none without a
/// drill.
pub fn files(settings: &ClusterSettings) -> Vec<(String, String)> {
    match &settings.backup.drill {
        Some(drill) => vec![
            (drill_script_file(&settings.layout), script(settings)),
            (SERVICE_FILE.to_string(), service(settings)),
            (TIMER_FILE.to_string(), timer(&drill.schedule)),
        ],
        None => Vec::new(),
    }
}

/// Every path the drill may have on a host (for sums and removal).
pub fn paths(settings: &ClusterSettings) -> Vec<String> {
    vec![
        drill_script_file(&settings.layout),
        SERVICE_FILE.to_string(),
        TIMER_FILE.to_string(),
    ]
}

/// Shell run after the files are written: the timer enabled and
/// restarted (a failed last drill forgotten), or everything of an earlier
/// drill removed.
pub fn units_command(settings: &ClusterSettings) -> String {
    let status = quote(&format!("{}/{STATUS_NAME}", settings.backup.dir));
    match &settings.backup.drill {
        Some(_) => format!(
            "{{ [ -z \"$changed\" ] || systemctl daemon-reload; }} && \
             {{ systemctl reset-failed {SERVICE_UNIT} 2>/dev/null || true; }} && \
             case \"$(head -c 6 {status} 2>/dev/null)\" in failed) rm -f {status};; esac && \
             {{ systemctl is-enabled --quiet {TIMER_UNIT} || systemctl enable --quiet --no-reload {TIMER_UNIT}; }} && \
             systemctl restart {TIMER_UNIT}"
        ),
        None => remove_command(&settings.layout),
    }
}

/// Shell that removes an installed drill (its status file stays).
pub fn remove_command(layout: &Layout) -> String {
    format!(
        "if [ -e {SERVICE_FILE} ] || [ -e {TIMER_FILE} ]; then \
           systemctl disable --now --quiet {TIMER_UNIT} 2>/dev/null || true; \
           rm -f {SERVICE_FILE} {TIMER_FILE}; systemctl daemon-reload; \
         fi; rm -f {script} {memo}",
        script = quote(&drill_script_file(layout)),
        memo = quote(&layout.drill_interval_memo()),
    )
}

/// Shell for the inspection: `drill <status line>` and the drill
/// schedule's `drill-interval` (after `now` is set).
pub fn status_command(settings: &ClusterSettings) -> Option<String> {
    let drill = settings.backup.drill.as_ref()?;
    Some(format!(
        "{{ IFS= read -r d; }} 2>/dev/null < {status} && echo \"drill $d\"\n{interval}",
        status = quote(&format!("{}/{STATUS_NAME}", settings.backup.dir)),
        interval = super::backup_state::interval_command(
            &drill.schedule,
            &settings.layout.drill_interval_memo(),
            "drill-interval"
        ),
    ))
}

/// What the inspection read of the drills.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrillState {
    pub enabled: String,
    pub active: String,
    /// Seconds between two drills; since the timer's start.
    pub interval: Option<u64>,
    pub timer_age: Option<u64>,
    pub last: Option<LastDrill>,
}

/// The last drill's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum LastDrill {
    Passed { age: u64, details: String },
    Failed { why: String },
}

/// The drills' state from the units' properties and the inspection's
/// lines (`now`, `uptime`: the host's clocks).
pub fn parse(
    units: &BTreeMap<String, Properties>,
    text: &str,
    now: Option<u64>,
    uptime: Option<u64>,
) -> DrillState {
    let property = |name: &str| {
        units
            .get(TIMER_UNIT)
            .and_then(|p| p.get(name))
            .cloned()
            .unwrap_or_default()
    };
    let entered = property("ActiveEnterTimestampMonotonic")
        .parse::<u64>()
        .unwrap_or(0);
    let mut state = DrillState {
        enabled: property("UnitFileState"),
        active: property("ActiveState"),
        timer_age: uptime
            .filter(|_| entered > 0)
            .map(|up| up.saturating_sub(entered / 1_000_000)),
        ..DrillState::default()
    };
    for line in text.lines() {
        if let Some(seconds) = line.strip_prefix("drill-interval ") {
            state.interval = seconds.trim().parse().ok();
        }
        let Some(status) = line.strip_prefix("drill ") else {
            continue;
        };
        let mut parts = status.splitn(3, ' ');
        let (outcome, time, rest) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        let time = time.and_then(|t| t.parse::<u64>().ok());
        state.last = match (outcome, time, now) {
            (Some("ok"), Some(time), Some(now)) => Some(LastDrill::Passed {
                age: now.saturating_sub(time),
                details: rest.trim().to_string(),
            }),
            (Some("failed"), Some(_), _) => Some(LastDrill::Failed {
                why: rest.trim().to_string(),
            }),
            _ => None,
        };
    }
    state
}

/// What is wrong with the drills, as text for `status`: the timer not
/// enabled or running, the last drill failed (and why), or none passed
/// within twice the drill's interval once the timer has run that long.
pub fn problems(settings: &ClusterSettings, state: &DrillState) -> Vec<String> {
    if settings.backup.drill.is_none() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    if state.enabled != "enabled" || state.active != "active" {
        problems.push(format!(
            "the restore drill timer is not running ({} {})",
            state.enabled, state.active
        ));
    }
    let allowed = state.interval.map(|i| 2 * i + RANDOM_DELAY_SECONDS);
    match (&state.last, allowed, state.timer_age) {
        (Some(LastDrill::Failed { why }), _, _) => {
            problems.push(format!("the last restore drill failed: {why}"))
        }
        (Some(LastDrill::Passed { age, .. }), Some(allowed), Some(timer))
            if *age > allowed && timer > allowed =>
        {
            problems.push(format!(
                "the last restore drill passed {age} s ago, more than twice its schedule"
            ))
        }
        (None, Some(allowed), Some(timer)) if timer > allowed => {
            problems.push(format!("no restore drill in {timer} s"))
        }
        _ => {}
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer_units(active: &str, entered: u64) -> BTreeMap<String, Properties> {
        let props: Properties = [
            ("UnitFileState".to_string(), "enabled".to_string()),
            ("ActiveState".to_string(), active.to_string()),
            (
                "ActiveEnterTimestampMonotonic".to_string(),
                (entered * 1_000_000).to_string(),
            ),
        ]
        .into();
        [(TIMER_UNIT.to_string(), props)].into()
    }

    #[test]
    fn a_failed_a_late_and_a_missing_drill_are_named() {
        let mut settings = crate::member::backup::tests::settings(Some("hourly"));
        settings.backup.drill = Some(DrillSettings {
            schedule: "daily".into(),
        });
        let units = timer_units("active", 1000);
        let parse_at = |text: &str| parse(&units, text, Some(2_000_000_000), Some(300_000));
        let passed = parse_at(
            "drill-interval 86400\ndrill ok 1999990000 etcd/c/e1/x.db: revision 5, 3 keys, 2 s\n",
        );
        assert_eq!(
            passed.last,
            Some(LastDrill::Passed {
                age: 10_000,
                details: "etcd/c/e1/x.db: revision 5, 3 keys, 2 s".into()
            })
        );
        assert!(problems(&settings, &passed).is_empty());
        let failed = parse_at(
            "drill failed 1999990000 x.db: its SHA-256 is not the one in its metadata (ab)\n",
        );
        assert_eq!(
            problems(&settings, &failed),
            vec!["the last restore drill failed: x.db: its SHA-256 is not the one in its metadata (ab)"]
        );
        let late = parse_at("drill-interval 3600\ndrill ok 1999990000 x\n");
        assert_eq!(
            problems(&settings, &late),
            vec!["the last restore drill passed 10000 s ago, more than twice its schedule"]
        );
        let never = parse_at("drill-interval 3600\n");
        assert_eq!(
            problems(&settings, &never),
            vec!["no restore drill in 299000 s"]
        );
        let stopped = parse(
            &timer_units("inactive", 0),
            "",
            Some(2_000_000_000),
            Some(300),
        );
        assert_eq!(
            problems(&settings, &stopped),
            vec!["the restore drill timer is not running (enabled inactive)"]
        );
        settings.backup.drill = None;
        assert!(problems(&settings, &failed).is_empty());
    }

    #[test]
    fn a_drill_fetches_from_the_bucket_when_there_is_one_and_runs_limited() {
        let mut settings = crate::member::backup::tests::settings(Some("hourly"));
        settings.backup.drill = Some(DrillSettings {
            schedule: "daily".into(),
        });
        let local = script(&settings);
        assert!(local.contains("cp \"$dir/$source\" \"$snap\""), "{local}");
        assert!(!local.contains("s3_keys"), "{local}");
        assert!(local.contains("--listen-client-urls \"http://127.0.0.1:$port\""));
        settings.backup.s3 = Some(crate::member::backup_s3::tests::target());
        let remote = script(&settings);
        assert!(remote.contains("s3_keys scheduled"), "{remote}");
        assert!(remote.contains("x-amz-meta-sha256"), "{remote}");
        let unit = service(&settings);
        assert!(
            unit.contains("CPUQuota=50%\n") && unit.contains("MemoryMax=2G\n"),
            "{unit}"
        );
        assert_eq!(files(&settings).len(), 3);
    }
}
