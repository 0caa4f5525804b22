//! `terraform import etcd_cluster`: the state of a running cluster from one
//! client URL and the CA's files, as far as its client API tells.

use std::collections::BTreeMap;

use crate::cluster;
use crate::framework::{Context, Value};

/// The state of an imported cluster: what its client API tells; the rest
/// stays null until the configuration's values are adopted.
pub(super) async fn import_state(ctx: &Context, id: &str) -> Result<Value, String> {
    let parts: Vec<&str> = id.split(',').map(str::trim).collect();
    let [endpoint, cert_path, key_path] = parts.as_slice() else {
        return Err(format!("{id:?} does not have three comma-separated parts"));
    };
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let (ca_cert_pem, ca_key_pem) = (read(cert_path)?, read(key_path)?);
    crate::pki::inspect_ca(&ca_cert_pem, &ca_key_pem)
        .map_err(|e| format!("{cert_path}, {key_path}: {e}"))?;
    let live = cluster::read_live_cluster(endpoint, &ca_cert_pem, &ca_key_pem, ctx.now()).await?;
    let members = live
        .members
        .iter()
        .map(|(name, host)| {
            Value::object([
                ("name", Value::string(name)),
                ("host", Value::string(host)),
                ("ssh_host", Value::Null),
                ("extra_sans", Value::Null),
            ])
        })
        .collect();
    let id = crate::etcd::format_id(live.cluster_id);
    let port = |port: Option<u16>, default: u16| Value::number(f64::from(port.unwrap_or(default)));
    Ok(Value::object([
        ("id", Value::string(&id)),
        ("cluster_id", Value::string(id)),
        ("ca_cert_pem", Value::string(ca_cert_pem)),
        ("ca_key_pem", Value::string(ca_key_pem)),
        ("etcd_version", Value::string(live.etcd_version)),
        ("client_port", port(live.client_port, 2379)),
        ("peer_port", port(live.peer_port, 2380)),
        ("member", Value::List(members)),
        ("client_endpoints", Value::List(vec![])),
        ("member_ids", Value::Map(BTreeMap::new())),
        ("member_versions", Value::Map(BTreeMap::new())),
        ("status", Value::Map(BTreeMap::new())),
        ("leader", Value::string("")),
        ("unmanaged_members", Value::List(vec![])),
    ]))
}
