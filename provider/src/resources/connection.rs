//! How the resources that work on a running cluster's data (`etcd_snapshot`,
//! `etcd_role`, `etcd_user`) reach it: its client URLs and its CA, from
//! which the provider issues itself a short-lived client certificate
//! (common name `root`, so it keeps working once authentication is on).
//! Nothing connects before apply, so these resources work in the apply that
//! creates the cluster; and the import ID that names such a cluster.

use super::settings;
use crate::etcd::{self, Credentials};
use crate::framework::{Attribute, Block, Context, Diagnostics, Type, Value};

/// `cluster_endpoints`, `ca_cert_pem` and `ca_key_pem`.
pub fn attributes(block: Block, endpoints_use: &'static str) -> Block {
    block
        .attribute(Attribute::required("cluster_endpoints", Type::list(Type::String), endpoints_use))
        .attribute(Attribute::required(
            "ca_cert_pem",
            Type::String,
            "The cluster's CA certificate (PEM); the provider's client certificate is issued from it.",
        ))
        .attribute(
            Attribute::required("ca_key_pem", Type::String, "The CA's private key (PEM).").sensitive(),
        )
}

/// Plan-time checks of the three attributes.
pub fn validate(config: &Value, diags: &mut Diagnostics) {
    settings::validate_endpoints(config, diags);
    settings::validate_ca_pair(config, diags);
}

/// A client of the cluster `value` names.
pub fn client(ctx: &Context, value: &Value) -> Result<etcd::Client, String> {
    let credentials = Credentials::issue(
        value.str_or_empty("ca_cert_pem"),
        value.str_or_empty("ca_key_pem"),
        ctx.now(),
    )
    .map_err(|e| format!("the provider's client certificate: {e}"))?;
    Ok(etcd::Client::new(
        value.get("cluster_endpoints").as_strings(),
        credentials,
    ))
}

/// Reads an import ID `ENDPOINTS,CA_CERT_PATH,CA_KEY_PATH,NAME` (endpoints
/// separated by spaces): the state's connection attributes (the CA read
/// from its files), a client of the cluster, and the name.
pub fn import_id(ctx: &Context, id: &str) -> Result<(Value, etcd::Client, String), String> {
    let parts: Vec<&str> = id.split(',').map(str::trim).collect();
    let [endpoints, cert_path, key_path, name] = parts.as_slice() else {
        return Err(format!("{id:?} does not have four comma-separated parts"));
    };
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let (cert, key) = (read(cert_path)?, read(key_path)?);
    crate::pki::inspect_ca(&cert, &key).map_err(|e| format!("{cert_path}, {key_path}: {e}"))?;
    let endpoints: Vec<String> = endpoints.split_whitespace().map(str::to_string).collect();
    let mut state = Value::object([
        ("cluster_endpoints", Value::strings(endpoints)),
        ("ca_cert_pem", Value::string(cert)),
        ("ca_key_pem", Value::string(key)),
    ]);
    let cluster = client(ctx, &state)?;
    state.set("id", Value::string(*name));
    state.set("name", Value::string(*name));
    Ok((state, cluster, name.to_string()))
}

/// The diagnostic of a failed import of a `kind` (`role`, `user`).
pub fn import_failed(diags: &mut Diagnostics, kind: &str, error: String) -> Value {
    diags.error(
        format!("Cannot import the {kind}"),
        format!(
            "{error}\n\nImport an etcd_{kind} as ENDPOINTS,CA_CERT_PATH,CA_KEY_PATH,NAME: the cluster's client URLs \
             (separated by spaces, as the configuration lists them), its CA's certificate and key on the machine \
             running Terraform, and the {kind}'s name."
        ),
    );
    Value::Null
}
