//! The embedded backend: [`SqliteMetadataStore`] (projects, runs, artifact index) and [`EmbeddedSeriesStore`]
//! (the packed series engine: a write-ahead log, compressed blocks and a rollup pyramid, with SQLite holding the
//! blocks), each in its own database file so their writers never wait on each other. Schemas migrate forward on
//! open.
//!
//! # Layout
//! - [`database`]: connections (one writer, pooled readers), pragmas, blocking work off the async runtime.
//! - [`migrations`]: the ordered schema steps per database.
//! - [`metadata`]: the metadata store; [`series`]: the series engine.

mod database;
mod metadata;
mod migrations;
mod series;

pub use metadata::SqliteMetadataStore;
pub use series::{metric_names as series_metric_names, EmbeddedSeriesStore, EngineOptions};
