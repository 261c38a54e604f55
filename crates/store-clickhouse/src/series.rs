//! [`SeriesStore`] on ClickHouse.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use trackstack_domain::bucketing::BucketLayout;
use trackstack_domain::model::{Bucket, BucketedSeries, MetricPoint, SeriesPoint, SeriesStats, StepRange};
use trackstack_store::{SeriesStore, StoreError, StoreResult};

use crate::client::{Client, Endpoint, Param};
use crate::schema::SchemaOptions;

/// Settings of the ClickHouse backend.
#[derive(Debug, Clone, Default)]
pub struct ClickHouseOptions {
    pub schema: SchemaOptions,
    /// Let the server buffer inserts (`async_insert=1`), still waiting for them to be written before answering.
    pub async_insert: bool,
}

pub struct ClickHouseSeriesStore {
    client: Client,
    table: String,
    options: ClickHouseOptions,
    /// The last write version handed out; versions only grow, so a later write of a step always wins.
    last_version: AtomicU64,
}

/// How a float goes into JSONEachRow: a number, or the text ClickHouse reads for a non-finite value.
#[derive(Serialize)]
#[serde(untagged)]
enum JsonFloat {
    Number(f64),
    Text(&'static str),
}

impl From<f64> for JsonFloat {
    fn from(value: f64) -> Self {
        if value.is_finite() {
            JsonFloat::Number(value)
        } else if value.is_nan() {
            JsonFloat::Text("nan")
        } else if value > 0.0 {
            JsonFloat::Text("inf")
        } else {
            JsonFloat::Text("-inf")
        }
    }
}

/// One inserted row, borrowed from the batch so that encoding allocates nothing per point.
#[derive(Serialize)]
struct InsertRow<'a> {
    project: &'a str,
    run_id: &'a str,
    key: &'a str,
    step: i64,
    value: JsonFloat,
    time_ms: i64,
    version: u64,
}

fn float_from_json(value: &Value) -> StoreResult<f64> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| StoreError::Backend(format!("bad float {n}"))),
        Value::String(s) => match s.as_str() {
            "nan" | "-nan" => Ok(f64::NAN),
            "inf" | "+inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| StoreError::Backend(format!("bad float {other:?}"))),
        },
        Value::Null => Ok(f64::NAN),
        other => Err(StoreError::Backend(format!("bad float {other}"))),
    }
}

/// Parses JSONEachRow output: one JSON object per line.
fn rows<T: for<'de> Deserialize<'de>>(text: &str) -> StoreResult<Vec<T>> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|e| StoreError::Backend(format!("unexpected clickhouse row {line:?}: {e}")))
        })
        .collect()
}

/// JSON output settings: non-finite floats as strings, 64-bit integers as numbers.
const JSON_OUTPUT: &[(&str, &str)] =
    &[("output_format_json_quote_denormals", "1"), ("output_format_json_quote_64bit_integers", "0")];

impl ClickHouseSeriesStore {
    /// Connects to `location` (what follows `clickhouse://`) and creates the schema if missing.
    pub async fn connect(location: &str, options: ClickHouseOptions) -> StoreResult<Self> {
        let endpoint = Endpoint::parse(location).map_err(StoreError::Backend)?;
        let client = Client::new(endpoint)?;
        for statement in options.schema.statements(client.database()) {
            client.execute(&statement, &[], &[]).await?;
        }
        let table = options.schema.points_table(client.database());
        Ok(Self { client, table, options, last_version: AtomicU64::new(0) })
    }

    fn next_versions(&self, count: u64) -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let mut current = self.last_version.load(Ordering::Relaxed);
        loop {
            let first = now.max(current + 1);
            match self.last_version.compare_exchange(current, first + count, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return first,
                Err(seen) => current = seen,
            }
        }
    }

    fn run_params<'a>(project: &str, run_id: &str) -> Vec<Param<'a>> {
        vec![("project", project.to_owned()), ("run", run_id.to_owned())]
    }

    /// The first and last step of a series inside `range`, if it has points there.
    async fn extent(
        &self,
        project: &str,
        run_id: &str,
        key: &str,
        range: StepRange,
    ) -> StoreResult<Option<(i64, i64)>> {
        #[derive(Deserialize)]
        struct Extent {
            points: u64,
            first: i64,
            last: i64,
        }
        let mut params = Self::run_params(project, run_id);
        params.extend([
            ("key", key.to_owned()),
            ("lo", range.start.unwrap_or(i64::MIN).to_string()),
            ("hi", range.end.unwrap_or(i64::MAX).to_string()),
        ]);
        let sql = format!(
            "SELECT count() AS points, min(step) AS first, max(step) AS last FROM {} FINAL
             WHERE project = {{project:String}} AND run_id = {{run:String}} AND key = {{key:String}}
               AND step BETWEEN {{lo:Int64}} AND {{hi:Int64}}
             FORMAT JSONEachRow",
            self.table
        );
        let extent: Vec<Extent> = rows(&self.client.fetch(&sql, &params, JSON_OUTPUT).await?)?;
        Ok(extent.first().filter(|e| e.points > 0).map(|e| (e.first, e.last)))
    }
}

