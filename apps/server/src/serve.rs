//! Router assembly and serving.

use std::future::Future;
use std::time::Duration;

use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::trace::TraceLayer;
use trackstack_api::{ApiLimits, ApiState};
use trackstack_config::Config;
use trackstack_ingest::IngestService;
use trackstack_server_kit::{method_not_allowed, route_not_found, uniform_errors, JsonBodyLimit};
use trackstack_store::Stores;

/// The whole HTTP surface of an all-in-one server.
pub fn router(config: &Config, stores: Stores) -> Router {
    let ingest = IngestService::new(stores.metadata.clone(), stores.series.clone());
    let api_state = ApiState { stores, limits: ApiLimits { max_blob_bytes: config.limits.max_blob_bytes } };
    let json_limit = usize::try_from(config.limits.max_json_body_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/", get(index))
        .merge(trackstack_api::router(api_state))
        .merge(trackstack_ingest::http::router(ingest))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(JsonBodyLimit(json_limit)))
        .layer(RequestDecompressionLayer::new())
        .layer(axum::middleware::from_fn(uniform_errors))
        .layer(TraceLayer::new_for_http())
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish for up to the configured grace period.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stores = crate::stores::open_stores(&config)?;
    let app = router(&config, stores);
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down; finishing in-flight requests");
        let _ = signalled_tx.send(());
    });
    let deadline = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = graceful => result?,
        () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time"),
    }
    Ok(())
}
