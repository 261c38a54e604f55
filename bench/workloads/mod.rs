//! The seed's workloads, each a function from a target server and a size to figures.

pub mod chart;
pub mod sdk;
pub mod w1;
pub mod w2;
pub mod w3;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use prost::Message;
use serde::Serialize;
use serde_json::{json, Value};
use trackstack_proto::v1 as pb;

use crate::generators::{metric_value, Random};

/// How the workloads send points: the JSON body, or the compact protobuf body the SDK uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IngestFormat {
    Json,
    Protobuf,
}

/// A server under test and an HTTP client for it.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub client: reqwest::Client,
    pub format: IngestFormat,
}

impl Target {
    pub fn new(url: &str, format: IngestFormat) -> Self {
        let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("an HTTP client");
        Self { url: url.trim_end_matches('/').to_owned(), client, format }
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self.client.post(format!("{}{path}", self.url)).json(body).send().await?;
        checked(response, path).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.client.get(format!("{}{path}", self.url)).send().await?;
        checked(response, path).await
    }

    /// Times one GET, body read included.
    pub async fn time_get(&self, path: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let response = self.client.get(format!("{}{path}", self.url)).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(started.elapsed())
    }

    /// Times one POST of a JSON body, answer read included.
    pub async fn time_post(&self, path: &str, body: &Value) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let response = self.client.post(format!("{}{path}", self.url)).json(body).send().await?;
        let status = response.status();
        let answer = response.bytes().await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {}", String::from_utf8_lossy(&answer));
        }
        Ok(started.elapsed())
    }

    pub async fn ensure_project(&self, name: &str) -> anyhow::Result<()> {
        let response =
            self.client.post(format!("{}/api/v1/projects", self.url)).json(&json!({"name": name})).send().await?;
        if !(response.status().is_success() || response.status() == reqwest::StatusCode::CONFLICT) {
            bail!("cannot create project {name}: {}", response.text().await?);
        }
        Ok(())
    }

    pub async fn ensure_run(&self, project: &str, run_id: &str) -> anyhow::Result<()> {
        self.post(&format!("/api/v1/projects/{project}/runs"), &json!({"id": run_id})).await.map(drop)
    }

    /// Sends one ingest batch of metric points in the target's wire format.
    pub async fn ingest(&self, batch: &Batch<'_>) -> anyhow::Result<()> {
        let (body, content_type) = match self.format {
            IngestFormat::Json => (serde_json::to_vec(batch)?, "application/json"),
            IngestFormat::Protobuf => (batch.to_protobuf().encode_to_vec(), "application/x-protobuf"),
        };
        let response = self
            .client
            .post(format!("{}/api/v1/ingest", self.url))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await?;
        checked(response, "/api/v1/ingest").await.map(drop)
    }
}

async fn checked(response: reqwest::Response, path: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).with_context(|| format!("{path}: response is not JSON"))
}

#[derive(Serialize)]
pub struct Batch<'a> {
    pub run_id: &'a str,
    pub metrics: Vec<Point<'a>>,
}

impl Batch<'_> {
    fn to_protobuf(&self) -> pb::IngestBatch {
        let mut keys: Vec<&str> = Vec::new();
        let mut message = pb::IngestBatch { run_id: self.run_id.to_owned(), ..Default::default() };
        for point in &self.metrics {
            let index = keys.iter().rposition(|k| *k == point.key).unwrap_or_else(|| {
                keys.push(point.key);
                keys.len() - 1
            });
            message.key_index.push(index as u32);
            message.steps.push(point.step);
            message.values.push(point.value);
            message.times_ms.push(point.time_ms);
        }
        message.keys = keys.into_iter().map(str::to_owned).collect();
        message
    }
}

#[derive(Serialize)]
pub struct Point<'a> {
    pub key: &'a str,
    pub step: i64,
    pub value: f64,
    pub time_ms: i64,
}

/// Metric keys `metric_00`… used by every writer.
pub fn metric_keys(count: usize) -> Vec<String> {
    (0..count).map(|k| format!("metric_{k:02}")).collect()
}

/// Points for `steps` of every key, as a training loop logs them.
pub fn points<'a>(keys: &'a [String], steps: std::ops::Range<i64>, random: &mut Random) -> Vec<Point<'a>> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut points = Vec::with_capacity(keys.len() * (steps.end - steps.start) as usize);
    for step in steps {
        for (k, key) in keys.iter().enumerate() {
            points.push(Point { key, step, value: metric_value(k, step, random), time_ms: now });
        }
    }
    points
}

/// Writes `steps` steps of every key to each run, `steps_per_batch` at a time, `parallel` requests at once.
pub async fn seed_series(
    target: &Target,
    runs: &[String],
    keys: &[String],
    steps: i64,
    steps_per_batch: i64,
    parallel: usize,
) -> anyhow::Result<u64> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let jobs: Vec<(String, i64)> = runs
        .iter()
        .flat_map(|run| (0..steps).step_by(steps_per_batch as usize).map(move |first| (run.clone(), first)))
        .collect();
    let written = stream::iter(jobs)
        .map(|(run, first)| async move {
            let mut random = Random::new(first as u64 ^ run.len() as u64);
            let last = (first + steps_per_batch).min(steps);
            let batch = Batch { run_id: &run, metrics: points(keys, first..last, &mut random) };
            target.ingest(&batch).await?;
            anyhow::Ok(batch.metrics.len() as u64)
        })
        .buffer_unordered(parallel)
        .try_fold(0u64, |total, n| async move { Ok(total + n) })
        .await?;
    Ok(written)
}

/// Lets the embedded engine pack what was just written (it flushes every second), so reads measure the
/// steady state rather than a head full of fresh points.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1_500)).await;
}
