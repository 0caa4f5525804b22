//! The `backup` block of `etcd_cluster`: its schema, its plan-time
//! validation and its reading into [`BackupSettings`].

use super::directories::{dedicated_dir_problem, directory_problem};
use super::host_inputs::validate_login;
use super::schema::{DEFAULT_BIN_DIR, DEFAULT_CONFIG_DIR, DEFAULT_DATA_DIR, DEFAULT_PKI_DIR};
use super::validate::is_valid_host;
use crate::framework::{Attribute, AttributePath, Block, Diagnostics, NestedBlock, Type, Value};
use crate::member::backup::{BackupSettings, DEFAULT_DIR, DEFAULT_KEEP};
use crate::member::backup_copy::CopyTo;
use crate::member::backup_drill::DrillSettings;
use crate::member::backup_s3::{LockMode, ObjectLock, S3Credentials, S3Target};

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

fn s3_block() -> Block {
    Block::new(
        "A copy of every snapshot in an S3 bucket. Each member uploads its verified snapshot (with curl, signed \
         with AWS Signature V4) as `<prefix>/<cluster name>/<member>/<label>-<UTC time>-rev<revision>.db`, with \
         its SHA-256 as the object's `x-amz-meta-sha256`, then deletes its objects of that label beyond `keep` \
         (by key: in a versioned bucket that leaves a delete marker, and a locked version stays until its \
         retention ends). The credentials go to each member in a file only the job reads (0600, owned by \
         `etcd`; never on a command line). An upload that fails makes the run fail, and the member's `status` \
         names the bucket's answer (plan exit 2), as does no upload within twice the schedule.",
    )
    .attribute(Attribute::required(
        "endpoint",
        Type::String,
        "The S3 endpoint's URL, `https://host[:port]` (or `http://`), without a path.",
    ))
    .attribute(Attribute::required("bucket", Type::String, "The bucket (it must exist)."))
    .attribute(Attribute::with_default(
        "prefix",
        Type::String,
        Value::string("etcd"),
        "Keys start with this (letters, digits, `.`, `_`, `-` and `/`). Default `etcd`.",
    ))
    .attribute(Attribute::with_default(
        "region",
        Type::String,
        Value::string("us-east-1"),
        "The region the requests are signed for. Default `us-east-1`.",
    ))
    .attribute(Attribute::with_default(
        "path_style",
        Type::Bool,
        Value::Bool(false),
        "Address the bucket as `endpoint/bucket` (most servers other than AWS) instead of `bucket.endpoint`. \
         Default false.",
    ))
    .attribute(Attribute::optional(
        "access_key_id",
        Type::String,
        "The access key the members upload with (with `secret_access_key_wo`; or give `credentials_file`); \
         give it rights to put, list and delete objects under the prefix, and nothing more (it cannot destroy \
         a locked version).",
    ))
    .attribute(
        Attribute::optional(
            "secret_access_key_wo",
            Type::String,
            "Its secret (write-only: Terraform or OpenTofu 1.11+; in no state or plan). Written to the members \
             when the job is installed and whenever `secret_access_key_wo_version` changes.",
        )
        .write_only()
        .sensitive(),
    )
    .attribute(Attribute::with_default(
        "secret_access_key_wo_version",
        Type::Number,
        Value::number(1.0),
        "Any number: changing it writes the current `secret_access_key_wo` to the members. Default 1.",
    ))
    .attribute(Attribute::optional(
        "credentials_file",
        Type::String,
        "Instead of `access_key_id` and `secret_access_key_wo`: an AWS shared credentials file each member \
         already has (its `[default]` profile: `aws_access_key_id`, `aws_secret_access_key` and, for \
         temporary keys, `aws_session_token`), readable by `etcd`. The job reads it at every run, so keys \
         rotated on the hosts need no apply; the provider never sees them.",
    ))
    .attribute(Attribute::optional(
        "object_lock_days",
        Type::Number,
        "Put each object under S3 Object Lock for this many days (the bucket must have object lock enabled).",
    ))
    .attribute(Attribute::with_default(
        "object_lock_mode",
        Type::String,
        Value::string("COMPLIANCE"),
        "`COMPLIANCE` (no one can shorten or lift the retention) or `GOVERNANCE`. Default `COMPLIANCE`.",
    ))
    .attribute(Attribute::optional(
        "ca_cert_pem",
        Type::String,
        "The endpoint's CA certificate (PEM), when the members' system store does not hold it.",
    ))
    .attribute(Attribute::with_default(
        "compression",
        Type::String,
        Value::string("none"),
        "`gzip`: objects are gzipped snapshots (`....db.gz`); their `x-amz-meta-sha256` stays the SHA-256 of \
         the snapshot itself, checked after decompressing. `none` (the default): the snapshot as it is.",
    ))
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

/// Characters allowed in object keys' parts (no encoding needed in URLs).
fn key_safe(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
}

fn validate_s3(config: &Value, block: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    // Judged once all three are known (variables are unknown at validate).
    let names = ["access_key_id", "secret_access_key_wo", "credentials_file"];
    if names.iter().all(|name| !block.get(name).is_unknown()) {
        let given = |name: &str| !block.get(name).is_null();
        let file = given("credentials_file");
        let key = given("access_key_id") && given("secret_access_key_wo");
        if file && (given("access_key_id") || given("secret_access_key_wo")) {
            diags.error_at(
                at.attribute("credentials_file"),
                "Two kinds of credentials",
                "Give either access_key_id with secret_access_key_wo, or credentials_file, not both.",
            );
        } else if !(file || key) {
            let missing = if given("access_key_id") {
                "secret_access_key_wo"
            } else {
                "access_key_id"
            };
            diags.error_at(
                at.attribute(missing),
                "Missing S3 credentials",
                "Give access_key_id with secret_access_key_wo (written to the members by the provider), or \
                 credentials_file (a file the members already have).",
            );
        }
    }
    if let Some(path) = block.get("credentials_file").as_str() {
        if let Some(problem) = directory_problem(path, true) {
            diags.error_at(
                at.attribute("credentials_file"),
                "Invalid credentials file",
                problem,
            );
        }
    }
    if let Some(endpoint) = block.get("endpoint").as_str() {
        let host = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"))
            .map(|rest| rest.trim_end_matches('/'));
        let valid = host.is_some_and(|h| {
            let name = match h.rsplit_once(':') {
                Some((name, port)) if port.parse::<u16>().is_ok() => name,
                _ => h,
            };
            !h.contains('/') && is_valid_host(name)
        });
        if !valid {
            diags.error_at(
                at.attribute("endpoint"),
                "Invalid S3 endpoint",
                format!("{endpoint:?}: give https://host or https://host:port (or http://), without a path."),
            );
        }
    }
    if let Some(bucket) = block.get("bucket").as_str() {
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c));
        if !valid {
            diags.error_at(
                at.attribute("bucket"),
                "Invalid bucket name",
                format!("{bucket:?}: 3 to 63 lowercase letters, digits, '.' and '-'."),
            );
        }
    }
    if let Some(prefix) = block.get("prefix").as_str() {
        if !key_safe(prefix) || prefix.contains("//") {
            diags.error_at(
                at.attribute("prefix"),
                "Invalid prefix",
                format!("{prefix:?}: use letters, digits, '.', '_', '-' and single '/'."),
            );
        }
    }
    if let Some(name) = config.get("name").as_str() {
        if !key_safe(name) || name.contains('/') {
            diags.error_at(
                AttributePath::root("name"),
                "Cluster name not usable in object keys",
                format!(
                    "{name:?}: with backup.s3 the cluster name is part of each object's key: use letters, \
                     digits, '.', '_' and '-'."
                ),
            );
        }
    }
    if let Some(days) = block.get("object_lock_days").as_f64() {
        if !(1.0..=36500.0).contains(&days) || days.fract() != 0.0 {
            diags.error_at(
                at.attribute("object_lock_days"),
                "Invalid object_lock_days",
                "object_lock_days must be a whole number of days from 1 to 36500.",
            );
        }
    }
    if let Some(compression) = block.get("compression").as_str() {
        if !["none", "gzip"].contains(&compression) {
            diags.error_at(
                at.attribute("compression"),
                "Invalid compression",
                format!("{compression:?}: none or gzip."),
            );
        }
    }
    if let Some(mode) = block.get("object_lock_mode").as_str() {
        if lock_mode(mode).is_none() {
            diags.error_at(
                at.attribute("object_lock_mode"),
                "Invalid object_lock_mode",
                format!("{mode:?}: COMPLIANCE or GOVERNANCE."),
            );
        }
    }
    if let Some(pem) = block.get("ca_cert_pem").as_str() {
        if crate::pki::not_after(pem).is_none() {
            diags.error_at(
                at.attribute("ca_cert_pem"),
                "Invalid CA certificate",
                "ca_cert_pem holds no PEM certificate.",
            );
        }
    }
}

