//! The shell side of writing files on a host: one command that writes a
//! list of files, each atomically (a temporary file in the same directory,
//! its mode and owner set, renamed over the old one), with their contents
//! one after the other on its stdin. Kept apart from the connection so
//! that the script itself is tested here, on this machine's shell.

use super::quote;

/// A file to write: where, what, its mode and its owner (`user:group`).
pub struct FileToWrite<'a> {
    pub path: &'a str,
    pub content: &'a [u8],
    pub mode: u32,
    pub owner: &'a str,
}

/// Writes each file in order from stdin, taking exactly its length (an
/// input that ends early is an error; that file is not written), then runs
/// `then`. A file whose content is already there is left in place with
/// its mode and owner set, and only a replaced file sets `$changed` for
/// `then`. Fails at the first error; a temporary file never stays behind.
pub(super) fn write_script(files: &[FileToWrite<'_>], then: &str) -> String {
    let mut script = String::from(
        "set -e; umask 077; tmp=; changed=; trap 'rm -f \"$tmp\"' EXIT\n\
         put() { tmp=$(mktemp \"$1.XXXXXX\"); head -c \"$2\" > \"$tmp\"; \
         if [ \"$(wc -c < \"$tmp\")\" -ne \"$2\" ]; then echo \"writing $1: input ended early\" >&2; exit 1; fi; \
         if cmp -s \"$tmp\" \"$1\"; then rm -f \"$tmp\"; tmp=; chmod \"$3\" \"$1\"; chown \"$4\" \"$1\"; return; fi; \
         changed=1; chmod \"$3\" \"$tmp\"; chown \"$4\" \"$tmp\"; mv -f \"$tmp\" \"$1\"; tmp=; }\n",
    );
    for file in files {
        script.push_str(&format!(
            "put {} {} {:o} {}\n",
            quote(file.path),
            file.content.len(),
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
        let out = run(&write_script(&files, then), b"secret\nsame\n");
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
        let out = run(&write_script(&files, then), b"secret\nsame\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "changed=\n");

        // Input that ends early: an error, the file keeps its content and
        // no temporary file stays.
        let short = [FileToWrite {
            path: a_path,
            content: b"a longer secret\n",
            mode: 0o600,
            owner: &owner,
        }];
        let out = run(&write_script(&short, ""), b"a longer");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("input ended early"));
        assert_eq!(fs::read_to_string(&a).unwrap(), "secret\n");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            2,
            "a temporary file stayed"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
