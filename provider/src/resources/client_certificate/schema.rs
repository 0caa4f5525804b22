//! The schema of `etcd_client_certificate` and the plan-time validation
//! of its inputs (no host is touched).

use super::DEFAULT_VALIDITY_HOURS;
use crate::framework::{
    Attribute, AttributePath, Block, Diagnostics, NestedBlock, Schema, Type, Value,
};
use crate::resources::lifetime::{
    key_algorithm_attribute, validate_key_and_lifetime, DEFAULT_EARLY_RENEWAL_HOURS,
};
use crate::resources::settings;

fn install_block() -> Block {
    Block::new("A consumer host that gets the certificate, its key and the CA, over SSH (the `ssh` block).")
        .attribute(Attribute::required("host", Type::String, "Address of the consumer host."))
        .attribute(Attribute::optional("ssh_host", Type::String, "Address or ssh_config host name to SSH to, when it differs from `host`."))
        .attribute(Attribute::required("cert_path", Type::String, "Where the certificate goes (PEM, 0644)."))
        .attribute(Attribute::required("key_path", Type::String, "Where the private key goes (PEM, mode `key_mode`)."))
        .attribute(Attribute::optional("ca_path", Type::String, "Where the CA certificate goes (PEM, 0644), if the consumer needs it."))
        .attribute(Attribute::with_default("owner", Type::String, Value::string("root"), "Owner of the files. Default root."))
        .attribute(Attribute::with_default("group", Type::String, Value::string("root"), "Group of the files. Default root."))
        .attribute(Attribute::with_default("key_mode", Type::String, Value::string("0600"), "Octal mode of the key file. Default 0600."))
        .attribute(Attribute::optional(
            "reload_command",
            Type::String,
            "Run as root on the host after any of the files changed, e.g. `systemctl reload patroni`.",
        ))
}

pub(super) fn schema() -> Schema {
    let block = Block::new(
        "A client certificate (extended key usage clientAuth only) for a consumer of an etcd cluster, issued \
         from the cluster's CA; its common name is the etcd user name when auth is on. With `install` blocks \
         it is kept on the consumer hosts over SSH: missing or changed files are drift (plan exit 2) and apply \
         rewrites them and runs the reload command. From `early_renewal_hours` before it expires, and when \
         the CA changes, it is reissued in place (plan exit 2) and reinstalled; destroy removes the installed \
         files.",
    )
    .attribute(Attribute::computed("id", Type::String, "SHA-256 of the certificate (hex)."))
    .attribute(Attribute::required("ca_cert_pem", Type::String, "The CA certificate (PEM) it is issued from, e.g. `etcd_ca.main.cert_pem`."))
    .attribute(
        Attribute::optional(
            "ca_key_pem",
            Type::String,
            "The CA's private key (PEM). Leave it unset to keep it out of state: the provider block's \
             `ca_key_files` or `ca_keys` give it.",
        )
        .sensitive(),
    )
    .attribute(Attribute::optional(
        "trusted_ca_pem",
        Type::String,
        "The CA certificates installed at `ca_path`, which the consumer verifies the members with. Default: \
         `ca_cert_pem`. Give it `etcd_cluster.NAME.trusted_ca_pem`: the consumer then trusts both CAs while the \
         cluster rotates to a new one, and this certificate is applied after the cluster's rotation stage.",
    ))
    .attribute(
        Attribute::optional(
            "common_name",
            Type::String,
            "Common name (CN): the etcd user name when the cluster's authentication is on (an `etcd_user` without \
             password). Leave it unset for a client of etcd's HTTP gateway (`/v3/...`, e.g. Patroni's `etcd3`): with \
             authentication on, etcd refuses a gateway request whose certificate names anyone; such a client logs in \
             with an `etcd_user`'s password.",
        )
        .replace_on_change(),
    )
    .attribute(Attribute::optional("organization", Type::String, "Organization (O) of the subject.").replace_on_change())
    .attribute(key_algorithm_attribute())
    .attribute(Attribute::with_default(
        "validity_period_hours",
        Type::Number,
        Value::number(DEFAULT_VALIDITY_HOURS),
        "Hours the certificate is valid for, from its issue. Default 8760 (one year).",
    ))
    .attribute(Attribute::with_default(
        "early_renewal_hours",
        Type::Number,
        Value::number(DEFAULT_EARLY_RENEWAL_HOURS),
        "How many hours before expiry it is reissued. Default 720 (thirty days).",
    ))
    .attribute(Attribute::computed("cert_pem", Type::String, "The certificate, PEM."))
    .attribute(Attribute::computed("private_key_pem", Type::String, "Its private key, PEM (PKCS#8).").sensitive())
    .attribute(Attribute::computed("validity_end_time", Type::String, "When the certificate expires (RFC 3339)."))
    .attribute(Attribute::computed("ready_for_renewal", Type::Bool, "True once it is inside its renewal window."))
    .attribute(Attribute::computed(
        "install_status",
        Type::map(Type::String),
        "`host:cert_path` of each install to `installed`, or to what is wrong there.",
    ))
    .block(NestedBlock::single("ssh", settings::ssh_block(false)))
    .block(NestedBlock::list("install", install_block()))
    .block(NestedBlock::single(
        "timeouts",
        settings::timeouts_block("Not used.", "Not used."),
    ));
    Schema { version: 0, block }
}

