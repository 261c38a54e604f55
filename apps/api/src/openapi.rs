//! The OpenAPI document, assembled from the route annotations of this crate and the ingest role.

use utoipa::OpenApi;

use crate::routes::{artifacts, blobs, events, health, projects, runs, series};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trackstack API",
        description = "REST API v1 of Trackstack. Conventions, limits and error codes: docs/api.md."
    ),
    paths(
        health::health,
        health::openapi_document,
        health::ready,
        projects::create_project,
        projects::list_projects,
        projects::get_project,
        projects::update_project,
        projects::list_fields,
        runs::create_run,
        runs::list_runs,
        runs::query_runs,
        runs::bulk_runs,
        runs::get_run,
        runs::update_run,
        runs::finish_run,
        runs::delete_run,
        series::list_metrics,
        series::read_series,
        series::read_buckets,
        artifacts::log_artifact,
        artifacts::list_run_artifacts,
        artifacts::list_project_artifacts,
        artifacts::get_artifact_version,
        artifacts::download_artifact_file,
        blobs::blob_exists,
        blobs::upload_blob,
        blobs::download_blob,
        events::events,
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct RestApi;

/// The error body every non-2xx JSON response carries.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// A code from the closed table in docs/api.md, e.g. `invalid_argument`.
    code: String,
    message: String,
    /// The input field at fault, e.g. `metrics[3].step`.
    field: Option<String>,
}

/// The whole OpenAPI document of the server.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = RestApi::openapi();
    doc.merge(trackstack_ingest::http::IngestApi::openapi());
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let doc = super::document();
        let paths: Vec<&String> = doc.paths.paths.keys().collect();
        for expected in [
            "/api/v1/ingest",
            "/api/v1/projects/{project}/runs",
            "/api/v1/runs/{run_id}/series/buckets",
            "/api/v1/blobs/{digest}",
        ] {
            assert!(paths.iter().any(|p| *p == expected), "{expected} missing from {paths:?}");
        }
    }
}
