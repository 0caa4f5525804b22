//! Certificates: key algorithms, certificate authorities and the member and
//! client certificates issued from them. Pure functions of their inputs and
//! the time they are given; nothing here touches a host or the clock.

pub mod authority;
pub mod key;
pub mod leaf;

use std::fmt;

pub use authority::{create_ca, inspect_ca, CaRequest};
pub use key::KeyAlgorithm;
pub use leaf::{issue, LeafRequest, Usage};

/// A certificate with its private key, both PEM. The key is a secret: it is
/// never logged and never formatted by `Debug`.
#[derive(Clone, PartialEq)]
pub struct KeyedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for KeyedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<secret>")
            .finish()
    }
}

/// The validity window of a certificate issued at `now` for `hours`. `now`
/// may be the pinned test clock (ETCD_PROVIDER_FAKE_NOW): the window never
/// starts after the real time, so no certificate is ever not yet valid for
/// the hosts, and it starts five minutes early for their clock skew.
/// The longest certificate lifetime (and renewal window) accepted, in
/// hours: 100 years. Larger values are typos and would overflow time
/// arithmetic.
pub const MAX_VALIDITY_HOURS: i64 = 876_000;

pub fn validity_window(
    now: time::OffsetDateTime,
    hours: i64,
) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let start = now.min(time::OffsetDateTime::now_utc()) - time::Duration::minutes(5);
    (start, now + time::Duration::hours(hours))
}

/// When a PEM certificate expires, if it parses.
pub fn not_after(cert_pem: &str) -> Option<time::OffsetDateTime> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    not_after_der(&pem.contents)
}

/// The common name (CN) of a PEM certificate's subject, if it has one.
pub fn common_name(cert_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).ok()?;
    let name = cert.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_string)
}

/// When a DER certificate expires, if it parses.
pub fn not_after_der(cert_der: &[u8]) -> Option<time::OffsetDateTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.validity().not_after.to_datetime())
}

/// Checks a TLS handshake signature with `provider`'s algorithms (TLS 1.3
/// or 1.2), for the rustls certificate verifiers of the plugin connection
/// and of [`crate::etcd::served_certificate`].
pub fn handshake_signature(
    provider: &rustls::crypto::CryptoProvider,
    tls13: bool,
    message: &[u8],
    cert: &rustls::pki_types::CertificateDer<'_>,
    dss: &rustls::DigitallySignedStruct,
) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
    let algorithms = &provider.signature_verification_algorithms;
    if tls13 {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    } else {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }
}

/// Whether the certificate `cert_pem` carries a valid signature of the CA
/// `ca_cert_pem` (false when either does not parse).
pub fn issued_by(cert_pem: &str, ca_cert_pem: &str) -> bool {
    x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .is_ok_and(|(_, cert)| issued_by_der(&cert.contents, ca_cert_pem))
}

/// [`issued_by`] for a DER certificate (as a TLS handshake shows it).
pub fn issued_by_der(cert_der: &[u8], ca_cert_pem: &str) -> bool {
    let Ok((_, ca)) = x509_parser::pem::parse_x509_pem(ca_cert_pem.as_bytes()) else {
        return false;
    };
    let (Ok((_, cert)), Ok(ca)) = (
        x509_parser::parse_x509_certificate(cert_der),
        ca.parse_x509(),
    ) else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// What went wrong with certificate material, in words for a diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct PkiError(pub String);

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PkiError {}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> PkiError {
        PkiError(e.to_string())
    }
}
