//! `etcd_role`: a role of etcd's access control and the key ranges it may
//! read or write. Create and update make the role hold exactly the
//! configured permissions (granting what it lacks, revoking the rest);
//! read reports the live permissions, so one granted or changed by hand is
//! drift that apply reverts; delete removes the role. Import by
//! `ENDPOINTS,CA_CERT_PATH,CA_KEY_PATH,NAME`.

use async_trait::async_trait;

use super::connection;
use crate::etcd::auth::{prefix_end, Access, KeyPermission, ROOT};
use crate::framework::{
    Attribute, AttributePath, Block, Context, Diagnostics, NestedBlock, Plan, Private, Resource,
    Schema, Type, Value,
};

pub struct EtcdRole;

fn schema_block() -> Block {
    let permission = Block::new("Keys the role may read, write or both: one key, a range, or a prefix.")
        .attribute(Attribute::required("key", Type::String, "The key, or the start of the range or the prefix."))
        .attribute(Attribute::optional(
            "range_end",
            Type::String,
            "The end of the range (excluded): the permission covers [key, range_end). Not with `prefix`.",
        ))
        .attribute(Attribute::with_default(
            "prefix",
            Type::Bool,
            Value::Bool(false),
            "Every key that starts with `key` (what `etcdctl role grant-permission --prefix` grants).",
        ))
        .attribute(Attribute::required("permission", Type::String, "`read`, `write` or `readwrite`."));
    let block = Block::new(
        "A role of etcd's access control (users get roles; see `etcd_user`). The role holds exactly the \
         configured permissions: one granted or changed out of band is drift (the plan shows a change, exit 2) \
         and apply revokes it. Permissions are enforced once the cluster's `auth_enabled` is true.",
    )
    .attribute(Attribute::computed("id", Type::String, "The role's name."))
    .attribute(Attribute::required("name", Type::String, "The role's name. `root` belongs to the cluster.").replace_on_change());
    connection::attributes(
        block,
        "Client URLs (`https://HOST:PORT`) of the cluster's members, e.g. `etcd_cluster.main.client_endpoints`.",
    )
    .block(NestedBlock::list("permission", permission))
}

/// The configured permissions, in the domain's terms; `None` entries for
/// blocks not yet known or invalid (validation reports those).
fn wanted(config: &Value) -> Vec<Option<KeyPermission>> {
    config
        .get("permission")
        .as_list()
        .iter()
        .map(|p| {
            let key = p.get("key").as_str()?.as_bytes().to_vec();
            let range_end = match (p.get("range_end").as_str(), p.get("prefix").as_bool()) {
                (Some(end), _) => end.as_bytes().to_vec(),
                (None, Some(true)) => prefix_end(&key),
                _ => Vec::new(),
            };
            let access = Access::parse(p.get("permission").as_str()?)?;
            Some(KeyPermission {
                key,
                range_end,
                access,
            })
        })
        .collect()
}

fn validate_role(config: &Value, diags: &mut Diagnostics) {
    if config.get("name").as_str() == Some(ROOT) {
        diags.error_at(
            AttributePath::root("name"),
            "The root role belongs to the cluster",
            "etcd's root role has every permission and is set up by etcd_cluster's auth_enabled; give this role \
             another name.",
        );
    } else if config.get("name").as_str() == Some("") {
        diags.error_at(
            AttributePath::root("name"),
            "Empty role name",
            "Give the role a name.",
        );
    }
    let blocks = config.get("permission").as_list();
    for (i, p) in blocks.iter().enumerate() {
        let at = |attr: &str| AttributePath::root("permission").index(i).attribute(attr);
        if let Some(word) = p.get("permission").as_str() {
            if Access::parse(word).is_none() {
                diags.error_at(
                    at("permission"),
                    "Unknown permission",
                    format!("{word:?} is not one of {}.", Access::NAMES.join(", ")),
                );
            }
        }
        if p.get("key").as_str() == Some("") {
            diags.error_at(
                at("key"),
                "Empty key",
                "A permission needs a key (or the start of its range).",
            );
        }
        let range_end = p.get("range_end").as_str();
        if range_end.is_some() && p.get("prefix").as_bool() == Some(true) {
            diags.error_at(
                at("range_end"),
                "Both range_end and prefix",
                "A permission covers a range [key, range_end) or a prefix, not both.",
            );
        }
        if let (Some(key), Some(end)) = (p.get("key").as_str(), range_end) {
            if end.as_bytes() <= key.as_bytes() {
                diags.error_at(
                    at("range_end"),
                    "Empty range",
                    format!(
                        "range_end {end:?} does not sort after key {key:?}: the range [key, range_end) holds no key. \
                         For every key under a prefix, set prefix = true instead."
                    ),
                );
            }
        }
    }
    let known: Vec<KeyPermission> = wanted(config).into_iter().flatten().collect();
    for (i, p) in known.iter().enumerate() {
        if known[..i]
            .iter()
            .any(|q| q.key == p.key && q.range_end == p.range_end)
        {
            diags.error_at(
                AttributePath::root("permission").index(i),
                "The same keys twice",
                "Two permission blocks cover the same keys; etcd keeps one permission per range: merge them \
                 (readwrite).",
            );
        }
    }
}

