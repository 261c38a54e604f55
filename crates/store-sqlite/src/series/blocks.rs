//! Packed points in SQLite: per series, blocks of up to [`BLOCK_POINTS`] points over disjoint step ranges,
//! and the flush that merges head points into them and refreshes the rollup cells they touch.

use rusqlite::{params, Connection, OptionalExtension};
use trackstack_domain::bucketing::Summary;
use trackstack_store::StoreResult;

use super::codec::{self, Point};
use super::pyramid::{self, FINEST_LEVEL};
use crate::database::SqlResultExt;

pub(crate) const BLOCK_POINTS: usize = 1024;

pub(crate) struct StoredBlock {
    pub first_step: i64,
    pub last_step: i64,
    pub count: usize,
    pub data: Vec<u8>,
}

/// Blocks overlapping `lo..=hi`, ascending.
pub(crate) fn blocks_overlapping(conn: &Connection, series_id: i64, lo: i64, hi: i64) -> StoreResult<Vec<StoredBlock>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT first_step, last_step, count, data FROM blocks
             WHERE series_id = ?1 AND last_step >= ?2 ORDER BY last_step",
        )
        .backend()?;
    let mut rows = statement.query(params![series_id, lo]).backend()?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().backend()? {
        let first_step: i64 = row.get(0).backend()?;
        // Blocks are disjoint, so ordering by last step orders by first step too: stop at the first one past `hi`.
        if first_step > hi {
            break;
        }
        found.push(StoredBlock {
            first_step,
            last_step: row.get(1).backend()?,
            count: row.get::<_, i64>(2).backend()? as usize,
            data: row.get(3).backend()?,
        });
    }
    Ok(found)
}

/// The block just before `step`, if any.
fn block_before(conn: &Connection, series_id: i64, step: i64) -> StoreResult<Option<StoredBlock>> {
    conn.prepare_cached(
        "SELECT first_step, last_step, count, data FROM blocks
         WHERE series_id = ?1 AND last_step < ?2 ORDER BY last_step DESC LIMIT 1",
    )
    .backend()?
    .query_row(params![series_id, step], |row| {
        Ok(StoredBlock {
            first_step: row.get(0)?,
            last_step: row.get(1)?,
            count: row.get::<_, i64>(2)? as usize,
            data: row.get(3)?,
        })
    })
    .optional()
    .backend()
}

