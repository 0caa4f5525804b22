//! The `s3` block of `etcd_cluster`'s `backup`: its schema, its plan-time
//! validation and its reading into [`S3Target`] (see `member::backup_s3`
//! for what the members do with it).

use super::directories::directory_problem;
use super::validate::is_valid_host;
use crate::framework::{Attribute, AttributePath, Block, Diagnostics, Type, Value};
use crate::member::backup_s3::{LockMode, ObjectLock, S3Credentials, S3Target};

pub fn s3_block() -> Block {
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

/// Characters allowed in object keys' parts (no encoding needed in URLs).
fn key_safe(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
}

pub fn validate_s3(config: &Value, block: &Value, at: &AttributePath, diags: &mut Diagnostics) {
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

/// The block's settings (the write-only secret is read apart: [`s3_secret`]).
pub fn s3_target(s3: &Value) -> S3Target {
    S3Target {
        endpoint: s3.str_or_empty("endpoint").to_string(),
        bucket: s3.str_or_empty("bucket").to_string(),
        prefix: s3.get("prefix").as_str().unwrap_or("etcd").to_string(),
        region: s3.get("region").as_str().unwrap_or("us-east-1").to_string(),
        path_style: s3.get("path_style").as_bool().unwrap_or(false),
        credentials: match s3.get("credentials_file").as_str() {
            Some(path) => S3Credentials::File(path.to_string()),
            None => S3Credentials::Key {
                access_key_id: s3.str_or_empty("access_key_id").to_string(),
                secret_version: s3.get("secret_access_key_wo_version").as_i64().unwrap_or(1),
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
