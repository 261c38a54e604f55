//! Metric series: points keyed by (run, key, step) with last-write-wins, raw and bucketed reads.

use async_trait::async_trait;
use trackstack_domain::model::{BucketedSeries, MetricPoint, SeriesPoint, SeriesStats, StepRange};

use crate::StoreResult;

#[async_trait]
pub trait SeriesStore: Send + Sync + 'static {
    /// Answers whether the backend is reachable and usable (a cheap round trip), for readiness probes.
    async fn check(&self) -> StoreResult<()>;
    /// Stores points durably before returning; the last write wins per (run, key, step) whatever the order.
    async fn write_points(&self, project: &str, run_id: &str, points: &[MetricPoint]) -> StoreResult<()>;
    /// Every key a run has logged, with its statistics, sorted by key.
    async fn list_series(&self, project: &str, run_id: &str) -> StoreResult<Vec<SeriesStats>>;
    /// Points of one key in `range` with step > `after`, ascending, at most `limit`.
    async fn read_raw(
        &self,
        project: &str,
        run_id: &str,
        key: &str,
        range: StepRange,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<SeriesPoint>>;
    /// Cuts `range` (open ends: the series' first and last step) into at most `buckets` aligned buckets and
    /// aggregates each as [`trackstack_domain::bucketing`] defines.
    async fn read_buckets(
        &self,
        project: &str,
        run_id: &str,
        key: &str,
        range: StepRange,
        buckets: u32,
    ) -> StoreResult<BucketedSeries>;
    /// Removes every point of a run.
    async fn delete_run(&self, project: &str, run_id: &str) -> StoreResult<()>;
}
