//! The compact write paths: protobuf over HTTP (plain, gzip, zstd) and gRPC (unary and client-streaming), with
//! a real tonic client; they land exactly what the JSON path lands, and refuse bad batches the same way.

use std::io::Write;

use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};
use trackstack_proto::v1 as pb;
use trackstack_proto::v1::ingest_client::IngestClient;
use trackstack_testkit::{expect_error, expect_json, scenario, Shape, TestServer};

async fn start_with_run(shape: Shape) -> Option<TestServer> {
    let server = TestServer::start_shape(shape, |_| {}).await?;
    expect_json(server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1"})).await, StatusCode::CREATED).await;
    Some(server)
}

/// Steps `steps` of `loss` and `acc`, value = step / 1000 (acc: NaN at step 3).
fn columns(steps: std::ops::Range<i64>) -> pb::IngestBatch {
    let mut batch =
        pb::IngestBatch { run_id: "r1".into(), keys: vec!["loss".into(), "acc".into()], ..Default::default() };
    for step in steps {
        for key in 0..2u32 {
            batch.key_index.push(key);
            batch.steps.push(step);
            batch.values.push(if key == 1 && step == 3 { f64::NAN } else { step as f64 / 1000.0 });
            batch.times_ms.push(1_000 + step);
        }
    }
    batch
}

async fn post_protobuf(server: &TestServer, body: Vec<u8>, encoding: Option<&str>) -> reqwest::Response {
    let mut request =
        server.client.post(server.url("/api/v1/ingest")).header("content-type", "application/x-protobuf").body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request.send().await.unwrap()
}

async fn steps_of(server: &TestServer, key: &str) -> Vec<(i64, Value)> {
    let page = server.get_ok(&format!("/api/v1/runs/r1/series?key={key}&limit=100000")).await;
    page["points"].as_array().unwrap().iter().map(|p| (p["step"].as_i64().unwrap(), p["value"].clone())).collect()
}

async fn grpc_client(server: &TestServer) -> IngestClient<tonic::transport::Channel> {
    IngestClient::connect(server.url("")).await.expect("gRPC connects on the HTTP port")
}

scenario! {
    async fn protobuf_bodies_land_like_json(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let plain = columns(0..10).encode_to_vec();
        assert_eq!(expect_json(post_protobuf(&server, plain, None).await, StatusCode::OK).await["accepted_points"], 20);

        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&columns(10..20).encode_to_vec()).unwrap();
        expect_json(post_protobuf(&server, gzip.finish().unwrap(), Some("gzip")).await, StatusCode::OK).await;
        let zstd = zstd::encode_all(&columns(20..30).encode_to_vec()[..], 3).unwrap();
        expect_json(post_protobuf(&server, zstd, Some("zstd")).await, StatusCode::OK).await;

        let updates = pb::IngestBatch {
            run_id: "r1".into(),
            config_json: Some(r#"{"lr": 0.01}"#.into()),
            tags: vec!["compact".into()],
            replace_tags: true,
            state: Some("finished".into()),
            ..Default::default()
        };
        expect_json(post_protobuf(&server, updates.encode_to_vec(), None).await, StatusCode::OK).await;

        let acc = steps_of(&server, "acc").await;
        assert_eq!(acc.len(), 30);
        assert_eq!(acc[3], (3, json!("NaN")));
        assert_eq!(steps_of(&server, "loss").await[29], (29, json!(0.029)));
        let run = server.get_ok("/api/v1/runs/r1").await;
        assert_eq!((run["config"]["lr"].clone(), run["tags"].clone(), run["state"].clone()), (json!(0.01), json!(["compact"]), json!("finished")));
    }
}

scenario! {
    async fn bad_protobuf_batches_are_refused_and_write_nothing(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let garbage = post_protobuf(&server, vec![0xff, 0xff, 0xff], None).await;
        expect_error(garbage, StatusCode::BAD_REQUEST, "malformed_request", None).await;
        let mut short = columns(0..5);
        short.values.pop();
        expect_error(post_protobuf(&server, short.encode_to_vec(), None).await, StatusCode::BAD_REQUEST, "invalid_argument", Some("values")).await;
        let mut bad_step = columns(0..5);
        bad_step.steps[4] = -1;
        let refused = post_protobuf(&server, bad_step.encode_to_vec(), None).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(steps_of(&server, "loss").await.is_empty(), "a refused batch writes nothing");
    }
}

scenario! {
    async fn grpc_write_and_push_land_every_batch(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let mut client = grpc_client(&server).await;
        let ack = client.write(columns(0..100)).await.unwrap().into_inner();
        assert_eq!(ack.accepted_points, 200);

        let batches: Vec<pb::IngestBatch> = (1..10).map(|i| columns(i * 100..(i + 1) * 100)).collect();
        let ack = client
            .clone()
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .push(futures_util::stream::iter(batches.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ack.accepted_points, 1_800);
        // A replayed stream changes nothing.
        client.push(futures_util::stream::iter(batches)).await.unwrap();
        let loss = steps_of(&server, "loss").await;
        assert_eq!(loss.len(), 1_000);
        assert!(loss.iter().enumerate().all(|(i, (step, _))| *step == i as i64));
    }
}

scenario! {
    async fn grpc_errors_carry_the_code_and_the_field(shape: Shape) {
        let Some(server) = start_with_run(shape).await else { return };
        let mut client = grpc_client(&server).await;
        let unknown_run = client.write(pb::IngestBatch { run_id: "nope".into(), ..columns(0..1) }).await.unwrap_err();
        assert_eq!(unknown_run.code(), tonic::Code::NotFound);
        let mut bad = columns(0..2);
        bad.key_index[1] = 9;
        let invalid = client.write(bad).await.unwrap_err();
        assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
        assert_eq!(invalid.metadata().get("trackstack-field").unwrap(), "key_index[1]");
        // In a stream, batches before the bad one are durable; the bad one and later ones are not applied.
        let stream = vec![columns(0..3), pb::IngestBatch { values: vec![], ..columns(3..4) }, columns(4..5)];
        let error = client.push(futures_util::stream::iter(stream)).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        let loss: Vec<i64> = steps_of(&server, "loss").await.into_iter().map(|(s, _)| s).collect();
        assert_eq!(loss, [0, 1, 2]);
    }
}
