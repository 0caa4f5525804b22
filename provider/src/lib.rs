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
//! - [`resources`]: one file per resource type (`etcd_ca`, ...).
//!
//! `main.rs` registers the resources and calls [`plugin::serve`].
//! DESIGN.md at the repository root holds the rules these modules follow.

pub mod framework;
pub mod pki;
pub mod plugin;
pub mod resources;
