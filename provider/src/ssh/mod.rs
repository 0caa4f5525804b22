//! Running commands and writing files on a member host over SSH.
//!
//! Drives the system `ssh` (through the `openssh` crate), so users'
//! `~/.ssh/config`, agent, known_hosts and ProxyJump work: one `ssh` per
//! host logs in as a control master, and every command and port forward
//! goes over its control socket (the crate's native mux client: no `ssh`
//! process per command). Host keys are
//! checked strictly unless the configuration turns that off. File contents
//! (keys included) travel on the command's stdin, never on its command line.
//! Connections are kept open between runs unless the target says not to
//! ([`kept`]).

mod files;
mod kept;

pub use files::FileToWrite;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How to reach a host: everything from the resource's `ssh` block.
#[derive(Debug, Clone)]
pub struct Target {
    pub address: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub private_key_path: Option<PathBuf>,
    pub known_hosts_path: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    pub strict_host_key_checking: bool,
    pub connect_timeout: Duration,
    /// The longest any one command may run; the host then ends it.
    pub command_timeout: Duration,
    /// How long the connection stays open after its last use, for the
    /// next run to reuse ([`kept`]); zero ends it with the run.
    pub keep_open: Duration,
    /// Run every command as root through `sudo -n` (the user needs
    /// passwordless sudo); port forwards need no root.
    pub sudo: bool,
    /// Terraform's request to stop: a command still running is abandoned
    /// (the host's time limit still ends it there).
    pub stop: CancellationToken,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SshError(pub String);

impl fmt::Display for SshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SshError {}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One SSH connection (a multiplexed master) to one host.
pub struct Host {
    pub address: String,
    session: Session,
    /// A kept connection's master directory: left open when this run is
    /// done with it.
    kept: Option<PathBuf>,
    command_timeout: Duration,
    sudo: bool,
    stop: CancellationToken,
}

/// How long past its time limit a command may take to end before the
/// connection itself is given up.
const KILL_GRACE: Duration = Duration::from_secs(15);

/// The first line of a script, shortened, to name it in an error.
fn first_line(script: &str) -> String {
    script
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect()
}

/// Quotes a string for a POSIX shell.
pub fn quote(s: &str) -> String {
    shell_escape::unix::escape(s.into()).into_owned()
}

impl Host {
    /// A connection to the target's host: a kept one that still answers,
    /// else a new one (kept after the run unless `keep_open` is zero).
    pub async fn connect(target: &Target) -> Result<Host, SshError> {
        let failed =
            |e: openssh::Error| SshError(format!("ssh to {}: {}", target.address, describe(&e)));
        let directory = (!target.keep_open.is_zero())
            .then(|| kept::directory(target))
            .flatten();
        let (session, kept) = match directory {
            Some(dir) => match kept::find(&dir).await {
                Some((session, master_dir)) => (session, Some(master_dir)),
                None => {
                    let (session, master_dir) = kept::open(
                        &mut builder(target),
                        &dir,
                        &target.address,
                        target.keep_open,
                    )
                    .await
                    .map_err(failed)?;
                    (session, Some(master_dir))
                }
            },
            None => (
                builder(target)
                    .connect_mux(&target.address)
                    .await
                    .map_err(failed)?,
                None,
            ),
        };
        Ok(Host {
            address: target.address.clone(),
            session,
            kept,
            command_timeout: target.command_timeout,
            sudo: target.sudo,
            stop: target.stop.clone(),
        })
    }

    /// The same connection with commands that run to their end even after
    /// Terraform's stop request: for the steps of a change, which must not
    /// stop between writing a member's files and restarting it. The phase
    /// stops at its next safe point instead.
    pub fn finishing_commands(mut self) -> Host {
        self.stop = CancellationToken::new();
        self
    }

    /// Runs `script` with `sh -c` as the SSH user (as root through `sudo -n`
    /// when the target says so), feeding `stdin` to it, under the host's
    /// `timeout` (coreutils): a command that runs past the
    /// time limit is ended there (TERM, then KILL) and is an error that
    /// says so. (`Session::command` quotes each argument for the remote
    /// shell.)
    pub async fn run_with_input(
        &self,
        script: &str,
        mut stdin: impl AsyncRead + Unpin,
    ) -> Result<Output, SshError> {
        let limit = self.command_timeout;
        let seconds = format!("{}s", limit.as_secs().max(1));
        let mut command = if self.sudo {
            let mut command = self.session.command("sudo");
            command.args(["-n", "--", "timeout"]);
            command
        } else {
            self.session.command("timeout")
        };
        let mut child = command
            .args(["-k", "5", &seconds, "sh", "-c"])
            .arg(script)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.connection_failed(&e))?;
        if let Some(mut input) = child.stdin().take() {
            tokio::io::copy(&mut stdin, &mut input)
                .await
                .map_err(|e| SshError(format!("{}: writing stdin: {e}", self.address)))?;
            input
                .shutdown()
                .await
                .map_err(|e| SshError(format!("{}: closing stdin: {e}", self.address)))?;
        }
        let finished = tokio::time::timeout(limit + KILL_GRACE, child.wait_with_output());
        let out = tokio::select! {
            finished = finished => finished,
            _ = self.stop.cancelled() => return Err(self.stopped(script)),
        }
        .map_err(|_| self.timed_out(script))?
        .map_err(|e| self.connection_failed(&e))?;
        let status = out.status.code().unwrap_or(-1);
        // timeout(1) exits 124 when it ended the command, 137 when it had to kill it.
        if status == 124 || status == 137 {
            return Err(self.timed_out(script));
        }
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// A command that failed on the connection itself (not on the host):
    /// a kept connection is checked again before its next use.
    fn connection_failed(&self, e: &openssh::Error) -> SshError {
        if let Some(master_dir) = &self.kept {
            kept::forget_verified(master_dir);
        }
        SshError(format!("{}: {}", self.address, describe(e)))
    }

