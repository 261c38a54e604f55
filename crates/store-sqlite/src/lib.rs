//! The embedded SQLite backend: [`SqliteMetadataStore`] (projects, runs, artifact index) and
//! [`SqliteSeriesStore`] (metric points), each in its own database file so their writers never wait on
//! each other. Schemas migrate forward on open.
//!
//! The series store keeps one row per point; it is correct and durable but not the packed, rolled-up engine
//! DESIGN.md §4 asks for, which replaces it behind the same trait.
//!
//! # Layout
//! - [`database`]: connections (one writer, pooled readers), pragmas, blocking work off the async runtime.
//! - [`migrations`]: the ordered schema steps per database.
//! - [`metadata`], [`series`]: the two stores.

mod database;
mod metadata;
mod migrations;
mod series;

pub use metadata::SqliteMetadataStore;
pub use series::SqliteSeriesStore;