pub(super) fn validate(config: &Value, diags: &mut Diagnostics) {
    if config
        .get("common_name")
        .as_str()
        .is_some_and(|n| n.trim().is_empty())
    {
        diags.error_at(
            AttributePath::root("common_name"),
            "Empty common name",
            "Give the certificate a common name, or leave common_name unset for a certificate without one.",
        );
    }
    if config.get("common_name").as_str() == Some(crate::member::PEER_COMMON_NAME) {
        diags.error_at(
            AttributePath::root("common_name"),
            "Reserved common name",
            format!(
                "{:?} is the name of the members' peer certificates, the only one their peer port accepts: a \
                 client certificate with it could speak raft to the members. Choose another name.",
                crate::member::PEER_COMMON_NAME
            ),
        );
    }
    validate_key_and_lifetime(config, DEFAULT_VALIDITY_HOURS, "the certificate", diags);
    settings::validate_ssh(config, diags);
    for (i, install) in config.get("install").as_list().iter().enumerate() {
        validate_install(install, &AttributePath::root("install").index(i), diags);
    }
}

/// An install block's host, paths, owner, group and mode.
fn validate_install(install: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    let at = |name: &str| at.attribute(name);
    if let Some(host) = install.get("host").as_str() {
        if !settings::is_valid_host(host) {
            diags.error_at(
                at("host"),
                "Invalid host",
                format!("{host:?} is neither an IP address nor a DNS name."),
            );
        }
    }
    if let Some(problem) = install
        .get("ssh_host")
        .as_str()
        .and_then(settings::ssh_host_problem)
    {
        diags.error_at(at("ssh_host"), "Invalid SSH host", problem);
    }
    for name in ["cert_path", "key_path", "ca_path"] {
        if let Some(problem) = install
            .get(name)
            .as_str()
            .and_then(|p| settings::directory_problem(p, true))
        {
            diags.error_at(at(name), "Invalid path", problem);
        }
    }
    for name in ["owner", "group"] {
        if let Some(id) = install.get(name).as_str() {
            let valid = !id.is_empty()
                && !id.starts_with('-')
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !valid {
                diags.error_at(
                    at(name),
                    "Invalid user or group",
                    format!("{id:?} is not a user or group name."),
                );
            }
        }
    }
    if let Some(mode) = install.get("key_mode").as_str() {
        let octal = (3..=4).contains(&mode.len()) && mode.chars().all(|c| ('0'..='7').contains(&c));
        if !octal {
            diags.error_at(
                at("key_mode"),
                "Invalid mode",
                format!("{mode:?} is not an octal mode like \"0600\"."),
            );
        }
    }
    if install
        .get("reload_command")
        .as_str()
        .is_some_and(|c| c.chars().any(|c| c.is_control() && c != '\n'))
    {
        diags.error_at(
            at("reload_command"),
            "Invalid reload command",
            "The command has a control character.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(field: &str, value: &str) -> Value {
        let mut install = Value::object([
            ("host", Value::string("10.0.0.5")),
            ("cert_path", Value::string("/etc/app/client.crt")),
            ("key_path", Value::string("/etc/app/client.key")),
            ("key_mode", Value::string("0600")),
        ]);
        install.set(field, Value::string(value));
        install
    }

    fn errors(install: &Value) -> Vec<String> {
        let mut diags = Diagnostics::default();
        validate_install(
            install,
            &AttributePath::root("install").index(0),
            &mut diags,
        );
        diags.0.iter().map(|d| d.summary.clone()).collect()
    }

    #[test]
    fn bad_install_inputs_are_named() {
        assert!(errors(&install("owner", "root")).is_empty());
        assert_eq!(
            errors(&install("cert_path", "client.crt")),
            vec!["Invalid path"]
        );
        assert_eq!(
            errors(&install("key_path", "/etc/app/../x.key")),
            vec!["Invalid path"]
        );
        assert_eq!(errors(&install("key_mode", "600x")), vec!["Invalid mode"]);
        assert_eq!(errors(&install("key_mode", "0800")), vec!["Invalid mode"]);
        assert_eq!(
            errors(&install("owner", "-u")),
            vec!["Invalid user or group"]
        );
        assert_eq!(errors(&install("host", "not a host")), vec!["Invalid host"]);
        assert_eq!(
            errors(&install("ssh_host", "-oProxyCommand=x")),
            vec!["Invalid SSH host"]
        );
    }
}
