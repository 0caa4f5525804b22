//! Helpers for the acceptance tests, which drive real `terraform` against
//! the built provider, real sshd and systemd in the test hosts, and real etcd.
//!
//! - [`tools`]: where the provider binary, Terraform versions and etcd
//!   binaries are (installed by `install-deps`).
//! - [`terraform`]: a throw-away Terraform working directory with the
//!   provider installed through a filesystem mirror or `dev_overrides`;
//!   applies timed, in the background and interrupted as a user would.
//! - [`lab`]: test hosts brought up by the `testhosts` script, taken down
//!   when the guard drops (also on panic), and SSH into them; [`labs`]:
//!   every test's lab number in one table.
//! - [`fixtures`]: the lab's variables for the examples, a cluster started
//!   by hand, a writer that runs through a change and the check that no
//!   acknowledged write was lost, drift checks, waits and retries.
//! - [`patroni`]: Patroni and PostgreSQL from Debian's packages on a test
//!   host, a real consumer of etcd.
//! - [`release`]: the release files, signed, for the tests that install
//!   the archive.
//! - [`docs`]: the generator of `docs/` from `schemas/` and `examples/`.

pub mod docs;
pub mod fixtures;
pub mod lab;
pub mod labs;
pub mod patroni;
pub mod release;
pub mod terraform;
pub mod tools;
