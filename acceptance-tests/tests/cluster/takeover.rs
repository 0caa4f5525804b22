//! What the provider will not take over on a host, on the single-member
//! example: another cluster's running etcd (a host runs one member), a
//! data directory holding another program's files; and what a purge on
//! destroy deletes (only what etcd wrote).

use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{example, hcl_string, Install, Workspace};
use acceptance_tests::tools;

#[test]
fn single_member_example_warns_takes_only_a_directory_of_its_own_and_purges_only_its_data() {
    let lab = Lab::up(LabId::SingleMember, 1);
    let terraform = tools::oldest_terraform();
    let ws = Workspace::new(&terraform, Install::DevOverrides, &example("single-member"));
    ws.set_vars(&[
        ("host", hcl_string(lab.address("h1"))),
        (
            "ssh_config_file",
            hcl_string(lab.ssh_config().display().to_string()),
        ),
        (
            "etcd_binaries",
            hcl_string(
                tools::etcd_dir(&tools::etcd_release("3.6"))
                    .display()
                    .to_string(),
            ),
        ),
    ]);
    // Another cluster's etcd on the host (one etcd.service per host): not
    // taken over.
    lab.ssh_ok("h1", "systemd-run --quiet --unit etcd sleep 600");
    let refused = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(refused.code, 0, "{}", refused.text());
    assert!(
        refused
            .words()
            .contains("etcd.service already runs on this host, for another cluster"),
        "{}",
        refused.text()
    );
    lab.ssh_ok("h1", "systemctl stop etcd; rm -rf /var/lib/etcd");
    // Another program's data where data_dir points: not taken over.
    lab.ssh_ok(
        "h1",
        "install -d -m 0755 /var/lib/etcd && echo 15 > /var/lib/etcd/PG_VERSION",
    );
    let refused = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(refused.code, 0, "{}", refused.text());
    assert!(
        refused
            .words()
            .contains("holds files the provider did not write (PG_VERSION )"),
        "{}",
        refused.text()
    );
    assert_eq!(
        lab.ssh_ok("h1", "stat -c '%U %a' /var/lib/etcd").trim(),
        "root 755"
    );
    lab.ssh_ok("h1", "rm /var/lib/etcd/PG_VERSION");
    let run = ws.apply();
    assert!(
        run.text().contains("no fault tolerance"),
        "no quorum warning:\n{}",
        run.text()
    );
    assert_eq!(ws.plan_exit_code().0, 0);
    // A file someone put there later survives the purge, and its directory.
    lab.ssh_ok("h1", "echo keep > /var/lib/etcd/notes.txt");
    ws.destroy();
    assert_eq!(
        lab.ssh_ok("h1", "ls -A /var/lib/etcd").trim(),
        "notes.txt",
        "data not purged, or more"
    );
}
