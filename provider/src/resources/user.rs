//! `etcd_user`: a user of etcd's access control and its roles. Without a
//! password the user is created with etcd's no-password option: only a
//! client certificate whose common name is the user's name logs in (see
//! `etcd_client_certificate`). Read reports the live roles, and checks a
//! configured password by logging in with it, so a role granted by hand or
//! a changed password is drift that apply reverts. Removing the password
//! replaces the user (a certificate-only user is made with the option);
//! giving one to a certificate-only user makes it again. A password given
//! as `password_wo` (write-only, Terraform or OpenTofu 1.11+) is in no state or plan
//! file: it is set when the user is made and whenever
//! `password_wo_version` changes, and cannot be checked for drift. Import
//! by `ENDPOINTS,CA_CERT_PATH,CA_KEY_PATH,NAME`.

use async_trait::async_trait;

use super::connection;
use crate::etcd::auth::ROOT;
use crate::framework::{
    Attribute, AttributePath, Block, Context, Diagnostics, Plan, Private, Resource, Schema, Type,
    Value,
};

pub struct EtcdUser;

fn schema_block() -> Block {
    let block = Block::new(
        "A user of etcd's access control with its roles (`etcd_role`). A user without `password` logs in only with \
         a client certificate whose common name is its name (`etcd_client_certificate`); one with a password \
         logs in with it too. Clients of etcd's HTTP gateway (`/v3/...`, e.g. Patroni's `etcd3`) must use a \
         password: etcd does not take the certificate's name there. Roles granted out of band, and a password \
         changed out of band, are drift that apply reverts. Enforced once the cluster's `auth_enabled` is true.",
    )
    .attribute(Attribute::computed("id", Type::String, "The user's name."))
    .attribute(
        Attribute::required("name", Type::String, "The user's name (a certificate user's common name). `root` belongs to the cluster.")
            .replace_on_change(),
    )
    .attribute(
        Attribute::optional(
            "password",
            Type::String,
            "The user's password. Unset: a certificate-only user (etcd's no-password option). Removing it later \
             replaces the user.",
        )
        .sensitive(),
    )
    .attribute(
        Attribute::optional(
            "password_wo",
            Type::String,
            "Write-only (Terraform or OpenTofu 1.11+): the user's password, kept in no state or plan file. Set when the user \
             is made and whenever `password_wo_version` changes; not checked for drift. Instead of `password`.",
        )
        .sensitive()
        .write_only(),
    )
    .attribute(Attribute::optional(
        "password_wo_version",
        Type::Number,
        "Any number, required with `password_wo`; changing it sets the user's password to the current \
         `password_wo`.",
    ))
    .attribute(Attribute::optional("roles", Type::list(Type::String), "Names of the roles granted to the user (order does not matter)."));
    connection::attributes(
        block,
        "Client URLs (`https://HOST:PORT`) of the cluster's members, e.g. `etcd_cluster.main.client_endpoints`.",
    )
}

fn validate_user(config: &Value, diags: &mut Diagnostics) {
    match config.get("name").as_str() {
        Some(ROOT) => diags.error_at(
            AttributePath::root("name"),
            "The root user belongs to the cluster",
            "etcd's root user is set up by etcd_cluster's auth_enabled and is the provider's own identity; give \
             this user another name.",
        ),
        Some("") => diags.error_at(AttributePath::root("name"), "Empty user name", "Give the user a name."),
        _ => {}
    }
    for name in ["password", "password_wo"] {
        if config.get(name).as_str() == Some("") {
            diags.error_at(
                AttributePath::root(name),
                "Empty password",
                format!("Leave {name} unset for a certificate-only user."),
            );
        }
    }
    let (password, write_only) = (config.get("password"), config.get("password_wo"));
    if !password.is_null() && !write_only.is_null() {
        diags.error_at(
            AttributePath::root("password_wo"),
            "Two passwords",
            "Give the password either as password or as password_wo, not both.",
        );
    }
    let version = config.get("password_wo_version");
    if write_only.as_str().is_some() && version.is_null() {
        diags.error_at(
            AttributePath::root("password_wo_version"),
            "Missing password_wo_version",
            "Set password_wo_version with password_wo (any number): changing it sets the password again, as \
             Terraform cannot tell that a write-only value changed.",
        );
    }
    let roles = config.get("roles");
    if roles.is_wholly_known() {
        let roles = roles.as_strings();
        for (i, role) in roles.iter().enumerate() {
            if role.is_empty() || roles[..i].contains(role) {
                diags.error_at(
                    AttributePath::root("roles").index(i),
                    "Invalid role",
                    format!("{role:?} is empty or listed twice."),
                );
            }
        }
    }
}

/// The live roles in the order of `prior`'s list when they are the same
/// set (order means nothing to etcd), sorted otherwise.
fn roles_value(prior: &Value, mut live: Vec<String>) -> Value {
    let mut configured = prior.get("roles").as_strings();
    let unordered = |v: &mut Vec<String>| {
        let mut sorted = v.clone();
        sorted.sort();
        sorted
    };
    if unordered(&mut configured) == unordered(&mut live) {
        return prior.get("roles").clone();
    }
    live.sort();
    if live.is_empty() && prior.get("roles").is_null() {
        return Value::Null;
    }
    Value::strings(live)
}

