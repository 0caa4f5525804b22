//! The `backup` block of `etcd_cluster`: its schema, its plan-time
//! validation and its reading into [`BackupSettings`].

use super::backup_s3::{s3_block, s3_target, validate_s3};
use super::directories::{dedicated_dir_problem, directory_problem};
use super::host_inputs::validate_login;
use super::schema::{DEFAULT_BIN_DIR, DEFAULT_CONFIG_DIR, DEFAULT_DATA_DIR, DEFAULT_PKI_DIR};
use super::validate::is_valid_host;
use crate::framework::{Attribute, AttributePath, Block, Diagnostics, NestedBlock, Type, Value};
use crate::member::backup::{BackupSettings, DEFAULT_DIR, DEFAULT_KEEP};
use crate::member::backup_copy::CopyTo;
use crate::member::backup_drill::DrillSettings;

/// The most snapshots of one label a member keeps.
const MAX_KEEP: i64 = 10_000;

pub fn backup_block() -> Block {
    Block::new(
        "Scheduled snapshots on the members. Every member snapshots its own local member (so every host keeps a \
         full set, and no run is missed while one member is down), verifies the file (etcd's SHA-256 and \
         `snapshot status` by etcdutl, or etcdctl on etcd 3.4), keeps it 0600 owned by `etcd` as `etcd-scheduled-<UTC time>-rev<revision>.db` \
         and deletes the oldest beyond `keep` (before any copy to `copy_to`); nothing else in `dir` is touched. A \
         member that does not answer a quorum read takes none, nor one whose `dir` lacks room for the database \
         with as much again left free. A disabled or failing timer, or no new snapshot within twice the schedule, shows \
         in the member's `status` (plan exit 2) and apply repairs the job. With or without this block, a snapshot \
         labelled with the change (`before-roll`, `before-ca-rotation`, `before-removal`, `before-compaction`) is \
         taken into `dir` before any change that restarts or removes members or compacts the keyspace; if it \
         cannot be taken the change does not start (a copy to `copy_to` that fails is a warning).",
    )
    .attribute(Attribute::required(
        "schedule",
        Type::String,
        "When to take them: a systemd calendar expression such as `hourly`, `daily` or `*:0/15` (every 15 \
         minutes); see `systemd.time(7)`.",
    ))
    .attribute(Attribute::with_default(
        "keep",
        Type::Number,
        Value::number(DEFAULT_KEEP as f64),
        "How many scheduled snapshots each member keeps (the newest). Default 24.",
    ))
    .attribute(Attribute::with_default(
        "dir",
        Type::String,
        Value::string(DEFAULT_DIR),
        "Directory on the members (created 0700, owned by `etcd`). Default `/var/backups/etcd`.",
    ))
    .block(NestedBlock::single("copy_to", copy_to_block()))
    .block(NestedBlock::single("s3", s3_block()))
    .block(NestedBlock::single("drill", drill_block()))
}

fn drill_block() -> Block {
    Block::new(
        "Restore drills: on this schedule each member takes its newest scheduled snapshot (from the bucket \
         with `s3`, its SHA-256 checked against the object's metadata; else from `dir`), restores it with the \
         version's tool into a scratch directory in `dir`, starts a throwaway etcd on loopback ports with it, \
         and checks that it serves at the snapshot's revision and, while the cluster still has that revision, \
         that its key count and `hashkv` agree with the live member's; then removes it. It runs as `etcd` in a \
         slice of its own (CPU 50 %, memory 1-2 GiB, idle I/O) and never touches the member's data, ports or \
         unit. A failed drill, or none that passed within twice this schedule, shows in the member's `status` \
         (plan exit 2), with the reason.",
    )
    .attribute(Attribute::required(
        "schedule",
        Type::String,
        "When to drill: a systemd calendar expression such as `daily` or `Sun 03:00`.",
    ))
}

fn copy_to_block() -> Block {
    Block::new(
        "A copy of every snapshot on a separate backup host, over SSH. Each member makes an SSH key of its own \
         (the private key never leaves it). The provider logs in to the backup host as `user` (with the `ssh` \
         block's key, known_hosts and config) and lists each member's key in that user's `authorized_keys` with \
         `restrict` and a forced command that only accepts a snapshot under a strict name into `dir/<member>/`, \
         checks etcd's checksum and keeps the newest `keep` per member and label. A copy that fails makes the \
         member's backup run fail, which shows as drift.",
    )
    .attribute(Attribute::required("host", Type::String, "Address of the backup host."))
    .attribute(Attribute::required(
        "user",
        Type::String,
        "The user on the backup host that owns the copies (a user of its own; its `authorized_keys` gets the \
         members' restricted keys).",
    ))
    .attribute(Attribute::required("dir", Type::String, "Directory on the backup host (created 0700)."))
    .attribute(Attribute::optional("port", Type::Number, "SSH port of the backup host. Default 22."))
}

