//! Scaling out and in (5 -> 3 -> 5 on the same hosts, old data moved
//! aside), moving a member to another host and renaming one on its own
//! host, with a client writing throughout.

use std::time::Duration;

use acceptance_tests::fixtures::{assert_started_members, check_writes, start_writer, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{Install, Workspace};
use acceptance_tests::tools;

use crate::{scaling_vars, SCALING};

#[test]
fn scale_out_and_in_and_replace_a_host_without_losing_a_write() {
    let lab = Lab::up(LabId::Scaling, 5);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let set_hosts = |hosts: &[&str]| {
        let addresses: Vec<&str> = hosts.iter().map(|h| lab.address(h)).collect();
        ws.set_vars(&scaling_vars(&lab, &addresses, "3.6"));
    };
    set_hosts(&["h1", "h2", "h3"]);
    ws.apply_timed("bootstrap 3");

    start_writer(&lab);

    set_hosts(&["h1", "h2", "h3", "h4", "h5"]);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    ws.apply_timed("scale 3 -> 5 (2 members added)");
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert_eq!(list.matches(", started, ").count(), 5, "{list}");
    assert!(
        !list.contains("true"),
        "a learner was left unpromoted:\n{list}"
    );

    set_hosts(&["h1", "h2", "h3"]);
    ws.apply_timed("scale 5 -> 3 (2 members removed)");
    assert_started_members(&lab, 3);
    assert!(lab
        .ssh_ok("h5", "pgrep -x etcd || echo none")
        .contains("none"));
    assert!(
        lab.ssh("h5", "test -d /var/lib/etcd/member")
            .status
            .success(),
        "data dir of a removed member not kept"
    );

    // Back to five on the same hosts: their old data is moved aside, kept,
    // and the apply says so.
    set_hosts(&["h1", "h2", "h3", "h4", "h5"]);
    let run = ws.apply();
    assert!(run.text().contains("Data moved aside"), "{}", run.text());
    assert_eq!(ws.plan_exit_code().0, 0);
    assert_started_members(&lab, 5);
    for host in ["h4", "h5"] {
        assert!(
            lab.ssh_ok(host, "ls -d /var/lib/etcd.moved-*/member")
                .contains("/member"),
            "{host}: old data not kept aside"
        );
    }
    set_hosts(&["h1", "h2", "h3"]);
    ws.apply_timed("scale 5 -> 3 again");

    // e3 moves from h3 to h4 (same name, new host): removed, then added;
    // h4's old data is moved aside again.
    set_hosts(&["h1", "h2", "h4"]);
    let (_, plan) = ws.plan_exit_code();
    assert!(
        plan.text().contains("Members replaced in place"),
        "{}",
        plan.text()
    );
    ws.apply_timed("replace e3's host");
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert!(
        list.contains(&format!("e3, https://{}:2380", lab.address("h4"))),
        "{list}"
    );

    // With e2 down, removing e3 would leave e1 alone of two: refused at plan time.
    lab.ssh_ok("h2", "systemctl stop etcd");
    std::thread::sleep(Duration::from_secs(1));
    set_hosts(&["h1", "h2"]);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 1, "{}", run.text());
    assert!(
        run.text()
            .contains("Membership change refused while members are unhealthy"),
        "{}",
        run.text()
    );
    // The cluster is untouched: all three members are still in it.
    assert_started_members(&lab, 3);
    lab.ssh_ok("h2", "systemctl start etcd");
    set_hosts(&["h1", "h2", "h4"]);
    ws.apply();

    // e2 is renamed on its own host: removed, then added as e2b.
    let names = r#"["e1", "e2b", "e3"]"#.to_string();
    let mut vars = scaling_vars(
        &lab,
        &[lab.address("h1"), lab.address("h2"), lab.address("h4")],
        "3.6",
    );
    vars.push(("names", names));
    ws.set_vars(&vars);
    ws.apply_timed("rename e2 to e2b on its host");
    let list = lab.etcdctl("h1", KUBEADM_PKI, "member list");
    assert!(
        list.contains(&format!("e2b, https://{}:2380", lab.address("h2"))) && !list.contains("e2,"),
        "{list}"
    );
    assert_started_members(&lab, 3);

    check_writes(&lab, "h4");
}
