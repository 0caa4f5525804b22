//! The schema pieces `etcd_cluster` and `etcd_member` share: a member's
//! own attributes, the settings every member has, and the `ssh`,
//! `binary_source` and `timeouts` blocks.

use crate::framework::{Attribute, Block, Type, Value};

pub const DEFAULT_CLIENT_PORT: i64 = 2379;
pub const DEFAULT_PEER_PORT: i64 = 2380;
pub const DEFAULT_BIN_DIR: &str = "/usr/local/bin";
pub const DEFAULT_CONFIG_DIR: &str = "/etc/etcd";
pub const DEFAULT_PKI_DIR: &str = "/etc/etcd/pki";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/etcd";

/// The `ssh` block. `tunnel` is offered where the provider reaches the
/// client API of members it manages (etcd_cluster).
pub fn ssh_block(tunnel: bool) -> Block {
    let block = Block::new("How to reach the member hosts. The system `ssh` is used, so `~/.ssh/config`, the agent and ProxyJump apply; anything unset here is left to them.")
        .attribute(Attribute::optional("user", Type::String, "User to log in as: root, or a user with passwordless sudo and `sudo = true`. Default: from ssh_config."))
        .attribute(Attribute::optional("port", Type::Number, "SSH port. Default: from ssh_config (22)."))
        .attribute(Attribute::optional("private_key_path", Type::String, "Private key file to log in with."))
        .attribute(Attribute::optional("known_hosts_path", Type::String, "known_hosts file holding the hosts' keys."))
        .attribute(Attribute::optional("config_file", Type::String, "An ssh_config file to use instead of `~/.ssh/config`."))
        .attribute(Attribute::with_default(
            "sudo",
            Type::Bool,
            Value::Bool(false),
            "Run every command on the hosts as root through `sudo -n` (passwordless sudo), for hosts that \
             refuse root logins. File contents, keys included, still travel on stdin. Default false.",
        ))
        .attribute(Attribute::with_default(
            "strict_host_key_checking",
            Type::Bool,
            Value::Bool(true),
            "Refuse hosts whose key is not in known_hosts (default). Turned off, a host's key is accepted and recorded the first time (ssh's `accept-new`), and a changed key is still refused.",
        ))
        .attribute(Attribute::optional(
            "control_persist",
            Type::String,
            "How long the SSH connection to each host stays open after the provider last used it, for the next \
             run (the apply after a plan, the next drift check) to reuse without logging in again, as ssh's \
             `ControlPersist`: a duration like `60s` or `10m`, or `0s` to end every connection with the run. Its \
             control socket is in a directory only the user running Terraform can open \
             (`$XDG_RUNTIME_DIR/terraform-provider-etcd`, else `terraform-provider-etcd-<uid>` in the temporary \
             directory); only a run that logs in the same way (host, user, port, key, known_hosts, ssh_config) \
             reuses it, after checking that it still reaches the host. Default `60s`.",
        ));
    if !tunnel {
        return block;
    }
    block.attribute(Attribute::with_default(
        "tunnel",
        Type::Bool,
        Value::Bool(false),
        "Reach the members' client API through SSH port forwards to their loopback client URL, for when the \
         client port is not reachable from the machine running Terraform. Default false: direct.",
    ))
}

/// The `binary_source` block.
pub fn binary_source_block() -> Block {
    Block::new("Where the etcd binaries come from: exactly one of `local_path`, `url` with `sha256`, or `os_package = true`.")
        .attribute(Attribute::optional(
            "local_path",
            Type::String,
            "A directory on the machine running Terraform holding `etcd` and `etcdctl`; they are uploaded to each host.",
        ))
        .attribute(Attribute::optional(
            "url",
            Type::String,
            "URL of a release tarball (`etcd-vX.Y.Z-linux-amd64.tar.gz` layout) that each host downloads.",
        ))
        .attribute(Attribute::optional("sha256", Type::String, "SHA-256 of the tarball at `url` (hex); checked on each host."))
        .attribute(Attribute::optional(
            "os_package",
            Type::Bool,
            "Install the distribution's `etcd-server` and `etcd-client` packages with apt (Debian, Ubuntu). Their \
             binaries in /usr/bin are used (`bin_dir` does not apply), the packaged service is replaced by this \
             provider's unit, and destroy leaves the packages installed.",
        ))
}

/// The `timeouts` block.
pub fn timeouts_block(create: &'static str, update: &'static str) -> Block {
    Block::new("How long operations may take, as durations like `90s`, `5m` or `1h`.")
        .attribute(Attribute::optional("create", Type::String, create))
        .attribute(Attribute::optional("update", Type::String, update))
        .attribute(Attribute::optional(
            "command",
            Type::String,
            "The longest any one command on a host may run (a download, an apt install, a file check); the host \
             then ends it and the operation fails with a time-limit error. Default 10m.",
        ))
}

