//! What `etcd_ca` and `etcd_client_certificate` share: the key algorithm
//! attribute, the lifetime checks and the renewal window (from
//! `early_renewal_hours` before expiry every plan reissues).

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::framework::{Attribute, AttributePath, Diagnostics, Type, Value};
use crate::pki::{KeyAlgorithm, MAX_VALIDITY_HOURS};

pub(crate) const DEFAULT_EARLY_RENEWAL_HOURS: f64 = 720.0; // thirty days

/// The validity window a state records, and whether it is time to renew.
pub(crate) fn renewal_due(state: &Value, early_renewal_hours: i64, now: OffsetDateTime) -> bool {
    let end = state
        .get("validity_end_time")
        .as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
    match end {
        Some(end) => now >= end - Duration::hours(early_renewal_hours),
        None => false,
    }
}

/// Sets `ready_for_renewal` from the state's expiry and its
/// `early_renewal_hours`, as read does.
pub(crate) fn mark_renewal(state: &mut Value, now: OffsetDateTime) {
    let early = state.get("early_renewal_hours").as_i64().unwrap_or(0);
    let due = renewal_due(state, early, now);
    state.set("ready_for_renewal", Value::Bool(due));
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// `key_algorithm`: a new one replaces the key pair.
pub(crate) fn key_algorithm_attribute() -> Attribute {
    Attribute::with_default(
        "key_algorithm",
        Type::String,
        Value::string(KeyAlgorithm::EcdsaP256.name()),
        "Key algorithm: `ECDSA_P256` (default), `ECDSA_P384`, `RSA_2048`, `RSA_4096` or `ED25519`.",
    )
    .replace_on_change()
}

/// `key_algorithm`, `validity_period_hours` and `early_renewal_hours` of a
/// key pair with a lifetime (`what`: the CA, the certificate), whose
/// validity defaults to `default_validity` hours.
pub(crate) fn validate_key_and_lifetime(
    config: &Value,
    default_validity: f64,
    what: &str,
    diags: &mut Diagnostics,
) {
    if let Some(alg) = config.get("key_algorithm").as_str() {
        if KeyAlgorithm::parse(alg).is_none() {
            diags.error_at(
                AttributePath::root("key_algorithm"),
                "Unknown key algorithm",
                format!("{alg:?} is not one of {}.", KeyAlgorithm::names()),
            );
        }
    }
    let validity = config.get("validity_period_hours");
    let early = config.get("early_renewal_hours");
    if let Some(hours) = validity.as_f64() {
        if hours <= 0.0 || hours > MAX_VALIDITY_HOURS as f64 || validity.as_i64().is_none() {
            diags.error_at(
                AttributePath::root("validity_period_hours"),
                "Invalid validity period",
                format!(
                    "validity_period_hours must be a whole number of hours from 1 to {MAX_VALIDITY_HOURS} \
                     (100 years), not {hours}."
                ),
            );
        }
    }
    if let Some(hours) = early.as_f64() {
        if hours < 0.0 || hours > MAX_VALIDITY_HOURS as f64 || early.as_i64().is_none() {
            diags.error_at(
                AttributePath::root("early_renewal_hours"),
                "Invalid early renewal",
                format!(
                    "early_renewal_hours must be a whole number of hours from 0 to {MAX_VALIDITY_HOURS}, not {hours}."
                ),
            );
        }
    }
    if validity.is_wholly_known() && early.is_wholly_known() {
        let validity = validity.as_f64().unwrap_or(default_validity);
        let early = early.as_f64().unwrap_or(DEFAULT_EARLY_RENEWAL_HOURS);
        if early >= validity && validity > 0.0 {
            diags.error_at(
                AttributePath::root("early_renewal_hours"),
                "Early renewal not shorter than validity",
                format!(
                    "early_renewal_hours ({early}) must be less than validity_period_hours ({validity}); \
                     otherwise {what} would be due for renewal as soon as it is made."
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_window_starts_early_renewal_hours_before_expiry() {
        let end = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let state = Value::object([("validity_end_time", Value::string(rfc3339(end)))]);
        assert!(!renewal_due(&state, 10, end - Duration::hours(11)));
        assert!(renewal_due(&state, 10, end - Duration::hours(10)));
        assert!(renewal_due(&state, 0, end));
    }
}
