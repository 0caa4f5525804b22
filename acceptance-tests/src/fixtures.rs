//! Fixtures shared by the cluster and member tests: a cluster started by
//! hand as the runbooks do, a client writing throughout a change and the
//! check that every acknowledged write survived, and the drift check.

use std::time::Duration;

use crate::lab::Lab;
use crate::terraform::Workspace;
use crate::tools;

/// kubeadm's directory for etcd's certificates, used by these tests' clusters.
pub const KUBEADM_PKI: &str = "/etc/kubernetes/pki/etcd";

/// `plan -detailed-exitcode` exits 2 and names `reason` (and the member);
/// apply repairs it; the next plan is empty.
pub fn expect_drift(ws: &Workspace, what: &str, member: &str, reason: &str) {
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{what}: drift not detected:\n{}", run.text());
    assert!(
        run.stdout.contains(&format!("\"{member}\"")) || run.stdout.contains(reason),
        "{what}:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(reason),
        "{what}: plan does not say {reason:?}:\n{}",
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
/// layout, flags in a hand-written unit, all members started together, on
/// the first `count` hosts of the lab.
pub fn start_cluster_by_hand(lab: &Lab, pki: &std::path::Path, count: usize) {
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
        for binary in ["etcd", "etcdctl"] {
            lab.upload(
                &tools::etcd_dir("3.4.23").join(binary),
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
        let unit = format!(
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
                "chown etcd:etcd {KUBEADM_PKI}/*.key && chmod 0600 {KUBEADM_PKI}/*.key && cat > /etc/systemd/system/etcd.service <<'UNIT'\n{unit}UNIT\n\
                 systemctl daemon-reload && systemctl enable --quiet etcd && systemctl start --no-block etcd"
            ),
        );
    }
    for _ in 0..120 {
        if lab.ssh("h1", &format!("ETCDCTL_API=3 etcdctl --cacert {KUBEADM_PKI}/ca.crt --cert {KUBEADM_PKI}/server.crt --key {KUBEADM_PKI}/server.key --endpoints https://127.0.0.1:2379 endpoint health --cluster")).status.success() {
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
            "systemd-run --unit=writer sh -c 'i=0; while true; do i=$((i+1)); ETCDCTL_API=3 etcdctl --dial-timeout=2s \
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
    eprintln!("{} acknowledged writes, none lost", acked.len());
}
