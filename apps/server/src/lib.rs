//! The `trackstack` server: resolves the storage backends named by the configuration (the only place in the
//! workspace that names concrete backends), builds the HTTP router of the roles, and serves it until shutdown.
//!
//! # Layout
//! - [`stores`]: the composition root, URI → backend.
//! - [`serve`]: router assembly, HTTP serving, graceful shutdown.
//! - [`telemetry`]: the process's own metrics at `/metrics`.

pub mod serve;
pub mod stores;
pub mod telemetry;

pub use serve::{router, serve};
