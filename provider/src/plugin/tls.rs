//! AutoMTLS for the plugin connection: a fresh self-signed server
//! certificate for each run, a client verifier that accepts exactly the
//! certificate Terraform passed in `PLUGIN_CLIENT_CERT`, and `h2` selected
//! through ALPN (grpc-go 1.67 and later, so Terraform 1.12 and later, refuse
//! a TLS server that selects no protocol).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;

use crate::pki::handshake_signature;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// gRPC runs over HTTP/2, which TLS names `h2` in ALPN.
const GRPC_ALPN_PROTOCOL: &[u8] = b"h2";

/// The server's certificate (DER, for the handshake line) and TLS config.
pub struct ServerTls {
    pub certificate_der: Vec<u8>,
    pub config: Arc<ServerConfig>,
}

/// Builds the TLS server side, pinned to Terraform's client certificate.
pub fn server_tls(client_cert_pem: &str) -> Result<ServerTls, String> {
    let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
        .map_err(|e| format!("PLUGIN_CLIENT_CERT is not a PEM certificate: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

    // go-plugin's client trusts the handshake certificate as a root and
    // checks the name "localhost".
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(30);
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let certificate_der = cert.der().to_vec();

    let verifier = Arc::new(PinnedClient {
        expected: client_cert.into_owned(),
        provider: provider.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(certificate_der.clone())],
            PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![GRPC_ALPN_PROTOCOL.to_vec()];
    Ok(ServerTls {
        certificate_der,
        config: Arc::new(config),
    })
}

/// Accepts only the one client certificate Terraform announced.
#[derive(Debug)]
struct PinnedClient {
    expected: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PinnedClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "client certificate is not the one in PLUGIN_CLIENT_CERT".into(),
            ))
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::ServerName;
    use rustls::ClientConfig;

    /// A client as go-plugin's: it trusts the handshake certificate (here:
    /// anything) and presents its own certificate.
    #[derive(Debug)]
    struct TrustAnyServer(Arc<CryptoProvider>);

    impl ServerCertVerifier for TrustAnyServer {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            handshake_signature(&self.0, false, message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            handshake_signature(&self.0, true, message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    fn self_signed() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert, key)
    }

    /// Runs one handshake in memory with a client offering `alpn` and
    /// presenting the pinned certificate (or another one); returns the
    /// protocol the server selected.
    async fn handshake(alpn: &[&[u8]], pinned: bool) -> Result<Option<Vec<u8>>, std::io::Error> {
        let (pinned_cert, pinned_key) = self_signed();
        let server = server_tls(&pinned_cert.pem()).unwrap();
        let (client_cert, client_key) = if pinned {
            (pinned_cert, pinned_key)
        } else {
            self_signed()
        };

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAnyServer(provider)))
            .with_client_auth_cert(
                vec![client_cert.der().clone()],
                PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
            )
            .unwrap();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();

        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.config);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from("localhost").unwrap();
        let (served, connected) = tokio::join!(
            acceptor.accept(server_io),
            connector.connect(name, client_io)
        );
        served?;
        Ok(connected?.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
    }

    #[tokio::test]
    async fn selects_h2_for_a_grpc_client() {
        let selected = handshake(&[b"h2"], true).await.unwrap();
        assert_eq!(selected.as_deref(), Some(&b"h2"[..]));
    }

    #[tokio::test]
    async fn still_accepts_a_client_offering_no_alpn() {
        assert_eq!(handshake(&[], true).await.unwrap(), None);
    }

    #[tokio::test]
    async fn refuses_a_client_certificate_other_than_the_pinned_one() {
        assert!(handshake(&[b"h2"], false).await.is_err());
    }
}