/// A member's own attributes: `name`, `host`, `ssh_host`, `extra_sans`.
/// With `replace`, a new name or host replaces the member.
pub fn member_attributes(block: Block, replace: bool) -> Block {
    let fixed = |a: Attribute| if replace { a.replace_on_change() } else { a };
    block
        .attribute(fixed(Attribute::required("name", Type::String, "Member name, unique in the cluster.")))
        .attribute(fixed(Attribute::required(
            "host",
            Type::String,
            "IP address or DNS name of the host: used in the member's URLs and certificates, and to reach it over SSH unless `ssh_host` is set.",
        )))
        .attribute(Attribute::optional("ssh_host", Type::String, "Address or ssh_config host name to SSH to, when it differs from `host`."))
        .attribute(Attribute::optional("extra_sans", Type::list(Type::String), "More DNS names and IPs for the member's certificates."))
}

/// The settings every member has: version, ports, paths, flags,
/// certificate lifetimes, and what destroy does with the data. With
/// `replace`, a new port or path replaces the member.
pub fn settings_attributes(block: Block, replace: bool) -> Block {
    let fixed = |a: Attribute| if replace { a.replace_on_change() } else { a };
    block
        .attribute(Attribute::required("etcd_version", Type::String, "The etcd version to run, like `3.6.17` (3.5, 3.6 and 3.7 are supported; 3.4, past its end of life, for existing clusters); the installed binary must report it. A change rolls through the members one at a time: an upgrade to the next minor version (3.6 only from 3.5.26, 3.7 only from 3.6.11), or a downgrade to the previous one from 3.6 on (the cluster version lowered first); any other change is refused at plan time."))
        .attribute(fixed(Attribute::with_default("client_port", Type::Number, Value::number(DEFAULT_CLIENT_PORT as f64), "Client port. Default 2379.")))
        .attribute(fixed(Attribute::with_default("peer_port", Type::Number, Value::number(DEFAULT_PEER_PORT as f64), "Peer port. Default 2380.")))
        .attribute(Attribute::with_default(
            "metrics_url",
            Type::String,
            Value::string("http://127.0.0.1:2381"),
            "Where each member serves `/metrics` and `/health` without TLS. Default `http://127.0.0.1:2381`.",
        ))
        .attribute(fixed(Attribute::with_default("bin_dir", Type::String, Value::string(DEFAULT_BIN_DIR), "Directory for `etcd` and `etcdctl` on the hosts.")))
        .attribute(fixed(Attribute::with_default("config_dir", Type::String, Value::string(DEFAULT_CONFIG_DIR), "Directory for the configuration file and `pki/`.")))
        .attribute(fixed(Attribute::with_default(
            "pki_dir",
            Type::String,
            Value::string(DEFAULT_PKI_DIR),
            "Directory for `ca.crt`, `server.crt`/`.key` and `peer.crt`/`.key` (the file names kubeadm uses; set \
             `/etc/kubernetes/pki/etcd` for its layout), and `etcdctl.crt`/`.key`, the client certificate (common \
             name `root`) of `etcdctl.env` and the backup job.",
        )))
        .attribute(fixed(Attribute::with_default("data_dir", Type::String, Value::string(DEFAULT_DATA_DIR), "etcd's data directory (created 0700, owned by `etcd`).")))
        .attribute(Attribute::optional(
            "extra_flags",
            Type::map(Type::String),
            "More settings for etcd's configuration file, by flag name without dashes (e.g. `snapshot-count = \"10000\"`, `enable-v2 = \"true\"` on etcd 3.5 for v2 API clients such as vip-manager), in the spelling of `etcd_version` (`feature-gates` from 3.6, no `experimental-` flags on 3.7: a setting the version does not read is refused at plan time). The HTTP/JSON gateway (`enable-grpc-gateway`), `pre-vote` (etcd 3.5's default, so that a restarted member does not depose a working leader) and, from etcd 3.5, the corruption checks (`InitialCorruptCheck` and `CompactHashCheck`, as experimental flags on 3.5) are on unless set here.",
        ))
        .attribute(Attribute::with_default(
            "cert_validity_hours",
            Type::Number,
            Value::number(8760.0),
            "Validity of the members' server and peer certificates, in hours. Default 8760 (one year).",
        ))
        .attribute(Attribute::with_default(
            "cert_early_renewal_hours",
            Type::Number,
            Value::number(720.0),
            "How many hours before they expire the members' certificates are due for renewal: from then on the \
             member's `status` says so, the plan shows it (exit 2), and apply reissues them one member at a time. \
             Must be less than `cert_validity_hours`. Default 720 (thirty days).",
        ))
        .attribute(Attribute::with_default(
            "purge_data_on_destroy",
            Type::Bool,
            Value::Bool(false),
            "Delete the members' data directories on destroy. Default false: data directories are kept.",
        ))
}
