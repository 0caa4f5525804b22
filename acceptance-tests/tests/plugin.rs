//! The provider as a plugin process: a client that exits without closing
//! it (Pulumi's Terraform bridge leaves its plugins running) leaves no
//! provider behind, since the provider shuts down once the process that
//! started it is gone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acceptance_tests::tools;

#[test]
fn a_provider_whose_parent_is_gone_exits() {
    // A shell starts the provider as go-plugin does (the magic cookie; no
    // TLS), prints its PID and exits a second later without stopping it.
    let out = Command::new("sh")
        .args(["-c", "\"$0\" >/dev/null 2>&1 & echo $!; sleep 1"])
        .arg(tools::provider_binary())
        .env(
            "TF_PLUGIN_MAGIC_COOKIE",
            "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env("TF_DISABLE_PLUGIN_TLS", "1")
        .stdin(Stdio::null())
        .output()
        .expect("start the provider");
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the provider's PID");
    let proc = format!("/proc/{pid}");
    let alive = || {
        // A zombie is gone for this purpose (its new parent reaps it).
        std::fs::read_to_string(format!("{proc}/stat"))
            .map(|stat| !stat.contains(") Z "))
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = alive();
    if left {
        // Only the process this test started.
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    assert!(!left, "the provider outlived its parent by 10 s");
}
