//! Packs the rows of the row-per-point layout (schema 0001, renamed to `legacy_*` by 0002) into blocks, once.

use rusqlite::{Connection, OptionalExtension};
use trackstack_store::StoreResult;

use super::codec::Point;
use super::{blocks, series_id_or_create};
use crate::database::SqlResultExt;

pub(super) fn pack_legacy_rows(conn: &mut Connection) -> StoreResult<()> {
    let present: Option<String> = conn
        .query_row("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'legacy_points'", [], |row| {
            row.get(0)
        })
        .optional()
        .backend()?;
    if present.is_none() {
        return Ok(());
    }
    let tx = conn.transaction().backend()?;
    let series: Vec<(i64, String, String, String)> = tx
        .prepare("SELECT id, project, run_id, key FROM legacy_series ORDER BY id")
        .backend()?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .backend()?
        .collect::<rusqlite::Result<_>>()
        .backend()?;
    let mut packed = 0usize;
    for (legacy_id, project, run_id, key) in &series {
        let points: Vec<Point> = tx
            .prepare_cached("SELECT step, value, time_ms FROM legacy_points WHERE series_id = ?1 ORDER BY step")
            .backend()?
            .query_map([legacy_id], |row| {
                // The row layout stored NaN as NULL.
                let value: Option<f64> = row.get(1)?;
                Ok(Point { step: row.get(0)?, value: value.unwrap_or(f64::NAN), time_ms: row.get(2)? })
            })
            .backend()?
            .collect::<rusqlite::Result<_>>()
            .backend()?;
        let id = series_id_or_create(&tx, project, run_id, key)?;
        blocks::merge_into_series(&tx, id, &points)?;
        packed += points.len();
    }
    tx.execute_batch("DROP TABLE legacy_points; DROP TABLE legacy_series;").backend()?;
    tx.commit().backend()?;
    if packed > 0 {
        tracing::info!(series = series.len(), points = packed, "packed row-per-point series into blocks");
    }
    // A database created before auto_vacuum was set gets it now, and hands the legacy rows' pages back.
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;").backend()
}
