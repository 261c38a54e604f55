//! The REST routes, one module per resource.

pub(crate) mod artifacts;
pub(crate) mod blobs;
pub(crate) mod events;
pub mod health;
pub(crate) mod projects;
pub(crate) mod runs;
pub(crate) mod series;

use axum::routing::{get, post};
use axum::Router;

use crate::ApiState;

/// Every REST v1 route except ingest (served by `trackstack_ingest::http`).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/openapi.json", get(health::openapi_document))
        .route("/api/v1/projects", post(projects::create_project).get(projects::list_projects))
        .route("/api/v1/projects/{project}", get(projects::get_project).patch(projects::update_project))
        .route("/api/v1/projects/{project}/runs", post(runs::create_run).get(runs::list_runs))
        .route("/api/v1/projects/{project}/runs/query", post(runs::query_runs))
        .route("/api/v1/projects/{project}/runs/bulk", post(runs::bulk_runs))
        .route("/api/v1/projects/{project}/fields", get(projects::list_fields))
        .route("/api/v1/runs/{run_id}", get(runs::get_run).patch(runs::update_run).delete(runs::delete_run))
        .route("/api/v1/runs/{run_id}/finish", post(runs::finish_run))
        .route("/api/v1/runs/{run_id}/metrics", get(series::list_metrics))
        .route("/api/v1/runs/{run_id}/series", get(series::read_series))
        .route("/api/v1/runs/{run_id}/series/buckets", get(series::read_buckets))
        .route("/api/v1/runs/{run_id}/artifacts", post(artifacts::log_artifact).get(artifacts::list_run_artifacts))
        .route("/api/v1/projects/{project}/artifacts", get(artifacts::list_project_artifacts))
        .route("/api/v1/projects/{project}/artifacts/{name}/versions/{version}", get(artifacts::get_artifact_version))
        .route(
            "/api/v1/projects/{project}/artifacts/{name}/versions/{version}/files/{*path}",
            get(artifacts::download_artifact_file),
        )
        .route("/api/v1/blobs/{digest}", get(blobs::download_blob).head(blobs::blob_exists).put(blobs::upload_blob))
        .route("/api/v1/events", get(events::events))
        .with_state(state)
}

/// The routes an ingest-only process serves beside ingest itself: health and blob uploads (the write half of
/// artifact logging), so heavy uploads scale with the write path.
pub fn upload_router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/blobs/{digest}", axum::routing::head(blobs::blob_exists).put(blobs::upload_blob))
        .with_state(state)
}

/// The routes a processor-only process serves: health.
pub fn health_router() -> Router {
    Router::new().route("/api/v1/health", get(health::health))
}

/// `GET /api/v1/ready`, which every role serves.
pub fn readiness_router(readiness: health::Readiness) -> Router {
    Router::new().route("/api/v1/ready", get(health::ready)).with_state(readiness)
}
