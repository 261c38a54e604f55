//! `POST /api/v1/ingest`.

use axum::extract::{FromRequest, Request, State};
use axum::routing::post;
use axum::Router;
use prost::Message;
use trackstack_domain::{Error, ErrorCode};
use trackstack_server_kit::{media_type, read_body, ApiError, ApiResult, Json, JsonBodyLimit};

use crate::batch::{IngestAck, IngestBatch, IngestPoint};
use crate::proto::PROTOBUF_MEDIA_TYPES;
use crate::IngestService;

/// The ingest routes, ready to merge into the server's router.
pub fn router(service: IngestService) -> Router {
    Router::new().route("/api/v1/ingest", post(ingest)).with_state(service)
}

/// A batch as JSON (the default) or as protobuf (`Content-Type: application/x-protobuf`).
pub struct Batch(pub IngestBatch);

impl<S: Send + Sync> FromRequest<S> for Batch {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !media_type(req.headers()).is_some_and(|m| PROTOBUF_MEDIA_TYPES.contains(&m.as_str())) {
            return Json::<IngestBatch>::from_request(req, state).await.map(|Json(batch)| Batch(batch));
        }
        let limit = JsonBodyLimit::of(&req);
        let bytes = read_body(req.into_body(), limit).await?;
        let message = trackstack_proto::v1::IngestBatch::decode(bytes).map_err(|e| {
            Error::new(ErrorCode::MalformedRequest, format!("the body is not a valid protobuf IngestBatch: {e}"))
        })?;
        Ok(Batch(IngestBatch::try_from(message)?))
    }
}

/// Ingest a batch for one run.
///
/// Validates the whole batch, then stores it; nothing is written when any part is invalid. Idempotent: a
/// replayed batch changes nothing. The body is JSON, or the protobuf `trackstack.v1.IngestBatch`
/// (proto/trackstack/v1/ingest.proto) with `Content-Type: application/x-protobuf`; either may be gzip- or
/// zstd-compressed (`Content-Encoding`).
#[utoipa::path(
    post,
    path = "/api/v1/ingest",
    tag = "ingest",
    request_body(
        description = "JSON, or protobuf trackstack.v1.IngestBatch (proto/trackstack/v1/ingest.proto)",
        content((IngestBatch = "application/json"), (Vec<u8> = "application/x-protobuf")),
    ),
    responses(
        (status = 200, description = "The batch is durable", body = IngestAck),
        (status = 400, description = "A field breaks a rule; `field` names it"),
        (status = 404, description = "The run does not exist"),
        (status = 413, description = "The body exceeds the JSON body limit"),
        (status = 415, description = "The body is neither JSON nor protobuf"),
        (status = 503, description = "The server is saturated; retry after `Retry-After` seconds"),
    )
)]
pub async fn ingest(State(service): State<IngestService>, Batch(batch): Batch) -> ApiResult<axum::Json<IngestAck>> {
    Ok(axum::Json(service.ingest(batch).await?))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(ingest), components(schemas(IngestBatch, IngestPoint, IngestAck)))]
pub struct IngestApi;
