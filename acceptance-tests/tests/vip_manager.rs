//! A real consumer of etcd's v2 API from Debian's packages: vip-manager 1.0
//! on a host that is not a member, following a leader key through v2 with
//! the certificate `examples/vip-manager` installs, and holding a virtual
//! IP on that host while the key names it. The cluster first runs without
//! the v2 API (refused), gets `enable-v2` by a rolling apply, then goes
//! through an `etcd_ca` replacement (two applies). vip-manager must hold
//! the address whenever the key names it and drop it when it names another
//! host, before and after the new CA; its CA file ends as the new CA alone.
use std::time::{Duration, Instant};

use acceptance_tests::fixtures::{lab_access_vars, tls_troubles};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{example, hcl_list, Install, Workspace};
use acceptance_tests::tools;

/// The key vip-manager follows, and the value that names its host.
const KEY: &str = "/service/demo/leader";
const THIS_HOST: &str = "pg1";

/// etcdctl through the v2 API on h4, with vip-manager's certificate.
fn etcdctl_v2(lab: &Lab, args: &str) -> std::process::Output {
    lab.ssh(
        "h4",
        &format!(
            "ETCDCTL_API=2 etcdctl --ca-file /etc/vip-manager/etcd/ca.crt \
             --cert-file /etc/vip-manager/etcd/client.crt --key-file /etc/vip-manager/etcd/client.key \
             --endpoints https://{}:2379 {args} 2>&1",
            lab.address("h1")
        ),
    )
}

/// Sets the leader key through v2; it must succeed.
fn set_leader(lab: &Lab, value: &str) {
    let out = etcdctl_v2(lab, &format!("set {KEY} {value}"));
    assert!(
        out.status.success(),
        "v2 set failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Whether h4's interface holds `vip`.
fn holds(lab: &Lab, vip: &str) -> bool {
    lab.ssh_ok("h4", "ip -4 -o addr show dev host0")
        .contains(&format!(" {vip}/"))
}

/// Waits up to 20 s until h4 holds `vip` (or no longer does).
fn wait_for_vip(lab: &Lab, vip: &str, held: bool, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while holds(lab, vip) != held {
        assert!(
            Instant::now() < deadline,
            "{when}: vip-manager did not {} {vip}; its log:\n{}",
            if held { "add" } else { "remove" },
            lab.ssh_ok(
                "h4",
                "journalctl -u vip-manager --no-pager -o cat | tail -30"
            )
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The leader key moves away from h4 and back: the address follows it.
fn vip_follows_the_key(lab: &Lab, vip: &str, when: &str) {
    set_leader(lab, THIS_HOST);
    wait_for_vip(lab, vip, true, when);
    set_leader(lab, "pg2");
    wait_for_vip(lab, vip, false, when);
    set_leader(lab, THIS_HOST);
    wait_for_vip(lab, vip, true, when);
}

#[test]
fn vip_manager_follows_its_key_through_the_v2_api_and_a_ca_replacement() {
    let lab = Lab::up(LabId::VipManager, 4);
    let server = lab.serve(&tools::tools_dir().join("consumer-apt"), 8391);
    lab.use_apt_repository("h4", &server);
    lab.ssh_ok(
        "h4",
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         vip-manager >/root/apt.log 2>&1 || { tail -20 /root/apt.log; exit 1; }; systemctl stop vip-manager",
    );
    lab.upload(
        &tools::etcd_dir(&tools::etcd_release("3.5")).join("etcdctl"),
        "h4",
        "/usr/local/bin/etcdctl",
    );
    // An address of the lab's network that no test host has.
    let h4 = lab.address("h4");
    let vip = format!("{}.200", &h4[..h4.rfind('.').unwrap()]);

    // First without the v2 API: etcd refuses it.
    let terraform = tools::newest_terraform();
    let config = example("vip-manager");
    let flags = "  extra_flags = {\n    \"enable-v2\" = \"true\"\n  }\n";
    assert!(config.contains(flags), "the example sets enable-v2");
    let without_v2 = config.replace(flags, "");
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, &without_v2);
    let etcd: Vec<&str> = ["h1", "h2", "h3"].iter().map(|h| lab.address(h)).collect();
    let mut vars = lab_access_vars(&lab, &tools::etcd_release("3.5"));
    vars.push(("etcd_hosts", hcl_list(&etcd)));
    vars.push(("vip_manager_hosts", hcl_list(&[h4])));
    ws.set_vars(&vars);
    ws.apply();
    let refused = etcdctl_v2(&lab, &format!("set {KEY} {THIS_HOST}"));
    assert!(
        !refused.status.success(),
        "the v2 API served without enable-v2: {}",
        String::from_utf8_lossy(&refused.stdout)
    );

    // The example as it is: enable-v2 reaches every member by a roll.
    std::fs::write(ws.path().join("main.tf"), &config).unwrap();
    let (code, plan) = ws.plan_exit_code();
    assert_eq!(code, 2, "enable-v2 is not planned: {}", plan.stdout);
    let run = ws.apply();
    assert!(run.stdout.contains("1 changed"), "{}", run.stdout);
    assert_eq!(ws.plan_exit_code().0, 0);
    for host in ["h1", "h2", "h3"] {
        let config = lab.ssh_ok(host, "cat /etc/etcd/etcd.conf.yml");
        assert!(config.contains("enable-v2: true"), "{host}: {config}");
    }

    // vip-manager, configured with the example's output.
    let environment = ws.output("vip_manager_environment");
    assert!(
        environment.contains(&format!("https://{}:2379", lab.address("h3"))),
        "{environment}"
    );
    lab.ssh_ok(
        "h4",
        &format!(
            "cat > /etc/default/vip-manager <<'EOF'\n{environment}\nVIP_IP=\"{vip}\"\nVIP_MASK=24\n\
             VIP_IFACE=\"host0\"\nVIP_KEY=\"{KEY}\"\nVIP_HOST=\"{THIS_HOST}\"\nEOF\n\
             systemctl start vip-manager"
        ),
    );
    let started = lab.ssh_ok("h4", "date '+%Y-%m-%d %H:%M:%S'");
    vip_follows_the_key(&lab, &vip, "before the new CA");

    // A new CA in two applies; the key names h4 throughout.
    ws.replace_ca_in_two_applies("etcd_ca.main");
    assert_eq!(ws.plan_exit_code().0, 0);
    wait_for_vip(&lab, &vip, true, "after the new CA");
    vip_follows_the_key(&lab, &vip, "after the new CA");

    // vip-manager ends on the new CA alone, as the members do, and met no
    // TLS error on the way (its certificate files changed before the
    // members' did, and it was restarted each time).
    let new_ca = ws.resource_values("etcd_ca.main")["cert_pem"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        lab.ssh_ok("h4", "cat /etc/vip-manager/etcd/ca.crt").trim(),
        new_ca.trim()
    );
    let log = lab.ssh_ok(
        "h4",
        &format!(
            "journalctl -u vip-manager --no-pager -o cat --since '{}'",
            started.trim()
        ),
    );
    let troubles = tls_troubles(&log);
    assert!(
        troubles.is_empty(),
        "vip-manager met TLS errors:\n{}\n\nits log:\n{log}",
        troubles.join("\n")
    );
    let restarts = lab.ssh_ok("h4", "systemctl show -p NRestarts --value vip-manager");
    eprintln!(
        "vip-manager: {} log lines, {} restarts on failure",
        log.lines().count(),
        restarts.trim()
    );
    lab.ssh_ok("h4", "systemctl stop vip-manager");
    ws.destroy();
}
