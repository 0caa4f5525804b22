//! The Terraform plugin protocol 6 over go-plugin: handshake, AutoMTLS,
//! logging and the gRPC services. This is the only module that speaks gRPC;
//! it turns requests into calls on [`crate::framework::provider::Provider`].

mod convert;
mod go_plugin;
pub mod logging;
mod server;
mod tls;

use std::sync::Arc;

use base64::Engine;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use crate::framework::provider::Provider;

/// Generated protocol messages and service traits.
pub mod proto {
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}

const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
const CORE_PROTOCOL_VERSION: u32 = 1;
const PLUGIN_PROTOCOL_VERSION: u32 = 6;

/// Why the plugin could not start serving.
#[derive(Debug)]
pub enum ServeError {
    /// Not started by Terraform: the magic cookie is missing.
    NotAPluginHost,
    Setup(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::NotAPluginHost => write!(
                f,
                "This binary is a Terraform plugin (terraform-provider-etcd). It is not meant to be run \
                 directly: Terraform starts it when a configuration uses the etcd provider."
            ),
            ServeError::Setup(message) => write!(f, "plugin setup failed: {message}"),
        }
    }
}

/// Serves `provider` to the Terraform process that started us, until
/// Terraform calls `GRPCController.Shutdown`.
pub async fn serve(provider: Provider) -> Result<(), ServeError> {
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        return Err(ServeError::NotAPluginHost);
    }
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        if !versions
            .split(',')
            .any(|v| v.trim() == PLUGIN_PROTOCOL_VERSION.to_string())
        {
            return Err(ServeError::Setup(format!(
                "Terraform offers protocol versions {versions}; this provider speaks 6"
            )));
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ServeError::Setup(e.to_string()))?;
    let address = listener
        .local_addr()
        .map_err(|e| ServeError::Setup(e.to_string()))?;
    let shutdown = Arc::new(Notify::new());
    let provider = Arc::new(provider);
    let router = services(&provider, &shutdown);
    let stopped = shutdown.clone();
    let stopped = async move { stopped.notified().await };
    ignore_interrupts();
    exit_when_orphaned(shutdown.clone(), provider.clone());
    let served = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(client_cert) => {
            let tls = tls::server_tls(&client_cert).map_err(ServeError::Setup)?;
            let incoming = accept_tls(listener, TlsAcceptor::from(tls.config));
            announce(address, &base64::engine::general_purpose::STANDARD_NO_PAD.encode(&tls.certificate_der));
            router.serve_with_incoming_shutdown(incoming, stopped).await
        }
        // Terraform without AutoMTLS (TF_DISABLE_PLUGIN_TLS, for debugging
        // the protocol): plain gRPC on loopback.
        Err(_) if std::env::var_os("TF_DISABLE_PLUGIN_TLS").is_some() => {
            log::warn!("TF_DISABLE_PLUGIN_TLS: serving without TLS on {address}");
            announce(address, "");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            router.serve_with_incoming_shutdown(incoming, stopped).await
        }
        Err(_) => {
            return Err(ServeError::Setup(
                "PLUGIN_CLIENT_CERT is not set: this provider requires AutoMTLS (or TF_DISABLE_PLUGIN_TLS)".into(),
            ))
        }
    };
    served.map_err(|e| ServeError::Setup(e.to_string()))?;
    provider.context.request_stop();
    Ok(())
}

/// Tells Terraform where to connect (go-plugin's handshake line): the
/// server certificate (base64 DER) under AutoMTLS, nothing without.
fn announce(address: std::net::SocketAddr, certificate: &str) {
    let certificate = if certificate.is_empty() {
        String::new()
    } else {
        format!("|{certificate}")
    };
    println!("{CORE_PROTOCOL_VERSION}|{PLUGIN_PROTOCOL_VERSION}|tcp|{address}|grpc{certificate}");
    log::debug!("serving plugin protocol {PLUGIN_PROTOCOL_VERSION} on {address}");
}

/// The provider's gRPC services: the protocol and go-plugin's own.
fn services(provider: &Arc<Provider>, shutdown: &Arc<Notify>) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .add_service(proto::tfplugin6::provider_server::ProviderServer::new(
            server::ProviderService {
                provider: provider.clone(),
            },
        ))
        .add_service(
            proto::plugin::grpc_controller_server::GrpcControllerServer::new(
                go_plugin::Controller {
                    shutdown: shutdown.clone(),
                },
            ),
        )
        .add_service(proto::plugin::grpc_stdio_server::GrpcStdioServer::new(
            go_plugin::Stdio,
        ))
        .add_service(proto::plugin::grpc_broker_server::GrpcBrokerServer::new(
            go_plugin::Broker,
        ))
}

/// Accepts TCP connections (no Nagle delay) and completes their TLS
/// handshakes off the accept loop, so a slow or failed handshake never
/// blocks the next one.
fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<
    std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
> {
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            // Replies are small and go out at once: Nagle's algorithm would
            // hold each back until Terraform's delayed ACK (~40 ms per call).
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let _ = sender.send(Ok(stream)).await;
                    }
                    Err(e) => log::warn!("rejected plugin connection from {peer}: {e}"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Terraform forwards Ctrl-C to the whole process group and then calls
/// StopProvider; like go-plugin, the plugin itself ignores the signal so
/// that it can stop at a safe point instead of dying mid-operation.
fn ignore_interrupts() {
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            log::debug!("interrupt received; waiting for StopProvider");
        }
    });
}

/// How often the provider checks that the process that started it is
/// still there.
const PARENT_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Shuts the provider down once the process that started it is gone (it
/// was then handed to another parent): a client that exits without
/// closing its plugins (Pulumi's Terraform bridge does) must not leave a
/// provider behind for every command. Steps under way stop at their next
/// safe point, as on Terraform's stop request.
fn exit_when_orphaned(shutdown: Arc<Notify>, provider: Arc<Provider>) {
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PARENT_CHECK).await;
            // SAFETY: as above.
            if unsafe { libc::getppid() } != parent {
                log::warn!("the process that started the provider is gone: shutting down");
                provider.context.request_stop();
                shutdown.notify_one();
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RPCs that newer Terraform versions call and this provider does not
    /// serve (Terraform 1.12+ asks for identity schemas on every schema
    /// load) must answer Unimplemented, which Terraform takes as "none".
    #[tokio::test]
    async fn rpcs_the_provider_does_not_serve_answer_unimplemented() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let provider = Arc::new(crate::resources::provider());
        let router = services(&provider, &Arc::new(Notify::new()));
        tokio::spawn(
            router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        for path in [
            "/tfplugin6.Provider/GetResourceIdentitySchemas",
            "/tfplugin6.Provider/ListResource",
            "/tfplugin6.Provider/InvokeAction",
            "/tfplugin7.Provider/GetProviderSchema",
        ] {
            grpc.ready().await.unwrap();
            let status = grpc
                .unary(
                    tonic::Request::new(()),
                    tonic::codegen::http::uri::PathAndQuery::from_static(path),
                    tonic_prost::ProstCodec::<(), ()>::default(),
                )
                .await
                .unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::Unimplemented,
                "{path}: {status:?}"
            );
        }
    }
}
