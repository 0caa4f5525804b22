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
//!   (bootstrap, membership, downgrade, roll, rotate_ca, repair, space,
//!   auth, teardown, and `etcd_member`'s foreign_member), over the quorum
//!   guard, the per-member steps, observation and the client API.
//! - [`version`]: etcd versions as data (what each minor version reads,
//!   which versions may follow which).
//! - [`resources`]: one file per resource type (`etcd_ca`,
//!   `etcd_client_certificate`, `etcd_cluster`, `etcd_member`,
//!   `etcd_snapshot`), with what `etcd_cluster` and
//!   `etcd_member` share in `settings`.
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
