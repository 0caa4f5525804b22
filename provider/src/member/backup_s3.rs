//! Copies of the backups in object storage (`backup.s3`).
//!
//! After a snapshot is taken, verified and pruned on the member, the backup
//! script uploads it with `curl` (its AWS Signature V4 signing) to
//! `s3://BUCKET/PREFIX/<cluster>/<member>/<label>-<UTC>-rev<N>.db`, with
//! its SHA-256 signed as the payload hash and kept as the object's
//! `x-amz-meta-sha256`, and with `Content-MD5`. With `compression = "gzip"`
//! the object is the gzipped snapshot, named `....db.gz`; its metadata
//! keeps the SHA-256 of the snapshot itself, which a restore checks after
//! decompressing (the payload hash covers the bytes sent). With object lock, each
//! object is put under a retention (compliance or governance) of
//! `object_lock_days`. Then the member's objects of that label beyond
//! `keep` are deleted, the oldest first: by key only, so that in a bucket
//! with versioning (which object lock requires) a delete leaves a marker
//! and never destroys a version; a locked version stays until its
//! retention ends and the bucket's lifecycle rules remove it.
//!
//! The credentials are a curl config file on the member (0600, owned by
//! `etcd`, read by curl with `-K`): never on a command line or in a log.
//! The provider writes it only while it applies with the write-only secret
//! in hand; `secret_access_key_wo_version` is part of the script's text, so
//! that a new version shows as a changed job, and the repair writes the
//! new secret. Each upload's outcome goes to a status file in the backup
//! directory, which the inspection reads (see `upload_state`).

use super::{ClusterSettings, Layout};
use crate::ssh::quote;

/// Object lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Compliance,
    Governance,
}

impl LockMode {
    pub fn header(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }
}

/// Each uploaded object's retention.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectLock {
    pub days: u32,
    pub mode: LockMode,
}

/// Where and how members upload their snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Target {
    /// `https://host[:port]` (or `http://`), without a path.
    pub endpoint: String,
    pub bucket: String,
    /// Keys start with `prefix/` (unless empty), then the cluster's name.
    pub prefix: String,
    pub region: String,
    /// `endpoint/bucket/key` rather than `bucket.endpoint/key`.
    pub path_style: bool,
    pub credentials: S3Credentials,
    pub object_lock: Option<ObjectLock>,
    /// The endpoint's CA certificate, when the members' system store
    /// lacks it.
    pub ca_cert_pem: Option<String>,
    /// Objects are gzipped snapshots.
    pub gzip: bool,
}

/// How the members sign their requests.
#[derive(Debug, Clone, PartialEq)]
pub enum S3Credentials {
    /// A key whose secret the provider writes to each member (see the
    /// module); `secret_version` changes to write a new one.
    Key {
        access_key_id: String,
        secret_version: i64,
    },
    /// An AWS shared credentials file each member already has (its
    /// `[default]` profile: `aws_access_key_id`, `aws_secret_access_key`
    /// and, for temporary keys, `aws_session_token`), readable by `etcd`.
    /// The job reads it at each run, so a rotation on the host needs no
    /// apply.
    File(String),
}

/// The ending of object keys: a snapshot, gzipped or not.
pub const KEY_ENDING: &str = r"\.db(\.gz)?$";

/// The curl config file with the credentials, on the member.
pub fn credentials_file(layout: &Layout) -> String {
    format!("{}/backup-s3.conf", layout.config_dir)
}

/// The endpoint's CA certificate, on the member.
pub fn ca_file(layout: &Layout) -> String {
    format!("{}/backup-s3-ca.crt", layout.config_dir)
}

/// The outcome of the last upload, in the backup directory: `ok TIME KEY`
/// or `failed TIME WHY` (TIME in seconds since the epoch).
pub const STATUS_NAME: &str = ".etcd-upload-status";

/// The credentials file's content: curl config lines (none for
/// credentials from a file the member has).
pub fn credentials(target: &S3Target, secret: &str, layout: &Layout) -> Option<String> {
    let S3Credentials::Key { access_key_id, .. } = &target.credentials else {
        return None;
    };
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut text = format!(
        "# Managed by terraform-provider-etcd: the backup job's credentials for its bucket.\n\
         user = \"{}:{}\"\n",
        escape(access_key_id),
        escape(secret)
    );
    if target.ca_cert_pem.is_some() {
        text.push_str(&format!("cacert = \"{}\"\n", escape(&ca_file(layout))));
    }
    Some(text)
}

