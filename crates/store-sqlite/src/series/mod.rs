//! [`EmbeddedSeriesStore`]: the packed series engine of the all-in-one shape (DESIGN.md §4).
//!
//! A write is framed into the write-ahead log ([`wal`]), made durable together with every write that arrived
//! meanwhile (group commit, one `fdatasync`), applied to the in-memory [`head`] and only then acknowledged, so a
//! reader sees it at once. A flush — every second, or sooner when the head grows — seals the log segment, packs
//! the sealed head into compressed [`blocks`] and refreshes the [`pyramid`] of rollup cells in one SQLite
//! transaction, records the checkpoint and removes the sealed segments. Start-up replays only what came after
//! the checkpoint, which is at most one flush interval of writes.
//!
//! Readers combine the two sides under a shared `publish` lock that a flush takes exclusively only to commit, so
//! no read ever sees a point twice or misses one mid-flush.

mod blocks;
mod codec;
mod head;
mod legacy;
mod pyramid;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use trackstack_domain::bucketing::{BucketLayout, Summary};
use trackstack_domain::model::{BucketedSeries, MetricPoint, SeriesPoint, SeriesStats, StepRange};
use trackstack_store::{SeriesStore, StoreError, StoreResult};

use self::codec::Point;
use self::head::{Head, Memtable};
use self::pyramid::{Piece, FINEST_LEVEL, TOP_LEVEL};
use crate::database::{run_blocking, Database, SqlResultExt};
use crate::migrations;

/// Prometheus metrics the engine records (through the `metrics` facade; the server renders them at `/metrics`).
pub mod metric_names {
    /// Points acknowledged but not yet packed into blocks (the head), after each commit and flush.
    pub const HEAD_POINTS: &str = "trackstack_series_head_points";
    /// Time of one group commit's write and `fdatasync`.
    pub const LOG_SYNC_SECONDS: &str = "trackstack_series_log_sync_seconds";
    /// Writes acknowledged together by one group commit.
    pub const GROUP_COMMIT_WRITES: &str = "trackstack_series_group_commit_writes";
    /// Time of one flush (packing the frozen head into blocks and rollups).
    pub const FLUSH_SECONDS: &str = "trackstack_series_flush_seconds";
    /// Points packed into blocks by flushes.
    pub const FLUSHED_POINTS: &str = "trackstack_series_flushed_points_total";
}

/// When the engine packs the head into blocks.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub flush_interval: Duration,
    /// Flush early once the head holds this many points.
    pub flush_points: usize,
    /// Refuse writes (`StoreError::Unavailable`) while more than this many points wait to be packed.
    pub max_pending_points: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self { flush_interval: Duration::from_secs(1), flush_points: 2_000_000, max_pending_points: 8_000_000 }
    }
}

/// Frames waiting for the same `fdatasync` are capped so one group never holds memory without bound.
const GROUP_MAX_BYTES: usize = 64 << 20;
const COMMAND_QUEUE: usize = 1024;
const BLOCK_PAGE_BYTES: u32 = 1024;

pub struct EmbeddedSeriesStore {
    engine: Arc<Engine>,
}

struct Engine {
    db: Arc<Database>,
    wal_dir: PathBuf,
    head: Arc<Mutex<Head>>,
    /// Shared by readers while they combine blocks with the head; exclusive only while a flush commits.
    publish: RwLock<()>,
    /// Serializes the two block rewriters: flushes and run deletes.
    maintenance: Mutex<()>,
    commands: mpsc::Sender<Command>,
    /// Set when a log write failed: what is on disk is then unknown, so writes stop until a restart.
    wal_failure: Arc<Mutex<Option<String>>>,
    max_pending_points: usize,
}

enum Command {
    Append {
        frame: Vec<u8>,
        apply: Apply,
        done: oneshot::Sender<StoreResult<()>>,
    },
    /// Seals the log segment and freezes the head for a flush; answers the sealed segment, if anything was written.
    Seal {
        done: oneshot::Sender<StoreResult<Option<u64>>>,
    },
}

enum Apply {
    Points { project: String, run_id: String, points: Vec<MetricPoint> },
    DeleteRun { project: String, run_id: String },
}

