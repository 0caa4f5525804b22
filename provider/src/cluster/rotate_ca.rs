//! Phase: rotate the cluster to a new CA, over two applies, so that no
//! consumer is ever refused.
//!
//! Changes: every member ends up trusting only the new CA and holding
//! certificates issued by it.
//!
//! Nothing to do for a member already past a pass, judged from its host:
//! the digest of its trusted-CA file and which CA signed its server
//! certificate ([`RotationStep`]).
//!
//! Steps: three passes, each one member at a time (rewrite, restart, wait
//! until the cluster is healthy), each member only while every member is
//! healthy; pass 2 changes only certificates, so it restarts no member
//! (see `in_place`; one that still serves its old certificate is
//! restarted):
//! 1. Trust both CAs, certificates still from the old one. Safe: every
//!    peer still presents an old-CA certificate, which everyone trusts.
//! 2. Certificates from the new CA, both CAs trusted. Safe: after pass 1
//!    every member trusts the new CA, so a new certificate is accepted.
//! 3. Trust only the new CA. Safe: after pass 2 no member presents an
//!    old-CA certificate any more.
//!
//! Pass 1 runs in the apply that brings the new CA ([`trust_new_ca`]); the
//! state then records the old CA as retiring, and `trusted_ca_pem` holds
//! both. Passes 2 and 3 run in the next apply ([`retire_old_ca`]). In
//! between, consumers that take `trusted_ca_pem` and their certificate
//! from the new CA (an `etcd_client_certificate` applied after the cluster)
//! trust both server certificates and are trusted by every member; by
//! pass 3 they hold new-CA certificates.
//!
//! Before the first member changes in each stage, a snapshot
//! (`before-ca-rotation`, see `backups`): no snapshot, no rotation.
//!
//! Interrupted: the state keeps what it had before the stage, so the next
//! plan shows the stage again; the next apply reads where each member is
//! and continues from there.

use std::collections::BTreeMap;
use std::time::Duration;

use super::hosts::{connect, Hosts};
use super::quorum::ensure_all_healthy;
use super::runner::{Record, Runner};
use super::spec::trusted_bundle;
use super::{continue_unless_stopped, ChangeWarning, ClusterSpec};
use crate::framework::Context;
use crate::member::inspect;
use crate::member::install::{self, Fingerprints};

/// How far a member is through a CA rotation, judged from the trusted CA
/// file and the issuer of the server certificate on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RotationStep {
    /// Trusts the old CA only.
    TrustsOld,
    /// Trusts both CAs; its certificates are from the old one.
    TrustsBoth,
    /// Trusts both CAs; its certificates are from the new one.
    NewCertificates,
    /// Trusts the new CA only: done.
    TrustsNew,
}

fn rotation_step(host: &inspect::HostState, new_ca: &str, both: &str) -> RotationStep {
    let trusted = host.files.get("ca.crt").map(String::as_str);
    let new_certificates = crate::pki::issued_by(&host.server_cert_pem, new_ca);
    if new_certificates && trusted == Some(&install::sha256_hex(new_ca.as_bytes())) {
        RotationStep::TrustsNew
    } else if new_certificates {
        RotationStep::NewCertificates
    } else if trusted == Some(&install::sha256_hex(both.as_bytes())) {
        RotationStep::TrustsBoth
    } else {
        RotationStep::TrustsOld
    }
}

/// Stage 1 of a rotation, in the apply that brings the new CA: every
/// member trusts both CAs, its certificates still from the old one (pass
/// 1). `from` has the old CA and key, `to` the new CA.
pub async fn trust_new_ca(
    ctx: &Context,
    from: &ClusterSpec,
    to: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let (old, new) = (&from.ca_cert_pem, &to.ca_cert_pem);
    let both = trusted_bundle(new, Some(old));
    let passes = [(
        RotationStep::TrustsBoth,
        to.with_ca(old, &from.ca_key_pem, &both),
    )];
    run_passes(ctx, &passes, to, &both, fingerprints, timeout, warnings).await
}

/// Stage 2, in the next apply: certificates from the new CA with both
/// trusted (pass 2), then the new CA alone trusted (pass 3). `old_ca` is
/// the retiring CA's certificate; `to` has the new CA and key.
pub async fn retire_old_ca(
    ctx: &Context,
    old_ca: &str,
    to: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let new = &to.ca_cert_pem;
    let both = trusted_bundle(new, Some(old_ca));
    let passes = [
        (
            RotationStep::NewCertificates,
            to.with_ca(new, &to.ca_key_pem, &both),
        ),
        (
            RotationStep::TrustsNew,
            to.with_ca(new, &to.ca_key_pem, new),
        ),
    ];
    run_passes(ctx, &passes, to, &both, fingerprints, timeout, warnings).await
}

