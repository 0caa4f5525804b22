//! `etcd_ca`: a certificate authority for a cluster's server, peer and
//! client certificates. It lives only in Terraform state (its key too,
//! unless the user brings the key as the write-only
//! `private_key_pem_wo`); a CA inside its renewal window plans as a
//! replacement so that drift checks see it.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::Duration;

use super::lifetime::{
    key_algorithm_attribute, mark_renewal, renewal_due, rfc3339, validate_key_and_lifetime,
    DEFAULT_EARLY_RENEWAL_HOURS,
};
use crate::framework::{
    Attribute, AttributePath, Block, Context, Diagnostics, Plan, Private, Resource, Schema, Type,
    Value,
};
use crate::pki::{self, CaRequest, KeyAlgorithm};

pub struct CertificateAuthority;

const DEFAULT_VALIDITY_HOURS: f64 = 87600.0; // ten years

/// The ID of a CA: the SHA-256 fingerprint of its certificate.
fn fingerprint(cert_pem: &str) -> String {
    match x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) {
        Ok((_, pem)) => hex::encode(Sha256::digest(&pem.contents)),
        Err(_) => String::new(),
    }
}

#[async_trait]
impl Resource for CertificateAuthority {
    fn name(&self) -> &'static str {
        "etcd_ca"
    }

    fn schema(&self) -> Schema {
        let block = Block::new(
            "A certificate authority for an etcd cluster. The provider makes its private key and keeps it in \
             Terraform state, or, to keep the key out of state, signs the CA with a key you give as the write-only \
             `private_key_pem_wo` (Terraform or OpenTofu 1.11+) and give to the provider block too. The key never goes to a \
             member host. When the CA enters its renewal window (`early_renewal_hours` before it expires) the \
             plan replaces it, so `terraform plan -detailed-exitcode` exits 2.",
        )
        .attribute(Attribute::computed("id", Type::String, "SHA-256 fingerprint of the CA certificate (hex)."))
        .attribute(
            Attribute::required("common_name", Type::String, "Common name (CN) of the CA certificate's subject.")
                .replace_on_change(),
        )
        .attribute(
            Attribute::optional("organization", Type::String, "Organization (O) of the CA certificate's subject.")
                .replace_on_change(),
        )
        .attribute(key_algorithm_attribute())
        .attribute(
            Attribute::with_default(
                "validity_period_hours",
                Type::Number,
                Value::number(DEFAULT_VALIDITY_HOURS),
                "Hours the CA certificate is valid for, from its creation. Default 87600 (ten years).",
            )
            .replace_on_change(),
        )
        .attribute(Attribute::with_default(
            "early_renewal_hours",
            Type::Number,
            Value::number(DEFAULT_EARLY_RENEWAL_HOURS),
            "How many hours before expiry the CA is due for renewal; from then on every plan replaces it. \
             Must be less than `validity_period_hours`. Default 720 (thirty days). Changing it does not \
             replace the CA.",
        ))
        .attribute(Attribute::computed("cert_pem", Type::String, "The CA certificate, PEM."))
        .attribute(
            Attribute::computed(
                "private_key_pem",
                Type::String,
                "The CA private key, PEM (PKCS#8); null when it came from `private_key_pem_wo`.",
            )
            .sensitive(),
        )
        .attribute(
            Attribute::optional(
                "private_key_pem_wo",
                Type::String,
                "Write-only (Terraform or OpenTofu 1.11+): a PEM private key to make the CA with instead of a new one; it is \
                 in no state or plan file. Its algorithm must be `key_algorithm`. Give the same key to the \
                 provider block (`ca_key_files` or `ca_keys`) so that resources using this CA find it. A \
                 changed key takes effect when `private_key_pem_wo_version` changes.",
            )
            .sensitive()
            .write_only(),
        )
        .attribute(
            Attribute::optional(
                "private_key_pem_wo_version",
                Type::Number,
                "Any number; changing it replaces the CA with one made from the current `private_key_pem_wo`.",
            )
            .replace_on_change(),
        )
        .attribute(Attribute::computed(
            "validity_start_time",
            Type::String,
            "When the certificate becomes valid (RFC 3339).",
        ))
        .attribute(Attribute::computed("validity_end_time", Type::String, "When the certificate expires (RFC 3339)."))
        .attribute(Attribute::computed(
            "ready_for_renewal",
            Type::Bool,
            "True once the CA is inside its renewal window; the next apply replaces it.",
        ));
        Schema { version: 0, block }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Some(name) = config.get("common_name").as_str() {
            if name.trim().is_empty() {
                diags.error_at(
                    AttributePath::root("common_name"),
                    "Empty common name",
                    "Give the CA a common name.",
                );
            }
        }
        validate_key_and_lifetime(config, DEFAULT_VALIDITY_HOURS, "the CA", diags);
        validate_given_key(config, diags);
    }

    async fn modify_plan(&self, ctx: &Context, plan: &mut Plan<'_>) {
        if plan.is_create() || !plan.requires_replace.is_empty() {
            return;
        }
        let early = plan
            .planned
            .get("early_renewal_hours")
            .as_i64()
            .unwrap_or(0);
        if renewal_due(plan.prior, early, ctx.now()) {
            plan.replace_because_of(AttributePath::root("ready_for_renewal"));
        } else {
            plan.planned.set("ready_for_renewal", Value::Bool(false));
            // A CA made from private_key_pem_wo has no key in state, and
            // an update in place does not give it one.
            let stored_key = plan.prior.get("private_key_pem").clone();
            plan.planned.set("private_key_pem", stored_key);
        }
    }

    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let algorithm = KeyAlgorithm::parse(planned.str_or_empty("key_algorithm"))
            .unwrap_or(KeyAlgorithm::EcdsaP256);
        let hours = planned
            .get("validity_period_hours")
            .as_i64()
            .unwrap_or(DEFAULT_VALIDITY_HOURS as i64);
        let now = ctx.now();
        let not_before = now.replace_nanosecond(0).unwrap_or(now);
        let not_after = not_before + Duration::hours(hours);
        let given_key = planned.get("private_key_pem_wo").as_str();
        let request = CaRequest {
            common_name: planned.str_or_empty("common_name"),
            organization: planned.get("organization").as_str(),
            algorithm,
            not_before,
            not_after,
            key_pem: given_key,
        };
        let ca = match pki::create_ca(&request) {
            Ok(ca) => ca,
            Err(e) => {
                diags.error("Could not create the CA", e.to_string());
                return Value::Null;
            }
        };
        log::info!(
            "created CA {:?} ({}, valid until {})",
            request.common_name,
            algorithm.name(),
            rfc3339(not_after)
        );
        let mut state = planned.clone();
        state.set("id", Value::string(fingerprint(&ca.cert_pem)));
        state.set("cert_pem", Value::string(ca.cert_pem));
        let stored_key = match given_key {
            Some(_) => Value::Null,
            None => Value::string(ca.key_pem),
        };
        state.set("private_key_pem", stored_key);
        state.set("validity_start_time", Value::string(rfc3339(not_before)));
        state.set("validity_end_time", Value::string(rfc3339(not_after)));
        state.set("ready_for_renewal", Value::Bool(false));
        state
    }

    async fn read(
        &self,
        ctx: &Context,
        state: &Value,
        _private: &mut Private,
        _diags: &mut Diagnostics,
    ) -> Value {
        let mut state = state.clone();
        mark_renewal(&mut state, ctx.now());
        state
    }

    async fn update(
        &self,
        _ctx: &Context,
        _prior: &Value,
        planned: &Value,
        _private: &mut Private,
        _diags: &mut Diagnostics,
    ) -> Value {
        // Only early_renewal_hours changes in place; the plan already
        // worked out ready_for_renewal.
        planned.clone()
    }

    async fn delete(
        &self,
        _ctx: &Context,
        _prior: &Value,
        _private: &Private,
        _diags: &mut Diagnostics,
    ) {
        // The CA exists only in state.
    }

    async fn import(
        &self,
        ctx: &Context,
        id: &str,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let Some((cert_path, key_path)) = id.split_once(',') else {
            diags.error(
                "Invalid import ID",
                "Import an etcd_ca as CERT_PATH,KEY_PATH: the paths of its PEM certificate and private key \
                 on the machine running Terraform, e.g. /etc/kubernetes/pki/etcd/ca.crt,/etc/kubernetes/pki/etcd/ca.key",
            );
            return Value::Null;
        };
        let read = |path: &str, what: &str, diags: &mut Diagnostics| match std::fs::read_to_string(
            path.trim(),
        ) {
            Ok(text) => Some(text),
            Err(e) => {
                diags.error(
                    format!("Cannot read the CA {what}"),
                    format!("{}: {e}", path.trim()),
                );
                None
            }
        };
        let (Some(cert_pem), Some(key_pem)) = (
            read(cert_path, "certificate", diags),
            read(key_path, "private key", diags),
        ) else {
            return Value::Null;
        };
        let info = match pki::inspect_ca(&cert_pem, &key_pem) {
            Ok(info) => info,
            Err(e) => {
                diags.error(
                    "Cannot import the CA",
                    format!("{cert_path} and {key_path}: {e}"),
                );
                return Value::Null;
            }
        };
        // Normalise the key to PKCS#8, the form this resource writes.
        let key_pem = match pki::key::parse_key(&key_pem) {
            Ok(key) => key.serialize_pem(),
            Err(e) => {
                diags.error("Cannot import the CA", e.to_string());
                return Value::Null;
            }
        };
        let hours = ((info.not_after - info.not_before).whole_minutes() as f64 / 60.0).round();
        let early = DEFAULT_EARLY_RENEWAL_HOURS.min((hours - 1.0).max(0.0));
        let mut state = Value::object([
            ("id", Value::string(fingerprint(&cert_pem))),
            ("common_name", Value::string(info.common_name)),
            (
                "organization",
                info.organization.map(Value::string).unwrap_or(Value::Null),
            ),
            ("key_algorithm", Value::string(info.algorithm.name())),
            ("validity_period_hours", Value::number(hours)),
            ("early_renewal_hours", Value::number(early)),
            ("cert_pem", Value::string(cert_pem)),
            ("private_key_pem", Value::string(key_pem)),
            (
                "validity_start_time",
                Value::string(rfc3339(info.not_before)),
            ),
            ("validity_end_time", Value::string(rfc3339(info.not_after))),
        ]);
        let due = renewal_due(&state, early as i64, ctx.now());
        state.set("ready_for_renewal", Value::Bool(due));
        state
    }
}