fn lock_mode(text: &str) -> Option<LockMode> {
    match text {
        "COMPLIANCE" => Some(LockMode::Compliance),
        "GOVERNANCE" => Some(LockMode::Governance),
        _ => None,
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
            s3 => Some(S3Target {
                endpoint: s3.str_or_empty("endpoint").to_string(),
                bucket: s3.str_or_empty("bucket").to_string(),
                prefix: s3.get("prefix").as_str().unwrap_or("etcd").to_string(),
                region: s3.get("region").as_str().unwrap_or("us-east-1").to_string(),
                path_style: s3.get("path_style").as_bool().unwrap_or(false),
                credentials: match s3.get("credentials_file").as_str() {
                    Some(path) => S3Credentials::File(path.to_string()),
                    None => S3Credentials::Key {
                        access_key_id: s3.str_or_empty("access_key_id").to_string(),
                        secret_version: s3
                            .get("secret_access_key_wo_version")
                            .as_i64()
                            .unwrap_or(1),
                    },
                },
                object_lock: s3.get("object_lock_days").as_i64().map(|days| ObjectLock {
                    days: days.clamp(1, 36500) as u32,
                    mode: s3
                        .get("object_lock_mode")
                        .as_str()
                        .and_then(lock_mode)
                        .unwrap_or(LockMode::Compliance),
                }),
                ca_cert_pem: s3.get("ca_cert_pem").as_str().map(str::to_string),
                gzip: s3.get("compression").as_str() == Some("gzip"),
            }),
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

/// The write-only secret of `backup.s3`, where the value has it (while
/// applying, never in state).
pub fn s3_secret(value: &Value) -> Option<String> {
    value
        .get("backup")
        .get("s3")
        .get("secret_access_key_wo")
        .as_str()
        .map(str::to_string)
}
