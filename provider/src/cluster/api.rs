//! The cluster's client API as the provider reaches it: directly, or with
//! `ssh.tunnel` through one SSH local forward per member to the member's
//! loopback client URL (server certificates always name 127.0.0.1).

use std::time::Duration;

use time::OffsetDateTime;

use super::ClusterSpec;
use crate::etcd;
use crate::ssh::{self, Host};

/// The cluster's etcd client, with the SSH connections that carry it when
/// it is tunnelled (they close when this is dropped).
pub struct Api {
    pub client: etcd::Client,
    _tunnels: Vec<Host>,
}

impl std::ops::Deref for Api {
    type Target = etcd::Client;

    fn deref(&self) -> &etcd::Client {
        &self.client
    }
}

/// A free local port for a forward (the OS picks it; it is released just
/// before ssh binds it).
fn free_local_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free local port for a tunnel: {e}"))
}

impl ClusterSpec {
    /// The client API, directly or, with `tunnel`, through one SSH port
    /// forward per member. A member whose SSH fails keeps its direct URL
    /// and shows up as unreachable. Foreign endpoints come last.
    pub async fn api(&self, now: OffsetDateTime) -> Result<Api, String> {
        let credentials = self.credentials(now)?;
        let (mut endpoints, tunnels) = if self.tunnel {
            self.tunnelled_endpoints().await
        } else {
            (self.endpoints(), Vec::new())
        };
        endpoints.extend(self.foreign_endpoints.iter().cloned());
        Ok(Api {
            client: etcd::Client::new(endpoints, credentials),
            _tunnels: tunnels,
        })
    }

    /// One local forward per member to its loopback client port, in the
    /// order of `members`; the direct URL where SSH fails.
    async fn tunnelled_endpoints(&self) -> (Vec<String>, Vec<Host>) {
        let port = self.settings.client_port;
        let opened = futures::future::join_all(self.members.iter().map(|m| async move {
            // A forward would outlive the run on a kept connection.
            let target = ssh::Target {
                keep_open: Duration::ZERO,
                ..m.ssh.clone()
            };
            let host = Host::connect(&target).await.map_err(|e| e.to_string())?;
            let local = free_local_port()?;
            host.forward_local(local, "127.0.0.1", port)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((host, format!("https://127.0.0.1:{local}")))
        }))
        .await;
        let mut endpoints = Vec::new();
        let mut tunnels = Vec::new();
        for (opened, direct) in opened.into_iter().zip(self.endpoints()) {
            match opened {
                Ok((host, endpoint)) => {
                    tunnels.push(host);
                    endpoints.push(endpoint);
                }
                Err(e) => {
                    log::warn!("no tunnel to {direct}: {e}");
                    endpoints.push(direct);
                }
            }
        }
        (endpoints, tunnels)
    }
}
