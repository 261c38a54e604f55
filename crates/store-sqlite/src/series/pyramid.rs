//! The rollup pyramid: for every series, the [`Summary`] of each aligned cell of `2^level` steps at a few
//! levels, so a bucketed read takes whole cells instead of points.
//!
//! Levels are 2^7, 2^10, … 2^55 steps: any aligned power-of-two bucket of 128 steps or more is at most four
//! cells of one level, and the top cell holds a whole series (steps are below 2^53). Narrower buckets read points
//! (at most 128 per bucket). The finest level costs about 0.6 bytes per point on disk; one level finer would double
//! that. Cells are recomputed exactly at
//! flush — the finest level from points, each coarser one from its eight children — so a rewritten step never
//! counts twice. A cell that holds a step still in the head is stale and is covered by finer cells (or points)
//! instead.

use rusqlite::{params, Connection};
use trackstack_domain::bucketing::Summary;
use trackstack_store::StoreResult;

use crate::database::SqlResultExt;

pub(crate) const FINEST_LEVEL: u32 = 7;
pub(crate) const LEVEL_STEP: u32 = 3;
pub(crate) const TOP_LEVEL: u32 = 55;

pub(crate) fn levels() -> impl DoubleEndedIterator<Item = u32> + Clone {
    (0..=(TOP_LEVEL - FINEST_LEVEL) / LEVEL_STEP).map(|i| FINEST_LEVEL + i * LEVEL_STEP)
}

/// A part of a step range: a whole cell, or steps to read point by point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    Cell { level: u32, cell: i64 },
    Points { lo: i64, hi: i64 },
}

