//! Content-addressed blobs: the upload and download path for artifact files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use trackstack_domain::{validate, Error, ErrorCode};
use trackstack_server_kit::{ApiError, ApiResult};
use trackstack_store::StoreError;
use utoipa::ToSchema;

use crate::ApiState;

#[derive(Serialize, ToSchema)]
pub struct BlobStored {
    pub digest: String,
    pub size: u64,
}

/// Answer whether the server holds a blob (200 with its size as Content-Length, or 404).
#[utoipa::path(head, path = "/api/v1/blobs/{digest}", tag = "artifacts", params(("digest" = String, Path, description = "sha256, lowercase hex")),
    responses((status = 200, description = "Stored"), (status = 404, description = "Not stored")))]
pub async fn blob_exists(State(state): State<ApiState>, Path(digest): Path<String>) -> ApiResult<Response> {
    validate::digest("digest", &digest)?;
    match state.stores.blobs.blob_size(&digest).await? {
        Some(size) => Ok(([(header::CONTENT_LENGTH, size.to_string())], StatusCode::OK).into_response()),
        None => Ok(StatusCode::NOT_FOUND.into_response()),
    }
}

/// Upload a blob; the body is streamed to storage and must hash to `digest`.
#[utoipa::path(put, path = "/api/v1/blobs/{digest}", tag = "artifacts", params(("digest" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = BlobStored, description = "Stored"), (status = 200, body = BlobStored, description = "Already stored"),
        (status = 400, description = "The content does not hash to `digest`"), (status = 413)))]
pub async fn upload_blob(
    State(state): State<ApiState>,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<BlobStored>)> {
    validate::digest("digest", &digest)?;
    let limit = state.limits.max_blob_bytes;
    let too_large = || ApiError(Error::new(ErrorCode::PayloadTooLarge, format!("a blob may be at most {limit} bytes")));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    // The body is counted as it streams, so an undeclared or lying length is caught too.
    let exceeded = Arc::new(AtomicBool::new(false));
    let seen_exceeded = Arc::clone(&exceeded);
    let mut received = 0u64;
    let stream = body
        .into_data_stream()
        .map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            received += chunk.len() as u64;
            if received > limit {
                seen_exceeded.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other("blob exceeds the size limit"));
            }
            Ok(chunk)
        })
        .boxed();
    match state.stores.blobs.put_blob(&digest, stream).await {
        Ok(outcome) => {
            let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, axum::Json(BlobStored { digest, size: outcome.size })))
        }
        Err(_) if exceeded.load(Ordering::Relaxed) => Err(too_large()),
        Err(StoreError::Backend(message)) if message.starts_with("upload interrupted") => {
            Err(Error::new(ErrorCode::MalformedRequest, "the upload was interrupted before its end").into())
        }
        Err(other) => Err(other.into()),
    }
}

/// Stream a stored blob back.
pub(crate) async fn blob_response(state: &ApiState, digest: &str) -> ApiResult<Response> {
    let (size, stream) = state
        .stores
        .blobs
        .get_blob(digest)
        .await?
        .ok_or_else(|| Error::not_found(format!("blob {digest} not found")))?;
    let headers =
        [(header::CONTENT_TYPE, "application/octet-stream".to_owned()), (header::CONTENT_LENGTH, size.to_string())];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// Download a blob by digest.
#[utoipa::path(get, path = "/api/v1/blobs/{digest}", tag = "artifacts", params(("digest" = String, Path)),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream"), (status = 404)))]
pub async fn download_blob(State(state): State<ApiState>, Path(digest): Path<String>) -> ApiResult<Response> {
    validate::digest("digest", &digest)?;
    blob_response(&state, &digest).await
}
