//! The write path: a batch for one run (metric points, config, summary, tags, state) is validated whole,
//! then written idempotently — points to the series store, everything else to the metadata store — and
//! acknowledged only once durable. Replaying a batch changes nothing (DESIGN.md §2).
//!
//! # Layout
//! - [`batch`]: the batch format and its validation.
//! - [`service`]: [`IngestService`], which applies a batch to the stores; `cardinality`: the per-run key limit.
//! - [`http`]: `POST /api/v1/ingest`, JSON or protobuf; [`proto`]: the protobuf batch → [`IngestBatch`].
//! - [`grpc`]: the gRPC `trackstack.v1.Ingest` service (unary `Write`, client-streaming `Push`).

pub mod batch;
mod cardinality;
pub mod grpc;
pub mod http;
pub mod proto;
pub mod service;

pub use batch::{IngestAck, IngestBatch, IngestPoint};
pub use service::{IngestLimits, IngestService};
