//! What every operation gets besides its values: the clock, the signal
//! that Terraform asked the provider to stop, and the provider block's
//! configuration.

use std::sync::{Arc, RwLock};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Environment variable that pins the provider's clock (RFC 3339). It exists
/// for tests of time-dependent plans such as certificate renewal.
pub const FAKE_NOW_VARIABLE: &str = "ETCD_PROVIDER_FAKE_NOW";

use super::value::Value;

#[derive(Clone, Default)]
pub struct Context {
    stop: CancellationToken,
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
