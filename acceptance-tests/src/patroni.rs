//! Patroni 3.0 with PostgreSQL 15 from Debian's packages on a test host:
//! a real consumer of etcd's HTTP gateway. The packages come from the flat
//! repository `install-deps` makes (test hosts reach no mirror).

use crate::lab::Lab;
use crate::tools;

/// Installs `patroni` and `postgresql-15` on `host` (no default cluster:
/// Patroni makes its own).
pub fn install(lab: &Lab, host: &str) {
    let server = lab.serve(&tools::tools_dir().join("consumer-apt"), 8390);
    lab.use_apt_repository(host, &server);
    lab.ssh_ok(
        host,
        "mkdir -p /etc/postgresql-common/createcluster.d && \
         echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/patroni.conf && \
         apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         patroni postgresql-15 >/root/apt.log 2>&1 || { tail -20 /root/apt.log; exit 1; }",
    );
}

/// Patroni's configuration around an `etcd3` section: one PostgreSQL on
/// loopback, leader lease 20 s, a loop every 2 s, retries for 8 s.
pub fn config(etcd3: &str) -> String {
    format!(
        r#"scope: demo
name: pg1
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
{etcd3}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 8
  initdb:
  - encoding: UTF8
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication replicator 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /var/lib/postgresql/15/demo
  bin_dir: /usr/lib/postgresql/15/bin
  authentication:
    superuser:
      username: postgres
      password: unused-with-trust
    replication:
      username: replicator
      password: unused-with-trust
"#
    )
}

/// Starts Patroni on `host` with `etcd3` and waits until it leads.
pub fn start(lab: &Lab, host: &str, etcd3: &str) {
    lab.ssh_ok(
        host,
        &format!(
            "cat > /etc/patroni/config.yml <<'EOF'\n{}EOF\nsystemctl start patroni",
            config(etcd3)
        ),
    );
    wait_for_leader(lab, host);
}

/// Waits up to 90 s until Patroni on `host` leads with PostgreSQL running.
pub fn wait_for_leader(lab: &Lab, host: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let list = lab.ssh(
            host,
            "timeout 10 patronictl -c /etc/patroni/config.yml list 2>&1",
        );
        let text = String::from_utf8_lossy(&list.stdout).into_owned();
        if text.contains("Leader") && text.contains("running") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Patroni did not become leader:\n{text}\n{}",
            lab.ssh_ok(host, "journalctl -u patroni --no-pager | tail -30")
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
