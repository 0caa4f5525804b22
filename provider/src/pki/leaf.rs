//! Certificates issued by a CA: etcd server and peer certificates with the
//! member's addresses as SANs, and client certificates.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use super::key::{parse_key, KeyAlgorithm};
use super::{KeyedCertificate, PkiError};

/// What a certificate is for, which fixes its extended key usages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Serves clients on the client port (server and client auth, as etcd
    /// also dials itself with it).
    Server,
    /// Member-to-member traffic: both ends authenticate.
    Peer,
    /// A client of the cluster (etcdctl, the provider, kube-apiserver).
    Client,
}

pub struct LeafRequest<'a> {
    /// Empty: no common name in the subject.
    pub common_name: &'a str,
    /// The subject's organization (O); for a client, etcd ignores it.
    pub organization: Option<&'a str>,
    pub usage: Usage,
    /// Host names and IP addresses; IPs become IP SANs.
    pub names: &'a [String],
    pub algorithm: KeyAlgorithm,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Issues a certificate signed by the CA in `ca_cert_pem` / `ca_key_pem`.
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    request: &LeafRequest,
) -> Result<KeyedCertificate, PkiError> {
    let ca_key = parse_key(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)
        .map_err(|e| PkiError(format!("the CA certificate cannot be used: {e}")))?;
    let key: KeyPair = request.algorithm.generate()?;
    let mut params = CertificateParams::default();
    // rcgen's default subject has a placeholder name; a client of etcd's
    // HTTP gateway may need a subject without one.
    params.distinguished_name = DistinguishedName::new();
    if !request.common_name.is_empty() {
        params
            .distinguished_name
            .push(DnType::CommonName, request.common_name);
    }
    if let Some(organization) = request.organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
    }
    params.subject_alt_names = request
        .names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(name.clone().try_into().map_err(|_| {
                PkiError(format!("{name:?} is not a valid DNS name"))
            })?)),
        })
        .collect::<Result<_, PkiError>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match request.usage {
        Usage::Server | Usage::Peer => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    params.not_before = request.not_before;
    params.not_after = request.not_after;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(KeyedCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::authority::{create_ca, CaRequest};
    use x509_parser::prelude::parse_x509_pem;

    #[test]
    fn server_certificate_has_ip_and_dns_sans_and_both_auth_usages() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let ca = create_ca(&CaRequest {
            common_name: "ca",
            organization: None,
            algorithm: KeyAlgorithm::EcdsaP256,
            not_before: now,
            not_after: now + ::time::Duration::days(10),
            key_pem: None,
        })
        .unwrap();
        let names = vec!["10.0.0.11".to_string(), "e1.example".to_string()];
        let leaf = issue(
            &ca.cert_pem,
            &ca.key_pem,
            &LeafRequest {
                organization: None,
                common_name: "e1",
                usage: Usage::Server,
                names: &names,
                algorithm: KeyAlgorithm::EcdsaP256,
                not_before: now,
                not_after: now + ::time::Duration::days(1),
            },
        )
        .unwrap();
        let (_, pem) = parse_x509_pem(leaf.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let rendered: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert!(
            rendered.iter().any(|n| n.contains("0a:00:00:0b")),
            "{rendered:?}"
        );
        assert!(
            rendered.iter().any(|n| n.contains("e1.example")),
            "{rendered:?}"
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let (_, ca_pem) = parse_x509_pem(ca.cert_pem.as_bytes()).unwrap();
        let ca_cert = ca_pem.parse_x509().unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    }

    #[test]
    fn a_client_certificate_without_a_name_has_only_its_organization() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let ca = create_ca(&CaRequest {
            common_name: "ca",
            organization: None,
            algorithm: KeyAlgorithm::EcdsaP256,
            not_before: now,
            not_after: now + ::time::Duration::days(10),
            key_pem: None,
        })
        .unwrap();
        let subject = |common_name: &str| {
            let leaf = issue(
                &ca.cert_pem,
                &ca.key_pem,
                &LeafRequest {
                    organization: Some("patroni"),
                    common_name,
                    usage: Usage::Client,
                    names: &[],
                    algorithm: KeyAlgorithm::EcdsaP256,
                    not_before: now,
                    not_after: now + ::time::Duration::days(1),
                },
            )
            .unwrap();
            let (_, pem) = parse_x509_pem(leaf.cert_pem.as_bytes()).unwrap();
            let subject = pem.parse_x509().unwrap().subject().to_string();
            subject
        };
        assert_eq!(subject(""), "O=patroni");
        assert_eq!(subject("app"), "CN=app, O=patroni");
    }
}
