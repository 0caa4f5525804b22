//! Phase: authentication on or off, as `etcd_cluster`'s `auth_enabled`
//! says (unset: left as it is).
//!
//! Changes: etcd's `root` user (made when missing, without a password) and
//! its `root` role, and etcd's authentication switch. Users and roles of
//! `etcd_user` and `etcd_role` are not touched.
//!
//! Nothing to do when authentication already is as wanted.
//!
//! Steps, turning it on: 1. the `root` user, granted the `root` role:
//! etcd requires both first. Only a client certificate named `root` logs in
//! as it (the provider's own, and the `etcdctl.crt` of each member host,
//! which the backup job uses). 2. `auth enable`. Turning it off: `auth
//! disable`; users and roles stay for the next time.
//!
//! Why each step is safe: no member restarts and no key changes. Every
//! later operation of the provider (member changes, status, snapshots, the
//! change lock) needs root's rights, which its certificate has, so plans,
//! rolls, CA rotations and backups go on as before.
//!
//! Interrupted: both steps can run again; the next apply finds
//! authentication still off and does them.

use super::ClusterSpec;
use crate::framework::Context;

/// Makes authentication on or off as `enabled` says.
pub async fn set_auth(ctx: &Context, spec: &ClusterSpec, enabled: bool) -> Result<(), String> {
    let api = spec.api(ctx.now()).await?;
    if api.auth_enabled().await? == enabled {
        return Ok(());
    }
    log::info!(
        "turning authentication {}",
        if enabled { "on" } else { "off" }
    );
    if enabled {
        api.enable_auth().await
    } else {
        api.disable_auth().await
    }
}

/// Whether authentication is on; `None` when no member answers.
pub async fn auth_enabled(ctx: &Context, spec: &ClusterSpec) -> Option<bool> {
    spec.api(ctx.now()).await.ok()?.auth_enabled().await.ok()
}
