//! The storage traits every role depends on — [`MetadataStore`], [`SeriesStore`] and [`BlobStore`] — and the
//! conformance suites (feature `testsuite`) that every backend runs against itself.
//!
//! Traits are narrow, object-safe and held as `Arc<dyn …>`; they take and return domain types only. Domain
//! rules (validation, limits) are applied by the roles before a store is called, once for every backend.
//!
//! # Layout
//! - [`error`]: [`StoreError`], and how it maps onto the public error codes.
//! - [`metadata`], [`series`], [`blob`]: one trait each.
//! - [`changes`]: the change feed behind live updates, and its in-process implementation.
//! - [`run_filter`]: runs queries compiled to parameterized SQL, shared by the relational metadata backends.
//! - `testsuite`: the conformance suites.

pub mod blob;
pub mod changes;
pub mod error;
pub mod metadata;
pub mod run_filter;
pub mod series;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use blob::{BlobStore, ByteStream, PutBlobOutcome};
pub use changes::{ChangeFeed, LocalChangeFeed};
pub use error::{StoreError, StoreResult};
pub use metadata::{ArtifactLogOutcome, MetadataStore, RunCreateOutcome};
pub use series::SeriesStore;

use std::sync::Arc;

/// The set of stores a process runs on, resolved once by the composition root.
#[derive(Clone)]
pub struct Stores {
    pub metadata: Arc<dyn MetadataStore>,
    pub series: Arc<dyn SeriesStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub changes: Arc<dyn ChangeFeed>,
}
