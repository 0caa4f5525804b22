//! Fixtures shared by the cluster, member, snapshot and CA tests: the lab's
//! variables for the examples, a cluster started by hand as the runbooks
//! do, a CA key made with openssl, a client writing throughout a change and the check that every
//! acknowledged write survived, the drift check, waits and retries.

use std::time::Duration;

use crate::lab::Lab;
use crate::terraform::{hcl_list, hcl_string, Workspace};
use crate::tools;

/// kubeadm's directory for etcd's certificates, used by these tests' clusters.
pub const KUBEADM_PKI: &str = "/etc/kubernetes/pki/etcd";

/// The variables every example configuration takes to reach a lab: its
/// SSH key and known_hosts, and the directory of the etcd binaries.
pub fn lab_access_vars(lab: &Lab, etcd_version: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "ssh_private_key_path",
            hcl_string(lab.client_key().display().to_string()),
        ),
        (
            "known_hosts_path",
            hcl_string(lab.known_hosts().display().to_string()),
        ),
        (
            "etcd_binaries",
            hcl_string(tools::etcd_dir(etcd_version).display().to_string()),
        ),
    ]
}

/// The variables that give an example the CA of a cluster made by
/// [`start_cluster_by_hand`] in `pki`.
pub fn hand_ca_vars(pki: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "ca_cert_path",
            hcl_string(pki.join("ca.crt").display().to_string()),
        ),
        (
            "ca_key_path",
            hcl_string(pki.join("ca.key").display().to_string()),
        ),
    ]
}

/// [`lab_access_vars`] and `hosts`, the member addresses: what the cluster
/// configurations take.
pub fn lab_vars(lab: &Lab, hosts: &[&str], etcd_version: &str) -> Vec<(&'static str, String)> {
    let mut vars = vec![("hosts", hcl_list(hosts))];
    vars.extend(lab_access_vars(lab, etcd_version));
    vars
}

/// A new P-256 private key (PEM) made by openssl in `path`, as a user
/// makes a CA key by hand; returns it.
pub fn new_p256_key(path: &std::path::Path) -> String {
    let run = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(path).unwrap()
}