impl Apply {
    fn to(self, memtable: &mut Memtable) {
        match self {
            Apply::Points { project, run_id, points } => memtable.append(&project, &run_id, &points),
            Apply::DeleteRun { project, run_id } => memtable.remove_run(&project, &run_id),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EmbeddedSeriesStore {
    /// Opens the engine whose blocks live in the SQLite file at `path` and whose log lives beside it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, EngineOptions::default())
    }

    pub fn open_with(path: &Path, options: EngineOptions) -> StoreResult<Self> {
        // Blocks are a few KiB and spill into overflow pages; small pages waste less of the last one.
        let db = Database::open_with_page_size(path, migrations::SERIES, Some(BLOCK_PAGE_BYTES))?;
        db.with_writer(legacy::pack_legacy_rows)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("series");
        let wal_dir = path.with_file_name(format!("{stem}-log"));
        let checkpoint = db.with_reader(read_checkpoint)?;

        let mut recovered = Memtable::default();
        let newest = db.with_writer(|conn| {
            wal::replay(&wal_dir, checkpoint, |record| {
                match record {
                    wal::Record::Points { project, run_id, points } => recovered.append(&project, &run_id, &points),
                    wal::Record::DeleteRun { project, run_id } => {
                        recovered.remove_run(&project, &run_id);
                        delete_stored_run(conn, &project, &run_id)?;
                    }
                }
                Ok(())
            })
        })?;
        if !recovered.is_empty() {
            tracing::info!(points = recovered.len(), "replayed the series write-ahead log");
        }
        let writer = wal::WalWriter::create(&wal_dir, newest + 1)?;
        let head = Arc::new(Mutex::new(Head { active: recovered, frozen: None }));
        let wal_failure = Arc::new(Mutex::new(None));
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let (nudge, nudges) = std::sync::mpsc::sync_channel(1);
        let committer = Committer {
            wal: writer,
            head: Arc::clone(&head),
            failure: Arc::clone(&wal_failure),
            nudge,
            flush_points: options.flush_points,
        };
        spawn_thread("series-wal", move || committer.run(queue))?;
        let engine = Arc::new(Engine {
            db,
            wal_dir,
            head,
            publish: RwLock::new(()),
            maintenance: Mutex::new(()),
            commands,
            wal_failure,
            max_pending_points: options.max_pending_points,
        });
        let weak = Arc::downgrade(&engine);
        spawn_thread("series-flush", move || flush_loop(weak, nudges, options.flush_interval))?;
        Ok(Self { engine })
    }

    /// Packs everything acknowledged so far into blocks and rollups now (the engine also does it on its own).
    pub async fn flush(&self) -> StoreResult<()> {
        let engine = Arc::clone(&self.engine);
        run_blocking(move || engine.flush_now()).await
    }
}

fn spawn_thread(name: &str, work: impl FnOnce() + Send + 'static) -> StoreResult<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map(drop)
        .map_err(|e| StoreError::Backend(format!("cannot start the {name} thread: {e}")))
}

fn flush_loop(engine: Weak<Engine>, nudges: std::sync::mpsc::Receiver<()>, interval: Duration) {
    loop {
        if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) = nudges.recv_timeout(interval) {
            return;
        }
        let Some(engine) = engine.upgrade() else { return };
        if let Err(error) = engine.flush_now() {
            tracing::error!(%error, "series flush failed; the head keeps the points and the next flush retries");
        }
    }
}

/// Owns the log: writes groups of frames, syncs them, applies them to the head in log order, acknowledges.
struct Committer {
    wal: wal::WalWriter,
    head: Arc<Mutex<Head>>,
    failure: Arc<Mutex<Option<String>>>,
    nudge: std::sync::mpsc::SyncSender<()>,
    flush_points: usize,
}

type Pending = Vec<(Apply, oneshot::Sender<StoreResult<()>>)>;

impl Committer {
    fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        while let Some(first) = queue.blocking_recv() {
            let mut frames: Vec<Vec<u8>> = Vec::new();
            let mut pending: Pending = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append { frame, apply, done } => {
                        bytes += frame.len();
                        frames.push(frame);
                        pending.push((apply, done));
                    }
                    Command::Seal { done } => {
                        self.commit(&mut frames, &mut pending);
                        let _ = done.send(self.seal());
                    }
                }
                if bytes < GROUP_MAX_BYTES {
                    next = queue.try_recv().ok();
                }
            }
            self.commit(&mut frames, &mut pending);
            if lock(&self.head).active.len() >= self.flush_points {
                let _ = self.nudge.try_send(());
            }
        }
    }

    fn commit(&mut self, frames: &mut Vec<Vec<u8>>, pending: &mut Pending) {
        if frames.is_empty() {
            return;
        }
        let failed = lock(&self.failure).clone();
        let written = match failed {
            Some(reason) => Err(reason),
            None => {
                let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
                let started = std::time::Instant::now();
                let written = self.wal.append(&refs).map_err(|e| e.to_string());
                metrics::histogram!(metric_names::LOG_SYNC_SECONDS).record(started.elapsed().as_secs_f64());
                metrics::histogram!(metric_names::GROUP_COMMIT_WRITES).record(frames.len() as f64);
                written
            }
        };
        frames.clear();
        match written {
            Ok(()) => {
                let mut head = lock(&self.head);
                let applied: Vec<_> = pending
                    .drain(..)
                    .map(|(apply, done)| {
                        apply.to(&mut head.active);
                        done
                    })
                    .collect();
                metrics::gauge!(metric_names::HEAD_POINTS).set(head.active.len() as f64);
                drop(head);
                for done in applied {
                    let _ = done.send(Ok(()));
                }
            }
            Err(reason) => {
                tracing::error!(%reason, "series write-ahead log write failed; refusing writes until restart");
                *lock(&self.failure) = Some(reason.clone());
                for (_, done) in pending.drain(..) {
                    let _ = done.send(Err(StoreError::Backend(format!("series log write failed: {reason}"))));
                }
            }
        }
    }

    fn seal(&mut self) -> StoreResult<Option<u64>> {
        let mut head = lock(&self.head);
        if self.wal.is_empty() && head.active.is_empty() {
            return Ok(None);
        }
        let sealed = self.wal.rotate()?;
        let active = std::mem::take(&mut head.active);
        // A failed flush leaves its memtable frozen; the retry packs it together with what came after.
        let frozen = match head.frozen.take() {
            Some(earlier) => {
                let mut combined = (*earlier).clone();
                combined.absorb(active);
                combined
            }
            None => active,
        };
        head.frozen = Some(Arc::new(frozen));
        Ok(Some(sealed))
    }
}