#[async_trait]
impl SeriesStore for ClickHouseSeriesStore {
    async fn check(&self) -> StoreResult<()> {
        self.client.fetch("SELECT 1", &[], &[]).await.map(drop)
    }

    async fn write_points(&self, project: &str, run_id: &str, points: &[MetricPoint]) -> StoreResult<()> {
        if points.is_empty() {
            return Ok(());
        }
        let first_version = self.next_versions(points.len() as u64);
        let mut body = Vec::with_capacity(points.len() * 96);
        let mut token = Sha256::new();
        token.update(project.as_bytes());
        token.update([0]);
        token.update(run_id.as_bytes());
        for (i, point) in points.iter().enumerate() {
            let row = InsertRow {
                project,
                run_id,
                key: &point.key,
                step: point.step,
                value: point.value.into(),
                time_ms: point.time_ms,
                version: first_version + i as u64,
            };
            serde_json::to_writer(&mut body, &row).map_err(StoreError::backend)?;
            body.push(b'\n');
            token.update([0]);
            token.update(point.key.as_bytes());
            token.update(point.step.to_le_bytes());
            token.update(point.value.to_bits().to_le_bytes());
            token.update(point.time_ms.to_le_bytes());
        }
        // Equal content gives an equal token, so a replayed batch is dropped by ClickHouse's deduplication.
        let token = hex::encode(token.finalize());
        let async_insert = if self.options.async_insert { "1" } else { "0" };
        let settings = [
            ("insert_deduplication_token", token.as_str()),
            ("insert_deduplicate", "1"),
            ("precise_float_parsing", "1"),
            ("async_insert", async_insert),
            ("wait_for_async_insert", "1"),
            // Buffered inserts honour the token too, so replays stay no-ops in either mode.
            ("async_insert_deduplicate", "1"),
        ];
        let sql = format!(
            "INSERT INTO {} (project, run_id, key, step, value, time_ms, version) FORMAT JSONEachRow",
            self.table
        );
        self.client.insert(&sql, body, &settings).await
    }

    async fn list_series(&self, project: &str, run_id: &str) -> StoreResult<Vec<SeriesStats>> {
        #[derive(Deserialize)]
        struct Row {
            key: String,
            count: u64,
            last_step: i64,
            last_value: Value,
            finite: u64,
            min: Value,
            max: Value,
        }
        let sql = format!(
            "SELECT key, count() AS count, max(step) AS last_step, argMax(value, step) AS last_value,
                    countIf(isFinite(value)) AS finite, minIf(value, isFinite(value)) AS min,
                    maxIf(value, isFinite(value)) AS max
             FROM {} FINAL WHERE project = {{project:String}} AND run_id = {{run:String}}
             GROUP BY key ORDER BY key FORMAT JSONEachRow",
            self.table
        );
        let found: Vec<Row> = rows(&self.client.fetch(&sql, &Self::run_params(project, run_id), JSON_OUTPUT).await?)?;
        found
            .into_iter()
            .map(|row| {
                let has_finite = row.finite > 0;
                Ok(SeriesStats {
                    key: row.key,
                    count: row.count,
                    last_step: row.last_step,
                    last_value: float_from_json(&row.last_value)?,
                    min: if has_finite { Some(float_from_json(&row.min)?) } else { None },
                    max: if has_finite { Some(float_from_json(&row.max)?) } else { None },
                })
            })
            .collect()
    }

