use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use trackstack_testkit::{expect_error, expect_json, scenario, TestServer};

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

async fn upload(server: &TestServer, data: &'static [u8]) -> String {
    let digest = sha256(data);
    let response = server.client.put(server.url(&format!("/api/v1/blobs/{digest}"))).body(data).send().await.unwrap();
    assert!(matches!(response.status(), StatusCode::CREATED | StatusCode::OK), "{}", response.status());
    digest
}

scenario! {
    async fn artifacts_upload_version_and_download(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |_| {}).await else { return };
        server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1"})).await;
        let weights: &'static [u8] = b"\x00\x01binary weights\xff";
        let config: &'static [u8] = b"{\"layers\": 4}";
        let (wd, cd) = (upload(&server, weights).await, upload(&server, config).await);
        let head = server.client.head(server.url(&format!("/api/v1/blobs/{wd}"))).send().await.unwrap();
        let declared = head.headers().get("content-length").and_then(|v| v.to_str().ok()).map(String::from);
        assert_eq!((head.status(), declared), (StatusCode::OK, Some(weights.len().to_string())));
        let missing = server.client.head(server.url(&format!("/api/v1/blobs/{}", sha256(b"nope")))).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);

        let manifest = json!({"name": "resnet", "type": "model", "aliases": ["best"], "files": [
            {"path": "weights/model.bin", "digest": wd, "size": weights.len()},
            {"path": "config.json", "digest": cd, "size": config.len()},
        ]});
        let v0 = expect_json(server.post_json("/api/v1/runs/r1/artifacts", &manifest).await, StatusCode::CREATED).await;
        assert_eq!(
            (v0["version"].as_str(), v0["type"].as_str(), v0["size"].as_u64()),
            (Some("v0"), Some("model"), Some((weights.len() + config.len()) as u64))
        );
        assert_eq!(v0["aliases"], json!(["best", "latest"]));
        let same = expect_json(server.post_json("/api/v1/runs/r1/artifacts", &manifest).await, StatusCode::OK).await;
        assert_eq!(same["version"], "v0", "unchanged content makes no new version");

        let file = server.get("/api/v1/projects/p/artifacts/resnet/versions/latest/files/weights/model.bin").await;
        assert_eq!(file.status(), StatusCode::OK);
        assert_eq!(&file.bytes().await.unwrap()[..], weights);
        let listed = server.get_ok("/api/v1/runs/r1/artifacts").await;
        assert_eq!(listed["artifacts"].as_array().unwrap().len(), 1);
        assert_eq!(server.get_ok("/api/v1/projects/p/artifacts").await["artifacts"][0]["name"], "resnet");
        assert_eq!(server.get_ok("/api/v1/projects/p/artifacts/resnet/versions/best").await["version"], "v0");
        expect_error(
            server.get("/api/v1/projects/p/artifacts/resnet/versions/v9").await,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        )
        .await;
        expect_error(
            server.get("/api/v1/projects/p/artifacts/resnet/versions/v0/files/nope.txt").await,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        )
        .await;
    }
}

scenario! {
    async fn bad_uploads_and_manifests_are_refused(shape: Shape) {
        let Some(server) = TestServer::start_shape(shape, |config| config.limits.max_blob_bytes = 1024).await else { return };
        server.post_json("/api/v1/projects/p/runs", &json!({"id": "r1"})).await;
        let claimed = sha256(b"claimed");
        let wrong = server.client.put(server.url(&format!("/api/v1/blobs/{claimed}"))).body("actual").send().await.unwrap();
        expect_error(wrong, StatusCode::BAD_REQUEST, "invalid_argument", Some("digest")).await;
        let big = vec![7u8; 2048];
        let too_big =
            server.client.put(server.url(&format!("/api/v1/blobs/{}", sha256(&big)))).body(big).send().await.unwrap();
        expect_error(too_big, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None).await;

        let never_uploaded = json!({"name": "m", "files": [{"path": "a", "digest": sha256(b"x"), "size": 1}]});
        expect_error(
            server.post_json("/api/v1/runs/r1/artifacts", &never_uploaded).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("files[0].digest"),
        )
        .await;
        let digest = upload(&server, b"abc").await;
        let escaping = json!({"name": "m", "files": [{"path": "../etc/passwd", "digest": digest, "size": 3}]});
        expect_error(
            server.post_json("/api/v1/runs/r1/artifacts", &escaping).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("files[0].path"),
        )
        .await;
        let wrong_size = json!({"name": "m", "files": [{"path": "a", "digest": digest, "size": 4}]});
        expect_error(
            server.post_json("/api/v1/runs/r1/artifacts", &wrong_size).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("files[0].size"),
        )
        .await;
        let bad_name = json!({"name": "has space", "files": [{"path": "a", "digest": digest, "size": 3}]});
        expect_error(
            server.post_json("/api/v1/runs/r1/artifacts", &bad_name).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("name"),
        )
        .await;
        assert_eq!(server.get_ok("/api/v1/runs/r1/artifacts").await["artifacts"], json!([]));
    }
}
