//! The certificate a member serves on its client URL, as a TLS handshake
//! shows it: etcd reads its certificate files again for every new
//! connection, so renewed files are taken up without a restart, and this
//! is how that is checked. Only the server's certificate is looked at; the
//! handshake sends no client certificate and no request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::pki::handshake_signature;

/// Keeps the end-entity certificate the server presents.
#[derive(Debug)]
struct Capture {
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, false, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, true, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificate (DER) served at `endpoint` (`https://HOST:PORT`).
pub async fn served_certificate(endpoint: &str) -> Result<Vec<u8>, String> {
    let address = endpoint
        .strip_prefix("https://")
        .map(|a| a.trim_end_matches('/'))
        .ok_or_else(|| format!("{endpoint} is not an https URL"))?;
    let host = address
        .rsplit_once(':')
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(address);
    let server_name =
        ServerName::try_from(host.to_string()).map_err(|e| format!("{endpoint}: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let seen = Arc::new(Mutex::new(None));
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Capture {
            seen: seen.clone(),
            provider,
        }))
        .with_no_client_auth();
    let deadline = Duration::from_secs(5);
    let tcp = tokio::time::timeout(deadline, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| format!("{endpoint}: no connection within {deadline:?}"))?
        .map_err(|e| format!("{endpoint}: {e}"))?;
    // The server refuses the handshake for want of a client certificate
    // after it has shown its own: the outcome does not matter.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let _ = tokio::time::timeout(deadline, connector.connect(server_name, tcp)).await;
    let served = seen.lock().unwrap_or_else(|e| e.into_inner()).take();
    served.ok_or_else(|| format!("{endpoint} showed no certificate"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;

    /// A TLS server on loopback that, like etcd, wants a client
    /// certificate: the handshake fails, but its certificate is seen.
    #[tokio::test]
    async fn the_served_certificate_is_read_even_when_a_client_certificate_is_required() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = Arc::new({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert.der().clone()).unwrap();
            roots
        });
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });
        let served = served_certificate(&format!("https://{address}"))
            .await
            .unwrap();
        assert_eq!(served, cert.der().to_vec());
        assert!(served_certificate("http://127.0.0.1:1").await.is_err());
    }
}
