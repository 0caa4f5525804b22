//! The shell side of writing files on a host: one command that writes a
//! list of files with their contents one after the other on its stdin.
//! Every file is received under its own name into a private temporary
//! directory beside its destination first; only once all of them arrived
//! whole is any put in place, each atomically (its mode and owner set,
//! renamed over the old one). The new files of one directory are renamed
//! by one `mv`, back to back: a member's certificate and key change within
//! microseconds of each other (etcd reads both for every new connection;
//! a handshake that saw a new certificate beside an old key would fail),
//! and a connection lost halfway never leaves one without the other. Few
//! processes per file (a member's ten files are part of every change).
//! Kept apart from the connection so that the script itself is tested
//! here, on this machine's shell.

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

/// A path's directory and name (`.` for a bare name).
fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", path),
    }
}

/// Receives every file from stdin, each taking exactly its length, then
/// checks that [`END_OF_FILES`] follows (an input that ends early is an
/// error and no file is written), then puts them in place, a directory at
/// a time in the order the directories first appear, and runs `then`. A
/// file whose content is already there is left in place with its mode
/// and owner set, and only a replaced file sets `$changed` for `then`.
/// Fails at the first error; nothing temporary stays behind.
pub(super) fn write_script(files: &[FileToWrite<'_>], then: &str) -> String {
    // The destination directories in order, each with its temporary one.
    let mut dirs: Vec<&str> = Vec::new();
    for file in files {
        let (dir, _) = split(file.path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let tmp_dir = |dir: &str| format!("d{}", dirs.iter().position(|d| *d == dir).unwrap_or(0));
    // A file's temporary path, as a shell word.
    let received = |file: &FileToWrite| {
        let (dir, name) = split(file.path);
        format!("\"${}\"/{}", tmp_dir(dir), quote(name))
    };
    let mut script = format!(
        "set -e; umask 077; changed=; {}\ntrap 'rm -rf -- {}' EXIT\n",
        dirs.iter()
            .map(|d| format!("{}=", tmp_dir(d)))
            .collect::<Vec<_>>()
            .join(" "),
        dirs.iter()
            .map(|d| format!("${{{0}:+\"${0}\"}}", tmp_dir(d)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for dir in &dirs {
        script.push_str(&format!(
            "{}=$(mktemp -d {}/.write-XXXXXX)\n",
            tmp_dir(dir),
            quote(dir.trim_end_matches('/'))
        ));
    }
    for file in files {
        script.push_str(&format!(
            "head -c {} > {}\n",
            file.content.len(),
            received(file)
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
    for file in files {
        modes
            .entry(format!("{:o}", file.mode))
            .or_default()
            .push(received(file));
        owners.entry(file.owner).or_default().push(received(file));
    }
    for (mode, paths) in &modes {
        script.push_str(&format!("chmod {mode} {}\n", paths.join(" ")));
    }
    for (owner, paths) in &owners {
        script.push_str(&format!("chown {} {}\n", quote(owner), paths.join(" ")));
    }
    // Per directory: the files that differ, renamed by one `mv`.
    for dir in &dirs {
        script.push_str("put_in_place() {\n  set --\n");
        for file in files.iter().filter(|f| split(f.path).0 == *dir) {
            script.push_str(&format!(
                "  if cmp -s {new} {path}; then chmod {mode:o} {path}; chown {owner} {path}; \
                 else set -- \"$@\" {new}; fi\n",
                new = received(file),
                path = quote(file.path),
                mode = file.mode,
                owner = quote(file.owner),
            ));
        }
        script.push_str(&format!(
            "  if [ $# -gt 0 ]; then changed=1; mv -f -- \"$@\" {}/; fi\n}}\nput_in_place\n",
            quote(dir.trim_end_matches('/'))
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

    #[test]
    fn files_of_several_directories_each_land_in_their_own() {
        let dir = std::env::temp_dir().join(format!("write-dirs-{}", std::process::id()));
        let sub = dir.join("pki dir");
        fs::create_dir_all(&sub).unwrap();
        let owner = owner();
        let paths = [
            sub.join("server.crt"),
            sub.join("server.key"),
            dir.join("etcd.conf"),
        ];
        let contents: [&[u8]; 3] = [b"cert", b"key", b"conf\n"];
        let files: Vec<FileToWrite> = paths
            .iter()
            .zip(contents)
            .map(|(path, content)| FileToWrite {
                path: path.to_str().unwrap(),
                content,
                mode: 0o600,
                owner: &owner,
            })
            .collect();
        let input = [&contents.concat()[..], END_OF_FILES].concat();
        let out = run(&write_script(&files, "echo \"changed=$changed\""), &input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "changed=1\n");
        for (path, content) in paths.iter().zip(contents) {
            assert_eq!(fs::read(path).unwrap(), content);
        }
        // Only the files: no temporary directory stays in either.
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 2);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        assert_eq!(
            split("/etc/etcd/pki/server.key"),
            ("/etc/etcd/pki", "server.key")
        );
        assert_eq!(split("/etcd.conf"), ("/", "etcd.conf"));
        assert_eq!(split("etcd.conf"), (".", "etcd.conf"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
