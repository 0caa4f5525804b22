//! The plan of a CA rotation: `retiring_ca_cert_pem` (the CA members still
//! trust until the rotation finishes) and `trusted_ca_pem` (what they
//! trust now, for consumers). A new CA takes two applies: the first has
//! every member trust both, the second moves them to the new CA alone
//! (see `cluster/rotate_ca.rs`).

use crate::cluster::trusted_bundle;
use crate::framework::{AttributePath, Plan, Value};

/// The bundle a state's members trust.
pub(super) fn trusted(value: &Value) -> String {
    trusted_bundle(
        value.str_or_empty("ca_cert_pem"),
        value.get("retiring_ca_cert_pem").as_str(),
    )
}

/// Plans the two attributes from the CA in the configuration and the
/// rotation the prior state may be in.
pub(super) fn plan_ca(plan: &mut Plan<'_>) {
    let ca = plan.planned.get("ca_cert_pem").clone();
    let prior_ca = plan.prior.get("ca_cert_pem").clone();
    let prior_retiring = plan.prior.get("retiring_ca_cert_pem").clone();
    let new_ca = !plan.is_create() && !prior_ca.is_null() && ca != prior_ca;
    let retiring = if new_ca {
        if !prior_retiring.is_null() {
            plan.diags.error_at(
                AttributePath::root("ca_cert_pem"),
                "CA rotation still finishing",
                "The members still trust the CA before the current one (retiring_ca_cert_pem). Apply once \
                 more with the current CA, which finishes that rotation, then change the CA.",
            );
        }
        prior_ca
    } else {
        Value::Null
    };
    let trusted = match ca.as_str() {
        Some(ca) => Value::string(trusted_bundle(ca, retiring.as_str())),
        None => Value::Unknown,
    };
    plan.planned.set("retiring_ca_cert_pem", retiring);
    plan.planned.set("trusted_ca_pem", trusted);
}