/// First and last step stored in blocks.
pub(crate) fn extent(conn: &Connection, series_id: i64) -> StoreResult<Option<(i64, i64)>> {
    let edge = |order: &str| {
        conn.prepare_cached(&format!(
            "SELECT first_step, last_step FROM blocks WHERE series_id = ?1 ORDER BY last_step {order} LIMIT 1"
        ))
        .backend()?
        .query_row([series_id], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
        .optional()
        .backend()
    };
    Ok(match (edge("ASC")?, edge("DESC")?) {
        (Some((first, _)), Some((_, last))) => Some((first, last)),
        _ => None,
    })
}

/// Merges `fresh` (sorted, unique steps; they win over stored ones) into a series' blocks and recomputes every
/// rollup cell holding one of their steps.
pub(crate) fn merge_into_series(conn: &Connection, series_id: i64, fresh: &[Point]) -> StoreResult<()> {
    let (Some(first), Some(last)) = (fresh.first(), fresh.last()) else { return Ok(()) };
    // Widen to whole finest cells, so every point of a cell being recomputed is at hand.
    let cell_mask = (1i64 << FINEST_LEVEL) - 1;
    let (lo, hi) = (first.step & !cell_mask, last.step | cell_mask);
    let mut touched = blocks_overlapping(conn, series_id, lo, hi)?;
    // Appends land after the last block: grow a small last block rather than leave a trail of tiny ones.
    if let Some(previous) = block_before(conn, series_id, touched.first().map_or(lo, |b| b.first_step))? {
        if previous.count + fresh.len() <= BLOCK_POINTS {
            touched.insert(0, previous);
        }
    }
    let mut stored = Vec::with_capacity(touched.iter().map(|b| b.count).sum());
    for block in &touched {
        stored.extend(codec::decode(&block.data)?);
    }
    let merged = merge_sorted(&stored, fresh);

    let mut delete = conn.prepare_cached("DELETE FROM blocks WHERE series_id = ?1 AND last_step = ?2").backend()?;
    for block in &touched {
        delete.execute(params![series_id, block.last_step]).backend()?;
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO blocks (series_id, first_step, last_step, count, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .backend()?;
    // Even chunks: a merge of 1,100 points makes two blocks of 550, not 1,024 and 76.
    let chunks = merged.len().div_ceil(BLOCK_POINTS).max(1);
    let chunk_len = merged.len().div_ceil(chunks).max(1);
    for chunk in merged.chunks(chunk_len) {
        let data = codec::encode(chunk);
        insert
            .execute(params![series_id, chunk[0].step, chunk[chunk.len() - 1].step, chunk.len() as i64, data])
            .backend()?;
    }

    let mut changed: Vec<i64> = fresh.iter().map(|p| p.step >> FINEST_LEVEL).collect();
    changed.dedup();
    for &cell in &changed {
        let (cell_lo, cell_hi) = pyramid::cell_bounds(FINEST_LEVEL, cell);
        let from = merged.partition_point(|p| p.step < cell_lo);
        let to = merged.partition_point(|p| p.step <= cell_hi);
        let summary = Summary::of(merged[from..to].iter().map(|p| (p.step, p.value)));
        pyramid::write_cell(conn, series_id, FINEST_LEVEL, cell, &summary)?;
    }
    pyramid::roll_up(conn, series_id, &changed)
}

/// Merges two step-sorted, step-unique lists; `newer` wins on equal steps.
pub(crate) fn merge_sorted(older: &[Point], newer: &[Point]) -> Vec<Point> {
    let mut merged = Vec::with_capacity(older.len() + newer.len());
    let (mut i, mut j) = (0, 0);
    while i < older.len() && j < newer.len() {
        match older[i].step.cmp(&newer[j].step) {
            std::cmp::Ordering::Less => {
                merged.push(older[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                merged.push(newer[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                merged.push(newer[j]);
                i += 1;
                j += 1;
            }
        }
    }
    merged.extend_from_slice(&older[i..]);
    merged.extend_from_slice(&newer[j..]);
    merged
}

/// Reads stored points within `lo..=hi`, skipping `shadowed` steps (sorted: they have newer values in the head),
/// until at least `limit` are found.
pub(crate) fn read_points(
    conn: &Connection,
    series_id: i64,
    lo: i64,
    hi: i64,
    shadowed: &[i64],
    limit: usize,
) -> StoreResult<Vec<Point>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT first_step, data FROM blocks WHERE series_id = ?1 AND last_step >= ?2 ORDER BY last_step",
        )
        .backend()?;
    let mut rows = statement.query(params![series_id, lo]).backend()?;
    let mut points = Vec::new();
    while let Some(row) = rows.next().backend()? {
        if points.len() >= limit || row.get::<_, i64>(0).backend()? > hi {
            break;
        }
        let data: Vec<u8> = row.get(1).backend()?;
        points.extend(
            codec::decode(&data)?
                .into_iter()
                .filter(|p| p.step >= lo && p.step <= hi && shadowed.binary_search(&p.step).is_err()),
        );
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(step: i64, value: f64) -> Point {
        Point { step, value, time_ms: 0 }
    }

    #[test]
    fn newer_points_win_a_merge() {
        let merged = merge_sorted(&[p(1, 1.0), p(3, 1.0), p(5, 1.0)], &[p(3, 2.0), p(4, 2.0), p(9, 2.0)]);
        let flat: Vec<(i64, f64)> = merged.iter().map(|p| (p.step, p.value)).collect();
        assert_eq!(flat, [(1, 1.0), (3, 2.0), (4, 2.0), (5, 1.0), (9, 2.0)]);
    }
}