/// The live permissions as permission blocks, in the order of `prior`'s
/// blocks where they match (so that only a real change shows), the
/// others after them; a prefix range is shown as `prefix = true`.
fn permission_blocks(prior: &Value, live: &[KeyPermission]) -> Value {
    let prior_blocks = prior.get("permission").as_list();
    let prior_wanted = wanted(prior);
    let mut ordered: Vec<Value> = Vec::new();
    let mut used = vec![false; live.len()];
    for (block, p) in prior_blocks.iter().zip(&prior_wanted) {
        if let Some(i) = live
            .iter()
            .enumerate()
            .position(|(i, l)| !used[i] && Some(l) == p.as_ref())
        {
            used[i] = true;
            ordered.push(block.clone());
        }
    }
    for (l, _) in live.iter().zip(&used).filter(|(_, used)| !**used) {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let is_prefix = !l.range_end.is_empty() && l.range_end == prefix_end(&l.key);
        ordered.push(Value::object([
            ("key", Value::string(text(&l.key))),
            (
                "range_end",
                if l.range_end.is_empty() || is_prefix {
                    Value::Null
                } else {
                    Value::string(text(&l.range_end))
                },
            ),
            ("prefix", Value::Bool(is_prefix)),
            ("permission", Value::string(l.access.name())),
        ]));
    }
    Value::List(ordered)
}

async fn put(ctx: &Context, planned: &Value, diags: &mut Diagnostics) -> Value {
    let name = planned.str_or_empty("name");
    let permissions: Vec<KeyPermission> = wanted(planned).into_iter().flatten().collect();
    let done = match connection::client(ctx, planned) {
        Ok(cluster) => cluster.put_role(name, &permissions).await,
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        diags.error(format!("Could not set role {name}"), e);
        return Value::Null;
    }
    let mut state = planned.clone();
    state.set("id", Value::string(name));
    state
}

#[async_trait]
impl Resource for EtcdRole {
    fn name(&self) -> &'static str {
        "etcd_role"
    }

    fn schema(&self) -> Schema {
        Schema {
            version: 0,
            block: schema_block(),
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        connection::validate(config, diags);
        validate_role(config, diags);
    }

    async fn modify_plan(&self, ctx: &Context, plan: &mut Plan<'_>) {
        connection::require_credentials(ctx, plan);
    }

    async fn create(
        &self,
        ctx: &Context,
        planned: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        put(ctx, planned, diags).await
    }

    async fn read(
        &self,
        ctx: &Context,
        state: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let name = state.str_or_empty("name");
        let live = match connection::client(ctx, state) {
            Ok(cluster) => cluster.role(name).await,
            Err(e) => Err(e),
        };
        match live {
            Ok(Some(permissions)) => {
                let blocks = permission_blocks(state, &permissions);
                let mut state = state.clone();
                state.set("permission", blocks);
                state
            }
            Ok(None) => {
                diags.warning(
                    format!("Role {name} is gone"),
                    "It was deleted out of band; apply creates it again.",
                );
                Value::Null
            }
            Err(e) => {
                diags.warning(
                    format!("Could not read role {name}"),
                    format!("{e}\n\nThe state keeps what it had."),
                );
                state.clone()
            }
        }
    }

    async fn update(
        &self,
        ctx: &Context,
        _prior: &Value,
        planned: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        put(ctx, planned, diags).await
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
            Ok(cluster) => cluster.delete_role(name).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            diags.error(format!("Could not delete role {name}"), e);
        }
    }

    async fn import(
        &self,
        ctx: &Context,
        id: &str,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let imported = match connection::import_id(ctx, id) {
            Ok((mut state, cluster, name)) => match cluster.role(&name).await {
                Ok(Some(permissions)) => {
                    state.set("permission", permission_blocks(&Value::Null, &permissions));
                    Ok(state)
                }
                Ok(None) => Err(format!("there is no role {name:?}")),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        imported.unwrap_or_else(|e| connection::import_failed(diags, "role", e))
    }
}
