use std::collections::BTreeMap;

use async_trait::async_trait;
use proptest::prelude::*;
use trackstack_domain::bucketing::{bucketize, BucketLayout};

use super::*;

fn open(dir: &Path) -> EmbeddedSeriesStore {
    // Flushes happen only when a test asks, so each test knows which side (head or blocks) holds its points.
    let options = EngineOptions {
        flush_interval: Duration::from_secs(3600),
        flush_points: usize::MAX,
        ..EngineOptions::default()
    };
    EmbeddedSeriesStore::open_with(&dir.join("series.db"), options).unwrap()
}

fn points(key: &str, steps: impl IntoIterator<Item = (i64, f64)>) -> Vec<MetricPoint> {
    steps.into_iter().map(|(step, value)| MetricPoint { key: key.into(), step, value, time_ms: step * 10 }).collect()
}

async fn everything(store: &EmbeddedSeriesStore, key: &str) -> Vec<(i64, u64)> {
    let read = store.read_raw("p", "r", key, StepRange::default(), None, usize::MAX).await.unwrap();
    read.iter().map(|p| (p.step, p.value.to_bits())).collect()
}

/// The engine with every write pushed through to blocks, so the conformance suite covers the packed side too.
struct FlushingAfterWrites(EmbeddedSeriesStore);

#[async_trait]
impl SeriesStore for FlushingAfterWrites {
    async fn check(&self) -> StoreResult<()> {
        self.0.check().await
    }
    async fn write_points(&self, project: &str, run_id: &str, points: &[MetricPoint]) -> StoreResult<()> {
        self.0.write_points(project, run_id, points).await?;
        self.0.flush().await
    }
    async fn list_series(&self, project: &str, run_id: &str) -> StoreResult<Vec<SeriesStats>> {
        self.0.list_series(project, run_id).await
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
        self.0.read_raw(project, run_id, key, range, after, limit).await
    }
    async fn read_buckets(
        &self,
        project: &str,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: u32,
    ) -> StoreResult<BucketedSeries> {
        self.0.read_buckets(project, run_id, key, range, buckets).await
    }
    async fn delete_run(&self, project: &str, run_id: &str) -> StoreResult<()> {
        self.0.delete_run(project, run_id).await
    }
}

mod conformance_in_the_head {
    trackstack_store::series_store_conformance!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open(dir.path());
        Some((Box::new(store), dir))
    });
}

mod conformance_in_blocks {
    trackstack_store::series_store_conformance!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = super::FlushingAfterWrites(super::open(dir.path()));
        Some((Box::new(store), dir))
    });
}

mod conformance_while_flushing {
    // Flushes race every write: reads must be right whichever side a point is on at that instant.
    trackstack_store::series_store_conformance!(async {
        let dir = tempfile::tempdir().unwrap();
        let options = super::EngineOptions {
            flush_interval: std::time::Duration::from_millis(1),
            flush_points: 1,
            ..super::EngineOptions::default()
        };
        let store = super::EmbeddedSeriesStore::open_with(&dir.path().join("series.db"), options).unwrap();
        Some((Box::new(store), dir))
    });
}

#[tokio::test]
async fn acknowledged_points_survive_a_restart_from_the_log_and_from_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write_points("p", "r", &points("x", (0..3000).map(|s| (s, s as f64)))).await.unwrap();
    store.flush().await.unwrap();
    store.write_points("p", "r", &points("x", [(5, -0.0), (3000, f64::NAN)])).await.unwrap();
    store.write_points("p", "gone", &points("x", [(1, 1.0)])).await.unwrap();
    store.delete_run("p", "gone").await.unwrap();
    drop(store);

    let store = open(dir.path());
    let read = everything(&store, "x").await;
    assert_eq!(read.len(), 3001);
    assert_eq!(read[5], (5, (-0.0f64).to_bits()));
    assert!(f64::from_bits(read[3000].1).is_nan());
    assert!(store.list_series("p", "gone").await.unwrap().is_empty());
    store.flush().await.unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(everything(&store, "x").await, read);
}