impl Engine {
    async fn submit(&self, frame: Vec<u8>, apply: Apply) -> StoreResult<()> {
        let (done, acknowledged) = oneshot::channel();
        self.commands.send(Command::Append { frame, apply, done }).await.map_err(|_| stopped())?;
        acknowledged.await.map_err(|_| stopped())?
    }

    fn flush_now(&self) -> StoreResult<()> {
        let _maintenance = lock(&self.maintenance);
        let (done, sealed) = oneshot::channel();
        self.commands.blocking_send(Command::Seal { done }).map_err(|_| stopped())?;
        let Some(sealed) = sealed.blocking_recv().map_err(|_| stopped())?? else { return Ok(()) };
        let frozen = lock(&self.head).frozen.clone().expect("a seal freezes the head");
        let started = std::time::Instant::now();
        self.db.with_writer(|conn| {
            let tx = conn.transaction().backend()?;
            for (project, run_id, key, points) in frozen.sorted_series() {
                let series_id = series_id_or_create(&tx, project, run_id, key)?;
                blocks::merge_into_series(&tx, series_id, &points)?;
            }
            tx.execute("INSERT OR REPLACE INTO engine_state (name, value) VALUES ('checkpoint', ?1)", [sealed as i64])
                .backend()?;
            let _publishing = self.publish.write().unwrap_or_else(|p| p.into_inner());
            tx.commit().backend()?;
            lock(&self.head).frozen = None;
            Ok(())
        })?;
        tracing::debug!(points = frozen.len(), elapsed_ms = started.elapsed().as_millis() as u64, "series flushed");
        metrics::histogram!(metric_names::FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(metric_names::FLUSHED_POINTS).increment(frozen.len() as u64);
        metrics::gauge!(metric_names::HEAD_POINTS).set(lock(&self.head).active.len() as f64);
        wal::remove_through(&self.wal_dir, sealed)
    }

    fn delete_run_now(&self, project: &str, run_id: &str) -> StoreResult<()> {
        let _maintenance = lock(&self.maintenance);
        let (done, acknowledged) = oneshot::channel();
        let apply = Apply::DeleteRun { project: project.to_owned(), run_id: run_id.to_owned() };
        let frame = wal::delete_run_frame(project, run_id);
        self.commands.blocking_send(Command::Append { frame, apply, done }).map_err(|_| stopped())?;
        acknowledged.blocking_recv().map_err(|_| stopped())??;
        self.db.with_writer(|conn| {
            let tx = conn.transaction().backend()?;
            delete_stored_run(&tx, project, run_id)?;
            let _publishing = self.publish.write().unwrap_or_else(|p| p.into_inner());
            tx.commit().backend()
        })?;
        self.db.with_writer(|conn| {
            // Each step of this pragma frees one page; it has to be run to completion.
            let mut vacuum = conn.prepare("PRAGMA incremental_vacuum").backend()?;
            let mut rows = vacuum.query([]).backend()?;
            while rows.next().backend()?.is_some() {}
            Ok(())
        })
    }

    /// Runs `read` against the stored side with the head's points of one series, as one consistent view.
    fn read_series<T>(
        &self,
        project: &str,
        run_id: &str,
        key: &str,
        read: impl FnOnce(&Connection, Option<i64>, Vec<Point>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let _view = self.publish.read().unwrap_or_else(|p| p.into_inner());
        let fresh = lock(&self.head).snapshot(project, run_id, key);
        self.db.with_reader(|conn| read(conn, series_id(conn, project, run_id, key)?, fresh))
    }

    fn list_series_now(&self, project: &str, run_id: &str) -> StoreResult<Vec<SeriesStats>> {
        let _view = self.publish.read().unwrap_or_else(|p| p.into_inner());
        let fresh: Vec<(String, Vec<Point>)> = {
            let head = lock(&self.head);
            head.keys(project, run_id)
                .into_iter()
                .map(|key| {
                    let points = head.snapshot(project, run_id, &key);
                    (key, points)
                })
                .collect()
        };
        self.db.with_reader(|conn| {
            let mut stored: Vec<(String, i64)> = conn
                .prepare_cached("SELECT key, id FROM series WHERE project = ?1 AND run_id = ?2")
                .backend()?
                .query_map(params![project, run_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .backend()?
                .collect::<rusqlite::Result<_>>()
                .backend()?;
            stored.sort();
            let mut keys: Vec<&str> =
                stored.iter().map(|(k, _)| k.as_str()).chain(fresh.iter().map(|(k, _)| k.as_str())).collect();
            keys.sort_unstable();
            keys.dedup();
            let whole = BucketLayout { start: 0, end: (1i64 << TOP_LEVEL) - 1, width_log2: TOP_LEVEL };
            let mut stats = Vec::with_capacity(keys.len());
            for key in keys {
                let id = stored.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().map(|i| stored[i].1);
                // `fresh` follows `Head::keys`, which is sorted.
                let head_points =
                    fresh.binary_search_by(|(k, _)| k.as_str().cmp(key)).map_or(&[][..], |i| fresh[i].1.as_slice());
                let summary = summarize(conn, stored_side(conn, id)?, whole, head_points)?.pop().unwrap_or_default();
                stats.extend(summary.to_stats(key));
            }
            Ok(stats)
        })
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the series engine has stopped".into())
}

/// A series' stored side: its id and the first and last step in its blocks.
#[derive(Debug, Clone, Copy)]
struct Stored {
    id: i64,
    first: i64,
    last: i64,
}

fn stored_side(conn: &Connection, series_id: Option<i64>) -> StoreResult<Option<Stored>> {
    let Some(id) = series_id else { return Ok(None) };
    Ok(blocks::extent(conn, id)?.map(|(first, last)| Stored { id, first, last }))
}

/// The summary of every bucket of `layout`: whole rollup cells where they are current, stored points where no
/// cell fits, and the head's points (which shadow stored ones at the same step).
fn summarize(
    conn: &Connection,
    stored: Option<Stored>,
    layout: BucketLayout,
    fresh: &[Point],
) -> StoreResult<Vec<Summary>> {
    let mut summaries = vec![Summary::default(); layout.bucket_count()];
    if let Some(Stored { id, first, last }) = stored {
        // Only head steps within the stored extent can shadow a stored point: appends past the end (the usual
        // case while a run is live) leave every cell whole.
        let stale: Vec<i64> = fresh.iter().map(|p| p.step).filter(|s| (first..=last).contains(s)).collect();
        let mut pieces = Vec::new();
        if layout.width_log2 < FINEST_LEVEL {
            pieces.push(Piece::Points { lo: layout.start.max(first), hi: layout.end.min(last) });
        } else {
            for index in 0..layout.bucket_count() {
                let (lo, hi) = layout.bounds(index);
                if hi >= first && lo <= last {
                    pyramid::cover(lo, hi, &stale, &mut pieces);
                }
            }
        }
        let mut cells_by_level: Vec<Vec<i64>> = vec![Vec::new(); TOP_LEVEL as usize + 1];
        for piece in &pieces {
            match *piece {
                Piece::Cell { level, cell } => cells_by_level[level as usize].push(cell),
                Piece::Points { lo, hi } => {
                    for point in blocks::read_points(conn, id, lo, hi, &stale, usize::MAX)? {
                        summaries[layout.index_of(point.step)].push(point.step, point.value);
                    }
                }
            }
        }
        for (level, cells) in cells_by_level.iter().enumerate() {
            for run in pyramid::contiguous_runs(cells) {
                for (cell, summary) in pyramid::read_cells(conn, id, level as u32, run[0], run[run.len() - 1])? {
                    summaries[layout.index_of(cell << level)].merge(&summary);
                }
            }
        }
    }
    for point in fresh.iter().filter(|p| p.step >= layout.start && p.step <= layout.end) {
        summaries[layout.index_of(point.step)].push(point.step, point.value);
    }
    Ok(summaries)
}

fn series_id(conn: &Connection, project: &str, run_id: &str, key: &str) -> StoreResult<Option<i64>> {
    conn.prepare_cached("SELECT id FROM series WHERE project = ?1 AND run_id = ?2 AND key = ?3")
        .backend()?
        .query_row(params![project, run_id, key], |row| row.get(0))
        .optional()
        .backend()
}

fn series_id_or_create(conn: &Connection, project: &str, run_id: &str, key: &str) -> StoreResult<i64> {
    if let Some(id) = series_id(conn, project, run_id, key)? {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO series (project, run_id, key) VALUES (?1, ?2, ?3)")
        .backend()?
        .execute(params![project, run_id, key])
        .backend()?;
    Ok(conn.last_insert_rowid())
}

fn delete_stored_run(conn: &Connection, project: &str, run_id: &str) -> StoreResult<()> {
    for table in ["cells", "blocks"] {
        conn.execute(
            &format!(
                "DELETE FROM {table} WHERE series_id IN (SELECT id FROM series WHERE project = ?1 AND run_id = ?2)"
            ),
            params![project, run_id],
        )
        .backend()?;
    }
    conn.execute("DELETE FROM series WHERE project = ?1 AND run_id = ?2", params![project, run_id]).backend()?;
    Ok(())
}

fn read_checkpoint(conn: &Connection) -> StoreResult<u64> {
    let value: Option<i64> = conn
        .query_row("SELECT value FROM engine_state WHERE name = 'checkpoint'", [], |row| row.get(0))
        .optional()
        .backend()?;
    Ok(value.unwrap_or(0) as u64)
}

fn to_series_point(point: &Point) -> SeriesPoint {
    SeriesPoint { step: point.step, value: point.value, time_ms: point.time_ms }
}

#[async_trait]
impl SeriesStore for EmbeddedSeriesStore {
    async fn check(&self) -> StoreResult<()> {
        if let Some(reason) = lock(&self.engine.wal_failure).clone() {
            return Err(StoreError::Backend(format!("series log write failed: {reason}")));
        }
        self.engine.db.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).backend()).await
    }

    async fn write_points(&self, project: &str, run_id: &str, points: &[MetricPoint]) -> StoreResult<()> {
        if points.is_empty() {
            return Ok(());
        }
        let pending = {
            let head = lock(&self.engine.head);
            head.active.len() + head.frozen.as_ref().map_or(0, |frozen| frozen.len())
        };
        if pending >= self.engine.max_pending_points {
            return Err(StoreError::Unavailable(format!(
                "{pending} points are waiting to be packed (storage.embedded.max_pending_points = {}); retry shortly",
                self.engine.max_pending_points
            )));
        }
        let frame = wal::points_frame(project, run_id, points);
        let apply = Apply::Points { project: project.to_owned(), run_id: run_id.to_owned(), points: points.to_vec() };
        self.engine.submit(frame, apply).await
    }

    async fn list_series(&self, project: &str, run_id: &str) -> StoreResult<Vec<SeriesStats>> {
        let (engine, project, run_id) = (Arc::clone(&self.engine), project.to_owned(), run_id.to_owned());
        run_blocking(move || engine.list_series_now(&project, &run_id)).await
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
        let (engine, project, run_id, key) =
            (Arc::clone(&self.engine), project.to_owned(), run_id.to_owned(), key.to_owned());
        run_blocking(move || {
            let lo = range.start.unwrap_or(i64::MIN).max(after.map_or(i64::MIN, |a| a.saturating_add(1)));
            let hi = range.end.unwrap_or(i64::MAX);
            if after == Some(i64::MAX) || lo > hi || limit == 0 {
                return Ok(Vec::new());
            }
            engine.read_series(&project, &run_id, &key, |conn, id, fresh| {
                let stale: Vec<i64> = fresh.iter().map(|p| p.step).collect();
                let stored = match id {
                    Some(id) => blocks::read_points(conn, id, lo, hi, &stale, limit)?,
                    None => Vec::new(),
                };
                let fresh: Vec<Point> = fresh.into_iter().filter(|p| p.step >= lo && p.step <= hi).collect();
                let merged = blocks::merge_sorted(&stored, &fresh);
                Ok(merged.iter().take(limit).map(to_series_point).collect())
            })
        })
        .await
    }

    async fn read_buckets(
        &self,
        project: &str,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: u32,
    ) -> StoreResult<BucketedSeries> {
        let (engine, project, run_id, key) =
            (Arc::clone(&self.engine), project.to_owned(), run_id.to_owned(), key.to_owned());
        run_blocking(move || {
            engine.read_series(&project, &run_id, &key, |conn, id, fresh| {
                let stored = stored_side(conn, id)?;
                let stored_extent = stored.map(|s| (s.first, s.last));
                let fresh_extent = fresh.first().zip(fresh.last()).map(|(a, b)| (a.step, b.step));
                let extent = match (stored_extent, fresh_extent) {
                    (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                    (one, other) => one.or(other),
                };
                let empty = |start, end| BucketedSeries { key: key.clone(), start, end, buckets: Vec::new() };
                let Some((first, last)) = extent else { return Ok(empty(range.start, range.end)) };
                let (start, end) = (range.start.unwrap_or(first), range.end.unwrap_or(last));
                if start > end {
                    return Ok(empty(Some(start), Some(end)));
                }
                let layout = BucketLayout::new(start, end, buckets);
                let summaries = summarize(conn, stored, layout, &fresh)?;
                let buckets = summaries.iter().filter_map(Summary::to_bucket).collect();
                Ok(BucketedSeries { key: key.clone(), start: Some(start), end: Some(end), buckets })
            })
        })
        .await
    }

    async fn delete_run(&self, project: &str, run_id: &str) -> StoreResult<()> {
        let (engine, project, run_id) = (Arc::clone(&self.engine), project.to_owned(), run_id.to_owned());
        run_blocking(move || engine.delete_run_now(&project, &run_id)).await
    }
}

#[cfg(test)]
mod tests;
