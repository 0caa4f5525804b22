//! Talking to a running cluster over its client API: the member list,
//! per-endpoint health and status, and membership changes. TLS with a
//! client certificate the provider issues itself from the cluster's CA.

use std::path::Path;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use time::OffsetDateTime;

use crate::pki::{self, KeyAlgorithm, LeafRequest, PkiError, Usage};

/// A short-lived client identity for this run of the provider.
#[derive(Clone)]
pub struct Credentials {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Credentials {
    pub fn issue(
        ca_cert_pem: &str,
        ca_key_pem: &str,
        now: OffsetDateTime,
    ) -> Result<Credentials, PkiError> {
        let (not_before, not_after) = pki::validity_window(now, 24);
        let client = pki::issue(
            ca_cert_pem,
            ca_key_pem,
            &LeafRequest {
                common_name: "terraform-provider-etcd",
                usage: Usage::Client,
                names: &[],
                algorithm: KeyAlgorithm::EcdsaP256,
                not_before,
                not_after,
            },
        )?;
        Ok(Credentials {
            ca_pem: ca_cert_pem.to_string(),
            cert_pem: client.cert_pem,
            key_pem: client.key_pem,
        })
    }

    /// The same identity, verifying servers against `ca_pem` (one or more
    /// CA certificates: both the old and the new during a CA rotation).
    pub fn trusting(self, ca_pem: &str) -> Credentials {
        Credentials {
            ca_pem: ca_pem.to_string(),
            ..self
        }
    }

    fn options(&self) -> ConnectOptions {
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5))
    }
}

/// A member as the cluster lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: u64,
    /// Empty while a member has been added but has not started yet.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// One endpoint's answer to a status request and a quorum read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointStatus {
    pub endpoint: String,
    pub healthy: bool,
    pub version: Option<String>,
    pub member_id: Option<u64>,
    pub leader: Option<u64>,
    pub error: Option<String>,
}

/// A snapshot saved by [`Cluster::save_snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The endpoint of the member it came from.
    pub endpoint: String,
    /// The revision that member had reached when the snapshot began.
    pub revision: i64,
    pub size: u64,
    /// SHA-256 (hex) of the whole file.
    pub sha256: String,
}

/// Checks the SHA-256 that etcd appends to a snapshot stream against
/// everything before it, fed chunk by chunk.
#[derive(Default)]
struct TrailingHash {
    body: sha2::Sha256,
    /// The last 32 bytes seen so far: the hash, once the stream has ended.
    tail: Vec<u8>,
}

impl TrailingHash {
    const LEN: usize = 32;

    fn update(&mut self, chunk: &[u8]) {
        use sha2::Digest;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > Self::LEN {
            let body = self.tail.len() - Self::LEN;
            self.body.update(&self.tail[..body]);
            self.tail.drain(..body);
        }
    }

    fn matches(self) -> bool {
        use sha2::Digest;
        self.tail.len() == Self::LEN && self.tail[..] == self.body.finalize()[..]
    }
}

/// The longest wait for the next chunk of a snapshot.
const SNAPSHOT_CHUNK_DEADLINE: Duration = Duration::from_secs(60);

/// IDs print as etcd and etcdctl print them: hex without leading zeros.
pub fn format_id(id: u64) -> String {
    format!("{id:x}")
}

/// The longest one call to one endpoint may take, connection included.
const CALL_DEADLINE: Duration = Duration::from_secs(6);

pub struct Cluster {
    pub endpoints: Vec<String>,
    credentials: Credentials,
}

