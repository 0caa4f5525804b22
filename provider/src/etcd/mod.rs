//! The etcd client: a running cluster's client API (the member list,
//! per-endpoint health and status, membership changes, snapshots), over
//! TLS with a client certificate the provider issues itself from the
//! cluster's CA. The only module that calls etcd's gRPC API.
//!
//! - this file: credentials, the member list, endpoint status and health;
//! - [`membership`]: member add, remove, promote, leadership transfer;
//! - [`snapshot`]: streaming a verified snapshot into a local file;
//! - [`lock`]: the change lock that keeps two runs from changing one cluster;
//! - [`auth`]: users, roles and their permissions, authentication on and off;
//! - [`served`]: the certificate a member serves (a TLS handshake, no request);
//! - [`space`]: alarms, compaction, defragmentation;
//! - [`downgrade`]: lowering the cluster version, storage versions.

pub mod auth;
mod downgrade;
mod lock;
mod membership;
mod served;
mod snapshot;
mod space;

pub use downgrade::StorageState;
pub use lock::{HeldLock, LockError};
pub use served::served_certificate;
pub use space::{Alarm, AlarmKind, Compaction};

use std::time::Duration;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use futures::StreamExt;
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
                organization: None,
                // With authentication on, the common name is the user:
                // the provider acts as etcd's `root`.
                common_name: auth::ROOT,
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

    /// A client identity the user gave (certificate and key, PEM).
    pub fn given(ca_cert_pem: &str, cert_pem: &str, key_pem: &str) -> Credentials {
        Credentials {
            ca_pem: ca_cert_pem.to_string(),
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        }
    }

    /// The same identity, verifying servers against `ca_pem` (one or more
    /// CA certificates: both the old and the new during a CA rotation).
    pub fn trusting(self, ca_pem: &str) -> Credentials {
        Credentials {
            ca_pem: ca_pem.to_string(),
            ..self
        }
    }

    /// Options whose requests may each take up to `request_timeout`.
    fn options_allowing(&self, request_timeout: Duration) -> ConnectOptions {
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(request_timeout)
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

/// The cluster ID and its members, as one member lists them.
pub type MemberList = (u64, Vec<Member>);

/// One endpoint's answer to a status request and a quorum read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointStatus {
    pub endpoint: String,
    pub healthy: bool,
    pub version: Option<String>,
    pub member_id: Option<u64>,
    pub leader: Option<u64>,
    pub error: Option<String>,
    /// The cluster's alarms, as this member's status lists them.
    pub alarms: Vec<Alarm>,
}

/// IDs print as etcd and etcdctl print them: hex without leading zeros.
pub fn format_id(id: u64) -> String {
    format!("{id:x}")
}

/// How long an endpoint may take to answer before the next one is asked
/// as well (see `Client::first_answering`).
const NEXT_ENDPOINT_AFTER: Duration = Duration::from_millis(300);

/// The longest one request may take, unless a call allows more.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one call to one endpoint may take, connection included.
const CALL_DEADLINE: Duration = Duration::from_secs(6);

/// A client of the endpoints of one cluster.
#[derive(Clone)]
pub struct Client {
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

impl Client {
    pub fn new(endpoints: Vec<String>, credentials: Credentials) -> Client {
        Client {
            endpoints,
            credentials,
        }
    }

    async fn client(&self, endpoints: &[String]) -> Result<etcd_client::Client, String> {
        self.client_allowing(endpoints, REQUEST_TIMEOUT).await
    }

    /// A client whose requests may each take up to `request_timeout`
    /// (maintenance that rewrites a whole database).
    async fn client_allowing(
        &self,
        endpoints: &[String],
        request_timeout: Duration,
    ) -> Result<etcd_client::Client, String> {
        etcd_client::Client::connect(
            endpoints,
            Some(self.credentials.options_allowing(request_timeout)),
        )
        .await
        .map_err(text)
    }

    /// Runs one call against an endpoint within [`CALL_DEADLINE`]. The
    /// client's own time-outs cover the TCP connect and each request, but
    /// not the TLS handshake, which a member that has not joined yet
    /// accepts and never finishes.
    async fn bounded<T, E: From<String>>(
        endpoint: &str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        tokio::time::timeout(CALL_DEADLINE, call)
            .await
            .unwrap_or_else(|_| {
                Err(E::from(format!(
                    "{endpoint}: no answer within {CALL_DEADLINE:?}"
                )))
            })
    }

    /// A client of the first endpoint that answers a status request: a
    /// client over every endpoint fails while any one of them is down.
    async fn any_client(&self) -> Result<etcd_client::Client, String> {
        self.first_answering(None)
            .await
            .map(|(client, _, _)| client)
    }

