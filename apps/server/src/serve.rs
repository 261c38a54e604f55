//! Router assembly and serving.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use trackstack_api::{ApiLimits, ApiState, Readiness};
use trackstack_config::{Config, Role};
use trackstack_ingest::{IngestLimits, IngestService};
use trackstack_processor::{Processor, ProcessorSettings};
use trackstack_server_kit::{method_not_allowed, record_http_metrics, route_not_found, uniform_errors, JsonBodyLimit};
use trackstack_store::Stores;

/// The HTTP surface of a process running `config.server.roles`.
///
/// The api role serves the whole REST API, ingest included, so one URL is enough for a client; an ingest-only
/// process serves the write path (ingest and blob uploads) for deployments that scale it separately; a
/// processor-only process serves health.
pub fn router(config: &Config, stores: Stores, draining: Arc<AtomicBool>) -> Router {
    // Installed before any request is served, so nothing is recorded into the void.
    crate::telemetry::prometheus();
    let roles = &config.server.roles;
    let readiness = Readiness { stores: stores.clone(), draining };
    let limits = IngestLimits {
        max_keys_per_run: config.limits.max_keys_per_run,
        max_points_per_batch: config.limits.max_points_per_batch,
        max_key_bytes: config.limits.max_key_bytes,
    };
    let ingest = IngestService::new(stores.metadata.clone(), stores.series.clone(), stores.changes.clone(), limits);
    let api_state = ApiState { stores, limits: ApiLimits { max_blob_bytes: config.limits.max_blob_bytes } };
    let json_limit = usize::try_from(config.limits.max_json_body_bytes).unwrap_or(usize::MAX);
    let routes = if roles.contains(&Role::Api) {
        Router::new()
            .route("/", get(index))
            .merge(trackstack_api::router(api_state))
            .merge(trackstack_ingest::http::router(ingest.clone()))
            .merge(trackstack_ingest::grpc::router(ingest))
    } else if roles.contains(&Role::Ingest) {
        trackstack_api::upload_router(api_state)
            .merge(trackstack_ingest::http::router(ingest.clone()))
            .merge(trackstack_ingest::grpc::router(ingest))
    } else {
        trackstack_api::health_router()
    };
    routes
        .merge(trackstack_api::readiness_router(readiness))
        .route("/metrics", get(crate::telemetry::metrics_endpoint))
        .route_layer(axum::middleware::from_fn(record_http_metrics))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(JsonBodyLimit(json_limit)))
        .layer(RequestDecompressionLayer::new())
        .layer(axum::middleware::from_fn(uniform_errors))
        // Request spans at INFO, so they reach trace export (and give log lines their request context).
        .layer(TraceLayer::new_for_http().make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO)))
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
    let stores = crate::stores::open_stores(&config).await?;
    let processor = config.server.roles.contains(&Role::Processor).then(|| {
        let settings = ProcessorSettings {
            interval: Duration::from_secs(config.processor.interval_secs),
            crash_after: Duration::from_secs(config.processor.crash_after_secs),
        };
        Processor::new(stores.metadata.clone(), stores.series.clone(), settings)
    });
    let draining = Arc::new(AtomicBool::new(false));
    let app = router(&config, stores, Arc::clone(&draining));
    // The processor stops when the server does: its jobs are idempotent, so an interrupted pass is simply redone.
    let (stop_processor, processor_stopped) = tokio::sync::oneshot::channel::<()>();
    let processor_task = processor.map(|p| {
        tokio::spawn(p.run(async move {
            let _ = processor_stopped.await;
        }))
    });
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        draining.store(true, Ordering::Relaxed);
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
    let served = tokio::select! {
        result = graceful => result.map_err(anyhow::Error::from),
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
            Ok(())
        }
    };
    let _ = stop_processor.send(());
    if let Some(task) = processor_task {
        let _ = task.await;
    }
    served
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn status(app: &Router, method: Method, path: &str) -> StatusCode {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        app.clone().oneshot(request).await.unwrap().status()
    }

    async fn app_for(roles: &[Role], dir: &std::path::Path) -> Router {
        let mut config = Config { data_dir: dir.to_owned(), ..Config::default() };
        config.server.roles = roles.to_vec();
        router(&config, crate::stores::open_stores(&config).await.unwrap(), Arc::default())
    }

    #[tokio::test]
    async fn each_role_serves_its_own_routes() {
        let dir = tempfile::tempdir().unwrap();
        let ingest_only = app_for(&[Role::Ingest], dir.path()).await;
        assert_eq!(status(&ingest_only, Method::GET, "/api/v1/health").await, StatusCode::OK);
        // Routed (an empty body is a client error, not a missing route).
        assert_eq!(status(&ingest_only, Method::POST, "/api/v1/ingest").await, StatusCode::BAD_REQUEST);
        assert_eq!(status(&ingest_only, Method::GET, "/api/v1/projects").await, StatusCode::NOT_FOUND);

        let processor_only = app_for(&[Role::Processor], dir.path()).await;
        assert_eq!(status(&processor_only, Method::GET, "/api/v1/health").await, StatusCode::OK);
        assert_eq!(status(&processor_only, Method::POST, "/api/v1/ingest").await, StatusCode::NOT_FOUND);

        let api_only = app_for(&[Role::Api], dir.path()).await;
        assert_eq!(status(&api_only, Method::GET, "/api/v1/projects").await, StatusCode::OK);
        assert_eq!(status(&api_only, Method::POST, "/api/v1/ingest").await, StatusCode::BAD_REQUEST);
        for app in [&ingest_only, &processor_only, &api_only] {
            assert_eq!(status(app, Method::GET, "/metrics").await, StatusCode::OK);
            assert_eq!(status(app, Method::GET, "/api/v1/ready").await, StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn a_draining_process_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let draining = Arc::new(AtomicBool::new(false));
        let app = router(&config, crate::stores::open_stores(&config).await.unwrap(), Arc::clone(&draining));
        assert_eq!(status(&app, Method::GET, "/api/v1/ready").await, StatusCode::OK);
        draining.store(true, Ordering::Relaxed);
        assert_eq!(status(&app, Method::GET, "/api/v1/ready").await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(&app, Method::GET, "/api/v1/health").await, StatusCode::OK, "alive while draining");
    }

    #[tokio::test]
    async fn metrics_count_requests_by_route_template() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_for(&Role::ALL, dir.path()).await;
        status(&app, Method::GET, "/api/v1/runs/some-run-id").await;
        let request = Request::builder().uri("/metrics").body(Body::empty()).unwrap();
        let body = app.clone().oneshot(request).await.unwrap().into_body();
        let text = String::from_utf8(axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec()).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("trackstack_http_requests_total") && l.contains("route=\"/api/v1/runs/{run_id}\""))
            .unwrap_or_else(|| panic!("no request counter for the route template in:\n{text}"));
        assert!(line.contains("status=\"404\""), "{line}");
        assert!(!text.contains("some-run-id"), "raw paths must not become labels");
    }

    #[tokio::test]
    async fn the_series_engine_reports_its_log_and_head() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let stores = crate::stores::open_stores(&config).await.unwrap();
        // The router installs the process's recorder; only what happens after it is recorded.
        let app = router(&config, stores.clone(), Arc::new(AtomicBool::new(false)));
        let point = trackstack_domain::model::MetricPoint { key: "x".into(), step: 1, value: 1.0, time_ms: 0 };
        stores.series.write_points("p", "r", &[point]).await.unwrap();
        let request = Request::builder().uri("/metrics").body(Body::empty()).unwrap();
        let body = app.oneshot(request).await.unwrap().into_body();
        let text = String::from_utf8(axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec()).unwrap();
        use trackstack_store_sqlite::series_metric_names as names;
        for name in [names::HEAD_POINTS, names::LOG_SYNC_SECONDS, names::GROUP_COMMIT_WRITES] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