    fn timed_out(&self, script: &str) -> SshError {
        SshError(format!(
            "{}: a command ran longer than its time limit of {:?} (timeouts.command) and was ended: {}",
            self.address,
            self.command_timeout,
            first_line(script)
        ))
    }

    fn stopped(&self, script: &str) -> SshError {
        SshError(format!(
            "{}: stopped by Terraform while a command ran (it is ended on the host within timeouts.command): {}",
            self.address,
            first_line(script)
        ))
    }

    pub async fn run(&self, script: &str) -> Result<Output, SshError> {
        self.run_with_input(script, &b""[..]).await
    }

    /// Runs `script`; a non-zero exit is an error carrying its stderr.
    pub async fn run_ok(&self, script: &str) -> Result<String, SshError> {
        let out = self.run(script).await?;
        if out.status != 0 {
            return Err(SshError(format!(
                "{}: command failed with status {}: {}",
                self.address,
                out.status,
                out.stderr.trim()
            )));
        }
        Ok(out.stdout)
    }

    /// Writes `content` to `path` atomically with `mode` and `owner`
    /// (`user:group`), through a temporary file in the same directory.
    pub async fn write_file(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        owner: &str,
    ) -> Result<(), SshError> {
        let file = FileToWrite {
            path,
            content,
            mode,
            owner,
        };
        self.write_files_then(&[file], "").await.map(drop)
    }

    /// Writes every one of `files` as [`Host::write_file`] does, in order,
    /// then runs `then`, all in one command (one round trip); returns what
    /// `then` printed. See `files::write_script`: a file whose content is
    /// already there is left in place (its mode and owner set), and `then`
    /// finds `$changed` non-empty if any file was replaced.
    pub async fn write_files_then(
        &self,
        files: &[FileToWrite<'_>],
        then: &str,
    ) -> Result<String, SshError> {
        // The contents one after the other, never copied (binaries are
        // tens of megabytes).
        let mut input: Box<dyn AsyncRead + Unpin + Send + '_> = Box::new(&b""[..]);
        for file in files {
            input = Box::new(input.chain(file.content));
        }
        let input = input.chain(files::END_OF_FILES);
        let script = files::write_script(files, then);
        let out = self.run_with_input(&script, input).await?;
        if out.status != 0 {
            let paths: Vec<&str> = files.iter().map(|f| f.path).collect();
            return Err(SshError(format!(
                "{}: writing {} failed with status {}: {}",
                self.address,
                paths.join(", "),
                out.status,
                out.stderr.trim()
            )));
        }
        Ok(out.stdout)
    }

    /// [`Host::write_file`] with the content streamed from `content` (a
    /// large file is never held in memory).
    pub async fn write_file_from(
        &self,
        path: &str,
        content: impl AsyncRead + Unpin,
        mode: u32,
        owner: &str,
    ) -> Result<(), SshError> {
        let path_q = quote(path);
        let script = format!(
            "set -e; umask 077; tmp=$(mktemp {path_q}.XXXXXX); trap 'rm -f \"$tmp\"' EXIT; \
             cat > \"$tmp\"; chmod {mode:o} \"$tmp\"; chown {owner} \"$tmp\"; mv -f \"$tmp\" {path_q}",
            owner = quote(owner)
        );
        let out = self.run_with_input(&script, content).await?;
        if out.status != 0 {
            return Err(SshError(format!(
                "{}: writing {path}: {}",
                self.address,
                out.stderr.trim()
            )));
        }
        Ok(())
    }

    /// Forwards `127.0.0.1:local_port` here to `remote_host:remote_port` as
    /// seen from the host, for as long as this connection lives.
    pub async fn forward_local(
        &self,
        local_port: u16,
        remote_host: &str,
        remote_port: u16,
    ) -> Result<(), SshError> {
        if self.kept.is_some() {
            return Err(SshError(format!(
                "{}: a port forward needs a connection of this run (keep_open zero)",
                self.address
            )));
        }
        self.session
            .request_port_forward(
                openssh::ForwardType::Local,
                openssh::Socket::new("127.0.0.1", local_port),
                openssh::Socket::new(remote_host, remote_port),
            )
            .await
            .map_err(|e| {
                SshError(format!(
                    "{}: forwarding port {remote_port}: {}",
                    self.address,
                    describe(&e)
                ))
            })
    }

    /// Whether the connection still works (its control master answers).
    pub async fn is_alive(&self) -> bool {
        self.session.check().await.is_ok()
    }

    /// Ends the connection, unless it is kept for the next run.
    pub async fn close(self) {
        if self.kept.is_none() {
            let _ = self.session.close().await;
        }
    }
}

/// How ssh is started for `target`.
fn builder(target: &Target) -> SessionBuilder {
    let mut builder = SessionBuilder::default();
    builder.known_hosts_check(if target.strict_host_key_checking {
        KnownHosts::Strict
    } else {
        KnownHosts::Add
    });
    builder.connect_timeout(target.connect_timeout);
    builder.server_alive_interval(Duration::from_secs(5));
    if let Some(user) = &target.user {
        builder.user(user.clone());
    }
    if let Some(port) = target.port {
        builder.port(port);
    }
    if let Some(key) = &target.private_key_path {
        builder.keyfile(key);
    }
    if let Some(known_hosts) = &target.known_hosts_path {
        builder.user_known_hosts_file(known_hosts);
    }
    if let Some(config) = &target.config_file {
        builder.config_file(config);
    }
    builder
}

/// openssh errors say "failed to connect" with the real reason inside.
fn describe(e: &openssh::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