/// Waits up to a minute for `ready`; fails the test with `what` otherwise.
pub fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs etcdctl on `host` against its local member (kubeadm's PKI paths)
/// until it succeeds, for up to 30 seconds.
pub fn retry_etcdctl(lab: &Lab, host: &str, args: &str) {
    for _ in 0..60 {
        let command = format!(
            "etcdctl --cacert {KUBEADM_PKI}/ca.crt --cert {KUBEADM_PKI}/server.crt \
             --key {KUBEADM_PKI}/server.key --endpoints https://127.0.0.1:2379 {args}"
        );
        if lab.ssh(host, &command).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("etcdctl {args} on {host} kept failing");
}

/// h1's member list shows `want` started members.
pub fn assert_started_members(lab: &Lab, want: usize) {
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert_eq!(
        list.matches(", started, ").count(),
        want,
        "member list:\n{list}"
    );
}

/// `plan -detailed-exitcode` exits 2 and says `reason` on the line of
/// `member` (a member's entry in `status`, or the attribute that drifted);
/// apply repairs it; the next plan is empty.
pub fn expect_drift(ws: &Workspace, what: &str, member: &str, reason: &str) {
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{what}: drift not detected:\n{}", run.text());
    assert!(
        run.stdout
            .lines()
            .any(|line| line.contains(member) && line.contains(reason)),
        "{what}: no line of {member} says {reason:?}:\n{}",
        run.stdout
    );
    ws.apply();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(
        code,
        0,
        "{what}: plan after repair is not empty:\n{}",
        run.text()
    );
}

/// Makes a cluster the way the runbooks do: openssl certificates in kubeadm's
/// layout, flags in a hand-written unit named `unit` (e.g. `etcd`), all
/// members started together, on the first `count` hosts of the lab.
pub fn start_cluster_by_hand(lab: &Lab, pki: &std::path::Path, count: usize, unit: &str) {
    let hosts = &lab.hosts[..count];
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(pki)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=etcd-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    // Members e1..e3 on hosts h1..h3, as in examples/cluster-3.
    let member = |host: &str| host.replace('h', "e");
    let cluster: Vec<String> = hosts
        .iter()
        .map(|(n, a)| format!("{}=https://{a}:2380", member(n)))
        .collect();
    for (name, address) in hosts {
        for kind in ["server", "peer"] {
            let ext = pki.join(format!("{name}-{kind}.ext"));
            std::fs::write(&ext, format!("subjectAltName=IP:{address},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")).unwrap();
            let (key, csr, crt) = (
                format!("{name}-{kind}.key"),
                format!("{name}-{kind}.csr"),
                format!("{name}-{kind}.crt"),
            );
            openssl(&[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-days",
                "365",
                "-extfile",
                ext.to_str().unwrap(),
                "-out",
                &crt,
            ]);
        }
        lab.ssh_ok(name, &format!("mkdir -p {KUBEADM_PKI} && useradd --system --no-create-home etcd && install -d -m 0700 -o etcd -g etcd /var/lib/etcd"));
        for binary in ["etcd", "etcdctl", "etcdutl"] {
            lab.upload(
                &tools::etcd_dir(&tools::etcd_release("3.6")).join(binary),
                name,
                &format!("/usr/local/bin/{binary}"),
            );
        }
        lab.upload(&pki.join("ca.crt"), name, &format!("{KUBEADM_PKI}/ca.crt"));
        for kind in ["server", "peer"] {
            lab.upload(
                &pki.join(format!("{name}-{kind}.crt")),
                name,
                &format!("{KUBEADM_PKI}/{kind}.crt"),
            );
            lab.upload(
                &pki.join(format!("{name}-{kind}.key")),
                name,
                &format!("{KUBEADM_PKI}/{kind}.key"),
            );
        }
        let unit_text = format!(
            "[Unit]\nDescription=etcd\n[Service]\nType=notify\nUser=etcd\nExecStart=/usr/local/bin/etcd --name={member_name} \
             --cert-file={KUBEADM_PKI}/server.crt --key-file={KUBEADM_PKI}/server.key --peer-cert-file={KUBEADM_PKI}/peer.crt \
             --peer-key-file={KUBEADM_PKI}/peer.key --trusted-ca-file={KUBEADM_PKI}/ca.crt --peer-trusted-ca-file={KUBEADM_PKI}/ca.crt \
             --peer-client-cert-auth=true --client-cert-auth=true --initial-advertise-peer-urls=https://{address}:2380 \
             --listen-peer-urls=https://{address}:2380 --listen-client-urls=https://{address}:2379,https://127.0.0.1:2379 \
             --advertise-client-urls=https://{address}:2379 --initial-cluster-token=etcd-cluster-0 --initial-cluster={initial} \
             --initial-cluster-state=new --data-dir=/var/lib/etcd\nRestart=on-failure\nRestartSec=5\n[Install]\nWantedBy=multi-user.target\n",
            member_name = member(name),
            initial = cluster.join(",")
        );
        lab.ssh_ok(
            name,
            &format!(
                "chown etcd:etcd {KUBEADM_PKI}/*.key && chmod 0600 {KUBEADM_PKI}/*.key && cat > /etc/systemd/system/{unit}.service <<'UNIT'\n{unit_text}UNIT\n\
                 systemctl daemon-reload && systemctl enable --quiet {unit} && systemctl start --no-block {unit}"
            ),
        );
    }
    for _ in 0..120 {
        if lab.ssh("h1", &format!("etcdctl --cacert {KUBEADM_PKI}/ca.crt --cert {KUBEADM_PKI}/server.crt --key {KUBEADM_PKI}/server.key --endpoints https://127.0.0.1:2379 endpoint health --cluster")).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the hand-made cluster did not become healthy");
}

/// Starts a client on h1 that writes keys w1, w2, ... in a loop through its
/// local member and records each acknowledged write.
pub fn start_writer(lab: &Lab) {
    lab.ssh_ok(
        "h1",
        &format!(
            "systemd-run --unit=writer sh -c 'i=0; while true; do i=$((i+1)); etcdctl --dial-timeout=2s \
             --command-timeout=3s --cacert {KUBEADM_PKI}/ca.crt --cert {KUBEADM_PKI}/server.crt --key {KUBEADM_PKI}/server.key \
             --endpoints https://127.0.0.1:2379 put w$i v$i >/dev/null 2>&1 && echo $i >> /root/acked; sleep 0.05; done'"
        ),
    );
}

/// Stops the writer and checks, through `reader`, that every acknowledged
/// write is in the cluster.
pub fn check_writes(lab: &Lab, reader: &str) {
    lab.ssh_ok("h1", "systemctl stop writer");
    let acked: Vec<String> = lab
        .ssh_ok("h1", "cat /root/acked")
        .lines()
        .map(|l| format!("w{l}"))
        .collect();
    assert_none_lost(lab, reader, &acked);
    eprintln!("{} acknowledged writes, none lost", acked.len());
}

/// Every acknowledged key (`w1`, `w2`, ...) is in the cluster, read through
/// `reader`; the writer must have run long enough to mean something.
fn assert_none_lost(lab: &Lab, reader: &str, acked: &[String]) {
    assert!(
        acked.len() > 50,
        "the writer barely ran: {} writes",
        acked.len()
    );
    let stored = lab.etcdctl(reader, KUBEADM_PKI, "get w --prefix --keys-only");
    let stored: std::collections::HashSet<&str> =
        stored.lines().filter(|l| !l.is_empty()).collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|k| !stored.contains(k.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// A client on the machine running the tests that writes a key every 50 ms
/// through any of the given client URLs (etcdctl fails over between them),
/// logging each acknowledged write with the time. For changes that take
/// away every member a host-side writer could use.
pub struct Writer {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

/// A test that fails before [`Writer::finish`] still stops the writer, so
/// that it never outlives its lab.
impl Drop for Writer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// What a [`Writer`] saw: how many writes were acknowledged, and the
/// longest time between two acknowledgements.
pub struct WriteReport {
    pub acked: usize,
    pub longest_pause: Duration,
}

impl Writer {
    /// Starts writing with the client identity (kubeadm's PKI paths) of
    /// the member on `host`.
    pub fn start(lab: &Lab, host: &str, endpoints: &[String]) -> Writer {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;

        let dir = tempfile::tempdir().expect("temp dir");
        for file in ["ca.crt", "server.crt", "server.key"] {
            let path = dir.path().join(file);
            std::fs::write(
                &path,
                lab.ssh_ok(host, &format!("cat {KUBEADM_PKI}/{file}")),
            )
            .expect("write certificate");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let etcdctl = tools::etcd_dir(&tools::etcd_release("3.6")).join("etcdctl");
        let script = format!(
            "i=0; while :; do i=$((i+1)); {etcdctl} --dial-timeout=2s --command-timeout=3s \
             --cacert ca.crt --cert server.crt --key server.key --endpoints {endpoints} put w$i v$i \
             >/dev/null 2>&1 && echo \"$i $(date +%s%N)\" >> acked; sleep 0.05; done",
            etcdctl = etcdctl.display(),
            endpoints = endpoints.join(","),
        );
        let child = std::process::Command::new("sh")
            .args(["-c", &script])
            .current_dir(dir.path())
            .process_group(0)
            .spawn()
            .expect("start the writer");
        Writer { child, dir }
    }

    /// Stops the writer's process group (its shell and the etcdctl it runs).
    fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let _ = self.child.wait();
    }

    /// Stops writing and checks, through `reader`, that every acknowledged
    /// write is in the cluster.
    pub fn finish(mut self, lab: &Lab, reader: &str) -> WriteReport {
        self.stop();
        let log = std::fs::read_to_string(self.dir.path().join("acked")).unwrap_or_default();
        let acks: Vec<(String, u128)> = log
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(i, t)| Some((format!("w{i}"), t.trim().parse().ok()?)))
            .collect();
        let keys: Vec<String> = acks.iter().map(|(key, _)| key.clone()).collect();
        assert_none_lost(lab, reader, &keys);
        let longest = acks
            .windows(2)
            .map(|pair| pair[1].1.saturating_sub(pair[0].1))
            .max()
            .unwrap_or_default();
        let report = WriteReport {
            acked: acks.len(),
            longest_pause: Duration::from_nanos(u64::try_from(longest).unwrap_or(u64::MAX)),
        };
        eprintln!(
            "{} acknowledged writes, none lost; longest pause between two {:.2} s",
            report.acked,
            report.longest_pause.as_secs_f64()
        );
        report
    }
}

/// The lines of a consumer's log that speak of TLS or certificate trouble.
pub fn tls_troubles(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| {
            let line = line.to_lowercase();
            ["ssl", "certificate", "x509", "tls"]
                .iter()
                .any(|word| line.contains(word))
        })
        .collect()
}
