//! etcd's access control: users, roles with key-range permissions, and
//! authentication on or off. The provider's own certificate has the common
//! name `root`, so with authentication on it acts as etcd's `root` user.
//! Existence is judged from the user and role lists, never from an error's
//! text; the only error told apart is by its gRPC code (see
//! [`Client::password_works`] and [`Client::auth_enabled`]).

use etcd_client::{
    AuthClient, Permission, PermissionType, RoleRevokePermissionOptions, UserAddOptions,
};
use tonic::Code;

use super::{text, Client};

/// The user and role etcd requires before authentication is turned on.
pub const ROOT: &str = "root";

/// A user name nobody has, for [`Client::auth_enabled`].
const PROBE_USER: &str = "terraform-provider-etcd: is authentication on?";

/// What a permission allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl Access {
    /// The configuration's words for it.
    pub const NAMES: [&'static str; 3] = ["read", "write", "readwrite"];

    pub fn parse(word: &str) -> Option<Access> {
        match word {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            "readwrite" => Some(Access::ReadWrite),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "readwrite",
        }
    }

    fn wire(self) -> PermissionType {
        match self {
            Access::Read => PermissionType::Read,
            Access::Write => PermissionType::Write,
            Access::ReadWrite => PermissionType::Readwrite,
        }
    }

    fn from_wire(value: i32) -> Access {
        match PermissionType::try_from(value) {
            Ok(PermissionType::Read) => Access::Read,
            Ok(PermissionType::Write) => Access::Write,
            _ => Access::ReadWrite,
        }
    }
}

/// One permission of a role: `key` alone, or the range [key, range_end).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPermission {
    pub key: Vec<u8>,
    /// Empty for a single key.
    pub range_end: Vec<u8>,
    pub access: Access,
}

