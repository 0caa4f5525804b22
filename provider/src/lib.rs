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
//! - [`etcd`]: the cluster's client API (member list, health, membership).
//! - [`member`]: one member on one host: layout, rendering of its config
//!   file and unit, install / inspect / uninstall steps.
//! - [`cluster`]: whole-cluster operations: bootstrap, observe, repair,
//!   teardown, one member at a time where the cluster is running.
//! - [`joining`]: one member in a cluster the configuration does not own
//!   (`etcd_member`): join, update, leave, gated on every member's health.
//! - [`resources`]: one file per resource type (`etcd_ca`, `etcd_cluster`,
//!   `etcd_member`), with the schema pieces they share in `common`.
//!
//! `main.rs` registers the resources and calls [`plugin::serve`].
//! DESIGN.md at the repository root holds the rules these modules follow.

pub mod cluster;
pub mod etcd;
pub mod framework;
pub mod joining;
pub mod member;
pub mod pki;
pub mod plugin;
pub mod resources;
pub mod ssh;
