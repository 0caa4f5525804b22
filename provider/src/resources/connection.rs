//! How the resources that work on a running cluster's data (`etcd_snapshot`,
//! `etcd_role`, `etcd_user`) reach it: its client URLs and its CA, from
//! which the provider issues itself a short-lived client certificate
//! (common name `root`, so it keeps working once authentication is on), or
//! a client certificate the user gives instead of the CA key.
//! Nothing connects before apply, so these resources work in the apply that
//! creates the cluster; and the import ID that names such a cluster.

use super::{ca_keys, settings};
use crate::etcd::{self, Credentials};
use crate::framework::{Attribute, AttributePath, Block, Context, Diagnostics, Plan, Type, Value};

/// `cluster_endpoints`, `ca_cert_pem`, `ca_key_pem` and the client
/// certificate that may stand in for the key.
pub fn attributes(block: Block, endpoints_use: &'static str) -> Block {
    block
        .attribute(Attribute::required("cluster_endpoints", Type::list(Type::String), endpoints_use))
        .attribute(Attribute::required(
            "ca_cert_pem",
            Type::String,
            "The cluster's CA certificate (PEM): the provider verifies the members with it, and issues its \
             client certificate from it unless `client_cert_pem` is set.",
        ))
        .attribute(
            Attribute::optional(
                "ca_key_pem",
                Type::String,
                "The CA's private key (PEM). Leave it unset to keep it out of state: the provider block's \
                 `ca_key_files` or `ca_keys` give it, or `client_cert_pem` and `client_key_pem` replace it.",
            )
            .sensitive(),
        )
        .attribute(Attribute::optional(
            "client_cert_pem",
            Type::String,
            "A client certificate (PEM) to connect with instead of one issued from the CA key, e.g. an \
             `etcd_client_certificate`'s. With authentication on its common name must be `root`.",
        ))
        .attribute(
            Attribute::optional("client_key_pem", Type::String, "The private key of `client_cert_pem` (PEM).")
                .sensitive(),
        )
}

/// Plan-time checks of the connection attributes.
pub fn validate(config: &Value, diags: &mut Diagnostics) {
    settings::validate_endpoints(config, diags);
    settings::validate_ca_pair(config, diags);
    let cert = config.get("client_cert_pem");
    let key = config.get("client_key_pem");
    if cert.is_null() != key.is_null() {
        let missing = if cert.is_null() {
            "client_cert_pem"
        } else {
            "client_key_pem"
        };
        diags.error_at(
            AttributePath::root(missing),
            "Client certificate without its key",
            "Set client_cert_pem and client_key_pem together.",
        );
    }
    if let (Some(cert), Some(ca)) = (cert.as_str(), config.get("ca_cert_pem").as_str()) {
        if !crate::pki::issued_by(cert, ca) {
            diags.error_at(
                AttributePath::root("client_cert_pem"),
                "Client certificate not from the cluster's CA",
                "client_cert_pem must be issued by the CA in ca_cert_pem, which the members trust.",
            );
        }
    }
}

/// At plan time: without a client certificate, the CA key must be found.
pub fn require_credentials(ctx: &Context, plan: &mut Plan<'_>) {
    if plan.planned.get("client_cert_pem").is_null() {
        ca_keys::require_key(ctx, plan);
    }
}

/// A client of the cluster `value` names.
pub fn client(ctx: &Context, value: &Value) -> Result<etcd::Client, String> {
    let credentials = match (
        value.get("client_cert_pem").as_str(),
        value.get("client_key_pem").as_str(),
    ) {
        (Some(cert), Some(key)) => Credentials::given(value.str_or_empty("ca_cert_pem"), cert, key),
        _ => Credentials::issue(
            value.str_or_empty("ca_cert_pem"),
            &ca_keys::ca_key(ctx, value),
            ctx.now(),
        )
        .map_err(|e| format!("the provider's client certificate: {e}"))?,
    };
    Ok(etcd::Client::new(
        value.get("cluster_endpoints").as_strings(),
        credentials,
    ))
}

/// Reads an import ID `ENDPOINTS,CA_CERT_PATH,CA_KEY_PATH,NAME` (endpoints
/// separated by spaces; an empty key path leaves the key to the provider
/// block): the state's connection attributes (the CA read from its files),
/// a client of the cluster, and the name.
pub fn import_id(ctx: &Context, id: &str) -> Result<(Value, etcd::Client, String), String> {
    let parts: Vec<&str> = id.split(',').map(str::trim).collect();
    let [endpoints, cert_path, key_path, name] = parts.as_slice() else {
        return Err(format!("{id:?} does not have four comma-separated parts"));
    };
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let cert = read(cert_path)?;
    let key = match *key_path {
        "" => None,
        path => Some(read(path)?),
    };
    if ca_keys::key_for(ctx, &cert, key.as_deref()).is_none() {
        return Err(format!(
            "no CA key path is given and the provider block has no key for {cert_path}"
        ));
    }
    if let Some(key) = &key {
        crate::pki::inspect_ca(&cert, key).map_err(|e| format!("{cert_path}, {key_path}: {e}"))?;
    }
    let endpoints: Vec<String> = endpoints.split_whitespace().map(str::to_string).collect();
    let mut state = Value::object([
        ("cluster_endpoints", Value::strings(endpoints)),
        ("ca_cert_pem", Value::string(cert)),
        ("ca_key_pem", key.map(Value::string).unwrap_or(Value::Null)),
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
             running Terraform (an empty key path: the key from the provider block), and the {kind}'s name."
        ),
    );
    Value::Null
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CaRequest, KeyAlgorithm};

    fn ca_cert() -> String {
        let now = time::OffsetDateTime::now_utc();
        crate::pki::create_ca(&CaRequest {
            common_name: "ca",
            organization: None,
            algorithm: KeyAlgorithm::EcdsaP256,
            not_before: now,
            not_after: now + time::Duration::hours(1),
            key_pem: None,
        })
        .unwrap()
        .cert_pem
    }

    fn errors_at(config: &Value) -> Vec<String> {
        let mut diags = Diagnostics::default();
        validate(config, &mut diags);
        diags
            .0
            .iter()
            .filter_map(|d| d.path.as_ref().map(|p| p.to_string()))
            .collect()
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_the_clusters_ca() {
        let (ours, other) = (ca_cert(), ca_cert());
        let config = |cert: Option<&str>, key: Option<&str>| {
            Value::object([
                (
                    "cluster_endpoints",
                    Value::strings(["https://10.0.0.1:2379"]),
                ),
                ("ca_cert_pem", Value::string(&ours)),
                (
                    "client_cert_pem",
                    cert.map(Value::string).unwrap_or(Value::Null),
                ),
                (
                    "client_key_pem",
                    key.map(Value::string).unwrap_or(Value::Null),
                ),
            ])
        };
        assert!(errors_at(&config(None, None)).is_empty());
        assert_eq!(errors_at(&config(Some(&ours), None)), ["client_key_pem"]);
        assert_eq!(errors_at(&config(None, Some("key"))), ["client_cert_pem"]);
        // A certificate from another CA: the members would refuse it.
        assert_eq!(
            errors_at(&config(Some(&other), Some("key"))),
            ["client_cert_pem"]
        );
    }
}
