//! Certificate authorities: making a new one and checking an existing one.

use ::time::OffsetDateTime;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose, PublicKeyData};
use x509_parser::prelude::{parse_x509_pem, AttributeTypeAndValue};

use super::key::{parse_key, KeyAlgorithm};
use super::{KeyedCertificate, PkiError};

pub struct CaRequest<'a> {
    pub common_name: &'a str,
    pub organization: Option<&'a str>,
    pub algorithm: KeyAlgorithm,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The CA's key, PEM; a new key of `algorithm` when `None`.
    pub key_pem: Option<&'a str>,
}

/// Creates a self-signed CA that may sign certificates and CRLs.
pub fn create_ca(request: &CaRequest) -> Result<KeyedCertificate, PkiError> {
    let key = match request.key_pem {
        Some(pem) => parse_key(pem)?,
        None => request.algorithm.generate()?,
    };
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, request.common_name);
    if let Some(org) = request.organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = request.not_before;
    params.not_after = request.not_after;
    let cert = params.self_signed(&key)?;
    Ok(KeyedCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What an existing CA certificate says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct CaInfo {
    pub common_name: String,
    pub organization: Option<String>,
    pub algorithm: KeyAlgorithm,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Checks that `cert_pem` is a CA certificate and `key_pem` its private key.
pub fn inspect_ca(cert_pem: &str, key_pem: &str) -> Result<CaInfo, PkiError> {
    let (_, pem) = parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| PkiError(format!("not a PEM certificate: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| PkiError(format!("not a valid X.509 certificate: {e}")))?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .map(|bc| bc.value.ca)
        .unwrap_or(false);
    if !is_ca {
        return Err(PkiError(
            "the certificate is not a CA (basic constraints CA:FALSE)".into(),
        ));
    }
    let key = parse_key(key_pem)?;
    if key.subject_public_key_info() != cert.tbs_certificate.subject_pki.raw {
        return Err(PkiError(
            "the private key does not belong to the certificate".into(),
        ));
    }
    let algorithm = KeyAlgorithm::of(&key)
        .ok_or_else(|| PkiError("the key's algorithm is not supported".into()))?;
    let subject = cert.subject();
    let text =
        |a: Option<&AttributeTypeAndValue>| a.and_then(|a| a.as_str().ok()).map(str::to_string);
    let info = CaInfo {
        common_name: text(subject.iter_common_name().next()).unwrap_or_default(),
        organization: text(subject.iter_organization().next()),
        algorithm,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
    };
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(algorithm: KeyAlgorithm) -> CaRequest<'static> {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        CaRequest {
            common_name: "etcd-ca",
            organization: Some("infra"),
            algorithm,
            not_before: now,
            not_after: now + ::time::Duration::hours(24),
            key_pem: None,
        }
    }

    #[test]
    fn created_ca_inspects_back_to_its_request() {
        let ca = create_ca(&request(KeyAlgorithm::EcdsaP384)).unwrap();
        let info = inspect_ca(&ca.cert_pem, &ca.key_pem).unwrap();
        assert_eq!(info.common_name, "etcd-ca");
        assert_eq!(info.organization.as_deref(), Some("infra"));
        assert_eq!(info.algorithm, KeyAlgorithm::EcdsaP384);
        assert_eq!(
            info.not_after - info.not_before,
            ::time::Duration::hours(24)
        );
    }

    #[test]
    fn mismatched_key_is_refused() {
        let a = create_ca(&request(KeyAlgorithm::EcdsaP256)).unwrap();
        let b = create_ca(&request(KeyAlgorithm::EcdsaP256)).unwrap();
        let err = inspect_ca(&a.cert_pem, &b.key_pem).unwrap_err();
        assert!(err.0.contains("does not belong"), "{err}");
    }

    #[test]
    fn malformed_pem_is_refused() {
        assert!(inspect_ca("hello", "world").is_err());
        let a = create_ca(&request(KeyAlgorithm::Ed25519)).unwrap();
        assert!(inspect_ca(
            &a.cert_pem,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }
}
