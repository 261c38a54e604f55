use reqwest::StatusCode;
use serde_json::json;
use trackstack_testkit::{expect_json, TestServer};

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1", "config": {"seed": 7}})).await;
    let metrics: Vec<_> = (0..300).map(|s| json!({"key": "loss", "step": s, "value": s as f64 * 0.5})).collect();
    expect_json(
        server
            .post_json("/api/v1/ingest", &json!({"run_id": "r1", "metrics": metrics, "summary": {"note": "kept"}}))
            .await,
        StatusCode::OK,
    )
    .await;
    let run_before = server.get_ok("/api/v1/runs/r1").await;
    let points_before = server.get_ok("/api/v1/runs/r1/series?key=loss&limit=1000").await;
    server.stop().await;

    let restarted = TestServer::start_in(dir.path(), |_| {}).await;
    assert_eq!(restarted.get_ok("/api/v1/runs/r1").await, run_before);
    assert_eq!(restarted.get_ok("/api/v1/runs/r1/series?key=loss&limit=1000").await, points_before);
    assert_eq!(restarted.get_ok("/api/v1/projects").await["projects"][0]["name"], "p");
}