/// Runs `passes` in order, each over every member that has not reached
/// it yet (judged from its host), one member at a time, through the
/// runner and its guards. `to` has the new CA; `both` is the bundle of
/// the new and the old.
async fn run_passes(
    ctx: &Context,
    passes: &[(RotationStep, ClusterSpec)],
    to: &ClusterSpec,
    both: &str,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    warnings: &mut Vec<ChangeWarning>,
) -> Result<(), String> {
    let new = &to.ca_cert_pem;
    let hosts = Hosts::default();
    let record = Record {
        fingerprints,
        warnings,
    };
    let rotated = async {
        let mut runner = Runner::new(
            ctx,
            to,
            &hosts,
            timeout,
            record,
            ("CA rotation", "before-ca-rotation"),
        )
        .await?;
        for (step, pass) in passes {
            runner.switch_spec(pass);
            for member in &to.members {
                continue_unless_stopped(ctx, "CA rotation")?;
                let host = connect(member).await?;
                let seen = inspect::observe(&host, &to.settings).await;
                host.close().await;
                let reached = seen.as_ref().map(|state| rotation_step(state, new, both));
                if reached.as_ref().is_ok_and(|reached| reached >= step) {
                    // Past this pass already (an earlier or another run): its
                    // files as they are become the baseline.
                    if let Ok(state) = seen {
                        runner
                            .record()
                            .fingerprints
                            .insert(member.name.clone(), state.files);
                    }
                    continue;
                }
                let api = pass.api(ctx.now()).await?;
                ensure_all_healthy(
                    pass,
                    &api,
                    "CA rotation paused: every member must be healthy first",
                )
                .await?;
                log::info!("CA rotation: member {} to {step:?}", member.name);
                if *step == RotationStep::NewCertificates {
                    // Only certificates change: no restart, if the member
                    // then serves one from the new CA.
                    let from_new_ca = |der: &[u8]| crate::pki::issued_by_der(der, new);
                    runner.renew_or_restart(&member.name, from_new_ca).await?;
                } else {
                    runner.restart(&member.name).await?;
                }
            }
        }
        Ok(())
    }
    .await;
    hosts.close().await;
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{
        create_ca, issue, CaRequest, KeyAlgorithm, KeyedCertificate, LeafRequest, Usage,
    };
    use time::OffsetDateTime;

    fn ca() -> KeyedCertificate {
        let now = OffsetDateTime::now_utc();
        create_ca(&CaRequest {
            // Both CAs have the same name: only the signature tells them apart.
            common_name: "etcd-ca",
            organization: None,
            algorithm: KeyAlgorithm::EcdsaP256,
            not_before: now,
            not_after: now + time::Duration::days(1),
            key_pem: None,
        })
        .unwrap()
    }

    fn host_with(trusted: &str, issuer: &KeyedCertificate) -> inspect::HostState {
        let now = OffsetDateTime::now_utc();
        let server = issue(
            &issuer.cert_pem,
            &issuer.key_pem,
            &LeafRequest {
                organization: None,
                common_name: "e1",
                usage: Usage::Server,
                names: &["10.0.0.11".to_string()],
                algorithm: KeyAlgorithm::EcdsaP256,
                not_before: now,
                not_after: now + time::Duration::hours(1),
            },
        )
        .unwrap();
        inspect::HostState {
            unit: "active".into(),
            files: [(
                "ca.crt".to_string(),
                install::sha256_hex(trusted.as_bytes()),
            )]
            .into(),
            server_cert_pem: server.cert_pem,
            peer_cert_pem: String::new(),
            data: inspect::DataDir::Present,
            backup: Default::default(),
        }
    }

    #[test]
    fn rotation_steps_follow_the_trusted_file_and_the_certificate_issuer() {
        let (old, new) = (ca(), ca());
        let both = format!("{}\n{}\n", new.cert_pem.trim_end(), old.cert_pem.trim_end());
        let step = |trusted: &str, issuer: &KeyedCertificate| {
            rotation_step(&host_with(trusted, issuer), &new.cert_pem, &both)
        };
        assert_eq!(step(&old.cert_pem, &old), RotationStep::TrustsOld);
        assert_eq!(step(&both, &old), RotationStep::TrustsBoth);
        assert_eq!(step(&both, &new), RotationStep::NewCertificates);
        assert_eq!(step(&new.cert_pem, &new), RotationStep::TrustsNew);
        assert!(crate::pki::issued_by(
            &host_with(&both, &old).server_cert_pem,
            &old.cert_pem
        ));
        assert!(!crate::pki::issued_by("not a certificate", &old.cert_pem));
    }
}