/// The end of the range of every key that starts with `prefix` (what
/// `etcdctl --prefix` sends): the prefix with its last byte below 0xff
/// incremented; all keys (`\0`) when there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Client {
    async fn auth(&self) -> Result<AuthClient, String> {
        Ok(self.any_client().await?.auth_client())
    }

    /// Whether authentication is on. etcd 3.4 has no call that says so;
    /// a login as a user that does not exist tells by its code: refused as
    /// not enabled (FailedPrecondition) or as failed (InvalidArgument).
    /// (Not as `root`: etcd refuses a password for a no-password user with
    /// an uncoded error.)
    pub async fn auth_enabled(&self) -> Result<bool, String> {
        let mut auth = self.auth().await?;
        match auth.authenticate(PROBE_USER.into(), String::new()).await {
            Ok(_) => Ok(true),
            Err(etcd_client::Error::GRpcStatus(s)) if s.code() == Code::FailedPrecondition => {
                Ok(false)
            }
            Err(etcd_client::Error::GRpcStatus(s)) if s.code() == Code::InvalidArgument => Ok(true),
            Err(e) => Err(text(e)),
        }
    }

    /// Turns authentication on: first the `root` user (no password: it is
    /// reached only by a certificate with that common name) with the `root`
    /// role, which etcd requires; then `auth enable`.
    pub async fn enable_auth(&self) -> Result<(), String> {
        let mut auth = self.auth().await?;
        let users = auth.user_list().await.map_err(text)?;
        if !users.users().iter().any(|u| u == ROOT) {
            auth.user_add(ROOT, "", Some(UserAddOptions::new().with_no_pwd()))
                .await
                .map_err(text)?;
        }
        auth.user_grant_role(ROOT, ROOT).await.map_err(text)?;
        auth.auth_enable().await.map_err(text)?;
        Ok(())
    }

    /// Turns authentication off; users and roles stay.
    pub async fn disable_auth(&self) -> Result<(), String> {
        self.auth().await?.auth_disable().await.map_err(text)?;
        Ok(())
    }

    /// A role's permissions, or `None` when there is no such role.
    pub async fn role(&self, name: &str) -> Result<Option<Vec<KeyPermission>>, String> {
        let mut auth = self.auth().await?;
        let roles = auth.role_list().await.map_err(text)?;
        if !roles.roles().iter().any(|r| r == name) {
            return Ok(None);
        }
        let role = auth.role_get(name).await.map_err(text)?;
        Ok(Some(
            role.permissions()
                .iter()
                .map(|p| KeyPermission {
                    key: p.key().to_vec(),
                    range_end: p.range_end().to_vec(),
                    access: Access::from_wire(p.get_type()),
                })
                .collect(),
        ))
    }

    /// Makes role `name` exist with exactly `wanted`: permissions it lacks
    /// granted, others revoked (a permission on the same range with other
    /// access is replaced by the grant).
    pub async fn put_role(&self, name: &str, wanted: &[KeyPermission]) -> Result<(), String> {
        let current = match self.role(name).await? {
            Some(current) => current,
            None => {
                self.auth().await?.role_add(name).await.map_err(text)?;
                Vec::new()
            }
        };
        let mut auth = self.auth().await?;
        for p in wanted.iter().filter(|p| !current.contains(p)) {
            let grant = Permission::new(p.access.wire(), p.key.clone());
            let grant = if p.range_end.is_empty() {
                grant
            } else {
                grant.with_range_end(p.range_end.clone())
            };
            auth.role_grant_permission(name, grant)
                .await
                .map_err(text)?;
        }
        let same_range =
            |a: &KeyPermission, b: &KeyPermission| a.key == b.key && a.range_end == b.range_end;
        for p in current
            .iter()
            .filter(|p| !wanted.iter().any(|w| same_range(w, p)))
        {
            let options = (!p.range_end.is_empty())
                .then(|| RoleRevokePermissionOptions::new().with_range_end(p.range_end.clone()));
            auth.role_revoke_permission(name, p.key.clone(), options)
                .await
                .map_err(text)?;
        }
        Ok(())
    }

    /// Deletes role `name`; nothing to do when it is gone.
    pub async fn delete_role(&self, name: &str) -> Result<(), String> {
        if self.role(name).await?.is_some() {
            self.auth().await?.role_delete(name).await.map_err(text)?;
        }
        Ok(())
    }

    /// A user's roles, or `None` when there is no such user.
    pub async fn user(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        let mut auth = self.auth().await?;
        let users = auth.user_list().await.map_err(text)?;
        if !users.users().iter().any(|u| u == name) {
            return Ok(None);
        }
        let user = auth.user_get(name).await.map_err(text)?;
        Ok(Some(user.roles().to_vec()))
    }

    /// Makes user `name` exist with exactly `roles`. Without a password it
    /// is created with etcd's no-password option (reached only by a
    /// certificate with its name as common name); with one, the password
    /// is set when the user is created or `set_password` is true.
    pub async fn put_user(
        &self,
        name: &str,
        password: Option<&str>,
        set_password: bool,
        roles: &[String],
    ) -> Result<(), String> {
        let mut auth = self.auth().await?;
        let current = match self.user(name).await? {
            Some(current) => {
                if let (Some(password), true) = (password, set_password) {
                    auth.user_change_password(name, password)
                        .await
                        .map_err(text)?;
                }
                current
            }
            None => {
                let options = password
                    .is_none()
                    .then(|| UserAddOptions::new().with_no_pwd());
                auth.user_add(name, password.unwrap_or_default(), options)
                    .await
                    .map_err(text)?;
                Vec::new()
            }
        };
        for role in roles.iter().filter(|r| !current.contains(r)) {
            auth.user_grant_role(name, role.as_str())
                .await
                .map_err(text)?;
        }
        for role in current.iter().filter(|r| !roles.contains(r)) {
            auth.user_revoke_role(name, role.as_str())
                .await
                .map_err(text)?;
        }
        Ok(())
    }

    /// Whether `password` logs `name` in; `None` while authentication is
    /// off (etcd then checks no password).
    pub async fn password_works(&self, name: &str, password: &str) -> Result<Option<bool>, String> {
        let mut auth = self.auth().await?;
        match auth.authenticate(name.into(), password.into()).await {
            Ok(_) => Ok(Some(true)),
            Err(etcd_client::Error::GRpcStatus(s)) if s.code() == Code::InvalidArgument => {
                Ok(Some(false))
            }
            Err(etcd_client::Error::GRpcStatus(s)) if s.code() == Code::FailedPrecondition => {
                Ok(None)
            }
            Err(e) => Err(text(e)),
        }
    }

    /// Deletes user `name`; nothing to do when it is gone.
    pub async fn delete_user(&self, name: &str) -> Result<(), String> {
        if self.user(name).await?.is_some() {
            self.auth().await?.user_delete(name).await.map_err(text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_what_etcdctl_sends() {
        assert_eq!(prefix_end(b"/app/"), b"/app0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn access_words_round_trip() {
        for word in Access::NAMES {
            assert_eq!(Access::parse(word).unwrap().name(), word);
            let access = Access::parse(word).unwrap();
            assert_eq!(Access::from_wire(access.wire() as i32), access);
        }
        assert_eq!(Access::parse("all"), None);
    }
}