/// Covers `lo..=hi` (steps ≥ 0) with the coarsest cells that fit and hold none of the `stale` steps (sorted),
/// and point ranges where no cell fits.
pub(crate) fn cover(lo: i64, hi: i64, stale: &[i64], out: &mut Vec<Piece>) {
    let mut at = lo;
    while at <= hi {
        let fitting = levels().rev().find(|&level| {
            let width = 1i64 << level;
            let end = at.saturating_add(width - 1);
            at & (width - 1) == 0 && end <= hi && !holds_any(stale, at, end)
        });
        match fitting {
            Some(level) => {
                out.push(Piece::Cell { level, cell: at >> level });
                at += 1i64 << level;
            }
            None => {
                let end = (at | ((1i64 << FINEST_LEVEL) - 1)).min(hi);
                match out.last_mut() {
                    Some(Piece::Points { hi: open, .. }) if *open + 1 == at => *open = end,
                    _ => out.push(Piece::Points { lo: at, hi: end }),
                }
                match end.checked_add(1) {
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
    }
}

/// Whether any step of the sorted `steps` lies in `lo..=hi`.
pub(crate) fn holds_any(steps: &[i64], lo: i64, hi: i64) -> bool {
    let first = steps.partition_point(|&s| s < lo);
    steps.get(first).is_some_and(|&s| s <= hi)
}

pub(crate) fn cell_bounds(level: u32, cell: i64) -> (i64, i64) {
    (cell << level, ((cell + 1) << level) - 1)
}

/// Cells of one level with index in `first..=last` that exist (hold a point), ascending.
pub(crate) fn read_cells(
    conn: &Connection,
    series_id: i64,
    level: u32,
    first: i64,
    last: i64,
) -> StoreResult<Vec<(i64, Summary)>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT cell, count, finite, sum, min, max, first_step, first_value, last_step, last_value
             FROM cells WHERE series_id = ?1 AND level = ?2 AND cell BETWEEN ?3 AND ?4 ORDER BY cell",
        )
        .backend()?;
    let rows = statement
        .query_map(params![series_id, level, first, last], |row| {
            let float = |i: usize| row.get::<_, i64>(i).map(|bits| f64::from_bits(bits as u64));
            Ok((
                row.get(0)?,
                Summary {
                    count: row.get::<_, i64>(1)? as u64,
                    finite: row.get::<_, i64>(2)? as u64,
                    sum: float(3)?,
                    min: float(4)?,
                    max: float(5)?,
                    first_step: row.get(6)?,
                    first_value: float(7)?,
                    last_step: row.get(8)?,
                    last_value: float(9)?,
                },
            ))
        })
        .backend()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().backend()
}

pub(crate) fn write_cell(
    conn: &Connection,
    series_id: i64,
    level: u32,
    cell: i64,
    summary: &Summary,
) -> StoreResult<()> {
    let bits = |value: f64| value.to_bits() as i64;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO cells
             (series_id, level, cell, count, finite, sum, min, max, first_step, first_value, last_step, last_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .backend()?
    .execute(params![
        series_id,
        level,
        cell,
        summary.count as i64,
        summary.finite as i64,
        bits(summary.sum),
        bits(summary.min),
        bits(summary.max),
        summary.first_step,
        bits(summary.first_value),
        summary.last_step,
        bits(summary.last_value),
    ])
    .backend()?;
    Ok(())
}

/// Recomputes every coarser cell above the finest-level cells in `changed` (sorted, unique) from its children.
pub(crate) fn roll_up(conn: &Connection, series_id: i64, changed: &[i64]) -> StoreResult<()> {
    let mut children: Vec<i64> = changed.to_vec();
    for level in levels().skip(1) {
        let mut parents: Vec<i64> = children.iter().map(|c| c >> LEVEL_STEP).collect();
        parents.dedup();
        for run in contiguous_runs(&parents) {
            let (first, last) = (run[0], run[run.len() - 1]);
            let cells =
                read_cells(conn, series_id, level - LEVEL_STEP, first << LEVEL_STEP, ((last + 1) << LEVEL_STEP) - 1)?;
            let mut sums = vec![Summary::default(); run.len()];
            for (child, summary) in &cells {
                sums[((child >> LEVEL_STEP) - first) as usize].merge(summary);
            }
            for (parent, summary) in run.iter().zip(&sums) {
                write_cell(conn, series_id, level, *parent, summary)?;
            }
        }
        children = parents;
    }
    Ok(())
}

/// Splits sorted unique values into runs of consecutive values.
pub(crate) fn contiguous_runs(values: &[i64]) -> impl Iterator<Item = &[i64]> {
    values.chunk_by(|a, b| *a + 1 == *b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bounds(piece: &Piece) -> (i64, i64) {
        match *piece {
            Piece::Cell { level, cell } => cell_bounds(level, cell),
            Piece::Points { lo, hi } => (lo, hi),
        }
    }

    #[test]
    fn an_aligned_bucket_is_a_few_cells_of_one_level() {
        let mut pieces = Vec::new();
        cover(1024, 2047, &[], &mut pieces);
        assert_eq!(pieces, [Piece::Cell { level: 10, cell: 1 }]);
        pieces.clear();
        cover(4096, 8191, &[], &mut pieces);
        assert_eq!(pieces.len(), 4);
        pieces.clear();
        cover(0, (1 << TOP_LEVEL) - 1, &[], &mut pieces);
        assert_eq!(pieces, [Piece::Cell { level: TOP_LEVEL, cell: 0 }]);
    }

    #[test]
    fn stale_steps_push_the_cover_down_to_points() {
        let mut pieces = Vec::new();
        cover(0, 1023, &[140], &mut pieces);
        assert_eq!(pieces[0], Piece::Cell { level: 7, cell: 0 });
        assert_eq!(pieces[1], Piece::Points { lo: 128, hi: 255 });
        assert_eq!(pieces.len(), 2 + 6);
    }

    proptest! {
        #[test]
        fn pieces_tile_the_range_without_stale_cells(
            lo in 0i64..100_000, len in 0i64..100_000, stale in proptest::collection::btree_set(0i64..200_000, 0..20)
        ) {
            let stale: Vec<i64> = stale.into_iter().collect();
            let hi = lo + len;
            let mut pieces = Vec::new();
            cover(lo, hi, &stale, &mut pieces);
            let mut next = lo;
            for piece in &pieces {
                let (a, b) = bounds(piece);
                prop_assert_eq!(a, next);
                prop_assert!(b >= a);
                if let Piece::Cell { .. } = piece {
                    prop_assert!(!holds_any(&stale, a, b));
                }
                next = b + 1;
            }
            prop_assert_eq!(next, hi + 1);
            // Cost stays logarithmic-ish: a handful of pieces per level, plus the stale neighbourhoods.
            prop_assert!(pieces.len() <= 2 * 7 * 17 + stale.len() * 8 * 17);
        }
    }
}
