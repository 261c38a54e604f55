//! Bad input gets a 4xx naming the problem, and writes nothing.

use reqwest::StatusCode;
use serde_json::json;
use trackstack_testkit::{expect_error, expect_json, scenario, Shape, TestServer};

async fn start_with_run(shape: Shape) -> Option<TestServer> {
    let server = TestServer::start_shape(shape, |config| config.limits.max_json_body_bytes = 64 * 1024).await?;
    expect_json(server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1"})).await, StatusCode::CREATED).await;
    Some(server)
}

async fn post_raw(server: &TestServer, path: &str, body: &'static str) -> reqwest::Response {
    server.client.post(server.url(path)).header("content-type", "application/json").body(body).send().await.unwrap()
}

scenario! {
    async fn malformed_and_mistyped_bodies_name_the_problem(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        expect_error(
            post_raw(&server, "/api/v1/ingest", r#"{"run_id": "r1", "metrics": [}"#).await,
            StatusCode::BAD_REQUEST,
            "malformed_request",
            None,
        )
        .await;
        let cases = [
            (json!({"run_id": "r1", "metrics": [{"key": "a", "step": 1.5, "value": 1}]}), "metrics[0].step"),
            (json!({"run_id": "r1", "metrics": [{"key": "a", "step": "NaN", "value": 1}]}), "metrics[0].step"),
            (json!({"run_id": "r1", "metrics": [{"key": "a", "step": 1, "value": "nan"}]}), "metrics[0].value"),
            (json!({"run_id": "r1", "metrics": [{"key": "a", "step": 1, "value": true}]}), "metrics[0].value"),
            (json!({"run_id": "r1", "metrics": [{"key": "a", "step": -1, "value": 1}]}), "metrics[0].step"),
            (json!({"run_id": "r1", "metrics": [{"key": "a".repeat(257), "step": 1, "value": 1}]}), "metrics[0].key"),
            (json!({"run_id": "r1", "metrics": [{"key": "_step", "step": 1, "value": 1}]}), "metrics[0].key"),
            (json!({"run_id": "r1", "tags": ["ok", ""]}), "tags[1]"),
            (json!({"run_id": "r1", "state": "paused"}), "state"),
            (json!({"run_id": "r1", "sumary": {}}), "sumary"),
            (json!({"run_id": "bad id"}), "run_id"),
            (json!({"metrics": []}), "run_id"),
            (json!({"run_id": "r1", "metrics": [{"key": "a", "value": 1}]}), "metrics[0].step"),
        ];
        for (body, field) in cases {
            let response = server.post_json("/api/v1/ingest", &body).await;
            expect_error(response, StatusCode::BAD_REQUEST, "invalid_argument", Some(field)).await;
        }
        expect_error(
            server.post_json("/api/v1/ingest", &json!({"run_id": "ghost"})).await,
            StatusCode::NOT_FOUND,
            "not_found",
            Some("run_id"),
        )
        .await;
        let xml = server
            .client
            .post(server.url("/api/v1/ingest"))
            .header("content-type", "text/xml")
            .body("<a/>")
            .send()
            .await
            .unwrap();
        expect_error(xml, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None).await;
        let brotli = server
            .client
            .post(server.url("/api/v1/ingest"))
            .header("content-type", "application/json")
            .header("content-encoding", "br")
            .body("{}")
            .send()
            .await
            .unwrap();
        expect_error(brotli, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None).await;
    }
}

scenario! {
    async fn a_rejected_batch_writes_nothing(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let mut metrics: Vec<_> = (0..10).map(|s| json!({"key": "loss", "step": s, "value": 0.5})).collect();
        metrics.push(json!({"key": "", "step": 10, "value": 0.5}));
        let batch = json!({"run_id": "r1", "metrics": metrics, "config": {"lr": 1}, "tags": ["t"], "state": "finished"});
        expect_error(
            server.post_json("/api/v1/ingest", &batch).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("metrics[10].key"),
        )
        .await;
        assert_eq!(server.get_ok("/api/v1/runs/r1/metrics").await["metrics"], json!([]));
        let run = server.get_ok("/api/v1/runs/r1").await;
        assert_eq!(
            (run["config"].clone(), run["tags"].clone(), run["state"].clone()),
            (json!({}), json!([]), json!("running"))
        );
    }
}

scenario! {
    async fn oversize_bodies_are_refused_even_when_compressed(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let metrics: Vec<_> = (0..5000).map(|s| json!({"key": "loss", "step": s, "value": 0.5})).collect();
        let body = json!({"run_id": "r1", "metrics": metrics});
        expect_error(
            server.post_json("/api/v1/ingest", &body).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        )
        .await;
        // A small gzip body that inflates past the limit is refused too.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, serde_json::to_vec(&body).unwrap().as_slice()).unwrap();
        let response = server
            .client
            .post(server.url("/api/v1/ingest"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gz.finish().unwrap())
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None).await;
        assert_eq!(server.get_ok("/api/v1/runs/r1/metrics").await["metrics"], json!([]));
    }
}

scenario! {
    async fn bad_query_parameters_and_unknown_routes(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        expect_error(
            server.get("/api/v1/runs/r1/series/buckets?key=x&buckets=0").await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("buckets"),
        )
        .await;
        expect_error(
            server.get("/api/v1/runs/r1/series/buckets?key=x&buckets=10001").await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("buckets"),
        )
        .await;
        expect_error(
            server.get("/api/v1/runs/r1/series?key=x&start=abc").await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("start"),
        )
        .await;
        expect_error(
            server.get("/api/v1/runs/r1/series?key=x&start=9&end=1").await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("start"),
        )
        .await;
        expect_error(server.get("/api/v1/runs/r1/series").await, StatusCode::BAD_REQUEST, "invalid_argument", Some("key"))
            .await;
        expect_error(server.get("/api/v1/runs/ghost/series?key=x").await, StatusCode::NOT_FOUND, "not_found", None).await;
        expect_error(server.get("/api/v1/nothing/here").await, StatusCode::NOT_FOUND, "not_found", None).await;
        let wrong_method = server.client.put(server.url("/api/v1/projects")).send().await.unwrap();
        expect_error(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None).await;
    }
}

scenario! {
    async fn the_openapi_document_and_health_are_served(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |_| {}).await else { return };
        assert_eq!(server.get_ok("/api/v1/health").await["status"], "ok");
        let doc = server.get_ok("/api/v1/openapi.json").await;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in
            ["/api/v1/ingest", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/series/buckets", "/api/v1/blobs/{digest}"]
        {
            assert!(doc["paths"][path].is_object(), "{path} is not documented");
        }
    }
}