pub fn validate_backup(config: &Value, diags: &mut Diagnostics) {
    let block = config.get("backup");
    let at = AttributePath::root("backup");
    let drill = block.get("drill");
    let schedules = [
        (block.get("schedule"), at.attribute("schedule")),
        (
            drill.get("schedule"),
            at.attribute("drill").attribute("schedule"),
        ),
    ];
    for (schedule, at) in schedules {
        let Some(schedule) = schedule.as_str() else {
            continue;
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || "*:/,.~ -".contains(c);
        if schedule.trim().is_empty() || schedule.len() > 128 || !schedule.chars().all(allowed) {
            diags.error_at(
                at,
                "Invalid schedule",
                format!(
                    "{schedule:?} is not a systemd calendar expression: use e.g. \"hourly\", \"daily\" or \
                     \"*:0/15\" (letters, digits, spaces and * : / , . ~ -)."
                ),
            );
        }
    }
    if let Some(keep) = block.get("keep").as_f64() {
        if !(1.0..=MAX_KEEP as f64).contains(&keep) || keep.fract() != 0.0 {
            diags.error_at(
                at.attribute("keep"),
                "Invalid keep",
                format!("keep must be a whole number from 1 to {MAX_KEEP}."),
            );
        }
    }
    let dir = match block.get("dir") {
        Value::Null => Some(DEFAULT_DIR),
        value => value.as_str(),
    };
    let data_dir = match config.get("data_dir") {
        Value::Null => Some(DEFAULT_DATA_DIR),
        value => value.as_str(),
    };
    let set_or_default = |name: &str, default: &'static str| match config.get(name) {
        Value::Null => Some(default),
        value => value.as_str(),
    };
    let taken = [
        ("bin_dir", DEFAULT_BIN_DIR),
        ("config_dir", DEFAULT_CONFIG_DIR),
        ("pki_dir", DEFAULT_PKI_DIR),
    ]
    .into_iter()
    .map(|(name, default)| (name, set_or_default(name, default)))
    .find(|(_, path)| dir.is_some() && *path == dir)
    .map(|(name, _)| name);
    if let (Some(name), Some(dir)) = (taken, dir) {
        diags.error_at(
            at.attribute("dir"),
            "Invalid backup directory",
            format!("{dir:?} is also {name}: give the snapshots a directory of their own."),
        );
    } else if let Some(dir) = dir {
        let inside = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        let problem = directory_problem(dir, true)
            .or_else(|| dedicated_dir_problem(dir))
            .or_else(|| {
            data_dir
                .filter(|data| inside(dir, data) || inside(data, dir))
                .map(|data| {
                    format!("{dir:?} and the data directory ({data}) may neither hold nor sit inside each other.")
                })
        });
        if let Some(problem) = problem {
            diags.error_at(at.attribute("dir"), "Invalid backup directory", problem);
        }
    }
    let copy_to = block.get("copy_to");
    if !copy_to.is_null() {
        validate_copy_to(copy_to, &at.attribute("copy_to"), diags);
    }
    let s3 = block.get("s3");
    if !s3.is_null() {
        validate_s3(config, s3, &at.attribute("s3"), diags);
    }
}

fn validate_copy_to(block: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    if let Some(host) = block.get("host").as_str() {
        if !is_valid_host(host) {
            diags.error_at(
                at.attribute("host"),
                "Invalid host",
                format!("{host:?} is neither an IP address nor a DNS name."),
            );
        }
    }
    validate_login(block, at, diags);
    if let Some(problem) = block
        .get("dir")
        .as_str()
        .and_then(|d| directory_problem(d, true))
    {
        diags.error_at(at.attribute("dir"), "Invalid backup directory", problem);
    }
}

/// The block's settings; without it, the defaults and no schedule.
pub fn backup_settings(value: &Value) -> BackupSettings {
    let block = value.get("backup");
    let defaults = BackupSettings::default();
    BackupSettings {
        schedule: block.get("schedule").as_str().map(str::to_string),
        keep: block
            .get("keep")
            .as_i64()
            .map_or(defaults.keep, |k| k.clamp(1, MAX_KEEP) as u32),
        dir: block
            .get("dir")
            .as_str()
            .map_or(defaults.dir, str::to_string),
        copy_to: match block.get("copy_to") {
            Value::Null => None,
            copy => Some(CopyTo {
                host: copy.str_or_empty("host").to_string(),
                user: copy.str_or_empty("user").to_string(),
                port: copy.get("port").as_i64().map(|p| p as u16),
                dir: copy.str_or_empty("dir").to_string(),
            }),
        },
        s3: match block.get("s3") {
            Value::Null => None,
            s3 => Some(s3_target(s3)),
        },
        drill: block
            .get("drill")
            .get("schedule")
            .as_str()
            .map(|schedule| DrillSettings {
                schedule: schedule.to_string(),
            }),
    }
}
