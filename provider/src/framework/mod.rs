//! The typed, declarative layer that resources are written against: values,
//! types, schemas, diagnostics and the [`Resource`](resource::Resource)
//! trait. Nothing here knows about gRPC; `plugin` translates.

pub mod codec;
pub mod context;
pub mod diagnostics;
pub mod provider;
pub mod resource;
pub mod schema;
pub mod types;
pub mod value;

pub use context::Context;
pub use diagnostics::{AttributePath, Diagnostics};
pub use resource::{Plan, Private, Resource};
pub use schema::{Attribute, Block, NestedBlock, Schema};
pub use types::Type;
pub use value::Value;
