//! `POST /api/v1/ingest`.

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use trackstack_server_kit::{ApiResult, Json};

use crate::batch::{IngestAck, IngestBatch, IngestPoint};
use crate::IngestService;

/// The ingest routes, ready to merge into the server's router.
pub fn router(service: IngestService) -> Router {
    Router::new().route("/api/v1/ingest", post(ingest)).with_state(service)
}

/// Ingest a batch for one run.
///
/// Validates the whole batch, then stores it; nothing is written when any part is invalid. Idempotent: a
/// replayed batch changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/ingest",
    tag = "ingest",
    request_body = IngestBatch,
    responses(
        (status = 200, description = "The batch is durable", body = IngestAck),
        (status = 400, description = "A field breaks a rule; `field` names it"),
        (status = 404, description = "The run does not exist"),
        (status = 413, description = "The body exceeds the JSON body limit"),
    )
)]
pub async fn ingest(
    State(service): State<IngestService>,
    Json(batch): Json<IngestBatch>,
) -> ApiResult<axum::Json<IngestAck>> {
    Ok(axum::Json(service.ingest(batch).await?))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(ingest), components(schemas(IngestBatch, IngestPoint, IngestAck)))]
pub struct IngestApi;
