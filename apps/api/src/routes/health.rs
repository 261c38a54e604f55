//! Liveness and the OpenAPI document.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use trackstack_domain::{Error, ErrorCode};
use trackstack_server_kit::ApiResult;
use trackstack_store::Stores;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

/// Report that the server is up.
#[utoipa::path(get, path = "/api/v1/health", tag = "meta", responses((status = 200, body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// The OpenAPI 3.1 document describing this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI document")))]
pub async fn openapi_document() -> impl IntoResponse {
    axum::Json(crate::openapi::document())
}

/// What readiness depends on: the stores, and whether the process is shutting down.
#[derive(Clone)]
pub struct Readiness {
    pub stores: Stores,
    /// Set once shutdown begins, so load balancers stop sending new work while in-flight requests finish.
    pub draining: Arc<AtomicBool>,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub status: &'static str,
}

/// Report whether this process should receive traffic: every store answers and it is not shutting down.
#[utoipa::path(get, path = "/api/v1/ready", tag = "meta",
    responses((status = 200, body = Ready), (status = 503, description = "A store is unreachable, or the process is shutting down")))]
pub async fn ready(State(readiness): State<Readiness>) -> ApiResult<axum::Json<Ready>> {
    let unavailable = |message: String| Error::new(ErrorCode::Unavailable, message);
    if readiness.draining.load(Ordering::Relaxed) {
        return Err(unavailable("shutting down".to_owned()).into());
    }
    let stores = &readiness.stores;
    let (metadata, series, blobs) = tokio::join!(stores.metadata.check(), stores.series.check(), stores.blobs.check());
    for (name, result) in [("metadata", metadata), ("series", series), ("blob", blobs)] {
        if let Err(error) = result {
            tracing::warn!(store = name, %error, "readiness check failed");
            return Err(unavailable(format!("the {name} store is unavailable")).into());
        }
    }
    Ok(axum::Json(Ready { status: "ready" }))
}