#[tokio::test]
async fn writes_are_refused_while_too_many_points_wait_then_accepted_again() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        EngineOptions { flush_interval: Duration::from_secs(3600), flush_points: usize::MAX, max_pending_points: 100 };
    let store = EmbeddedSeriesStore::open_with(&dir.path().join("series.db"), options).unwrap();
    store.write_points("p", "r", &points("x", (0..150).map(|s| (s, 1.0)))).await.unwrap();
    let refused = store.write_points("p", "r", &points("x", [(150, 1.0)])).await.unwrap_err();
    assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
    assert_eq!(everything(&store, "x").await.len(), 150, "a refused write changes nothing");
    store.flush().await.unwrap();
    store.write_points("p", "r", &points("x", [(150, 1.0)])).await.unwrap();
    assert_eq!(everything(&store, "x").await.len(), 151);
}

#[tokio::test]
async fn a_float_series_takes_under_ten_bytes_a_point_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in 0..20 {
        let batch: Vec<MetricPoint> = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(|step| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let noise = (state >> 11) as f64 / (1u64 << 53) as f64;
                MetricPoint {
                    key: "train/loss".into(),
                    step,
                    value: 3.0 / (1.0 + step as f64 / 1e4) + 0.1 * noise,
                    time_ms: 1_700_000_000_000 + step * 50 + (state % 7) as i64,
                }
            })
            .collect();
        store.write_points("p", "r", &batch).await.unwrap();
        store.flush().await.unwrap();
    }
    let bytes = store
        .engine
        .db
        .with_reader(|conn| {
            conn.query_row("SELECT page_count * page_size - freelist_count * page_size FROM pragma_page_count, pragma_page_size, pragma_freelist_count", [], |r| r.get::<_, i64>(0))
                .backend()
        })
        .unwrap();
    let per_point = bytes as f64 / 200_000.0;
    assert!(per_point < 10.0, "{per_point:.2} bytes/point");
}

#[tokio::test]
async fn deleting_a_run_gives_its_pages_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write_points("p", "r", &points("x", (0..50_000).map(|s| (s, (s as f64).sin())))).await.unwrap();
    store.flush().await.unwrap();
    let pages = || {
        store.engine.db.with_reader(|c| c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0)).backend()).unwrap()
    };
    let before = pages();
    store.delete_run("p", "r").await.unwrap();
    assert!(pages() < before / 4, "{} pages left of {before}", pages());
}

#[tokio::test]
async fn row_per_point_databases_are_packed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("series.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(migrations::SERIES[0].sql).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO series (id, run_id, key, project, count, last_step, last_value, min, max)
                 VALUES (7, 'r', 'x', 'p', 3, 2, NULL, 1.0, 2.0);
             INSERT INTO points VALUES (7, 0, 1.0, 100), (7, 1, 2.0, 110), (7, 2, NULL, 120);",
        )
        .unwrap();
    }
    let store = open(dir.path());
    let read = store.read_raw("p", "r", "x", StepRange::default(), None, 10).await.unwrap();
    assert_eq!(read.iter().map(|p| (p.step, p.time_ms)).collect::<Vec<_>>(), [(0, 100), (1, 110), (2, 120)]);
    assert!(read[2].value.is_nan());
    let stats = store.list_series("p", "r").await.unwrap();
    assert_eq!((stats[0].count, stats[0].min, stats[0].max), (3, Some(1.0), Some(2.0)));
}

/// A write in the property tests below: a batch of (step, value), optionally followed by a flush.
#[derive(Debug, Clone)]
struct Write {
    points: Vec<(i64, f64)>,
    flush_after: bool,
}

