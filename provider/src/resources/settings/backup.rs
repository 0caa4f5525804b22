//! The `backup` block of `etcd_cluster`: its schema, its plan-time
//! validation and its reading into [`BackupSettings`].

use super::host_inputs::directory_problem;
use super::schema::DEFAULT_DATA_DIR;
use crate::framework::{Attribute, AttributePath, Block, Diagnostics, Type, Value};
use crate::member::backup::{BackupSettings, DEFAULT_DIR, DEFAULT_KEEP};

/// The most snapshots of one label a member keeps.
const MAX_KEEP: i64 = 10_000;

pub fn backup_block() -> Block {
    Block::new(
        "Scheduled snapshots on the members. Every member snapshots its own local member (so every host keeps a \
         full set, and no run is missed while one member is down), verifies the file (etcd's SHA-256 and \
         `etcdctl snapshot status`), keeps it 0600 owned by `etcd` as `etcd-scheduled-<UTC time>-rev<revision>.db` \
         and deletes the oldest beyond `keep`; nothing else in `dir` is touched. A member that does not answer a \
         quorum read takes none. A disabled or failing timer, or no new snapshot within twice the schedule, shows \
         in the member's `status` (plan exit 2) and apply repairs the job. With or without this block, a snapshot \
         labelled with the change (`before-roll`, `before-ca-rotation`, `before-removal`) is taken into `dir` \
         before any change that restarts or removes members; if it cannot be taken the change does not start.",
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
}

pub fn validate_backup(config: &Value, diags: &mut Diagnostics) {
    let block = config.get("backup");
    let at = AttributePath::root("backup");
    if let Some(schedule) = block.get("schedule").as_str() {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "*:/,.~ -".contains(c);
        if schedule.trim().is_empty() || schedule.len() > 128 || !schedule.chars().all(allowed) {
            diags.error_at(
                at.attribute("schedule"),
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
    let taken = ["bin_dir", "config_dir", "pki_dir"]
        .into_iter()
        .find(|name| dir.is_some() && config.get(name).as_str() == dir);
    if let (Some(name), Some(dir)) = (taken, dir) {
        diags.error_at(
            at.attribute("dir"),
            "Invalid backup directory",
            format!("{dir:?} is also {name}: give the snapshots a directory of their own."),
        );
    } else if let Some(dir) = dir {
        let inside = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        let problem = directory_problem(dir, true).or_else(|| {
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
    }
}