/// What installing the job writes for the bucket, (path, content, mode,
/// owner), and the shell to run after: the provider's credentials file
/// when the secret is given (else the one there is kept; none with
/// `credentials_file`), the endpoint's CA, a failed last upload
/// forgotten; without `backup.s3`, both files removed.
pub fn install_parts(
    settings: &ClusterSettings,
    secret: Option<&str>,
) -> (Vec<(String, String, u32, &'static str)>, String) {
    let layout = &settings.layout;
    let (ours, ca) = (credentials_file(layout), ca_file(layout));
    let Some(target) = &settings.backup.s3 else {
        return (Vec::new(), format!("rm -f {} {}", quote(&ours), quote(&ca)));
    };
    let status = quote(&format!("{}/{STATUS_NAME}", settings.backup.dir));
    let mut then =
        format!("case \"$(head -c 6 {status} 2>/dev/null)\" in failed) rm -f {status};; esac");
    let mut files = Vec::new();
    match secret.and_then(|secret| credentials(target, secret, layout)) {
        Some(text) => files.push((ours, text, 0o600, "etcd:etcd")),
        None if matches!(target.credentials, S3Credentials::File(_)) => {
            then = format!("rm -f {}; {then}", quote(&ours))
        }
        None => {}
    }
    match &target.ca_cert_pem {
        Some(pem) => files.push((ca, pem.clone(), 0o644, "root:root")),
        None => then = format!("rm -f {}; {then}", quote(&ca)),
    }
    (files, then)
}

/// The file the job's curl reads its credentials from, on the member.
pub fn credentials_path(target: &S3Target, layout: &Layout) -> String {
    match &target.credentials {
        S3Credentials::Key { .. } => credentials_file(layout),
        S3Credentials::File(path) => path.clone(),
    }
}

/// Shell that sets `s3_conf`: the provider's curl config, or one made at
/// each run from the member's shared credentials file (in the job's
/// scratch directory, 0600; the secret never on a command line). A file
/// without the keys leaves `s3_conf_problem` set, and every request fails
/// with it (the snapshot itself is taken all the same).
fn conf_command(target: &S3Target, layout: &Layout) -> String {
    let S3Credentials::File(path) = &target.credentials else {
        return format!(
            "s3_conf={}\ns3_conf_problem=\n",
            quote(&credentials_file(layout))
        );
    };
    let cacert = if target.ca_cert_pem.is_some() {
        format!(
            "printf 'cacert = \"%s\"\\n' {} >> \"$s3_conf\"\n",
            quote(&ca_file(layout))
        )
    } else {
        String::new()
    };
    format!(
        r#"s3_conf="$s3_work/curl.conf"; s3_conf_problem=
if ! awk -F ' *= *' '/^[[:space:]]*\[/ {{ p = ($0 ~ /^[[:space:]]*\[default\][[:space:]]*$/) }}
    p && $1 == "aws_access_key_id" {{ k = $2 }} p && $1 == "aws_secret_access_key" {{ s = $2 }}
    p && $1 == "aws_session_token" {{ t = $2 }}
    END {{ if (k == "" || s == "") exit 1; printf "user = \"%s:%s\"\n", k, s
           if (t != "") printf "header = \"x-amz-security-token: %s\"\n", t }}' {path} > "$s3_conf" 2>/dev/null; then
  s3_conf_problem="credentials_file {shown}: no aws_access_key_id and aws_secret_access_key under [default] that etcd can read"
fi
{cacert}"#,
        path = quote(path),
        shown = path.replace(['"', '\'', '$', '`', '\\'], ""),
    )
}

/// The object URL up to the key (`BASE/`), and the listing's URL.
fn urls(target: &S3Target) -> (String, String) {
    let endpoint = target.endpoint.trim_end_matches('/');
    if target.path_style {
        let root = format!("{endpoint}/{}", target.bucket);
        (format!("{root}/"), root)
    } else {
        let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
        let root = format!("{scheme}://{}.{host}", target.bucket);
        (format!("{root}/"), format!("{root}/"))
    }
}

/// The keys' prefix before the member's name: `PREFIX/<cluster>/`.
pub fn cluster_prefix(target: &S3Target, cluster: &str) -> String {
    let prefix = target.prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{cluster}/")
    } else {
        format!("{prefix}/{cluster}/")
    }
}

