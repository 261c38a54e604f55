use std::io::Write;

use reqwest::StatusCode;
use serde_json::{json, Value};
use trackstack_testkit::{expect_json, scenario, Shape, TestServer};

async fn start_with_run(shape: Shape) -> Option<TestServer> {
    let server = TestServer::start_shape(shape, |_| {}).await?;
    expect_json(server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1"})).await, StatusCode::CREATED).await;
    Some(server)
}

fn loss_batch(steps: std::ops::Range<i64>) -> Value {
    let metrics: Vec<Value> = steps
        .map(|s| json!({"key": "train/loss", "step": s, "value": 1.0 / (s as f64 + 1.0), "time_ms": 1000 + s}))
        .collect();
    json!({"run_id": "r1", "metrics": metrics})
}

scenario! {
    async fn a_batch_round_trips_with_every_kind_of_value(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let batch = json!({
            "run_id": "r1",
            "metrics": [
                {"key": "x", "step": 0, "value": 1.5},
                {"key": "x", "step": 1, "value": "NaN"},
                {"key": "x", "step": 2, "value": "Infinity"},
                {"key": "x", "step": 3, "value": "-Infinity"},
                {"key": "x", "step": 4, "value": -2},
                {"key": "x", "step": 9007199254740991_i64, "value": 1e308},
            ],
            "config": {"lr": 0.001, "model": {"depth": 50}},
            "summary": {"best/acc": 0.93},
            "tags": ["baseline"],
        });
        assert_eq!(
            expect_json(server.post_json("/api/v1/ingest", &batch).await, StatusCode::OK).await,
            json!({"accepted_points": 6})
        );
        let raw = server.get_ok("/api/v1/runs/r1/series?key=x").await;
        let values: Vec<Value> = raw["points"].as_array().unwrap().iter().map(|p| p["value"].clone()).collect();
        assert_eq!(values, [json!(1.5), json!("NaN"), json!("Infinity"), json!("-Infinity"), json!(-2.0), json!(1e308)]);
        let run = server.get_ok("/api/v1/runs/r1").await;
        assert_eq!(run["config"], json!({"lr": 0.001, "model": {"depth": 50}}));
        assert_eq!(run["tags"], json!(["baseline"]));
        assert_eq!(run["summary"], json!({"best/acc": 0.93, "x": 1e308}), "the summary follows the highest step");
        let stats = server.get_ok("/api/v1/runs/r1/metrics").await;
        assert_eq!(
            stats["metrics"][0],
            json!({"key": "x", "count": 6, "last_step": 9007199254740991_i64, "last_value": 1e308, "min": -2.0, "max": 1e308})
        );
    }
}

scenario! {
    async fn replaying_a_batch_changes_nothing(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let batch = loss_batch(0..500);
        for _ in 0..3 {
            expect_json(server.post_json("/api/v1/ingest", &batch).await, StatusCode::OK).await;
        }
        let stats = server.get_ok("/api/v1/runs/r1/metrics").await;
        assert_eq!(stats["metrics"][0]["count"], 500);
        let before = server.get_ok("/api/v1/runs/r1/series?key=train/loss&limit=100000").await;
        expect_json(server.post_json("/api/v1/ingest", &batch).await, StatusCode::OK).await;
        assert_eq!(server.get_ok("/api/v1/runs/r1/series?key=train/loss&limit=100000").await, before);
    }
}

scenario! {
    async fn raw_reads_page_and_bucketed_reads_aggregate(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        expect_json(server.post_json("/api/v1/ingest", &loss_batch(0..1000)).await, StatusCode::OK).await;
        let mut steps = Vec::new();
        let mut path = "/api/v1/runs/r1/series?key=train/loss&start=100&end=349&limit=64".to_owned();
        loop {
            let page = server.get_ok(&path).await;
            steps.extend(page["points"].as_array().unwrap().iter().map(|p| p["step"].as_i64().unwrap()));
            match page["next_cursor"].as_i64() {
                Some(cursor) => {
                    path = format!("/api/v1/runs/r1/series?key=train/loss&start=100&end=349&limit=64&cursor={cursor}")
                }
                None => break,
            }
        }
        assert_eq!(steps, (100..350).collect::<Vec<i64>>());
        let buckets = server.get_ok("/api/v1/runs/r1/series/buckets?key=train/loss&buckets=10").await;
        assert_eq!((buckets["start"].as_i64(), buckets["end"].as_i64()), (Some(0), Some(999)));
        let list = buckets["buckets"].as_array().unwrap();
        // At most 10 buckets of a power-of-two width aligned to step 0: 128 steps, so 8 buckets.
        assert_eq!(list.len(), 8);
        assert_eq!(
            list[0],
            json!({"first_step": 0, "last_step": 127, "count": 128, "min": 1.0 / 128.0, "max": 1.0, "mean": list[0]["mean"], "last": 1.0 / 128.0})
        );
        assert_eq!((list[7]["first_step"].as_i64(), list[7]["count"].as_u64()), (Some(896), Some(104)));
        let expected_mean = (1..=128).map(|s| 1.0 / s as f64).sum::<f64>() / 128.0;
        assert!((list[0]["mean"].as_f64().unwrap() - expected_mean).abs() < 1e-12);
        let zoom = server.get_ok("/api/v1/runs/r1/series/buckets?key=train/loss&buckets=5&start=500&end=509").await;
        assert_eq!(
            zoom["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).collect::<Vec<_>>(),
            [2, 2, 2, 2, 2]
        );
    }
}

scenario! {
    async fn compressed_bodies_are_accepted(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let body = serde_json::to_vec(&loss_batch(0..100)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        let gzipped = gz.finish().unwrap();
        let zstded = zstd::encode_all(&serde_json::to_vec(&loss_batch(100..200)).unwrap()[..], 3).unwrap();
        for (encoding, bytes) in [("gzip", gzipped), ("zstd", zstded)] {
            let response = server
                .client
                .post(server.url("/api/v1/ingest"))
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(expect_json(response, StatusCode::OK).await["accepted_points"], 100, "{encoding}");
        }
        assert_eq!(server.get_ok("/api/v1/runs/r1/metrics").await["metrics"][0]["count"], 200);
    }
}

scenario! {
    async fn batches_set_state_and_heartbeat(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let before = server.get_ok("/api/v1/runs/r1").await["heartbeat_at"].clone();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        expect_json(
            server.post_json("/api/v1/ingest", &json!({"run_id": "r1", "state": "finished", "exit_code": 0})).await,
            StatusCode::OK,
        )
        .await;
        let run = server.get_ok("/api/v1/runs/r1").await;
        assert_eq!(run["state"], "finished");
        assert_ne!(run["heartbeat_at"], before);
    }
}

scenario! {
    async fn a_run_cannot_grow_past_its_metric_key_limit(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |config| config.limits.max_keys_per_run = 3).await else {
            return;
        };
        expect_json(server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1"})).await, StatusCode::CREATED).await;
        let batch = |keys: &[&str]| {
            let metrics: Vec<Value> = keys.iter().map(|k| json!({"key": k, "step": 0, "value": 1.0})).collect();
            json!({"run_id": "r1", "metrics": metrics})
        };
        expect_json(server.post_json("/api/v1/ingest", &batch(&["a", "b"])).await, StatusCode::OK).await;
        let refused = server.post_json("/api/v1/ingest", &batch(&["a", "c", "d"])).await;
        let error = trackstack_testkit::expect_error(refused, StatusCode::BAD_REQUEST, "invalid_argument", Some("metrics[2].key")).await;
        assert!(error["error"]["message"].as_str().unwrap().contains("limits.max_keys_per_run = 3"), "{error}");
        let keys = server.get_ok("/api/v1/runs/r1/metrics").await;
        assert_eq!(keys["metrics"].as_array().map(Vec::len), Some(2), "the refused batch wrote nothing: {keys}");
        // Known keys keep flowing; one more new key fits, then no more.
        expect_json(server.post_json("/api/v1/ingest", &batch(&["a", "b", "c", "a"])).await, StatusCode::OK).await;
        let refused = server.post_json("/api/v1/ingest", &batch(&["e"])).await;
        trackstack_testkit::expect_error(refused, StatusCode::BAD_REQUEST, "invalid_argument", Some("metrics[0].key")).await;
        // Both refusals are counted on the run, with the latest reason.
        let run = server.get_ok("/api/v1/runs/r1").await;
        assert_eq!(run["rejected_points"], 3 + 1, "{run}");
        assert!(run["last_rejection"].as_str().unwrap().contains("limits.max_keys_per_run = 3"), "{run}");
    }
}

scenario! {
    async fn configured_batch_and_key_limits_tighten_the_built_in_ones(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |config| {
            config.limits.max_points_per_batch = 2;
            config.limits.max_key_bytes = 4;
        })
        .await
        else {
            return;
        };
        expect_json(server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1"})).await, StatusCode::CREATED).await;
        let point = |key: &str, step: i64| json!({"key": key, "step": step, "value": 1.0});
        let three = json!({"run_id": "r1", "metrics": [point("a", 0), point("a", 1), point("a", 2)]});
        let refused = server.post_json("/api/v1/ingest", &three).await;
        trackstack_testkit::expect_error(refused, StatusCode::BAD_REQUEST, "invalid_argument", Some("metrics")).await;
        let long_key = json!({"run_id": "r1", "metrics": [point("abcd", 0), point("abcde", 0)]});
        let refused = server.post_json("/api/v1/ingest", &long_key).await;
        let error = trackstack_testkit::expect_error(refused, StatusCode::BAD_REQUEST, "invalid_argument", Some("metrics[1].key")).await;
        assert!(error["error"]["message"].as_str().unwrap().contains("limits.max_key_bytes = 4"), "{error}");
        let fits = json!({"run_id": "r1", "metrics": [point("abcd", 0), point("abcd", 1)]});
        expect_json(server.post_json("/api/v1/ingest", &fits).await, StatusCode::OK).await;
        let run = server.get_ok("/api/v1/runs/r1").await;
        assert_eq!(run["rejected_points"], 3 + 2, "{run}");
        assert!(run["last_rejection"].as_str().unwrap().contains("limits.max_key_bytes = 4"), "{run}");
    }
}
