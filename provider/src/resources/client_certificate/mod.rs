//! `etcd_client_certificate`: a client certificate for one of a cluster's
//! consumers (kube-apiserver, Patroni, vip-manager, ...), issued from the
//! cluster's CA and, with `install` blocks, kept on the consumer hosts.
//!
//! Unlike `etcd_ca`, a certificate due for renewal or issued from another
//! CA is reissued in place (plan exit 2) rather than replaced: a
//! replacement would delete the installed files before writing new ones.
//! Installed files that are missing or changed are drift, shown per
//! install in `install_status`; apply rewrites them and runs the reload
//! command.

mod schema;

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::lifetime::{mark_renewal, renewal_due, rfc3339};
use super::{ca_keys, settings};
use crate::client_files::{Contents, Placement};
use crate::framework::{Context, Diagnostics, Plan, Private, Resource, Schema, Value};
use crate::pki::{self, KeyAlgorithm, LeafRequest, Usage};

pub struct ClientCertificate;

const DEFAULT_VALIDITY_HOURS: f64 = 8760.0; // one year

/// What `install_status` says of an install that is as it should be.
const INSTALLED: &str = "installed";

/// Attributes that change with a reissue.
const ISSUED: [&str; 4] = ["id", "cert_pem", "private_key_pem", "validity_end_time"];

fn install_key(install: &Value) -> String {
    format!(
        "{}:{}",
        install.str_or_empty("host"),
        install.str_or_empty("cert_path")
    )
}

fn placement(ctx: &Context, install: &Value, config: &Value) -> Placement {
    let member = settings::member_spec(
        install,
        config.get("ssh"),
        settings::timeout(config, "command"),
        ctx,
    );
    Placement {
        target: member.ssh,
        cert_path: install.str_or_empty("cert_path").to_string(),
        key_path: install.str_or_empty("key_path").to_string(),
        ca_path: install.get("ca_path").as_str().map(str::to_string),
        owner: install.get("owner").as_str().unwrap_or("root").to_string(),
        group: install.get("group").as_str().unwrap_or("root").to_string(),
        key_mode: install
            .get("key_mode")
            .as_str()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(0o600),
        reload_command: install.get("reload_command").as_str().map(str::to_string),
    }
}

fn contents(state: &Value) -> Contents<'_> {
    Contents {
        cert_pem: state.str_or_empty("cert_pem"),
        key_pem: state.str_or_empty("private_key_pem"),
        ca_pem: state
            .get("trusted_ca_pem")
            .as_str()
            .unwrap_or(state.str_or_empty("ca_cert_pem")),
    }
}

/// `install_status` as planned: every configured install installed
/// (unknown while an install is not yet known).
fn all_installed(config: &Value) -> Value {
    if !config.get("install").is_wholly_known() {
        return Value::Unknown;
    }
    Value::Map(
        config
            .get("install")
            .as_list()
            .iter()
            .map(|i| (install_key(i), Value::string(INSTALLED)))
            .collect(),
    )
}

/// Issues the certificate described by `planned` into it.
fn issue(ctx: &Context, planned: &mut Value) -> Result<(), String> {
    let algorithm = KeyAlgorithm::parse(planned.str_or_empty("key_algorithm"))
        .unwrap_or(KeyAlgorithm::EcdsaP256);
    let hours = planned
        .get("validity_period_hours")
        .as_i64()
        .unwrap_or(DEFAULT_VALIDITY_HOURS as i64);
    let (not_before, not_after) = pki::validity_window(ctx.now(), hours);
    let cert = pki::issue(
        planned.str_or_empty("ca_cert_pem"),
        &ca_keys::ca_key(ctx, planned),
        &LeafRequest {
            common_name: planned.str_or_empty("common_name"),
            organization: planned.get("organization").as_str(),
            usage: Usage::Client,
            names: &[],
            algorithm,
            not_before,
            not_after,
        },
    )
    .map_err(|e| e.to_string())?;
    planned.set("id", Value::string(serial_of(&cert.cert_pem)));
    planned.set("cert_pem", Value::string(cert.cert_pem));
    planned.set("private_key_pem", Value::string(cert.key_pem));
    planned.set("validity_end_time", Value::string(rfc3339(not_after)));
    planned.set("ready_for_renewal", Value::Bool(false));
    Ok(())
}

/// The certificate's SHA-256 fingerprint (hex), its ID.
fn serial_of(cert_pem: &str) -> String {
    crate::member::install::sha256_hex(cert_pem.as_bytes())
}