    async fn read_raw(
        &self,
        project: &str,
        run_id: &str,
        key: &str,
        range: StepRange,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<SeriesPoint>> {
        #[derive(Deserialize)]
        struct Row {
            step: i64,
            value: Value,
            time_ms: i64,
        }
        let lower = range.start.unwrap_or(i64::MIN).max(after.map_or(i64::MIN, |a| a.saturating_add(1)));
        let mut params = Self::run_params(project, run_id);
        params.extend([
            ("key", key.to_owned()),
            ("lo", lower.to_string()),
            ("hi", range.end.unwrap_or(i64::MAX).to_string()),
            ("limit", limit.to_string()),
        ]);
        let sql = format!(
            "SELECT step, value, time_ms FROM {} FINAL
             WHERE project = {{project:String}} AND run_id = {{run:String}} AND key = {{key:String}}
               AND step BETWEEN {{lo:Int64}} AND {{hi:Int64}}
             ORDER BY step LIMIT {{limit:UInt64}} FORMAT JSONEachRow",
            self.table
        );
        let found: Vec<Row> = rows(&self.client.fetch(&sql, &params, JSON_OUTPUT).await?)?;
        found
            .into_iter()
            .map(|row| Ok(SeriesPoint { step: row.step, value: float_from_json(&row.value)?, time_ms: row.time_ms }))
            .collect()
    }

    async fn read_buckets(
        &self,
        project: &str,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: u32,
    ) -> StoreResult<BucketedSeries> {
        #[derive(Deserialize)]
        struct Row {
            first_step: i64,
            last_step: i64,
            count: u64,
            finite: u64,
            min: Value,
            max: Value,
            sum: Value,
            last: Value,
        }
        let Some((first, last)) = self.extent(project, run_id, key, range).await? else {
            return Ok(BucketedSeries { key: key.to_owned(), start: range.start, end: range.end, buckets: Vec::new() });
        };
        let layout = BucketLayout::new(range.start.unwrap_or(first), range.end.unwrap_or(last), buckets);
        let mut params = Self::run_params(project, run_id);
        params.extend([
            ("key", key.to_owned()),
            ("lo", layout.start.to_string()),
            ("hi", layout.end.to_string()),
            ("width", layout.width().to_string()),
        ]);
        let sql = format!(
            "SELECT intDiv(step, {{width:Int64}}) AS bucket, min(step) AS first_step,
                    max(step) AS last_step, count() AS count, countIf(isFinite(value)) AS finite,
                    minIf(value, isFinite(value)) AS min, maxIf(value, isFinite(value)) AS max,
                    sumIf(value, isFinite(value)) AS sum, argMax(value, step) AS last
             FROM {} FINAL
             WHERE project = {{project:String}} AND run_id = {{run:String}} AND key = {{key:String}}
               AND step BETWEEN {{lo:Int64}} AND {{hi:Int64}}
             GROUP BY bucket ORDER BY bucket FORMAT JSONEachRow",
            self.table
        );
        let found: Vec<Row> = rows(&self.client.fetch(&sql, &params, JSON_OUTPUT).await?)?;
        let buckets = found
            .into_iter()
            .map(|row| {
                let has_finite = row.finite > 0;
                Ok(Bucket {
                    first_step: row.first_step,
                    last_step: row.last_step,
                    count: row.count,
                    min: if has_finite { Some(float_from_json(&row.min)?) } else { None },
                    max: if has_finite { Some(float_from_json(&row.max)?) } else { None },
                    mean: if has_finite { Some(float_from_json(&row.sum)? / row.finite as f64) } else { None },
                    last: float_from_json(&row.last)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(BucketedSeries { key: key.to_owned(), start: Some(layout.start), end: Some(layout.end), buckets })
    }

    async fn delete_run(&self, project: &str, run_id: &str) -> StoreResult<()> {
        // Deleting from the local tables: a Distributed table does not take mutations.
        let local = format!("{}.points", self.client.database());
        let on_cluster = self.options.schema.cluster.as_ref().map(|c| format!(" ON CLUSTER {c}")).unwrap_or_default();
        let sql = format!(
            "ALTER TABLE {local}{on_cluster} DELETE WHERE project = {{project:String}} AND run_id = {{run:String}}"
        );
        self.client.execute(&sql, &Self::run_params(project, run_id), &[("mutations_sync", "2")]).await
    }
}

#[cfg(test)]
mod conformance {
    use super::{ClickHouseOptions, ClickHouseSeriesStore};

    /// A store in a database of its own, so tests run side by side on one server.
    pub(super) async fn open(options: ClickHouseOptions) -> Option<(Box<ClickHouseSeriesStore>, ())> {
        let url = trackstack_store::testsuite::external_service_url("TRACKSTACK_TEST_CLICKHOUSE_URL")?;
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let location = format!("{host}/conformance_{:016x}", rand::random::<u64>());
        let store = ClickHouseSeriesStore::connect(&location, options).await.expect("open the store");
        Some((Box::new(store), ()))
    }

    trackstack_store::series_store_conformance!(open(ClickHouseOptions::default()));
}

#[cfg(test)]
mod conformance_with_async_inserts {
    use super::conformance::open;
    use super::ClickHouseOptions;

    trackstack_store::series_store_conformance!(open(ClickHouseOptions { async_insert: true, ..Default::default() }));
}
