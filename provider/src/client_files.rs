//! A client certificate's files on a consumer host, over SSH: the
//! certificate (0644), its key (0600 unless told otherwise) and the CA
//! bundle the consumer verifies the members with (0644), each owned as
//! told. They are written only where the host's copy differs, atomically,
//! with the content on stdin (the key never on a command line), and the
//! reload command runs after any change. A reload owed (the command
//! failed, or the run stopped before it) is marked by a hidden file beside
//! the certificate until it succeeds: it shows as drift and the next apply
//! runs it. Read back as digests, owners and modes; removed on destroy.

use crate::member::install::sha256_hex;
use crate::ssh::{self, quote, FileToWrite, Host, SshError};

/// Where a consumer keeps the files, and how it picks up new ones.
#[derive(Debug, Clone)]
pub struct Placement {
    pub target: ssh::Target,
    pub cert_path: String,
    pub key_path: String,
    pub ca_path: Option<String>,
    pub owner: String,
    pub group: String,
    /// The key's mode; the certificate and the CA bundle are 0644.
    pub key_mode: u32,
    /// Run (as root, with `sh -c`) after any file changed.
    pub reload_command: Option<String>,
}

/// What goes into the files.
pub struct Contents<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
    pub ca_pem: &'a str,
}

/// One file as it should be: path, content and mode.
struct Wanted<'a> {
    path: &'a str,
    content: &'a str,
    mode: u32,
}

impl Placement {
    fn wanted<'a>(&'a self, contents: &Contents<'a>) -> Vec<Wanted<'a>> {
        let mut files = vec![
            Wanted {
                path: &self.cert_path,
                content: contents.cert_pem,
                mode: 0o644,
            },
            Wanted {
                path: &self.key_path,
                content: contents.key_pem,
                mode: self.key_mode,
            },
        ];
        if let Some(ca) = &self.ca_path {
            files.push(Wanted {
                path: ca,
                content: contents.ca_pem,
                mode: 0o644,
            });
        }
        files
    }

    /// The files' `sha256 owner group mode` on the host, by path.
    async fn seen(
        &self,
        host: &Host,
        wanted: &[Wanted<'_>],
    ) -> Result<Vec<Option<String>>, SshError> {
        let mut seen = Vec::new();
        for file in wanted {
            let out = host
                .run(&format!(
                    "f={}; [ -f \"$f\" ] && echo \"$(sha256sum < \"$f\" | cut -d' ' -f1) $(stat -c '%U %G %a' \"$f\")\"",
                    quote(file.path)
                ))
                .await?;
            let line = out.stdout.trim();
            seen.push((!line.is_empty()).then(|| line.to_string()));
        }
        Ok(seen)
    }

    /// The marker of a reload owed: `.NAME.reload-pending` beside the
    /// certificate.
    fn reload_marker(&self) -> String {
        match self.cert_path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.{name}.reload-pending"),
            None => format!(".{}.reload-pending", self.cert_path),
        }
    }

    /// Whether a reload is owed on `host` (never without a reload command).
    async fn reload_owed(&self, host: &Host) -> Result<bool, SshError> {
        if self.reload_command.is_none() {
            return Ok(false);
        }
        let out = host
            .run(&format!(
                "[ -e {} ] && echo owed; true",
                quote(&self.reload_marker())
            ))
            .await?;
        Ok(out.stdout.contains("owed"))
    }

    fn expected(&self, file: &Wanted<'_>) -> String {
        format!(
            "{} {} {} {:o}",
            sha256_hex(file.content.as_bytes()),
            self.owner,
            self.group,
            file.mode
        )
    }

    /// What differs on the host, as text: empty when every file is as it
    /// should be.
    pub async fn problems(&self, contents: &Contents<'_>) -> Result<Vec<String>, SshError> {
        let host = Host::connect(&self.target).await?;
        let wanted = self.wanted(contents);
        let seen = self.seen(&host, &wanted).await;
        let owed = self.reload_owed(&host).await;
        host.close().await;
        let mut problems: Vec<String> = wanted
            .iter()
            .zip(seen?)
            .filter_map(|(file, seen)| match seen {
                None => Some(format!("{} is missing", file.path)),
                Some(seen) if seen != self.expected(file) => {
                    Some(format!("{} changed on the host", file.path))
                }
                Some(_) => None,
            })
            .collect();
        if owed? {
            problems
                .push("the reload command has not succeeded since the files changed".to_string());
        }
        Ok(problems)
    }

    /// Writes the files that differ and then runs the reload command;
    /// returns whether anything changed.
    pub async fn install(&self, contents: &Contents<'_>) -> Result<bool, SshError> {
        let host = Host::connect(&self.target).await?.finishing_commands();
        let installed = self.install_on(&host, contents).await;
        host.close().await;
        installed
    }

    async fn install_on(&self, host: &Host, contents: &Contents<'_>) -> Result<bool, SshError> {
        let wanted = self.wanted(contents);
        let seen = self.seen(host, &wanted).await?;
        let owner = format!("{}:{}", self.owner, self.group);
        let differing: Vec<&Wanted<'_>> = wanted
            .iter()
            .zip(seen)
            .filter(|(file, seen)| seen.as_deref() != Some(self.expected(file).as_str()))
            .map(|(file, _)| file)
            .collect();
        let changed = !differing.is_empty();
        if changed {
            // All in one command that puts nothing in place before every
            // file arrived, and renames a directory's new files back to
            // back: a consumer never reads a new certificate with an old
            // key (see `ssh::files`).
            let dirs: Vec<String> = differing
                .iter()
                .filter_map(|f| f.path.rsplit_once('/').map(|(dir, _)| dir))
                .filter(|dir| !dir.is_empty())
                .map(quote)
                .collect();
            if !dirs.is_empty() {
                host.run_ok(&format!("mkdir -p {}", dirs.join(" "))).await?;
            }
            let files: Vec<FileToWrite<'_>> = differing
                .iter()
                .map(|f| FileToWrite {
                    path: f.path,
                    content: f.content.as_bytes(),
                    mode: f.mode,
                    owner: &owner,
                })
                .collect();
            // The reload is owed from the moment the files are in place.
            let mark = match &self.reload_command {
                Some(_) => format!("touch {}", quote(&self.reload_marker())),
                None => String::new(),
            };
            host.write_files_then(&files, &mark).await?;
        }
        let owed = changed || self.reload_owed(host).await?;
        if let (true, Some(reload)) = (owed, &self.reload_command) {
            let out = host.run(reload).await?;
            if out.status != 0 {
                return Err(SshError(format!(
                    "{}: the files were written, but the reload command failed with status {} (the next apply \
                     runs it again): {}",
                    self.target.address,
                    out.status,
                    out.stderr.trim()
                )));
            }
            host.run_ok(&format!("rm -f {}", quote(&self.reload_marker())))
                .await?;
        }
        Ok(changed || owed)
    }

    /// Removes the files (those still there).
    pub async fn remove(&self) -> Result<(), SshError> {
        let host = Host::connect(&self.target).await?.finishing_commands();
        let mut paths = vec![
            quote(&self.cert_path),
            quote(&self.key_path),
            quote(&self.reload_marker()),
        ];
        paths.extend(self.ca_path.as_deref().map(quote));
        let removed = host.run_ok(&format!("rm -f {}", paths.join(" "))).await;
        host.close().await;
        removed.map(drop)
    }
}
