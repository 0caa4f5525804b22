//! Every member moved to new hosts by one configuration change, with a
//! client on the machine running Terraform writing throughout.

use acceptance_tests::fixtures::{Writer, KUBEADM_PKI};
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{Install, Workspace};
use acceptance_tests::tools;

use crate::{scaling_vars, SCALING};

#[test]
fn every_member_moves_to_new_hosts_in_one_apply_without_losing_a_write() {
    let lab = Lab::up(LabId::MoveAll, 6);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let set_members = |hosts: &[&str], names: &str| {
        let addresses: Vec<&str> = hosts.iter().map(|h| lab.address(h)).collect();
        let mut vars = scaling_vars(&lab, &addresses, "3.7");
        vars.push(("names", names.to_string()));
        ws.set_vars(&vars);
    };
    set_members(&["h1", "h2", "h3"], r#"["a1", "a2", "a3"]"#);
    ws.apply_timed("bootstrap a1-a3");
    let endpoints: Vec<String> = lab
        .hosts
        .iter()
        .map(|(_, address)| format!("https://{address}:2379"))
        .collect();
    let writer = Writer::start(&lab, "h1", &endpoints);
    std::thread::sleep(std::time::Duration::from_secs(2));

    // New names on new hosts: each new member is added (learner, then
    // voter) before an old one is removed.
    set_members(&["h4", "h5", "h6"], r#"["b1", "b2", "b3"]"#);
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(
        !run.text().contains("Members replaced in place"),
        "{}",
        run.text()
    );
    ws.apply_timed("move all three members to new hosts");

    let list = lab.etcdctl("h4", KUBEADM_PKI, "member list");
    for (name, host) in [("b1", "h4"), ("b2", "h5"), ("b3", "h6")] {
        assert!(
            list.contains(&format!("{name}, https://{}:2380", lab.address(host))),
            "{list}"
        );
    }
    for gone in ["a1", "a2", "a3"] {
        assert!(!list.contains(&format!(", {gone}, ")), "{list}");
    }
    for old in ["h1", "h2", "h3"] {
        assert!(lab
            .ssh_ok(old, "pgrep -x etcd || echo none")
            .contains("none"));
        assert!(
            lab.ssh(old, "test -d /var/lib/etcd/member")
                .status
                .success(),
            "{old}: the data of a member that left was not kept"
        );
    }
    assert_eq!(list.matches(", started, ").count(), 3, "{list}");
    // Every acknowledged write is there; the report gives the longest pause.
    writer.finish(&lab, "h4");
}
