//! The Postgres backend of [`trackstack_store::MetadataStore`], for the cluster shape: many stateless api and
//! ingest processes share one database. Schema migrations live in `migrations/` beside this crate and are
//! applied on open under an advisory lock, so processes starting together migrate exactly once.
//!
//! # Layout
//! - [`migrations`]: the ordered schema steps and the locked runner.
//! - `metadata`: the store, [`PostgresMetadataStore`].
//! - `changes`: [`PostgresChangeFeed`], live updates across processes over `LISTEN`/`NOTIFY`.

mod changes;
mod metadata;
pub mod migrations;

pub use changes::PostgresChangeFeed;
pub use metadata::PostgresMetadataStore;
