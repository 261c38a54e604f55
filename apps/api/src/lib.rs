//! REST API v1 (`/api/v1`): projects, runs, metric reads, artifacts and blobs, plus health and the OpenAPI
//! document. Handlers speak only to the storage traits; which backends sit behind them is the server's choice.
//!
//! # Layout
//! - [`state`]: what handlers share.
//! - `routes/`: one module per resource.
//! - [`openapi`]: the OpenAPI document assembled from every route's annotations.

pub mod openapi;
mod routes;
pub mod state;

pub use routes::health::Readiness;
pub use routes::{health_router, readiness_router, router, upload_router};
pub use state::{ApiLimits, ApiState};