/// The script's part that defines `s3_upload FILE LABEL` (see the module):
/// it uploads, prunes the member's objects of LABEL to `keep`, records the
/// outcome in the status file, and fails with the reason on stderr.
pub fn upload_functions(settings: &ClusterSettings, target: &S3Target) -> String {
    let (objects, listing) = urls(target);
    let lock = target
        .object_lock
        .as_ref()
        .map(|lock| {
            format!(
                " -H \"x-amz-object-lock-mode: {}\" -H \"x-amz-object-lock-retain-until-date: $(date -u -d '+{} days' +%Y-%m-%dT%H:%M:%SZ)\"",
                lock.mode.header(),
                lock.days
            )
        })
        .unwrap_or_default();
    format!(
        r#"# Object storage (backup.s3), credentials version {version}.
s3_objects={objects}
s3_listing={listing}
s3_prefix={prefix}"$(sed -n 's/^name: "\(.*\)"$/\1/p' {config})/"
s3_status="$dir/{STATUS_NAME}"
s3_work=$(mktemp -d "$dir/.etcd-upload-XXXXXX")
{conf}s3_error=
# One signed request: METHOD URL [curl options]; the response body is left
# in $s3_work/body (or in $s3_body, for this request), and a failure is
# described in $s3_error.
s3() {{
  s3_method=$1 s3_url=$2; shift 2
  s3_out=${{s3_body:-$s3_work/body}}; s3_body=
  [ -z "$s3_conf_problem" ] || {{ s3_error=$s3_conf_problem; return 1; }}
  if ! s3_code=$(curl -sS --connect-timeout 10 --max-time 1800 --speed-limit 1024 --speed-time 30 -K "$s3_conf" --aws-sigv4 {sigv4} \
      -X "$s3_method" -o "$s3_out" -w '%{{http_code}}' "$@" "$s3_url" 2>"$s3_work/err"); then
    s3_error="$s3_method $s3_url: $(head -c 300 "$s3_work/err" | tr '\n' ' ')"; return 1
  fi
  case "$s3_code" in 2??) return 0;; esac
  s3_error="$s3_method $s3_url: HTTP $s3_code $(sed -n 's:.*<Code>\([^<]*\)</Code>.*:\1:p' "$s3_out" | head -n 1)"
  return 1
}}
s3_empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
# Base64 of the bytes a hex string spells (Content-MD5), with the shell alone.
s3_hex_base64() {{
  h=$1 o=
  while [ -n "$h" ]; do o="$o\\$(printf %03o "0x${{h%"${{h#??}}"}}")"; h=${{h#??}}; done
  printf "$o" | base64
}}
# Lists this member's objects of label $1 into $s3_work/keys.
s3_keys() {{
  : > "$s3_work/keys"; after=
  while :; do
    query="list-type=2&prefix=$(printf '%s' "$s3_prefix$1-" | sed 's|/|%2F|g')"
    [ -z "$after" ] || query="$query&start-after=$(printf '%s' "$after" | sed 's|/|%2F|g')"
    s3 GET "$s3_listing?$query" -H "x-amz-content-sha256: $s3_empty" || return 1
    grep -o '<Key>[^<]*</Key>' "$s3_work/body" | sed 's/<[^>]*>//g' >> "$s3_work/keys"
    grep -q '<IsTruncated>true</IsTruncated>' "$s3_work/body" || break
    after=$(tail -n 1 "$s3_work/keys")
  done
}}
# Deletes this member's objects of label $1 beyond the newest {keep}.
s3_prune() {{
  s3_keys "$1" || return 1
  grep -E "/$1-[0-9]{{8}}T[0-9]{{6}}Z-rev[0-9]+{KEY_ENDING}" "$s3_work/keys" | sort -r | tail -n +{first_pruned} > "$s3_work/old" || true
  while read -r old; do
    s3 DELETE "$s3_objects$old" -H "x-amz-content-sha256: $s3_empty" || return 1
  done < "$s3_work/old"
}}
# Uploads snapshot $1 (label $2), then prunes; records the outcome.
s3_upload() {{
  name=$(basename "$1"); key="$s3_prefix${{name#etcd-}}"
  sum=$(sha256sum "$1" | cut -d' ' -f1)
  body=$1
{compress}  body_sum=$(sha256sum "$body" | cut -d' ' -f1)
  md5=$(s3_hex_base64 "$(md5sum "$body" | cut -d' ' -f1)")
  if s3 PUT "$s3_objects$key" -T "$body" -H "x-amz-content-sha256: $body_sum" -H "Content-MD5: $md5" \
      -H "x-amz-meta-sha256: $sum"{lock} && s3_prune "$2"; then
    echo "ok $(date +%s) $key" > "$s3_status"
  else
    printf 'failed %s %s\n' "$(date +%s)" "$s3_error" | tr -d '\r' > "$s3_status"
    echo "$s3_error" >&2
    return 1
  fi
}}
"#,
        version = match &target.credentials {
            S3Credentials::Key { secret_version, .. } => secret_version.to_string(),
            S3Credentials::File(_) => "from the member's own file".into(),
        },
        compress = if target.gzip {
            "  body=\"$s3_work/upload.gz\"; key=\"$key.gz\"\n  gzip -c \"$1\" > \"$body\" || { s3_error=\"gzip failed\"; return 1; }\n"
        } else {
            ""
        },
        conf = conf_command(target, &settings.layout),
        objects = quote(&objects),
        listing = quote(&listing),
        prefix = quote(&cluster_prefix(target, &settings.token)),
        config = quote(&settings.layout.config_file()),
        sigv4 = quote(&format!("aws:amz:{}:s3", target.region)),
        keep = settings.backup.keep,
        first_pruned = settings.backup.keep + 1,
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn target() -> S3Target {
        S3Target {
            endpoint: "https://s3.example.net:9000/".into(),
            bucket: "backups".into(),
            prefix: "/etcd/".into(),
            region: "eu-1".into(),
            path_style: true,
            credentials: S3Credentials::Key {
                access_key_id: "AK\"1".into(),
                secret_version: 2,
            },
            object_lock: Some(ObjectLock {
                days: 7,
                mode: LockMode::Governance,
            }),
            ca_cert_pem: Some("PEM".into()),
            gzip: false,
        }
    }

    #[test]
    fn objects_are_named_by_cluster_and_member_under_the_prefix() {
        let mut t = target();
        assert_eq!(
            urls(&t),
            (
                "https://s3.example.net:9000/backups/".to_string(),
                "https://s3.example.net:9000/backups".to_string()
            )
        );
        assert_eq!(cluster_prefix(&t, "prod"), "etcd/prod/");
        t.path_style = false;
        t.prefix = String::new();
        assert_eq!(
            urls(&t),
            (
                "https://backups.s3.example.net:9000/".to_string(),
                "https://backups.s3.example.net:9000/".to_string()
            )
        );
        assert_eq!(cluster_prefix(&t, "prod"), "prod/");
    }

    #[test]
    fn a_members_own_credentials_file_becomes_curl_config_at_each_run() {
        let dir = std::env::temp_dir().join(format!("s3-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        let mut t = target();
        t.credentials = S3Credentials::File(file.display().to_string());
        let layout = crate::member::backup::tests::settings(None).layout;
        let run = |content: &str| {
            std::fs::write(&file, content).unwrap();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "set -eu; s3_work={}; {}cat \"$s3_conf\"; echo \"problem=$s3_conf_problem\"",
                    dir.display(),
                    conf_command(&t, &layout)
                ))
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let good = run(
            "[other]\naws_access_key_id = NOPE\naws_secret_access_key = NOPE\n\
             [default]\naws_access_key_id = AKID\naws_secret_access_key = se/cr+et\naws_session_token = TOK\n",
        );
        assert!(good.contains("user = \"AKID:se/cr+et\"\n"), "{good}");
        assert!(
            good.contains("header = \"x-amz-security-token: TOK\"\n"),
            "{good}"
        );
        assert!(
            good.contains("cacert = \"/etc/etcd/backup-s3-ca.crt\"\n"),
            "{good}"
        );
        assert!(good.ends_with("problem=\n"), "{good}");
        let other_profile_only = run("[other]\naws_access_key_id = A\naws_secret_access_key = B\n");
        assert!(
            other_profile_only.contains("problem=credentials_file "),
            "{other_profile_only}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn credentials_are_curl_config_with_quotes_escaped() {
        let layout = crate::member::backup::tests::settings(None).layout;
        let text = credentials(&target(), "s\\e\"cret", &layout).unwrap();
        assert!(
            text.contains("user = \"AK\\\"1:s\\\\e\\\"cret\"\n"),
            "{text}"
        );
        assert!(
            text.contains("cacert = \"/etc/etcd/backup-s3-ca.crt\"\n"),
            "{text}"
        );
    }

    #[test]
    fn the_upload_signs_the_payload_and_locks_when_asked() {
        let mut settings = crate::member::backup::tests::settings(Some("hourly"));
        settings.token = "prod".into();
        let script = upload_functions(&settings, &target());
        assert!(script.contains("credentials version 2"), "{script}");
        assert!(
            script.contains("-H \"x-amz-content-sha256: $body_sum\""),
            "{script}"
        );
        assert!(
            script.contains("-H \"x-amz-meta-sha256: $sum\""),
            "{script}"
        );
        assert!(!script.contains("gzip -c"), "{script}");
        let mut gzipped = target();
        gzipped.gzip = true;
        let script = upload_functions(&settings, &gzipped);
        assert!(
            script.contains("key=\"$key.gz\"") && script.contains("gzip -c \"$1\" > \"$body\""),
            "{script}"
        );
        assert!(
            script.contains("x-amz-object-lock-mode: GOVERNANCE"),
            "{script}"
        );
        assert!(script.contains("'+7 days'"), "{script}");
        assert!(script.contains("s3_prefix=etcd/prod/\"$(sed"), "{script}");
        assert!(
            !script.contains("AK"),
            "no credentials in the script: {script}"
        );
    }
}