    /// The first endpoint that answers a status request, skipping the one
    /// served by member `except` (a member being removed stops serving
    /// before it answers): a client of it, the endpoint, and the revision
    /// it has reached.
    async fn first_answering<'a>(
        &'a self,
        except: Option<u64>,
    ) -> Result<(etcd_client::Client, String, i64), String> {
        // One endpoint at a time, but the next one is asked as soon as one
        // fails or has not answered within NEXT_ENDPOINT_AFTER: a member
        // that is starting may hold a connection without answering, and
        // must not delay the others, while a healthy cluster costs one
        // connection.
        let attempt = |endpoint: &'a String| async move {
            let attempt = Self::bounded(endpoint, async {
                let mut client = self.client(std::slice::from_ref(endpoint)).await?;
                let status = client.status().await.map_err(text)?;
                let header = status.header();
                if except.is_some() && header.map(|h| h.member_id()) == except {
                    return Err(format!(
                        "served by member {}",
                        format_id(except.unwrap_or_default())
                    ));
                }
                let revision = header.map(|h| h.revision()).unwrap_or_default();
                Ok((client, endpoint.clone(), revision))
            });
            attempt.await.map_err(|e| format!("{endpoint}: {e}"))
        };
        let mut waiting = self.endpoints.iter();
        let mut asked = futures::stream::FuturesUnordered::new();
        let mut failures = Vec::new();
        loop {
            if asked.is_empty() {
                match waiting.next() {
                    Some(endpoint) => asked.push(attempt(endpoint)),
                    None => break,
                }
            }
            tokio::select! {
                Some(answer) = asked.next() => match answer {
                    Ok(answer) => return Ok(answer),
                    Err(e) => {
                        failures.push(e);
                        if let Some(endpoint) = waiting.next() {
                            asked.push(attempt(endpoint));
                        }
                    }
                },
                _ = tokio::time::sleep(NEXT_ENDPOINT_AFTER), if waiting.len() > 0 => {
                    if let Some(endpoint) = waiting.next() {
                        asked.push(attempt(endpoint));
                    }
                }
            }
        }
        if failures.is_empty() {
            return Err("no endpoints".into());
        }
        Err(failures.join("; "))
    }

    /// The cluster ID and its members, from whichever endpoint answers
    /// (its view may be stale if it is cut off from the others).
    pub async fn members(&self) -> Result<MemberList, String> {
        Self::member_list(self.any_client().await?).await
    }

    async fn member_list(mut client: etcd_client::Client) -> Result<MemberList, String> {
        let response = client.member_list().await.map_err(text)?;
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
        self.ask(endpoint, false).await.0
    }

    /// Every endpoint's status, asked in parallel.
    pub async fn statuses(&self) -> Vec<EndpointStatus> {
        let asks = self.endpoints.iter().map(|e| self.endpoint_status(e));
        futures::future::join_all(asks).await
    }

    /// Every endpoint's status and its member list, asked in parallel,
    /// each endpoint over one connection (a refresh looks at every member
    /// and needs one current list: asking for it with the status costs no
    /// connection of its own, nor a round trip after the statuses).
    pub async fn survey(&self) -> Vec<(EndpointStatus, Result<MemberList, String>)> {
        let asks = self.endpoints.iter().map(|e| async move {
            let (status, members) = self.ask(e, true).await;
            let members = members.unwrap_or_else(|| Err(status.error.clone().unwrap_or_default()));
            (status, members)
        });
        futures::future::join_all(asks).await
    }

    /// One connection to `endpoint`: its status, a linearizable read and,
    /// if asked for, its member list, all at once.
    async fn ask(
        &self,
        endpoint: &str,
        list_members: bool,
    ) -> (EndpointStatus, Option<Result<MemberList, String>>) {
        let mut status = EndpointStatus {
            endpoint: endpoint.to_string(),
            ..Default::default()
        };
        let asked = Self::bounded::<_, String>(endpoint, async {
            let mut client = self.client(&[endpoint.to_string()]).await?;
            let (mut reader, lister) = (client.clone(), client.clone());
            let (answer, health, members) =
                tokio::join!(client.status(), reader.get("health", None), async move {
                    if list_members {
                        Some(Self::member_list(lister).await)
                    } else {
                        None
                    }
                });
            Ok((
                answer.map_err(text)?,
                health.map(drop).map_err(text),
                members,
            ))
        });
        match asked.await {
            Ok((answer, health, members)) => {
                status.version = Some(answer.version().to_string());
                status.leader = Some(answer.leader());
                status.member_id = answer.header().map(|h| h.member_id());
                status.alarms = answer
                    .errors()
                    .iter()
                    .filter_map(|e| Alarm::parse(e))
                    .collect();
                status.healthy = health.is_ok();
                status.error = health.err();
                (status, members)
            }
            Err(e) => {
                status.error = Some(e.clone());
                (status, list_members.then_some(Err(e)))
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_like_etcdctl() {
        assert_eq!(format_id(0x0e95_d6b9_49d1_bea7), "e95d6b949d1bea7");
        assert_eq!(format_id(0x8e9e_05c5_2164_694d), "8e9e05c52164694d");
    }
}
