//! The provider block, which exists to keep CA private keys out of state:
//! `ca_key_files` and `ca_keys` give the provider CA keys that every
//! resource with a `ca_cert_pem` uses when its own `ca_key_pem` is unset.
//! Terraform stores neither the provider block nor values derived from it
//! in state or plan files. A resource picks the key whose public half is in
//! its CA certificate, so a CA rotation finds the old and the new key.

use crate::framework::provider::ProviderBlock;
use crate::framework::{Attribute, AttributePath, Block, Context, Diagnostics, Plan, Type, Value};
use crate::pki;

/// Colon-separated CA key files read in addition to `ca_key_files`.
pub const KEY_FILES_VARIABLE: &str = "ETCD_CA_KEY_FILES";

pub fn provider_block() -> ProviderBlock {
    let block = Block::new(
        "CA private keys for resources that leave `ca_key_pem` unset. Terraform keeps the provider block \
         out of state and plan files, so a key given here is never stored: a resource finds the key that \
         belongs to its `ca_cert_pem` here whenever it signs a certificate or connects to its cluster. \
         During a CA rotation give both the old and the new CA's key.",
    )
    .attribute(Attribute::optional(
        "ca_key_files",
        Type::list(Type::String),
        "Paths of PEM CA private keys on the machine running Terraform (read at each run, never stored). \
         The environment variable `ETCD_CA_KEY_FILES` adds more (colon-separated).",
    ))
    .attribute(
        Attribute::optional(
            "ca_keys",
            Type::list(Type::String),
            "PEM CA private keys, for example from an ephemeral resource or an ephemeral variable.",
        )
        .sensitive(),
    );
    ProviderBlock {
        block,
        check: check_provider_block,
    }
}

/// Every key given must be readable and a private key. Unknown values
/// (ValidateProviderConfig) are judged later.
fn check_provider_block(config: &Value, diags: &mut Diagnostics) {
    for (i, path) in config.get("ca_key_files").as_list().iter().enumerate() {
        let Some(path) = path.as_str() else { continue };
        let at = AttributePath::root("ca_key_files").index(i);
        match std::fs::read_to_string(path) {
            Err(e) => diags.error_at(at, "Cannot read a CA key file", format!("{path}: {e}")),
            Ok(pem) => {
                if let Err(e) = pki::key::parse_key(&pem) {
                    diags.error_at(at, "Not a private key", format!("{path}: {e}"));
                }
            }
        }
    }
    for (i, pem) in config.get("ca_keys").as_list().iter().enumerate() {
        let Some(pem) = pem.as_str() else { continue };
        if let Err(e) = pki::key::parse_key(pem) {
            diags.error_at(
                AttributePath::root("ca_keys").index(i),
                "Not a private key",
                e.to_string(),
            );
        }
    }
    for path in env_key_files() {
        if let Err(e) = std::fs::read_to_string(&path) {
            diags.error(
                "Cannot read a CA key file",
                format!("{path} (from {KEY_FILES_VARIABLE}): {e}"),
            );
        }
    }
}

fn env_key_files() -> Vec<String> {
    std::env::var(KEY_FILES_VARIABLE)
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every key the provider was given, PEM.
fn provider_keys(ctx: &Context) -> Vec<String> {
    let config = ctx.provider_config();
    let files = config
        .get("ca_key_files")
        .as_strings()
        .into_iter()
        .chain(env_key_files())
        .filter_map(|path| std::fs::read_to_string(path).ok());
    config
        .get("ca_keys")
        .as_strings()
        .into_iter()
        .chain(files)
        .collect()
}

/// The key of the CA certificate `ca_cert_pem`: `own_key` when the
/// resource has one, else the provider's key that fits the certificate.
pub fn key_for(ctx: &Context, ca_cert_pem: &str, own_key: Option<&str>) -> Option<String> {
    if let Some(key) = own_key {
        return Some(key.to_string());
    }
    provider_keys(ctx)
        .into_iter()
        .find(|key| pki::inspect_ca(ca_cert_pem, key).is_ok())
}

/// The CA key of a resource value with `ca_cert_pem` and `ca_key_pem`
/// (empty when there is none: planning has already said so).
pub fn ca_key(ctx: &Context, value: &Value) -> String {
    key_for(
        ctx,
        value.str_or_empty("ca_cert_pem"),
        value.get("ca_key_pem").as_str(),
    )
    .unwrap_or_default()
}

/// At plan time: the planned CA certificate must have a key, in the
/// resource or in the provider block.
pub fn require_key(ctx: &Context, plan: &mut Plan<'_>) {
    require_key_of(ctx, &plan.planned.clone(), "the CA in ca_cert_pem", plan);
}

/// At plan time: `value` (planned, or the prior state of a rotation) must
/// have a key for its CA; `which` names the CA in the error.
pub fn require_key_of(ctx: &Context, value: &Value, which: &str, plan: &mut Plan<'_>) {
    let Some(cert) = value.get("ca_cert_pem").as_str() else {
        return; // unknown until apply: checked when it is known
    };
    if value.get("ca_key_pem").is_unknown() {
        return;
    }
    if key_for(ctx, cert, value.get("ca_key_pem").as_str()).is_none() {
        plan.diags.error_at(
            AttributePath::root("ca_key_pem"),
            "No private key for the CA",
            format!(
                "Nothing gives the private key of {which}: set ca_key_pem, or give the key to the provider \
                 (ca_key_files, ca_keys or {KEY_FILES_VARIABLE}), where it is not stored in state."
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CaRequest, KeyAlgorithm};

    fn ca() -> (String, String) {
        let now = time::OffsetDateTime::now_utc();
        let ca = pki::create_ca(&CaRequest {
            common_name: "ca",
            organization: None,
            algorithm: KeyAlgorithm::EcdsaP256,
            not_before: now,
            not_after: now + time::Duration::hours(1),
            key_pem: None,
        })
        .unwrap();
        (ca.cert_pem, ca.key_pem)
    }

    #[test]
    fn the_provider_key_that_fits_the_certificate_is_chosen() {
        let (cert_a, key_a) = ca();
        let (cert_b, key_b) = ca();
        let ctx = Context::default();
        assert_eq!(key_for(&ctx, &cert_a, None), None);
        ctx.set_provider_config(Value::object([(
            "ca_keys",
            Value::strings([key_b.clone(), key_a.clone()]),
        )]));
        assert_eq!(key_for(&ctx, &cert_a, None), Some(key_a));
        assert_eq!(key_for(&ctx, &cert_b, None), Some(key_b.clone()));
        assert_eq!(key_for(&ctx, &cert_a, Some("own")), Some("own".into()));
        let (cert_c, _) = ca();
        assert_eq!(key_for(&ctx, &cert_c, None), None);
    }

    #[test]
    fn unreadable_files_and_non_keys_are_reported_on_their_element() {
        let dir = std::env::temp_dir().join(format!("ca-keys-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_a_key = dir.join("not-a-key.pem");
        std::fs::write(&not_a_key, "hello").unwrap();
        let config = Value::object([
            (
                "ca_key_files",
                Value::strings([
                    not_a_key.display().to_string(),
                    dir.join("missing.pem").display().to_string(),
                ]),
            ),
            ("ca_keys", Value::strings([ca().1, "nope".to_string()])),
        ]);
        let mut diags = Diagnostics::default();
        check_provider_block(&config, &mut diags);
        let paths: Vec<String> = diags
            .0
            .iter()
            .filter_map(|d| d.path.as_ref().map(|p| p.to_string()))
            .collect();
        assert_eq!(paths, ["ca_key_files[0]", "ca_key_files[1]", "ca_keys[1]"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
