//! Test support: [`TestServer`], a complete Trackstack server in the test's own process on an ephemeral
//! port with its own temporary data directory, and small HTTP helpers for asserting on API responses.

use std::path::{Path, PathBuf};

use reqwest::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use trackstack_config::Config;

/// A running in-process server. Dropping it stops the server; [`TestServer::stop`] waits for that.
pub struct TestServer {
    base_url: String,
    data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _temp: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
}

/// Where a scenario's server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Embedded storage in a temporary data directory.
    AllInOne,
    /// Postgres, ClickHouse and S3 from `TRACKSTACK_TEST_*` (what `make test` starts), in a fresh schema,
    /// database and bucket prefix per server.
    ExternalStorage,
}

impl TestServer {
    /// Starts a server of `shape` after `configure` adjusts its configuration; `None` when the external
    /// services are not configured (outside CI only — under `CI=true` that panics).
    pub async fn start_shape(shape: Shape, configure: impl FnOnce(&mut Config)) -> Option<TestServer> {
        match shape {
            Shape::AllInOne => Some(Self::start_with(configure).await),
            Shape::ExternalStorage => {
                let storage = external_storage()?;
                Some(
                    Self::start_with(|config| {
                        config.storage = storage;
                        configure(config);
                    })
                    .await,
                )
            }
        }
    }

    /// Starts a server with default settings on a fresh data directory.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `configure` adjusts its configuration.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let temp = tempfile::tempdir().expect("temporary data dir");
        let mut server = Self::start_in(temp.path(), configure).await;
        server._temp = Some(temp);
        server
    }

    /// Starts a server on an existing data directory (e.g. to check what survives a restart).
    pub async fn start_in(data_dir: &Path, configure: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config { data_dir: data_dir.to_owned(), ..Config::default() };
        config.server.bind = "127.0.0.1:0".into();
        config.server.shutdown_grace_secs = 5;
        configure(&mut config);
        config.validate().expect("valid test configuration");
        let listener = tokio::net::TcpListener::bind(config.bind_addr()).await.expect("bind an ephemeral port");
        let base_url = format!("http://{}", listener.local_addr().expect("bound address"));
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(trackstack_server::serve(config, listener, async {
            let _ = signal.await;
        }));
        TestServer {
            base_url,
            data_dir: data_dir.to_owned(),
            shutdown: Some(shutdown),
            task: Some(task),
            _temp: None,
            client: reqwest::Client::new(),
        }
    }

    /// Stops the server and waits until it has released its storage; returns the data directory, which
    /// outlives the server when the caller owns it.
    pub async fn stop(mut self) -> PathBuf {
        self.stop_in_place().await;
        self.data_dir.clone()
    }

    async fn stop_in_place(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server exits cleanly");
        }
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Response {
        self.client.patch(self.url(path)).json(body).send().await.expect("request sent")
    }

    /// GETs `path`, asserts 200, and returns the JSON body.
    pub async fn get_ok(&self, path: &str) -> Value {
        expect_json(self.get(path).await, StatusCode::OK).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Storage settings for [`Shape::ExternalStorage`], isolated by a random name.
fn external_storage() -> Option<trackstack_config::StorageConfig> {
    use trackstack_store::testsuite::external_service_url;
    let postgres = external_service_url("TRACKSTACK_TEST_POSTGRES_URL")?;
    let clickhouse = external_service_url("TRACKSTACK_TEST_CLICKHOUSE_URL")?;
    let s3 = external_service_url("TRACKSTACK_TEST_S3_URL")?;
    let name = format!("scenario_{:016x}", rand::random::<u64>());
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let separator = if postgres.contains('?') { '&' } else { '?' };
    let mut storage = trackstack_config::StorageConfig {
        metadata: Some(format!("{postgres}{separator}schema={name}")),
        series: Some(format!("clickhouse://{}/{name}", clickhouse.trim_start_matches("http://").trim_end_matches('/'))),
        blobs: Some(format!("{}/{name}", s3.trim_end_matches('/'))),
        ..Default::default()
    };
    storage.s3.endpoint = env("TRACKSTACK_TEST_S3_ENDPOINT");
    storage.s3.region = env("TRACKSTACK_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into());
    storage.s3.access_key_id = env("TRACKSTACK_TEST_S3_ACCESS_KEY_ID");
    storage.s3.secret_access_key = env("TRACKSTACK_TEST_S3_SECRET_ACCESS_KEY");
    storage.s3.allow_http = true;
    Some(storage)
}

/// Runs a scenario once per [`Shape`]: `scenario! { async fn name(shape: Shape) { … } }` makes a module `name`
/// with the tests `all_in_one` and `external_storage`.
#[macro_export]
macro_rules! scenario {
    ($(#[$meta:meta])* async fn $name:ident($shape:ident: Shape) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($shape: $crate::Shape) $body

            #[tokio::test]
            async fn all_in_one() {
                run($crate::Shape::AllInOne).await
            }

            #[tokio::test]
            async fn external_storage() {
                run($crate::Shape::ExternalStorage).await
            }
        }
    };
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}"))
}

/// Asserts an error response: its status, its code and (when given) the field it names.
pub async fn expect_error(response: Response, status: StatusCode, code: &str, field: Option<&str>) -> Value {
    let body = expect_json(response, status).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    body
}
