//! The shell side of writing files on a host: one command that writes a
//! list of files with their contents one after the other on its stdin.
//! Every file is received into a temporary file in its directory first;
//! only once all of them arrived whole is any put in place, each
//! atomically (its mode and owner set, renamed over the old one), so that
//! a connection lost halfway never leaves a new certificate beside an old
//! key. Few processes per file (a member's ten files are part of every
//! change). Kept apart from the connection so that the script itself is
//! tested here, on this machine's shell.

use std::collections::BTreeMap;

use super::quote;

/// A file to write: where, what, its mode and its owner (`user:group`).
pub struct FileToWrite<'a> {
    pub path: &'a str,
    pub content: &'a [u8],
    pub mode: u32,
    pub owner: &'a str,
}

/// What follows the contents on stdin: the script checks that it arrived
/// before it puts any file in place.
pub(super) const END_OF_FILES: &[u8] = b"end of files\n";

/// Receives every file from stdin, each taking exactly its length, then
/// checks that [`END_OF_FILES`] follows (an input that ends early is an
/// error and no file is written), then puts them in place in order and
/// runs `then`. A file whose content is already there is left in place
/// with its mode and owner set, and only a replaced file sets `$changed`
/// for `then`. Fails at the first error; a temporary file never stays
/// behind.
pub(super) fn write_script(files: &[FileToWrite<'_>], then: &str) -> String {
    let tmp = |i: usize| format!("t{i}");
    let all: Vec<String> = (0..files.len())
        .map(|i| format!("${{{0}:+\"${0}\"}}", tmp(i)))
        .collect();
    let mut script = format!(
        "set -e; umask 077; changed=; {}\ntrap 'rm -f -- {}' EXIT\n",
        (0..files.len())
            .map(|i| format!("{}=", tmp(i)))
            .collect::<Vec<_>>()
            .join(" "),
        all.join(" ")
    );
    for (i, file) in files.iter().enumerate() {
        script.push_str(&format!(
            "{t}=$(mktemp {path}.XXXXXX); head -c {len} > \"${t}\"\n",
            t = tmp(i),
            path = quote(file.path),
            len = file.content.len()
        ));
    }
    let end = String::from_utf8_lossy(END_OF_FILES);
    script.push_str(&format!(
        "IFS= read -r end || true\n\
         [ \"$end\" = {} ] || {{ echo 'the input ended early: no file written' >&2; exit 1; }}\n",
        quote(end.trim_end())
    ));
    // The new files' modes and owners, a command per mode and per owner.
    let mut modes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut owners: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        modes
            .entry(format!("{:o}", file.mode))
            .or_default()
            .push(format!("\"${}\"", tmp(i)));
        owners
            .entry(file.owner)
            .or_default()
            .push(format!("\"${}\"", tmp(i)));
    }
    for (mode, tmps) in &modes {
        script.push_str(&format!("chmod {mode} {}\n", tmps.join(" ")));
    }
    for (owner, tmps) in &owners {
        script.push_str(&format!("chown {} {}\n", quote(owner), tmps.join(" ")));
    }
    script.push_str(
        "place() { if cmp -s \"$1\" \"$2\"; then chmod \"$3\" \"$2\"; chown \"$4\" \"$2\"; \
         else changed=1; mv -f \"$1\" \"$2\"; fi; }\n",
    );
    for (i, file) in files.iter().enumerate() {
        script.push_str(&format!(
            "place \"${}\" {} {:o} {}\n",
            tmp(i),
            quote(file.path),
            file.mode,
            quote(file.owner)
        ));
    }
    script.push_str(then);
    script
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::process::{Command, Stdio};

    use super::*;

    /// Runs the script with `sh` here, its stdin the given bytes.
    fn run(script: &str, input: &[u8]) -> std::process::Output {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn owner() -> String {
        let id = |flag: &str| {
            let out = Command::new("id").arg(flag).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        format!("{}:{}", id("-un"), id("-gn"))
    }

    #[test]
    fn files_are_written_in_order_and_unchanged_ones_left_in_place() {
        let dir = std::env::temp_dir().join(format!("write-script-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.key"), dir.join("b.conf"));
        fs::write(&b, "same\n").unwrap();
        fs::set_permissions(&b, fs::Permissions::from_mode(0o666)).unwrap();
        let inode_before = fs::metadata(&b).unwrap().ino();
        let owner = owner();
        let (a_path, b_path) = (a.to_str().unwrap(), b.to_str().unwrap());
        let files = [
            FileToWrite {
                path: a_path,
                content: b"secret\n",
                mode: 0o600,
                owner: &owner,
            },
            FileToWrite {
                path: b_path,
                content: b"same\n",
                mode: 0o644,
                owner: &owner,
            },
        ];
        let then = "echo \"changed=$changed\"";
        let input = [&b"secret\nsame\n"[..], END_OF_FILES].concat();
        let out = run(&write_script(&files, then), &input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "changed=1\n");
        assert_eq!(fs::read_to_string(&a).unwrap(), "secret\n");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Same content: the same file, its mode set again.
        assert_eq!(fs::metadata(&b).unwrap().ino(), inode_before);
        assert_eq!(
            fs::metadata(&b).unwrap().permissions().mode() & 0o777,
            0o644
        );

        // Nothing new: nothing changed.
        let out = run(&write_script(&files, then), &input);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "changed=\n");

        // Input that ends early, in the second file or in what follows the
        // last: an error, no file is written (the first keeps its old
        // content although its own bytes all arrived), and no temporary
        // file stays.
        let next = [
            FileToWrite {
                path: a_path,
                content: b"new secret\n",
                mode: 0o600,
                owner: &owner,
            },
            FileToWrite {
                path: b_path,
                content: b"a longer conf\n",
                mode: 0o644,
                owner: &owner,
            },
        ];
        let whole = [&b"new secret\na longer conf\n"[..], END_OF_FILES].concat();
        for cut in [b"new secret\na longer".len(), whole.len() - 3] {
            let out = run(&write_script(&next, then), &whole[..cut]);
            assert!(!out.status.success());
            assert!(String::from_utf8_lossy(&out.stderr).contains("input ended early"));
            assert_eq!(fs::read_to_string(&a).unwrap(), "secret\n");
            assert_eq!(fs::read_to_string(&b).unwrap(), "same\n");
            assert_eq!(
                fs::read_dir(&dir).unwrap().count(),
                2,
                "a temporary file stayed"
            );
        }
        let out = run(&write_script(&next, then), &whole);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "changed=1\n");
        assert_eq!(fs::read_to_string(&b).unwrap(), "a longer conf\n");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