/// Installs the certificate everywhere `state` says; records each
/// install's status, and returns the errors.
async fn install_all(ctx: &Context, state: &mut Value) -> Vec<String> {
    let mut statuses = BTreeMap::new();
    let mut errors = Vec::new();
    for install in state.get("install").as_list() {
        let key = install_key(install);
        match placement(ctx, install, state)
            .install(&contents(state))
            .await
        {
            Ok(_) => {
                statuses.insert(key, Value::string(INSTALLED));
            }
            Err(e) => {
                statuses.insert(key.clone(), Value::string(format!("not installed: {e}")));
                errors.push(format!("{key}: {e}"));
            }
        }
    }
    state.set("install_status", Value::Map(statuses));
    errors
}

#[async_trait]
impl Resource for ClientCertificate {
    fn name(&self) -> &'static str {
        "etcd_client_certificate"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        schema::validate(config, diags);
    }

    async fn modify_plan(&self, ctx: &Context, plan: &mut Plan<'_>) {
        plan.planned
            .set("install_status", all_installed(plan.config));
        ca_keys::require_key(ctx, plan);
        if plan.is_create() || !plan.requires_replace.is_empty() {
            return;
        }
        let early = plan
            .planned
            .get("early_renewal_hours")
            .as_i64()
            .unwrap_or(0);
        let changed = |name: &str| plan.prior.get(name) != plan.planned.get(name);
        let reissue = changed("ca_cert_pem")
            || changed("validity_period_hours")
            || renewal_due(plan.prior, early, ctx.now());
        if reissue {
            for name in ISSUED {
                plan.planned.set(name, Value::Unknown);
            }
        }
        plan.planned.set("ready_for_renewal", Value::Bool(false));
    }

    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let mut state = planned.clone();
        if let Err(e) = issue(ctx, &mut state) {
            diags.error("Could not issue the certificate", e);
            return Value::Null;
        }
        let errors = install_all(ctx, &mut state).await;
        if !errors.is_empty() {
            diags.error(
                "Could not install the certificate everywhere",
                errors.join("\n"),
            );
        }
        state
    }

    async fn read(
        &self,
        ctx: &Context,
        state: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let mut state = state.clone();
        mark_renewal(&mut state, ctx.now());
        let mut statuses = BTreeMap::new();
        for install in state.get("install").as_list() {
            let status = match placement(ctx, install, &state)
                .problems(&contents(&state))
                .await
            {
                Ok(problems) if problems.is_empty() => INSTALLED.to_string(),
                Ok(problems) => problems.join("; "),
                Err(e) => {
                    diags.warning("Consumer host not reachable", e.to_string());
                    format!("unreachable: {e}")
                }
            };
            statuses.insert(install_key(install), Value::string(status));
        }
        state.set("install_status", Value::Map(statuses));
        state
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: &Value,
        planned: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let mut state = planned.clone();
        if planned.get("cert_pem").is_unknown() {
            if let Err(e) = issue(ctx, &mut state) {
                diags.error("Could not reissue the certificate", e);
                return prior.clone();
            }
        }
        let kept: Vec<String> = planned
            .get("install")
            .as_list()
            .iter()
            .map(install_key)
            .collect();
        for gone in prior
            .get("install")
            .as_list()
            .iter()
            .filter(|i| !kept.contains(&install_key(i)))
        {
            if let Err(e) = placement(ctx, gone, prior).remove().await {
                diags.warning(
                    "Could not remove an install",
                    format!("{}: {e}", install_key(gone)),
                );
            }
        }
        let errors = install_all(ctx, &mut state).await;
        if !errors.is_empty() {
            diags.error(
                "Could not install the certificate everywhere",
                errors.join("\n"),
            );
        }
        state
    }

    async fn import(
        &self,
        _ctx: &Context,
        _id: &str,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        diags.error(
            "etcd_client_certificate cannot be imported",
            "The provider issues the certificate; declare the resource and apply to issue one.",
        );
        Value::Null
    }

    async fn delete(
        &self,
        ctx: &Context,
        prior: &Value,
        _private: &Private,
        diags: &mut Diagnostics,
    ) {
        for install in prior.get("install").as_list() {
            if let Err(e) = placement(ctx, install, prior).remove().await {
                diags.warning(
                    "Installed files not removed",
                    format!(
                        "{}: {e}; the files may be left on that host",
                        install_key(install)
                    ),
                );
            }
        }
    }
}