fn writes() -> impl Strategy<Value = Vec<Write>> {
    let value = prop_oneof![8 => -1e6f64..1e6, 1 => Just(f64::NAN), 1 => Just(f64::INFINITY), 1 => Just(-0.0)];
    let step = prop_oneof![3 => 0i64..5_000, 1 => 0i64..200_000];
    let batch = proptest::collection::vec((step, value), 1..400);
    proptest::collection::vec(
        (batch, any::<bool>()).prop_map(|(points, flush_after)| Write { points, flush_after }),
        1..8,
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        (a, b) => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Bucketed reads equal a brute-force pass over the last write of every step, for any history of writes and
    /// flushes, any range and any bucket count; the mean alone may differ in the last bits (summation order).
    #[test]
    fn buckets_match_a_brute_force_reference(
        history in writes(),
        range in (0i64..220_000, 0i64..220_000, any::<bool>(), any::<bool>()),
        buckets in 1u32..3_000,
    ) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path());
            let mut truth: BTreeMap<i64, f64> = BTreeMap::new();
            for write in &history {
                store.write_points("p", "r", &points("x", write.points.iter().copied())).await.unwrap();
                truth.extend(write.points.iter().copied());
                if write.flush_after {
                    store.flush().await.unwrap();
                }
            }
            let (a, b, open_start, open_end) = range;
            let requested = StepRange {
                start: (!open_start).then_some(a.min(b)),
                end: (!open_end).then_some(a.max(b)),
            };
            let read = store.read_buckets("p", "r", "x", requested, buckets).await.unwrap();
            let start = requested.start.unwrap_or(*truth.keys().next().unwrap());
            let end = requested.end.unwrap_or(*truth.keys().next_back().unwrap());
            let expected = if start <= end {
                let layout = BucketLayout::new(start, end, buckets);
                bucketize(layout, truth.range(start..=end).map(|(s, v)| (*s, *v)))
            } else {
                Vec::new()
            };
            prop_assert_eq!(read.buckets.len(), expected.len());
            for (got, want) in read.buckets.iter().zip(&expected) {
                prop_assert_eq!((got.first_step, got.last_step, got.count), (want.first_step, want.last_step, want.count));
                prop_assert_eq!((got.min, got.max), (want.min, want.max));
                prop_assert_eq!(got.last.to_bits(), want.last.to_bits());
                prop_assert!(close(got.mean, want.mean), "mean {:?} vs {:?}", got.mean, want.mean);
            }

            let stats = store.list_series("p", "r").await.unwrap();
            let all = Summary::of(truth.iter().map(|(s, v)| (*s, *v)));
            prop_assert_eq!(stats.len(), 1);
            prop_assert_eq!((stats[0].count, stats[0].last_step), (all.count, all.last_step));
            prop_assert_eq!(stats[0].last_value.to_bits(), all.last_value.to_bits());
            prop_assert_eq!((stats[0].min, stats[0].max), (all.to_stats("x").unwrap().min, all.to_stats("x").unwrap().max));
            Ok(())
        })?;
    }

    /// Last write wins per step whatever the arrival order and wherever the flushes fall, and raw pages return
    /// every point exactly once.
    #[test]
    fn the_last_write_wins_under_shuffled_arrival(history in writes(), page in 1usize..500) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path());
            let mut truth: BTreeMap<i64, u64> = BTreeMap::new();
            for write in &history {
                store.write_points("p", "r", &points("x", write.points.iter().copied())).await.unwrap();
                truth.extend(write.points.iter().map(|(s, v)| (*s, v.to_bits())));
                if write.flush_after {
                    store.flush().await.unwrap();
                }
            }
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let read = store.read_raw("p", "r", "x", StepRange::default(), after, page).await.unwrap();
                prop_assert!(read.len() <= page);
                let Some(last) = read.last() else { break };
                after = Some(last.step);
                seen.extend(read.iter().map(|p| (p.step, p.value.to_bits())));
            }
            prop_assert_eq!(seen, truth.into_iter().collect::<Vec<_>>());
            Ok(())
        })?;
    }
}
