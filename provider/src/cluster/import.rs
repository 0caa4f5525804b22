//! What an import can learn of a running cluster from one client URL: its
//! ID, members (name and host), ports and etcd version. Settings the API
//! cannot tell (paths, SSH, binary source) come from the configuration.

use time::OffsetDateTime;

use crate::etcd::{self, Credentials};

/// A running cluster as its client API describes it.
pub struct LiveCluster {
    pub cluster_id: u64,
    pub etcd_version: String,
    /// (name, host) of each member, sorted by name.
    pub members: Vec<(String, String)>,
    pub client_port: Option<u16>,
    pub peer_port: Option<u16>,
}

/// Reads the cluster behind `endpoint` with a client certificate issued
/// from the CA.
pub async fn read_live_cluster(
    endpoint: &str,
    ca_cert_pem: &str,
    ca_key_pem: &str,
    now: OffsetDateTime,
) -> Result<LiveCluster, String> {
    let credentials = Credentials::issue(ca_cert_pem, ca_key_pem, now)
        .map_err(|e| format!("client certificate: {e}"))?;
    let client = etcd::Client::new(vec![endpoint.to_string()], credentials);
    let (cluster_id, mut live) = client.members().await?;
    let status = client.endpoint_status(endpoint).await;
    let etcd_version = status
        .version
        .ok_or_else(|| status.error.unwrap_or_else(|| "no version".into()))?;
    live.sort_by(|a, b| a.name.cmp(&b.name));
    let mut cluster = LiveCluster {
        cluster_id,
        etcd_version,
        members: Vec::new(),
        client_port: None,
        peer_port: None,
    };
    for m in &live {
        let (host, peer_port) = m
            .peer_urls
            .first()
            .and_then(|u| split_url(u))
            .ok_or_else(|| format!("member {} has no usable peer URL", m.name))?;
        cluster.peer_port = Some(peer_port);
        cluster.client_port = m
            .client_urls
            .first()
            .and_then(|u| split_url(u))
            .map(|(_, p)| p)
            .or(cluster.client_port);
        cluster.members.push((m.name.clone(), host));
    }
    Ok(cluster)
}

/// `https://10.0.0.11:2380` as host and port (IPv6 without brackets).
fn split_url(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    Some((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_port() {
        assert_eq!(
            split_url("https://10.0.0.11:2380"),
            Some(("10.0.0.11".into(), 2380))
        );
        assert_eq!(
            split_url("https://[fd00::1]:2379/"),
            Some(("fd00::1".into(), 2379))
        );
        assert_eq!(split_url("10.0.0.1"), None);
    }
}
