//! Test hosts for one test: `Lab::up(lab, n)` boots them with the
//! `testhosts` script, and dropping the `Lab` takes them down again, also
//! when the test panics. Tests that run at the same time use different lab
//! numbers, so they get different bridges and subnets.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::tools;

pub struct Lab {
    pub number: u32,
    pub state: PathBuf,
    /// (name, address) of every host, h1 first.
    pub hosts: Vec<(String, String)>,
    /// Each host's second address, in the same order.
    pub second_addresses: Vec<String>,
}

fn testhosts(lab: u32, args: &[&str]) -> Output {
    Command::new(tools::testhosts_script())
        .args(args)
        .env("TESTHOSTS_LAB", lab.to_string())
        .output()
        .expect("run testhosts")
}

fn check(output: Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "testhosts {what} failed:\n{text}");
    text
}

impl Lab {
    /// Boots `count` hosts in lab `id` (see [`crate::labs`]). A run that
    /// cannot create hosts fails here, loudly; it never skips.
    pub fn up(id: crate::labs::LabId, count: usize) -> Lab {
        let number = id.number();
        // A lab left over by an earlier, killed run is taken down first.
        let _ = testhosts(number, &["down"]);
        let up = testhosts(number, &["up", &count.to_string()]);
        let env = check(testhosts(number, &["env"]), "env");
        let state = env
            .lines()
            .find_map(|l| l.strip_prefix("STATE="))
            .expect("STATE in env")
            .into();
        let mut lab = Lab {
            number,
            state,
            hosts: Vec::new(),
            second_addresses: Vec::new(),
        };
        if !up.status.success() {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&up.stdout),
                String::from_utf8_lossy(&up.stderr)
            );
            drop(lab);
            panic!("testhosts up {count} failed:\n{text}");
        }
        let hosts = std::fs::read_to_string(lab.state.join("hosts")).expect("hosts file");
        for line in hosts.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [name, address, second] = fields.as_slice() {
                lab.hosts.push((name.to_string(), address.to_string()));
                lab.second_addresses.push(second.to_string());
            }
        }
        lab
    }

    pub fn address(&self, name: &str) -> &str {
        &self
            .hosts
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no host {name}"))
            .1
    }

    /// The address the test hosts reach this machine at.
    pub fn bridge_address(&self) -> String {
        format!("10.213.{}.1", self.number)
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.state.join("ssh_config")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.state.join("known_hosts")
    }

    pub fn client_key(&self) -> PathBuf {
        self.state.join("id_ed25519")
    }

    /// Runs a shell command on a host as root (strict host key checking).
    pub fn ssh(&self, host: &str, command: &str) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                host,
                command,
            ])
            .output()
            .expect("run ssh")
    }

    /// Like [`Lab::ssh`], but the command must succeed; returns its stdout.
    pub fn ssh_ok(&self, host: &str, command: &str) -> String {
        let out = self.ssh(host, command);
        assert!(
            out.status.success(),
            "ssh {host} {command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs etcdctl (API v3, TLS with the member's server certificate) on a
    /// member host against its local endpoint; returns what it printed
    /// (`endpoint health` reports on stderr).
    pub fn etcdctl(&self, host: &str, pki_dir: &str, args: &str) -> String {
        self.ssh_ok(host, &format!("{} 2>&1", etcdctl_command(pki_dir, args)))
    }

    /// Serves `dir` over HTTP on the bridge address until the guard drops.
    pub fn serve(&self, dir: &std::path::Path, port: u16) -> HttpServer {
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                &self.bridge_address(),
                &port.to_string(),
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let address = format!("{}:{port}", self.bridge_address());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "HTTP server on {address} did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        HttpServer {
            child,
            url: format!("http://{address}"),
        }
    }

    /// Makes `server` (a flat apt repository, see [`Lab::serve`]) the
    /// host's only package source: test hosts reach no mirror.
    pub fn use_apt_repository(&self, host: &str, server: &HttpServer) {
        self.ssh_ok(
            host,
            &format!(
                "rm -f /etc/apt/sources.list.d/*; echo 'deb [trusted=yes] {}/ ./' > /etc/apt/sources.list",
                server.url
            ),
        );
    }

    /// Copies a local file to a host.
    pub fn upload(&self, local: &std::path::Path, host: &str, remote: &str) {
        let out = Command::new("scp")
            .arg("-q")
            .arg("-F")
            .arg(self.ssh_config())
            .arg(local)
            .arg(format!("{host}:{remote}"))
            .output()
            .expect("run scp");
        assert!(
            out.status.success(),
            "scp to {host} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Copies `remote` on `host` to `local` on this machine.
    pub fn download(&self, host: &str, remote: &str, local: &std::path::Path) {
        let out = Command::new("scp")
            .arg("-q")
            .arg("-F")
            .arg(self.ssh_config())
            .arg(format!("{host}:{remote}"))
            .arg(local)
            .output()
            .expect("run scp");
        assert!(
            out.status.success(),
            "scp {host}:{remote}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes etcd on `host` wait `seconds` before every start (a drop-in the
    /// provider does not own), to widen a window a test must hit.
    pub fn slow_etcd_start(&self, host: &str, seconds: u32) {
        self.ssh_ok(
            host,
            &format!(
                "mkdir -p /etc/systemd/system/etcd.service.d && \
                 printf '[Service]\\nExecStartPre=/bin/sleep {seconds}\\n' > /etc/systemd/system/etcd.service.d/slow-start.conf && \
                 systemctl daemon-reload"
            ),
        );
    }

    /// Fault injection and lifecycle: `kill`, `stop`, `start`, `restart`,
    /// `replace` (an empty machine at the same addresses),
    /// `partition` (optionally only from some peers), `heal`, `hide` and
    /// `unhide` (the primary address, from this machine only).
    pub fn fault(&self, action: &str, host: &str, peers: &[&str]) {
        let mut args = vec![action, host];
        args.extend_from_slice(peers);
        check(testhosts(self.number, &args), action);
    }

    /// Takes the lab down and returns what `testhosts` said; fails if
    /// anything (link, mount, cgroup, process, state) is left.
    pub fn down(mut self) -> String {
        let text = check(testhosts(self.number, &["down"]), "down");
        self.hosts.clear();
        self.number = u32::MAX;
        text
    }
}

/// An HTTP server this test started; stopped by its PID when dropped.
pub struct HttpServer {
    child: std::process::Child,
    pub url: String,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("TESTHOSTS_KEEP_FAILED").is_some() {
            eprintln!(
                "TESTHOSTS_KEEP_FAILED: lab {} kept for a look (TESTHOSTS_LAB={} acceptance-tests/testhosts down)",
                self.number, self.number
            );
            return;
        }
        if self.number != u32::MAX {
            let out = testhosts(self.number, &["down"]);
            if !out.status.success() && !std::thread::panicking() {
                panic!(
                    "testhosts down failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// The shell command for etcdctl (API v3, TLS with the member's server
/// certificate in `pki_dir`) against a member host's local endpoint.
pub fn etcdctl_command(pki_dir: &str, args: &str) -> String {
    format!(
        "etcdctl --cacert {pki_dir}/ca.crt --cert {pki_dir}/server.crt \
         --key {pki_dir}/server.key --endpoints https://127.0.0.1:2379 {args}"
    )
}
