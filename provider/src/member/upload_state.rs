//! What the inspection reads back of a member's uploads to `backup.s3`
//! (see `backup_s3`): whether its credentials file is there and the last
//! upload's outcome from the status file, and the problems found in them.

use super::backup_s3::{credentials_file, credentials_path, S3Credentials, S3Target, STATUS_NAME};
use super::ClusterSettings;
use crate::ssh::quote;

/// What the inspection reads of the uploads on a member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadState {
    /// Whether the member has the credentials file.
    pub credentials: bool,
    pub last: Option<LastUpload>,
}

/// The last upload's outcome, from the status file.
#[derive(Debug, Clone, PartialEq)]
pub enum LastUpload {
    Done { age: u64 },
    Failed { why: String },
}

/// Shell for the inspection (with `backup_state::schedule_command`): prints
/// `upload <status line>` and `s3-credentials` if the file is there.
pub fn status_command(settings: &ClusterSettings) -> Option<String> {
    let target = settings.backup.s3.as_ref()?;
    Some(format!(
        "{{ IFS= read -r u; }} 2>/dev/null < {status} && echo \"upload $u\"\n[ -e {credentials} ] && echo s3-credentials\ntrue",
        status = quote(&format!("{}/{STATUS_NAME}", settings.backup.dir)),
        credentials = quote(&credentials_path(target, &settings.layout)),
    ))
}

/// The uploads' state from the inspection's lines (`now`: the host's
/// clock, for the last upload's age).
pub fn parse_status(text: &str, now: Option<u64>) -> UploadState {
    let mut state = UploadState::default();
    for line in text.lines() {
        if line == "s3-credentials" {
            state.credentials = true;
        }
        let Some(status) = line.strip_prefix("upload ") else {
            continue;
        };
        let mut parts = status.splitn(3, ' ');
        let (outcome, time, rest) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        let time = time.and_then(|t| t.parse::<u64>().ok());
        state.last = match (outcome, time) {
            (Some("ok"), Some(time)) => now.map(|now| LastUpload::Done {
                age: now.saturating_sub(time),
            }),
            (Some("failed"), Some(_)) => Some(LastUpload::Failed {
                why: rest.trim().to_string(),
            }),
            _ => None,
        };
    }
    state
}

/// What is wrong with the uploads, as text for `status`: no credentials,
/// the last upload refused (with the bucket's answer), or none within
/// `allowed` seconds once the timer has run that long (`timer_age`).
pub fn problems(
    target: &S3Target,
    settings: &ClusterSettings,
    state: &UploadState,
    allowed: Option<u64>,
    timer_age: Option<u64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !state.credentials {
        problems.push(match &target.credentials {
            S3Credentials::Key { .. } => format!(
                "the bucket credentials file {} is missing (apply writes it from backup.s3.secret_access_key_wo)",
                credentials_file(&settings.layout)
            ),
            S3Credentials::File(path) => {
                format!("the bucket credentials file {path} (backup.s3.credentials_file) is missing")
            }
        });
    }
    let bucket = &target.bucket;
    match (&state.last, allowed, timer_age) {
        (Some(LastUpload::Failed { why }), _, _) => {
            let refused = [
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
            ]
            .iter()
            .any(|code| why.contains(code));
            let hint = if refused {
                " (check backup.s3.access_key_id and secret_access_key_wo)"
            } else {
                ""
            };
            problems.push(format!(
                "the last upload to bucket {bucket} failed: {why}{hint}"
            ));
        }
        (Some(LastUpload::Done { age }), Some(allowed), Some(timer))
            if *age > allowed && timer > allowed =>
        {
            problems.push(format!(
                "the newest upload to bucket {bucket} is {age} s old, more than twice the schedule"
            ))
        }
        (None, Some(allowed), Some(timer)) if timer > allowed => {
            problems.push(format!("no upload to bucket {bucket} in {timer} s"))
        }
        _ => {}
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::backup_s3::tests::target;

    #[test]
    fn a_refused_a_stale_and_a_missing_upload_are_named() {
        let settings = crate::member::backup::tests::settings(Some("hourly"));
        let t = target();
        let text = "s3-credentials\nupload failed 1999999990 PUT https://s3/backups/k: HTTP 403 SignatureDoesNotMatch\n";
        let refused = parse_status(text, Some(2_000_000_000));
        assert_eq!(
            problems(&t, &settings, &refused, Some(50), Some(100)),
            vec![
                "the last upload to bucket backups failed: PUT https://s3/backups/k: HTTP 403 \
                 SignatureDoesNotMatch (check backup.s3.access_key_id and secret_access_key_wo)"
            ]
        );
        let fresh = parse_status(
            "s3-credentials\nupload ok 1999999990 etcd/c/e1/x.db\n",
            Some(2_000_000_000),
        );
        assert_eq!(fresh.last, Some(LastUpload::Done { age: 10 }));
        assert!(problems(&t, &settings, &fresh, Some(50), Some(100)).is_empty());
        let stale = parse_status(
            "s3-credentials\nupload ok 1999999900 k\n",
            Some(2_000_000_000),
        );
        assert_eq!(
            problems(&t, &settings, &stale, Some(50), Some(100)),
            vec!["the newest upload to bucket backups is 100 s old, more than twice the schedule"]
        );
        let never = parse_status("", Some(2_000_000_000));
        assert_eq!(
            problems(&t, &settings, &never, Some(50), Some(100)),
            vec![
                "the bucket credentials file /etc/etcd/backup-s3.conf is missing (apply writes it from \
                 backup.s3.secret_access_key_wo)",
                "no upload to bucket backups in 100 s"
            ]
        );
        assert!(
            problems(&t, &settings, &fresh, Some(50), Some(40)).is_empty(),
            "a new timer waits"
        );
    }
}
