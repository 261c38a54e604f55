use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use trackstack_testkit::{expect_json, scenario, TestServer};

/// Reads the event stream until an event named `name` arrives, returning its data line.
async fn next_event(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    name: &str,
) -> serde_json::Value {
    let mut text = String::new();
    let text_ref = &mut text;
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        let text = text_ref;
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = text.find("\n\n") {
                let frame: String = text.drain(..end + 2).collect();
                if frame.lines().any(|l| l == format!("event: {name}")) {
                    let data = frame.lines().find_map(|l| l.strip_prefix("data: ")).unwrap().to_owned();
                    return serde_json::from_str(&data).unwrap();
                }
            }
        }
        panic!("the event stream ended");
    })
    .await;
    found.unwrap_or_else(|_| panic!("no `{name}` event within 10 s; received so far: {text:?}"))
}

scenario! {
    async fn writes_arrive_as_server_sent_events(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |_| {}).await else { return };
        let response = server.get("/api/v1/events?project=p").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut stream = response.bytes_stream();

        expect_json(
            server.post_json("/api/v1/projects/other/runs", &json!({"id": "elsewhere"})).await,
            StatusCode::CREATED,
        )
        .await;
        expect_json(server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1"})).await, StatusCode::CREATED).await;
        let created = next_event(&mut stream, "run").await;
        assert_eq!(
            created,
            json!({"type": "run", "project": "p", "run_id": "r1", "state": "running"}),
            "other projects are filtered out"
        );

        let batch = json!({"run_id": "r1", "metrics": [{"key": "loss", "step": 7, "value": 0.5}, {"key": "acc", "step": 3, "value": 0.1}]});
        expect_json(server.post_json("/api/v1/ingest", &batch).await, StatusCode::OK).await;
        let points = next_event(&mut stream, "points").await;
        assert_eq!(
            points,
            json!({"type": "points", "project": "p", "run_id": "r1", "keys": ["acc", "loss"], "keys_truncated": false, "max_step": 7, "points": 2})
        );

        expect_json(server.post_json("/api/v1/runs/r1/finish", &json!({})).await, StatusCode::OK).await;
        assert_eq!(next_event(&mut stream, "run").await["state"], "finished");
    }
}
