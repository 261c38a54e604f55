//! [`SeriesStore`] on SQLite, one row per point.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use trackstack_domain::bucketing::{bucketize, BucketLayout};
use trackstack_domain::model::{BucketedSeries, MetricPoint, SeriesPoint, SeriesStats, StepRange};
use trackstack_store::{SeriesStore, StoreResult};

use crate::database::{Database, SqlResultExt};
use crate::migrations;

pub struct SqliteSeriesStore {
    db: Arc<Database>,
}

impl SqliteSeriesStore {
    pub fn open(path: &Path) -> StoreResult<Self> {
        Ok(Self { db: Database::open(path, migrations::SERIES)? })
    }
}

/// SQLite turns NaN into NULL; reading NULL back means NaN.
fn value_from_sql(value: Option<f64>) -> f64 {
    value.unwrap_or(f64::NAN)
}

/// What one write did to one series, folded into its stats row afterwards.
#[derive(Default)]
struct SeriesDelta {
    series_id: i64,
    new_points: i64,
    rewrote_a_point: bool,
    newest: Option<(i64, f64)>,
    finite_min: Option<f64>,
    finite_max: Option<f64>,
}

impl SeriesDelta {
    fn observe(&mut self, step: i64, value: f64) {
        if self.newest.is_none_or(|(newest_step, _)| step >= newest_step) {
            self.newest = Some((step, value));
        }
        if value.is_finite() {
            self.finite_min = Some(self.finite_min.map_or(value, |m| m.min(value)));
            self.finite_max = Some(self.finite_max.map_or(value, |m| m.max(value)));
        }
    }
}

fn series_id(conn: &Connection, run_id: &str, key: &str) -> StoreResult<Option<i64>> {
    conn.prepare_cached("SELECT id FROM series WHERE run_id = ?1 AND key = ?2")
        .backend()?
        .query_row(params![run_id, key], |r| r.get(0))
        .optional()
        .backend()
}

fn finite_extremes(conn: &Connection, series_id: i64) -> StoreResult<(Option<f64>, Option<f64>)> {
    conn.prepare_cached("SELECT min(value), max(value) FROM points WHERE series_id = ?1 AND value > ?2 AND value < ?3")
        .backend()?
        .query_row(params![series_id, f64::NEG_INFINITY, f64::INFINITY], |r| Ok((r.get(0)?, r.get(1)?)))
        .backend()
}

