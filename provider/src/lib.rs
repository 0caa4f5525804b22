//! terraform-provider-etcd: a Terraform provider that builds and runs highly
//! available etcd clusters on plain Linux hosts over SSH.
//!
//! # Map of the crate
//!
//! - [`plugin`]: the Terraform plugin protocol 6 (go-plugin handshake,
//!   AutoMTLS, gRPC services, hclog logging). The only module that speaks
//!   gRPC or msgpack.
//! - [`framework`]: the typed, declarative layer resources are written
//!   against: [`framework::Value`], [`framework::Schema`],
//!   [`framework::Diagnostics`] and the [`framework::Resource`] trait.
//! - [`pki`]: certificate authorities and the member and client
//!   certificates issued from them.
//! - [`ssh`]: commands and files on member hosts over the system `ssh`.
//! - [`client_files`]: a client certificate's files on a consumer host.
//! - [`etcd`]: the etcd client (member list, health, membership, snapshots);
//!   the only module that calls etcd's API.
//! - [`member`]: one member on one host: layout, rendering of its config
//!   file and unit, install / inspect / uninstall steps.
//! - [`cluster`]: whole-cluster operations as phases, one file each
//!   (bootstrap, membership, downgrade, roll, rotate_ca, peer_names,
//!   repair, space, auth, teardown, and `etcd_member`'s foreign_member),
//!   each deciding its steps with a pure planner (`plan/`) and running
//!   them through the one guarded runner (`runner`), over observation, the
//!   per-member steps and the client API.
//! - [`version`]: etcd versions as data (what each minor version reads,
//!   which versions may follow which).
//! - [`resources`]: one file (or folder) per resource type (`etcd_ca`,
//!   `etcd_client_certificate`, `etcd_cluster`, `etcd_member`,
//!   `etcd_role`, `etcd_snapshot`, `etcd_user`), with what `etcd_cluster`
//!   and `etcd_member` share in `settings`.
//!
//! `main.rs` registers the resources and calls [`plugin::serve`].
//! DESIGN.md at the repository root holds the rules these modules follow.

pub mod framework;
pub mod plugin;
pub mod resources;

pub(crate) mod client_files;
pub(crate) mod cluster;
pub(crate) mod etcd;
pub(crate) mod member;
pub(crate) mod pki;
pub(crate) mod ssh;
pub(crate) mod version;

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The crate map above names every top-level module, every phase (a
    /// file of `cluster/` whose header says `Phase:`) and every resource
    /// type.
    #[test]
    fn the_crate_map_names_every_module_phase_and_resource_type() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let map: String = include_str!("lib.rs")
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect::<Vec<_>>()
            .join(" ");
        let stems = |dir: &Path| -> Vec<(String, std::path::PathBuf)> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .map(|path| {
                    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                    (stem, path)
                })
                .collect()
        };
        let mut missing = Vec::new();
        for (name, _) in stems(&src) {
            if !["lib", "main"].contains(&name.as_str()) && !map.contains(&format!("[`{name}`]")) {
                missing.push(name);
            }
        }
        for (name, path) in stems(&src.join("cluster")) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.starts_with("//! Phase") && !map.contains(&name) {
                missing.push(format!("phase {name}"));
            }
        }
        let mut resource_files = vec![src.join("resources")];
        while let Some(dir) = resource_files.pop() {
            for (_, path) in stems(&dir) {
                if path.is_dir() {
                    resource_files.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let names = text
                    .split("fn name(&self) -> &'static str {")
                    .skip(1)
                    .filter_map(|rest| rest.split('"').nth(1));
                for name in names {
                    if !map.contains(&format!("`{name}`")) {
                        missing.push(name.to_string());
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "not in the crate map of lib.rs: {missing:?}"
        );
    }
}
