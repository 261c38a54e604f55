//! The ClickHouse backend of [`trackstack_store::SeriesStore`], for the cluster shape, spoken over ClickHouse's
//! HTTP interface with parameterized queries (`{name:Type}` + `param_name`), never spliced values.
//!
//! Points live in one `ReplacingMergeTree` ordered by (project, run, key, step). Two mechanisms make writes
//! idempotent: each insert carries an `insert_deduplication_token` derived from its content, so a replayed
//! batch is dropped by the server; and every row carries a write version, so a rewritten step keeps its newest
//! value (reads use `FINAL`). Non-finite values travel as `"nan"`, `"inf"`, `"-inf"` in JSONEachRow.
//!
//! # Layout
//! - [`client`]: the HTTP client: queries, parameters, settings, errors.
//! - [`schema`]: DDL for a single server or a cluster (`ON CLUSTER`, Replicated engines, Distributed).
//! - `series`: [`ClickHouseSeriesStore`].

pub mod client;
pub mod schema;
mod series;

pub use series::{ClickHouseOptions, ClickHouseSeriesStore};
