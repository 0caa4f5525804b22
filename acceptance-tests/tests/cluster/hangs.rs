//! A remote command that never ends: it is ended at `timeouts.command`
//! with an error that says so, and Ctrl-C abandons it at once instead of
//! waiting for that limit.

use std::time::{Duration, Instant};

use acceptance_tests::fixtures::wait_for;
use acceptance_tests::lab::Lab;
use acceptance_tests::labs::LabId;
use acceptance_tests::terraform::{hcl_string, interrupt, Install, Workspace};
use acceptance_tests::tools;

use crate::{scaling_vars, SCALING};

const CONFIG: &str = "/etc/etcd/etcd.conf.yml";

#[test]
fn a_hanging_remote_command_hits_its_time_limit_and_ctrl_c_abandons_it() {
    let lab = Lab::up(LabId::HangingCommand, 1);
    let terraform = tools::newest_terraform();
    let ws = Workspace::new(&terraform, Install::FilesystemMirror, SCALING);
    let set_command_timeout = |limit: &str| {
        let mut vars = scaling_vars(&lab, &[lab.address("h1")], "3.5");
        vars.push(("command_timeout", hcl_string(limit)));
        ws.set_vars(&vars);
    };
    set_command_timeout("10m");
    ws.apply();
    // The limit a refresh uses is the one in the state.
    set_command_timeout("4s");
    ws.apply();

    // The member's config becomes a FIFO: reading it (to hash it) blocks
    // until something writes to it, which nothing does.
    let hang = || {
        lab.ssh_ok(
            "h1",
            &format!("mv {CONFIG} {CONFIG}.saved && mkfifo -m 600 {CONFIG}"),
        )
    };
    let unhang = || lab.ssh_ok("h1", &format!("rm {CONFIG} && mv {CONFIG}.saved {CONFIG}"));
    hang();
    let (code, run) = ws.plan_exit_code();
    assert_eq!(code, 2, "{}", run.text());
    assert!(
        run.text()
            .contains("a command ran longer than its time limit of 4s (timeouts.command)"),
        "no time-limit error in the plan:\n{}",
        run.text()
    );
    unhang();
    set_command_timeout("10m");
    ws.apply();
    assert_eq!(ws.plan_exit_code().0, 0);

    // Ctrl-C while the refresh waits on the FIFO under a 10-minute limit.
    hang();
    let plan = ws.spawn(&["plan", "-input=false", "-no-color"]);
    wait_for("the refresh never read the FIFO", || {
        lab.ssh("h1", &format!("pgrep -f 'sha256sum {CONFIG}'"))
            .status
            .success()
    });
    let interrupted = Instant::now();
    let text = interrupt(plan);
    let took = interrupted.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "Ctrl-C took {took:?} to end a plan blocked on a remote command:\n{text}"
    );
    assert!(
        text.contains("stopped by Terraform while a command ran"),
        "the provider did not say it stopped:\n{text}"
    );
    unhang();
    assert_eq!(ws.plan_exit_code().0, 0);
    ws.destroy();
}
