//! etcd's downgrade protocol (etcd 3.6 and later), through the client API:
//! check that the cluster can go back one minor version, lower the cluster
//! version, and read each member's storage version and the downgrade under
//! way. What a downgrade does step by step is `cluster::downgrade`'s story.

use etcd_client::DowngradeOptions;

use super::{text, Client};

/// Where a member's storage and the cluster's downgrade stand, as the
/// member's status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageState {
    /// The version its data is written for (`3.7.0`); empty before etcd 3.6.
    pub storage_version: String,
    /// The minor version a downgrade under way goes to (`3.6.0`), if any.
    pub downgrading_to: Option<String>,
}

impl Client {
    /// Asks etcd whether the cluster can be downgraded to `target` (`3.6`),
    /// then lowers the cluster version to it (`downgrade validate`, then
    /// `downgrade enable`). Members write their data for `target` from then
    /// on, and members of `target` may join.
    pub async fn enable_downgrade(&self, target: &str) -> Result<(), String> {
        let mut client = self.any_client().await?.maintenance_client();
        for (step, options) in [
            ("validate", DowngradeOptions::Validate(target.to_string())),
            ("enable", DowngradeOptions::Enable(target.to_string())),
        ] {
            client
                .downgrade(options)
                .await
                .map_err(|e| format!("downgrade {step} {target}: {}", text(e)))?;
        }
        Ok(())
    }

    /// Each endpoint's storage state, or why it did not answer.
    pub async fn storage_states(&self) -> Vec<(String, Result<StorageState, String>)> {
        let ask = |endpoint: String| async move {
            let state = Self::bounded(&endpoint, async {
                let mut client = self.client(std::slice::from_ref(&endpoint)).await?;
                let status = client.status().await.map_err(text)?;
                Ok::<_, String>(StorageState {
                    storage_version: status.storage_version().to_string(),
                    downgrading_to: status
                        .downgrade_info()
                        .filter(|info| info.enabled())
                        .map(|info| info.target_version().to_string()),
                })
            })
            .await;
            (endpoint, state)
        };
        futures::future::join_all(self.endpoints.iter().cloned().map(ask)).await
    }
}
