//! `etcd_snapshot`: a backup of a running cluster's keyspace in a file on
//! the machine running Terraform. Create streams a snapshot from the first
//! member that answers and checks the SHA-256 etcd appends to it; read
//! checks the file is still there and unchanged (otherwise the snapshot is
//! gone and the plan takes a new one); a change of `triggers` takes a new
//! one; delete keeps the file unless asked to remove it.

use std::path::Path;

use async_trait::async_trait;

use super::connection;
use crate::framework::{
    Attribute, AttributePath, Block, Context, Diagnostics, Plan, Private, Resource, Schema, Type,
    Value,
};
use crate::member::install::sha256_file;

pub struct EtcdSnapshot;

fn schema_block() -> Block {
    let block = Block::new(
        "A snapshot of a running cluster's keyspace (what `etcdctl snapshot save` makes), saved to a file on the \
         machine running Terraform, mode 0600: it holds every key and value. etcd's own checksum is verified \
         before the file is kept. If the file goes missing or changes, the snapshot counts as gone and the plan \
         takes a new one (exit 2); a change of `triggers` takes a new one too. Restore it into a new cluster with \
         `etcd_cluster`'s `initial_snapshot_path`.",
    )
    .attribute(Attribute::computed("id", Type::String, "The SHA-256 of the snapshot file (hex)."));
    connection::attributes(
        block,
        "Client URLs (`https://HOST:PORT`) of the cluster's members, e.g. `etcd_cluster.main.client_endpoints`; the \
         first that answers makes the snapshot.",
    )
    .attribute(
        Attribute::required(
            "path",
            Type::String,
            "Where to save the snapshot on the machine running Terraform; its directory must exist.",
        )
        .replace_on_change(),
    )
    .attribute(
        Attribute::optional(
            "triggers",
            Type::map(Type::String),
            "Any values; a change takes a new snapshot (for example the date, for one snapshot a day).",
        )
        .replace_on_change(),
    )
    .attribute(Attribute::with_default(
        "delete_file_on_destroy",
        Type::Bool,
        Value::Bool(false),
        "Delete the snapshot file on destroy (and before a new snapshot replaces it), if it is still the one saved (the same SHA-256): a file put at `path` since is kept. Default false: the file is kept.",
    ))
    .attribute(Attribute::computed("sha256", Type::String, "SHA-256 of the snapshot file (hex)."))
    .attribute(Attribute::computed("size_bytes", Type::Number, "Size of the snapshot file."))
    .attribute(Attribute::computed(
        "revision",
        Type::Number,
        "The revision the member had reached when the snapshot began (the snapshot holds at least that).",
    ))
    .attribute(Attribute::computed("member_endpoint", Type::String, "The endpoint the snapshot came from."))
    .attribute(Attribute::computed("taken_at", Type::String, "When the snapshot was taken (RFC 3339)."))
}

fn validate_path(config: &Value, diags: &mut Diagnostics) {
    let Some(path) = config.get("path").as_str() else {
        return;
    };
    let path = Path::new(path);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if path.file_name().is_none() || !dir.is_dir() {
        diags.error_at(
            AttributePath::root("path"),
            "Invalid snapshot path",
            format!("{} is not a file in an existing directory.", path.display()),
        );
    }
}

#[async_trait]
impl Resource for EtcdSnapshot {
    fn name(&self) -> &'static str {
        "etcd_snapshot"
    }

    fn schema(&self) -> Schema {
        Schema {
            version: 0,
            block: schema_block(),
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        connection::validate(config, diags);
        validate_path(config, diags);
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
        let path = planned.str_or_empty("path");
        let cluster = match connection::client(ctx, planned) {
            Ok(cluster) => cluster,
            Err(e) => {
                diags.error("Cannot reach the cluster", e);
                return Value::Null;
            }
        };
        let saved = tokio::select! {
            saved = cluster.save_snapshot(Path::new(path)) => saved,
            _ = ctx.stopped() => Err("stopped by Terraform before the snapshot was complete".into()),
        };
        let snapshot = match saved {
            Ok(snapshot) => snapshot,
            Err(e) => {
                diags.error_at(
                    AttributePath::root("path"),
                    "Could not take the snapshot",
                    e,
                );
                return Value::Null;
            }
        };
        log::info!(
            "saved a snapshot of {} bytes at revision {} from {}",
            snapshot.size,
            snapshot.revision,
            snapshot.endpoint
        );
        let taken_at = ctx
            .now()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut state = planned.clone();
        state.set("id", Value::string(&snapshot.sha256));
        state.set("sha256", Value::string(snapshot.sha256));
        state.set("size_bytes", Value::number(snapshot.size as f64));
        state.set("revision", Value::number(snapshot.revision as f64));
        state.set("member_endpoint", Value::string(snapshot.endpoint));
        state.set("taken_at", Value::string(taken_at));
        state
    }

    async fn read(
        &self,
        _ctx: &Context,
        state: &Value,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        let path = state.str_or_empty("path");
        let found = sha256_file(std::path::Path::new(path)).await;
        if found.as_deref().ok() == state.get("sha256").as_str() {
            return state.clone();
        }
        diags.warning(
            "Snapshot file missing or changed",
            format!("{path} no longer holds the snapshot taken; a new one will be taken."),
        );
        Value::Null
    }

    async fn update(
        &self,
        _ctx: &Context,
        _prior: &Value,
        planned: &Value,
        _private: &mut Private,
        _diags: &mut Diagnostics,
    ) -> Value {
        // Only the endpoints, credentials or the delete flag changed: the
        // snapshot itself stays as it is.
        planned.clone()
    }

    async fn delete(
        &self,
        _ctx: &Context,
        prior: &Value,
        _private: &Private,
        diags: &mut Diagnostics,
    ) {
        if prior.get("delete_file_on_destroy").as_bool() != Some(true) {
            return;
        }
        let path = prior.str_or_empty("path");
        // Only the snapshot this resource wrote: a file put at the path
        // since (another snapshot, anything else) is not ours to delete.
        match crate::member::install::sha256_file(std::path::Path::new(path)).await {
            Ok(sum) if sum == prior.str_or_empty("sha256") => {}
            Ok(_) => {
                diags.warning(
                    "Snapshot file kept",
                    format!("{path} is no longer the snapshot this resource saved (its SHA-256 differs): not deleted."),
                );
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                diags.error("Could not delete the snapshot file", format!("{path}: {e}"));
                return;
            }
        }
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => diags.error("Could not delete the snapshot file", format!("{path}: {e}")),
        }
    }

    async fn import(
        &self,
        _ctx: &Context,
        _id: &str,
        _private: &mut Private,
        diags: &mut Diagnostics,
    ) -> Value {
        diags.error(
            "etcd_snapshot cannot be imported",
            "A snapshot is taken by the provider; declare the resource and apply to take one.",
        );
        Value::Null
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_must_be_in_an_existing_directory() {
        let errors = |path: &str| {
            let mut diags = Diagnostics::default();
            validate_path(&Value::object([("path", Value::string(path))]), &mut diags);
            diags.has_errors()
        };
        let dir = std::env::temp_dir();
        assert!(!errors(&dir.join("etcd.db").display().to_string()));
        assert!(!errors("etcd.db"));
        assert!(errors(
            &dir.join("no-such-dir/etcd.db").display().to_string()
        ));
        assert!(errors("/"));
    }
}