fn text(e: etcd_client::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

impl Cluster {
    pub fn new(endpoints: Vec<String>, credentials: Credentials) -> Cluster {
        Cluster {
            endpoints,
            credentials,
        }
    }

    async fn client(&self, endpoints: &[String]) -> Result<Client, String> {
        Client::connect(endpoints, Some(self.credentials.options()))
            .await
            .map_err(text)
    }

    /// Runs one call against an endpoint within [`CALL_DEADLINE`]. The
    /// client's own time-outs cover the TCP connect and each request, but
    /// not the TLS handshake, which a member that has not joined yet
    /// accepts and never finishes.
    async fn bounded<T>(
        endpoint: &str,
        call: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        tokio::time::timeout(CALL_DEADLINE, call)
            .await
            .unwrap_or_else(|_| Err(format!("{endpoint}: no answer within {CALL_DEADLINE:?}")))
    }

    /// A client of the first endpoint that answers a status request: a
    /// client over every endpoint fails while any one of them is down.
    async fn any_client(&self) -> Result<Client, String> {
        self.first_answering().await.map(|(client, _, _)| client)
    }

    /// The first endpoint that answers a status request: a client of it,
    /// the endpoint, and the revision it has reached.
    async fn first_answering(&self) -> Result<(Client, String, i64), String> {
        let mut last = String::from("no endpoints");
        for endpoint in &self.endpoints {
            let attempt = Self::bounded(endpoint, async {
                let mut client = self.client(std::slice::from_ref(endpoint)).await?;
                let status = client.status().await.map_err(text)?;
                let revision = status.header().map(|h| h.revision()).unwrap_or_default();
                Ok((client, endpoint.clone(), revision))
            });
            match attempt.await {
                Ok(answer) => return Ok(answer),
                Err(e) => last = format!("{endpoint}: {e}"),
            }
        }
        Err(last)
    }

    /// Streams a snapshot of the keyspace from the first member that
    /// answers into `file`: written 0600 to a temporary file beside it and
    /// renamed once complete. etcd ends the stream with the SHA-256 of what
    /// came before; a snapshot whose hash does not match is refused.
    pub async fn save_snapshot(&self, file: &Path) -> Result<Snapshot, String> {
        use sha2::{Digest, Sha256};
        use tokio::io::AsyncWriteExt;

        let (mut client, endpoint, revision) = self.first_answering().await?;
        let partial = file.with_extension("partial");
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .await
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        let mut stream = client.snapshot().await.map_err(text)?;
        let mut whole = Sha256::new();
        let mut trailer = TrailingHash::default();
        let mut size = 0u64;
        loop {
            let message = tokio::time::timeout(SNAPSHOT_CHUNK_DEADLINE, stream.message())
                .await
                .map_err(|_| format!("{endpoint}: the snapshot stalled"))?
                .map_err(text)?;
            let Some(message) = message else { break };
            let chunk = message.blob();
            out.write_all(chunk)
                .await
                .map_err(|e| format!("{}: {e}", partial.display()))?;
            whole.update(chunk);
            trailer.update(chunk);
            size += chunk.len() as u64;
        }
        out.sync_all()
            .await
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        if !trailer.matches() {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(format!(
                "{endpoint}: the snapshot's trailing SHA-256 does not match its content ({size} bytes); not saved"
            ));
        }
        tokio::fs::rename(&partial, file)
            .await
            .map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(Snapshot {
            endpoint,
            revision,
            size,
            sha256: hex::encode(whole.finalize()),
        })
    }

    /// The cluster ID and its members, from whichever endpoint answers.
    pub async fn members(&self) -> Result<(u64, Vec<Member>), String> {
        let response = self.any_client().await?.member_list().await.map_err(text)?;
        let cluster_id = response
            .header()
            .map(|h| h.cluster_id())
            .unwrap_or_default();
        let members = response
            .members()
            .iter()
            .map(|m| Member {
                id: m.id(),
                name: m.name().to_string(),
                peer_urls: m.peer_urls().to_vec(),
                client_urls: m.client_urls().to_vec(),
                is_learner: m.is_learner(),
            })
            .collect();
        Ok((cluster_id, members))
    }

    /// Status and a linearizable read on one endpoint (what
    /// `etcdctl endpoint health` checks).
    pub async fn endpoint_status(&self, endpoint: &str) -> EndpointStatus {
        let mut status = EndpointStatus {
            endpoint: endpoint.to_string(),
            ..Default::default()
        };
        let asked = Self::bounded(endpoint, async {
            let mut client = self.client(&[endpoint.to_string()]).await?;
            let answer = client.status().await.map_err(text)?;
            let health = client.get("health", None).await.map(|_| ()).map_err(text);
            Ok((answer, health))
        });
        match asked.await {
            Ok((answer, health)) => {
                status.version = Some(answer.version().to_string());
                status.leader = Some(answer.leader());
                status.member_id = answer.header().map(|h| h.member_id());
                status.healthy = health.is_ok();
                status.error = health.err();
            }
            Err(e) => status.error = Some(e),
        }
        status
    }

    /// Every endpoint's status, asked in parallel.
    pub async fn statuses(&self) -> Vec<EndpointStatus> {
        let asks = self.endpoints.iter().map(|e| self.endpoint_status(e));
        futures::future::join_all(asks).await
    }

    /// Live members other than the one with peer URL `except` that are not
    /// started and healthy, as `name: why`. Every member counts, whoever
    /// manages it: this is what guards quorum before a step.
    pub async fn unhealthy_members(&self, except: &str) -> Result<Vec<String>, String> {
        let (_, live) = self.members().await?;
        let checks = live
            .iter()
            .filter(|m| !m.peer_urls.iter().any(|u| u == except))
            .map(|m| async move {
                let Some(url) = m.client_urls.first().filter(|_| !m.name.is_empty()) else {
                    return Some(format!("{}: added but not started", format_id(m.id)));
                };
                let status = self.endpoint_status(url).await;
                (!status.healthy).then(|| {
                    format!(
                        "{}: {}",
                        m.name,
                        status.error.unwrap_or_else(|| "unhealthy".into())
                    )
                })
            });
        Ok(futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect())
    }

    pub async fn remove_member(&self, id: u64) -> Result<(), String> {
        patiently(|| async {
            let mut client = self.any_client().await?;
            client.member_remove(id).await.map_err(text)?;
            Ok(())
        })
        .await
    }

    /// Adds a member by its peer URL, as a non-voting learner when asked;
    /// returns the new member's ID.
    pub async fn add_member(&self, peer_url: &str, learner: bool) -> Result<u64, String> {
        patiently(|| async {
            let mut client = self.any_client().await?;
            let options = learner.then(|| etcd_client::MemberAddOptions::new().with_is_learner());
            let response = client.member_add([peer_url], options).await.map_err(text)?;
            response
                .member()
                .map(|m| m.id())
                .ok_or_else(|| "member add returned no member".to_string())
        })
        .await
    }
}

/// etcd refuses membership changes ("unhealthy cluster") until every member
/// has been connected for a few seconds, e.g. just after a restart. Such
/// refusals are retried for up to 30 seconds; other errors are not.
async fn patiently<T, F, Fut>(mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Err(e) if e.contains("unhealthy cluster") && tokio::time::Instant::now() < deadline => {
                log::debug!("membership change refused for now ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            result => return result,
        }
    }
}

impl Cluster {
    /// Promotes a learner to a voting member once it has caught up with the
    /// leader (etcd refuses until then), waiting up to `timeout`.
    pub async fn promote_member(&self, id: u64, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let attempt = async {
                let mut client = self.any_client().await?;
                client.member_promote(id).await.map_err(text).map(|_| ())
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    log::debug!("learner {} not promoted yet: {e}", format_id(id));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "learner {} was not promoted within {timeout:?}: {e}",
                        format_id(id)
                    ))
                }
            }
        }
    }

    /// Hands leadership to `target` if `from` is the leader; asks the
    /// leader itself, as etcd requires.
    pub async fn move_leader_off(&self, from: u64, target: u64) -> Result<(), String> {
        for status in self.statuses().await {
            if status.member_id == Some(from) && status.leader == Some(from) {
                let endpoint = status.endpoint.clone();
                return Self::bounded(&endpoint.clone(), async {
                    let mut client = self.client(&[endpoint]).await?;
                    client.move_leader(target).await.map_err(text).map(|_| ())
                })
                .await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn fed_in_chunks(stream: &[u8], chunk: usize) -> bool {
        let mut trailer = TrailingHash::default();
        for piece in stream.chunks(chunk) {
            trailer.update(piece);
        }
        trailer.matches()
    }

    #[test]
    fn ids_print_like_etcdctl() {
        assert_eq!(format_id(0x0e95_d6b9_49d1_bea7), "e95d6b949d1bea7");
        assert_eq!(format_id(0x8e9e_05c5_2164_694d), "8e9e05c52164694d");
    }

    #[test]
    fn a_snapshot_must_end_with_the_hash_of_its_content() {
        let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut stream = body.clone();
        stream.extend_from_slice(&sha2::Sha256::digest(&body));
        for chunk in [1, 7, 32, 33, 4096, stream.len()] {
            assert!(fed_in_chunks(&stream, chunk), "chunks of {chunk}");
        }
        let mut corrupt = stream.clone();
        corrupt[100] ^= 1;
        assert!(!fed_in_chunks(&corrupt, 64));
        assert!(!fed_in_chunks(&body, 64), "no hash at the end");
        assert!(!fed_in_chunks(&stream[..20], 64), "shorter than a hash");
    }
}
