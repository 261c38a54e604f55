//! The `trackstack` binary as a user runs it: help, start-up validation, serving, graceful shutdown.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{spawn_server, trackstack};

#[test]
fn help_documents_the_server_flags() {
    let output = trackstack().args(["server", "--help"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for flag in ["--data-dir", "--bind", "--config", "--log-format", "TRACKSTACK_DATA_DIR"] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

#[test]
fn invalid_configuration_is_reported_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let output = trackstack()
        .args(["server", "--bind", "nowhere", "--data-dir"])
        .arg(dir.path())
        .env("TRACKSTACK_LIMITS__MAX_BLOB_BYTES", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("server.bind = \"nowhere\""), "{text}");
    assert!(text.contains("limits.max_blob_bytes"), "every problem is listed: {text}");
    assert!(!text.contains("backtrace"), "{text}");
}

#[test]
fn serves_then_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_server(dir.path(), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let health: serde_json::Value =
        runtime.block_on(async { reqwest::get(format!("{url}/api/v1/health")).await.unwrap().json().await.unwrap() });
    assert_eq!(health["status"], "ok");
    assert!(
        dir.path().join("meta.db").exists()
            && dir.path().join("series.db").exists()
            && dir.path().join("blobs").is_dir()
    );

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!("the server did not stop within 10 s of SIGTERM");
}

#[test]
fn traces_are_exported_over_otlp_when_configured() {
    use std::sync::{Arc, Mutex};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A stand-in collector: records what arrives at the OTLP/HTTP traces path.
    let received: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let seen = Arc::clone(&received);
    let collector = runtime.block_on(async {
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                let kind = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                seen.lock().unwrap().push((kind, body.len()));
                ""
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        address
    });

    let dir = tempfile::tempdir().unwrap();
    let otlp = [("TRACKSTACK_TELEMETRY__OTLP_ENDPOINT", format!("http://{collector}"))];
    let (mut child, url) = spawn_server(dir.path(), &otlp);
    runtime.block_on(async {
        for _ in 0..3 {
            reqwest::get(format!("{url}/api/v1/projects")).await.unwrap();
        }
    });
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    // The server flushes its spans while exiting.
    let exports = received.lock().unwrap().clone();
    assert!(!exports.is_empty(), "no OTLP export arrived");
    assert!(exports.iter().all(|(kind, size)| kind == "application/x-protobuf" && *size > 0), "{exports:?}");
}