#[async_trait]
impl SeriesStore for SqliteSeriesStore {
    async fn check(&self) -> StoreResult<()> {
        self.db.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).backend()).await
    }

    async fn write_points(&self, project: &str, run_id: &str, points: &[MetricPoint]) -> StoreResult<()> {
        if points.is_empty() {
            return Ok(());
        }
        let (project, run_id, points) = (project.to_owned(), run_id.to_owned(), points.to_vec());
        self.db
            .write(move |tx| {
                let mut deltas: HashMap<&str, SeriesDelta> = HashMap::new();
                let mut insert = tx
                    .prepare_cached("INSERT OR IGNORE INTO points (series_id, step, value, time_ms) VALUES (?1, ?2, ?3, ?4)")
                    .backend()?;
                let mut rewrite =
                    tx.prepare_cached("UPDATE points SET value = ?3, time_ms = ?4 WHERE series_id = ?1 AND step = ?2").backend()?;
                for point in &points {
                    if !deltas.contains_key(point.key.as_str()) {
                        let id = match series_id(tx, &run_id, &point.key)? {
                            Some(id) => id,
                            None => {
                                tx.execute(
                                    "INSERT INTO series (run_id, key, project, count, last_step, last_value) VALUES (?1, ?2, ?3, 0, ?4, NULL)",
                                    params![run_id, point.key, project, i64::MIN],
                                )
                                .backend()?;
                                tx.last_insert_rowid()
                            }
                        };
                        deltas.insert(&point.key, SeriesDelta { series_id: id, ..Default::default() });
                    }
                    let delta = deltas.get_mut(point.key.as_str()).expect("inserted above");
                    let row = params![delta.series_id, point.step, point.value, point.time_ms];
                    if insert.execute(row).backend()? == 1 {
                        delta.new_points += 1;
                    } else {
                        rewrite.execute(row).backend()?;
                        delta.rewrote_a_point = true;
                    }
                    delta.observe(point.step, point.value);
                }
                for delta in deltas.values() {
                    let (newest_step, newest_value) = delta.newest.expect("every delta saw a point");
                    tx.execute(
                        "UPDATE series SET count = count + ?2,
                            last_value = CASE WHEN ?3 >= last_step THEN ?4 ELSE last_value END,
                            last_step = max(last_step, ?3)
                         WHERE id = ?1",
                        params![delta.series_id, delta.new_points, newest_step, newest_value],
                    )
                    .backend()?;
                    if delta.rewrote_a_point {
                        // A replaced value may have been the extreme; only a rescan knows the new one.
                        let (min, max) = finite_extremes(tx, delta.series_id)?;
                        tx.execute("UPDATE series SET min = ?2, max = ?3 WHERE id = ?1", params![delta.series_id, min, max])
                            .backend()?;
                    } else if let (Some(min), Some(max)) = (delta.finite_min, delta.finite_max) {
                        tx.execute(
                            "UPDATE series SET min = min(coalesce(min, ?2), ?2), max = max(coalesce(max, ?3), ?3) WHERE id = ?1",
                            params![delta.series_id, min, max],
                        )
                        .backend()?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn list_series(&self, _project: &str, run_id: &str) -> StoreResult<Vec<SeriesStats>> {
        let run_id = run_id.to_owned();
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT key, count, last_step, last_value, min, max FROM series WHERE run_id = ?1 ORDER BY key",
                    )
                    .backend()?;
                let rows = stmt
                    .query_map([run_id], |r| {
                        Ok(SeriesStats {
                            key: r.get(0)?,
                            count: r.get::<_, i64>(1)? as u64,
                            last_step: r.get(2)?,
                            last_value: value_from_sql(r.get(3)?),
                            min: r.get(4)?,
                            max: r.get(5)?,
                        })
                    })
                    .backend()?;
                rows.collect::<Result<_, _>>().backend()
            })
            .await
    }

    async fn read_raw(
        &self,
        _project: &str,
        run_id: &str,
        key: &str,
        range: StepRange,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<SeriesPoint>> {
        let (run_id, key) = (run_id.to_owned(), key.to_owned());
        self.db
            .read(move |conn| {
                let Some(id) = series_id(conn, &run_id, &key)? else { return Ok(Vec::new()) };
                let lower = range.start.unwrap_or(i64::MIN).max(after.map_or(i64::MIN, |a| a.saturating_add(1)));
                let upper = range.end.unwrap_or(i64::MAX);
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT step, value, time_ms FROM points WHERE series_id = ?1 AND step BETWEEN ?2 AND ?3 ORDER BY step LIMIT ?4",
                    )
                    .backend()?;
                let rows = stmt
                    .query_map(params![id, lower, upper, limit as i64], |r| {
                        Ok(SeriesPoint { step: r.get(0)?, value: value_from_sql(r.get(1)?), time_ms: r.get(2)? })
                    })
                    .backend()?;
                rows.collect::<Result<_, _>>().backend()
            })
            .await
    }

    async fn read_buckets(
        &self,
        _project: &str,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: u32,
    ) -> StoreResult<BucketedSeries> {
        let (run_id, key) = (run_id.to_owned(), key.to_owned());
        self.db
            .read(move |conn| {
                let empty = BucketedSeries { key: key.clone(), start: None, end: None, buckets: Vec::new() };
                let Some(id) = series_id(conn, &run_id, &key)? else { return Ok(empty) };
                let (lower, upper) = (range.start.unwrap_or(i64::MIN), range.end.unwrap_or(i64::MAX));
                let extent: (Option<i64>, Option<i64>) = conn
                    .prepare_cached(
                        "SELECT min(step), max(step) FROM points WHERE series_id = ?1 AND step BETWEEN ?2 AND ?3",
                    )
                    .backend()?
                    .query_row(params![id, lower, upper], |r| Ok((r.get(0)?, r.get(1)?)))
                    .backend()?;
                let (Some(first), Some(last)) = extent else {
                    return Ok(BucketedSeries { start: range.start, end: range.end, ..empty });
                };
                let start = range.start.unwrap_or(first);
                let end = range.end.unwrap_or(last);
                let layout = BucketLayout::new(start, end, buckets);
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT step, value FROM points WHERE series_id = ?1 AND step BETWEEN ?2 AND ?3 ORDER BY step",
                    )
                    .backend()?;
                let rows = stmt
                    .query_map(params![id, start, end], |r| Ok((r.get(0)?, value_from_sql(r.get(1)?))))
                    .backend()?;
                let points: Vec<(i64, f64)> = rows.collect::<Result<_, _>>().backend()?;
                Ok(BucketedSeries { key, start: Some(start), end: Some(end), buckets: bucketize(layout, points) })
            })
            .await
    }

    async fn delete_run(&self, _project: &str, run_id: &str) -> StoreResult<()> {
        let run_id = run_id.to_owned();
        self.db
            .write(move |tx| {
                tx.execute(
                    "DELETE FROM points WHERE series_id IN (SELECT id FROM series WHERE run_id = ?1)",
                    [&run_id],
                )
                .backend()?;
                tx.execute("DELETE FROM series WHERE run_id = ?1", [&run_id]).backend()?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod conformance {
    use super::SqliteSeriesStore;

    trackstack_store::series_store_conformance!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteSeriesStore::open(&dir.path().join("series.db")).unwrap();
        Some((Box::new(store), dir))
    });
}
