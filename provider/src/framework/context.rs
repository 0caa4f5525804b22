//! What every operation gets besides its values: the clock, the signal
//! that Terraform asked the provider to stop (or that a change lost its
//! lock), and the provider block's configuration.

use std::sync::{Arc, OnceLock, RwLock};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Environment variable that pins the provider's clock (RFC 3339). It exists
/// for tests of time-dependent plans such as certificate renewal.
pub const FAKE_NOW_VARIABLE: &str = "ETCD_PROVIDER_FAKE_NOW";

use super::value::Value;

#[derive(Clone, Default)]
pub struct Context {
    stop: CancellationToken,
    /// Why `stop` fired, when it was not Terraform's request.
    stop_reason: Arc<OnceLock<String>>,
    provider_config: Arc<RwLock<Value>>,
}

impl Context {
    /// The current time, or the pinned time when `ETCD_PROVIDER_FAKE_NOW` is set.
    pub fn now(&self) -> OffsetDateTime {
        std::env::var(FAKE_NOW_VARIABLE)
            .ok()
            .and_then(|s| {
                OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or_else(OffsetDateTime::now_utc)
    }

    /// Completes when Terraform has asked the provider to stop (StopProvider).
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Why the operation was asked to stop: Terraform's request, unless a
    /// context from [`Context::stopping_also_when`] says otherwise.
    pub fn stop_reason(&self) -> String {
        self.stop_reason
            .get()
            .cloned()
            .unwrap_or_else(|| "stopped by Terraform".into())
    }

    /// This context, that also stops (for `reason`) once `ended` fires: the
    /// operation stops at its next safe point, as on Terraform's request.
    pub fn stopping_also_when(&self, ended: CancellationToken, reason: &str) -> Context {
        let derived = Context {
            stop: self.stop.child_token(),
            stop_reason: Arc::new(OnceLock::new()),
            provider_config: self.provider_config.clone(),
        };
        let (stop, why, reason) = (
            derived.stop.clone(),
            derived.stop_reason.clone(),
            reason.to_string(),
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = ended.cancelled() => {
                    let _ = why.set(reason);
                    stop.cancel();
                }
                _ = stop.cancelled() => {}
            }
        });
        derived
    }

    /// The stop request as a token, for layers that do not take a context.
    pub fn stop_signal(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// The provider block as Terraform configured it (null before
    /// ConfigureProvider, and in tests that never configure).
    pub fn provider_config(&self) -> Value {
        self.provider_config
            .read()
            .map(|config| config.clone())
            .unwrap_or_default()
    }

    pub fn set_provider_config(&self, config: Value) {
        if let Ok(mut slot) = self.provider_config.write() {
            *slot = config;
        }
    }

    /// Asks every operation in flight to stop at its next safe point.
    pub fn request_stop(&self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_derived_context_stops_with_its_reason_and_leaves_its_parent_running() {
        let parent = Context::default();
        let ended = CancellationToken::new();
        let derived = parent.stopping_also_when(ended.clone(), "the lock was lost");
        assert!(!derived.is_stopped());
        ended.cancel();
        derived.stopped().await;
        assert_eq!(derived.stop_reason(), "the lock was lost");
        assert!(!parent.is_stopped());
        assert_eq!(parent.stop_reason(), "stopped by Terraform");
    }

    #[tokio::test]
    async fn a_derived_context_stops_when_terraform_stops_its_parent() {
        let parent = Context::default();
        let derived = parent.stopping_also_when(CancellationToken::new(), "the lock was lost");
        parent.request_stop();
        assert!(derived.is_stopped());
        assert_eq!(derived.stop_reason(), "stopped by Terraform");
    }
}
