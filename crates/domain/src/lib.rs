//! The Trackstack domain: the model every role and store speaks (projects, runs, metric points, artifacts),
//! the validation rules and limits applied to input, and the closed table of public error codes.
//!
//! This crate does no I/O and knows nothing of HTTP, SQL or any backend; stores and roles depend on it,
//! never the other way round.
//!
//! # Layout
//! - [`error`]: the error-code table and the public [`Error`] type.
//! - [`model`]: projects, runs, metric points and buckets, artifacts.
//! - [`float`]: JSON encoding of non-finite floats (`"NaN"`, `"Infinity"`, `"-Infinity"`).
//! - [`limits`] and [`validate`]: the documented input limits and the checks that enforce them.
//! - [`bucketing`]: how a step range is cut into aligned power-of-two buckets and how a bucket is aggregated.

pub mod bucketing;
pub mod error;
pub mod float;
pub mod limits;
pub mod model;
pub mod query;
pub mod validate;

pub use error::{Error, ErrorCode};
