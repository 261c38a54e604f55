//! The [`SeriesStore`] conformance suite.

use trackstack_domain::model::{MetricPoint, StepRange};

use crate::SeriesStore;

fn points(key: &str, steps: impl IntoIterator<Item = (i64, f64)>) -> Vec<MetricPoint> {
    steps.into_iter().map(|(step, value)| MetricPoint { key: key.into(), step, value, time_ms: 1_000 + step }).collect()
}

async fn all_values(store: &dyn SeriesStore, run: &str, key: &str) -> Vec<(i64, f64)> {
    let raw = store.read_raw("p", run, key, StepRange::default(), None, 1_000_000).await.unwrap();
    raw.into_iter().map(|p| (p.step, p.value)).collect()
}

pub async fn last_write_wins_in_any_order(store: &dyn SeriesStore) {
    store.write_points("p", "r1", &points("loss", [(2, 2.0), (0, 0.0), (1, 1.0)])).await.unwrap();
    store.write_points("p", "r1", &points("loss", [(1, 10.0), (3, 3.0)])).await.unwrap();
    store.write_points("p", "r1", &points("loss", [(3, 30.0), (3, 31.0)])).await.unwrap();
    assert_eq!(all_values(store, "r1", "loss").await, [(0, 0.0), (1, 10.0), (2, 2.0), (3, 31.0)]);
    store.write_points("p", "r1", &points("loss", [(1, 10.0), (3, 31.0)])).await.unwrap();
    assert_eq!(all_values(store, "r1", "loss").await.len(), 4, "a replay adds nothing");
    assert!(all_values(store, "r2", "loss").await.is_empty(), "runs do not share series");
}

pub async fn stats_follow_rewrites(store: &dyn SeriesStore) {
    store.write_points("p", "r1", &points("loss", [(0, 5.0), (1, -2.0), (2, 7.0)])).await.unwrap();
    store.write_points("p", "r1", &points("acc", [(0, f64::NAN)])).await.unwrap();
    store.write_points("p", "r1", &points("loss", [(1, 1.0), (2, 3.0)])).await.unwrap();
    let stats = store.list_series("p", "r1").await.unwrap();
    assert_eq!(stats.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["acc", "loss"]);
    let loss = &stats[1];
    assert_eq!((loss.count, loss.last_step, loss.last_value), (3, 2, 3.0));
    assert_eq!((loss.min, loss.max), (Some(1.0), Some(5.0)), "rewritten extremes are forgotten");
    let acc = &stats[0];
    assert_eq!((acc.count, acc.min, acc.max), (1, None, None));
    assert!(acc.last_value.is_nan());
    store.write_points("p", "r1", &points("loss", [(-0, 4.0)])).await.unwrap();
    let loss = store.list_series("p", "r1").await.unwrap().remove(1);
    assert_eq!((loss.count, loss.last_step, loss.last_value), (3, 2, 3.0), "an older step does not become the last");
}

pub async fn non_finite_values_round_trip(store: &dyn SeriesStore) {
    let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, f64::MIN_POSITIVE, f64::MAX, 0.1 + 0.2];
    store.write_points("p", "r1", &points("x", values.iter().enumerate().map(|(i, v)| (i as i64, *v)))).await.unwrap();
    let back = all_values(store, "r1", "x").await;
    assert_eq!(back.len(), values.len());
    for ((_, got), want) in back.iter().zip(values) {
        // Numeric equality: a backend may store -0.0 as 0.0 (SQLite does), which compares equal.
        assert!(*got == want || (want.is_nan() && got.is_nan()), "{got} != {want}");
    }
}

pub async fn raw_reads_page_through_a_range(store: &dyn SeriesStore) {
    store.write_points("p", "r1", &points("x", (0..100).map(|s| (s * 2, s as f64)))).await.unwrap();
    let range = StepRange { start: Some(10), end: Some(50) };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.read_raw("p", "r1", "x", range, after, 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = Some(last.step);
        seen.extend(page.iter().map(|p| p.step));
    }
    assert_eq!(seen, (5..=25).map(|s| s * 2).collect::<Vec<_>>());
    let first = store.read_raw("p", "r1", "x", StepRange::default(), None, 1).await.unwrap();
    assert_eq!((first[0].step, first[0].time_ms), (0, 1_000));
    assert!(store.read_raw("p", "r1", "missing", StepRange::default(), None, 10).await.unwrap().is_empty());
}

pub async fn buckets_aggregate_finite_values_only(store: &dyn SeriesStore) {
    let values = [(0, 1.0), (1, f64::NAN), (2, 3.0), (3, f64::INFINITY), (4, 10.0), (5, 20.0), (7, f64::NAN)];
    store.write_points("p", "r1", &points("x", values)).await.unwrap();
    let read = store.read_buckets("p", "r1", "x", StepRange { start: Some(0), end: Some(7) }, 2).await.unwrap();
    assert_eq!((read.start, read.end, read.buckets.len()), (Some(0), Some(7), 2));
    let (a, b) = (&read.buckets[0], &read.buckets[1]);
    assert_eq!((a.first_step, a.last_step, a.count), (0, 3, 4));
    assert_eq!((a.min, a.max, a.mean), (Some(1.0), Some(3.0), Some(2.0)));
    assert_eq!(a.last, f64::INFINITY);
    assert_eq!(
        (b.first_step, b.last_step, b.count, b.min, b.max, b.mean),
        (4, 7, 3, Some(10.0), Some(20.0), Some(15.0))
    );
    assert!(b.last.is_nan());
}

pub async fn bucket_ranges_default_to_the_series_extent(store: &dyn SeriesStore) {
    store.write_points("p", "r1", &points("x", (100..=1099).map(|s| (s, s as f64)))).await.unwrap();
    let read = store.read_buckets("p", "r1", "x", StepRange::default(), 10).await.unwrap();
    // 128-step buckets aligned to step 0 (the narrowest power of two that fits 10): the first is clipped.
    assert_eq!((read.start, read.end, read.buckets.len()), (Some(100), Some(1099), 9));
    let counts: Vec<u64> = read.buckets.iter().map(|b| b.count).collect();
    assert_eq!(counts, [28, 128, 128, 128, 128, 128, 128, 128, 76]);
    assert_eq!((read.buckets[1].first_step, read.buckets[1].last_step), (128, 255));
    let zoom = store.read_buckets("p", "r1", "x", StepRange { start: Some(500), end: None }, 4).await.unwrap();
    assert_eq!((zoom.start, zoom.end), (Some(500), Some(1099)));
    assert_eq!(zoom.buckets.first().map(|b| b.first_step), Some(500));
    let empty = store.read_buckets("p", "r1", "missing", StepRange::default(), 10).await.unwrap();
    assert_eq!((empty.start, empty.end, empty.buckets.len()), (None, None, 0));
}

pub async fn deleting_a_run_removes_its_points(store: &dyn SeriesStore) {
    store.write_points("p", "r1", &points("x", [(0, 1.0)])).await.unwrap();
    store.write_points("p", "r2", &points("x", [(0, 2.0)])).await.unwrap();
    store.delete_run("p", "r1").await.unwrap();
    assert!(store.list_series("p", "r1").await.unwrap().is_empty());
    assert!(all_values(store, "r1", "x").await.is_empty());
    assert_eq!(all_values(store, "r2", "x").await, [(0, 2.0)]);
}

pub async fn a_working_store_reports_ready(store: &dyn SeriesStore) {
    store.check().await.expect("a freshly opened store is ready");
}