/// Makes the user as planned. A user that gets a password where the state
/// had none may be a no-password user (etcd then ignores a password) or an
/// imported one: the password is set, and if it does not log in (or
/// cannot be tried while auth is off) the user is made again with it.
async fn put(ctx: &Context, prior: &Value, planned: &Value, diags: &mut Diagnostics) -> Value {
    let name = planned.str_or_empty("name");
    // `planned` has the write-only value (never kept in state).
    let password = planned
        .get("password")
        .as_str()
        .or_else(|| planned.get("password_wo").as_str());
    let versioned = |v: &Value| v.get("password_wo_version").clone();
    let set_password = prior.is_null()
        || prior.get("password") != planned.get("password")
        || versioned(prior) != versioned(planned);
    let had_password = !prior.get("password").is_null() || !versioned(prior).is_null();
    let gains_password = !prior.is_null() && !had_password && password.is_some();
    let roles = planned.get("roles").as_strings();
    let done = match connection::client(ctx, planned) {
        Ok(cluster) => {
            let mut done = cluster.put_user(name, password, set_password, &roles).await;
            if let (Ok(()), true, Some(password)) = (&done, gains_password, password) {
                if cluster.password_works(name, password).await != Ok(Some(true)) {
                    done = match cluster.delete_user(name).await {
                        Ok(()) => cluster.put_user(name, Some(password), true, &roles).await,
                        Err(e) => Err(e),
                    };
                }
            }
            done
        }
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        diags.error(format!("Could not set user {name}"), e);
        return if prior.is_null() {
            Value::Null
        } else {
            prior.clone()
        };
    }
    let mut state = planned.clone();
    state.set("id", Value::string(name));
    state
}

#[async_trait]
impl Resource for EtcdUser {
    fn name(&self) -> &'static str {
        "etcd_user"
    }

    fn schema(&self) -> Schema {
        Schema {
            version: 0,
            block: schema_block(),
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        connection::validate(config, diags);
        validate_user(config, diags);
    }

    async fn modify_plan(&self, ctx: &Context, plan: &mut Plan<'_>) {
        connection::require_credentials(ctx, plan);
        // A password removed: a certificate-only user is made anew with
        // etcd's no-password option.
        let has_password =
            |v: &Value| !v.get("password").is_null() || !v.get("password_wo_version").is_null();
        if !plan.is_create() && has_password(plan.prior) && !has_password(&plan.planned) {
            let removed = if plan.prior.get("password").is_null() {
                "password_wo_version"
            } else {
                "password"
            };
            plan.requires_replace.push(AttributePath::root(removed));
        }
    }

    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        put(ctx, &Value::Null, planned, diags).await
    }

    async fn read(
        &self,
        ctx: &Context,
        state: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let name = state.str_or_empty("name");
        let cluster = match connection::client(ctx, state) {
            Ok(cluster) => cluster,
            Err(e) => {
                diags.warning(format!("Could not read user {name}"), e);
                return state.clone();
            }
        };
        let roles = match cluster.user(name).await {
            Ok(Some(roles)) => roles,
            Ok(None) => {
                diags.warning(
                    format!("User {name} is gone"),
                    "It was deleted out of band; apply creates it again.",
                );
                return Value::Null;
            }
            Err(e) => {
                diags.warning(
                    format!("Could not read user {name}"),
                    format!("{e}\n\nThe state keeps what it had."),
                );
                return state.clone();
            }
        };
        let mut read = state.clone();
        read.set("roles", roles_value(state, roles));
        if let Some(password) = state.get("password").as_str() {
            // A password that no longer logs in is shown as changed, so
            // that apply sets it again. Unknowable while auth is off.
            if let Ok(Some(false)) = cluster.password_works(name, password).await {
                read.set("password", Value::Null);
            }
        }
        read
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: &Value,
        planned: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        put(ctx, prior, planned, diags).await
    }

    async fn delete(
        &self,
        ctx: &Context,
        prior: &Value,
        _private: &Private,
        diags: &mut Diagnostics,
    ) {
        let name = prior.str_or_empty("name");
        let done = match connection::client(ctx, prior) {
            Ok(cluster) => cluster.delete_user(name).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            diags.error(format!("Could not delete user {name}"), e);
        }
    }

    /// A password cannot be read back: an imported user's password is
    /// unknown to the state, so a configured one is set by the next apply.
    async fn import(
        &self,
        ctx: &Context,
        id: &str,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let imported = match connection::import_id(ctx, id) {
            Ok((mut state, cluster, name)) => match cluster.user(&name).await {
                Ok(Some(roles)) => {
                    state.set("roles", roles_value(&Value::Null, roles));
                    Ok(state)
                }
                Ok(None) => Err(format!("there is no user {name:?}")),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        imported.unwrap_or_else(|e| connection::import_failed(diags, "user", e))
    }
}