/// `private_key_pem_wo`: a private key of the configured algorithm. The
/// key itself is never quoted in a diagnostic.
fn validate_given_key(config: &Value, diags: &mut Diagnostics) {
    let Some(pem) = config.get("private_key_pem_wo").as_str() else {
        return;
    };
    let at = AttributePath::root("private_key_pem_wo");
    let key = match pki::key::parse_key(pem) {
        Ok(key) => key,
        Err(_) => {
            diags.error_at(
                at,
                "Not a private key",
                "private_key_pem_wo must hold a PEM private key.",
            );
            return;
        }
    };
    let Some(configured) = config
        .get("key_algorithm")
        .as_str()
        .map_or(Some(KeyAlgorithm::EcdsaP256), KeyAlgorithm::parse)
    else {
        return; // reported on key_algorithm
    };
    match KeyAlgorithm::of(&key) {
        Some(found) if found == configured => {}
        found => diags.error_at(
            AttributePath::root("key_algorithm"),
            "Key algorithm does not match the given key",
            format!(
                "private_key_pem_wo holds {} key; set key_algorithm = {:?}.",
                found.map_or("an unsupported".to_string(), |a| format!("an {}", a.name())),
                found.map_or("", |a| a.name()),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(validity: f64, early: f64, alg: &str) -> Value {
        Value::object([
            ("common_name", Value::string("ca")),
            ("key_algorithm", Value::string(alg)),
            ("validity_period_hours", Value::number(validity)),
            ("early_renewal_hours", Value::number(early)),
        ])
    }

    fn errors_at(config: &Value) -> Vec<String> {
        let mut diags = Diagnostics::default();
        CertificateAuthority.validate(config, &mut diags);
        diags
            .0
            .iter()
            .filter_map(|d| d.path.as_ref().map(|p| p.to_string()))
            .collect()
    }

    #[test]
    fn bad_inputs_are_reported_on_their_attribute() {
        assert_eq!(
            errors_at(&config(0.0, 0.0, "ECDSA_P256")),
            vec!["validity_period_hours"]
        );
        assert_eq!(
            errors_at(&config(-5.0, 0.0, "ECDSA_P256")),
            vec!["validity_period_hours"]
        );
        assert_eq!(
            errors_at(&config(10.0, 10.0, "ECDSA_P256")),
            vec!["early_renewal_hours"]
        );
        assert_eq!(errors_at(&config(10.0, 1.0, "DSA")), vec!["key_algorithm"]);
        assert!(errors_at(&config(10.0, 1.0, "ED25519")).is_empty());
    }

    #[test]
    fn a_given_key_must_be_a_key_of_the_configured_algorithm() {
        let rsa = KeyAlgorithm::Rsa2048.generate().unwrap().serialize_pem();
        let mut c = config(10.0, 1.0, "RSA_2048");
        c.set("private_key_pem_wo", Value::string(&rsa));
        assert!(errors_at(&c).is_empty());
        c.set("key_algorithm", Value::Null); // the default, ECDSA_P256
        assert_eq!(errors_at(&c), vec!["key_algorithm"]);
        c.set("private_key_pem_wo", Value::string("not a key"));
        assert_eq!(errors_at(&c), vec!["private_key_pem_wo"]);
    }

    #[test]
    fn unknown_values_are_not_judged() {
        let mut c = config(10.0, 1.0, "ECDSA_P256");
        c.set("validity_period_hours", Value::Unknown);
        c.set("early_renewal_hours", Value::number(50.0));
        assert!(errors_at(&c).is_empty());
    }
}
