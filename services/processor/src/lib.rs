//! The processor role: background jobs over the stores. Every job is idempotent, so two processors running at
//! once (a rolling deploy, a second replica) do no harm. [`Processor::run_once`] takes the current time as an
//! argument, so tests step the clock instead of sleeping.
//!
//! Jobs: crash detection (a `running` run whose client stopped heartbeating becomes `crashed`) and per-project
//! retention (finished runs, or only their points, are deleted some days after they end). Rollups and
//! compaction of the embedded series engine happen inside that engine as it flushes; the cardinality guards
//! run on the write path (`trackstack-ingest`), which counts refusals on the run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use trackstack_domain::model::RetentionAction;
use trackstack_store::{MetadataStore, SeriesStore, StoreResult};

/// Names of the metrics the processor records.
pub mod metric_names {
    /// Runs marked `crashed` because their client stopped heartbeating.
    pub const CRASHED_RUNS: &str = "trackstack_processor_crashed_runs_total";
    /// Runs deleted by their project's retention.
    pub const EXPIRED_RUNS: &str = "trackstack_processor_expired_runs_total";
    /// Runs whose points their project's retention deleted.
    pub const EXPIRED_POINT_SETS: &str = "trackstack_processor_expired_point_sets_total";
}

/// Runs handled per retention query; a pass repeats the query until nothing is due (or `RETENTION_PAGES_PER_PASS`).
const RETENTION_PAGE: usize = 500;
/// Bounds one pass, so a huge backlog is worked off over several passes rather than in one long one.
const RETENTION_PAGES_PER_PASS: usize = 20;

#[derive(Debug, Clone, Copy)]
pub struct ProcessorSettings {
    pub interval: Duration,
    pub crash_after: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub crashed_runs: Vec<String>,
    /// Runs deleted by retention.
    pub deleted_runs: Vec<String>,
    /// Runs whose points retention deleted.
    pub expired_points: Vec<String>,
}

pub struct Processor {
    metadata: Arc<dyn MetadataStore>,
    series: Arc<dyn SeriesStore>,
    settings: ProcessorSettings,
}

impl Processor {
    pub fn new(metadata: Arc<dyn MetadataStore>, series: Arc<dyn SeriesStore>, settings: ProcessorSettings) -> Self {
        Self { metadata, series, settings }
    }

    /// Runs every job once as of `now`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> StoreResult<PassReport> {
        let crash_after = chrono::Duration::from_std(self.settings.crash_after).unwrap_or(chrono::Duration::MAX);
        let crashed_runs = self.metadata.mark_crashed_runs(now - crash_after, now).await?;
        for run_id in &crashed_runs {
            tracing::info!(run_id, "run stopped heartbeating; marked crashed");
        }
        metrics::counter!(metric_names::CRASHED_RUNS).increment(crashed_runs.len() as u64);
        let mut report = PassReport { crashed_runs, ..PassReport::default() };
        self.apply_retention(now, &mut report).await?;
        Ok(report)
    }

    /// Points go before the metadata row in both actions, so a pass interrupted in between leaves the run
    /// still due, and the next pass finishes the job.
    async fn apply_retention(&self, now: DateTime<Utc>, report: &mut PassReport) -> StoreResult<()> {
        for _ in 0..RETENTION_PAGES_PER_PASS {
            let due = self.metadata.retention_due(now, RETENTION_PAGE).await?;
            for run in &due {
                self.series.delete_run(&run.project, &run.run_id).await?;
                match run.action {
                    RetentionAction::DeleteRun => {
                        self.metadata.delete_run(&run.run_id).await?;
                        tracing::info!(run_id = run.run_id, project = run.project, "retention deleted the run");
                        metrics::counter!(metric_names::EXPIRED_RUNS).increment(1);
                        report.deleted_runs.push(run.run_id.clone());
                    }
                    RetentionAction::DeletePoints => {
                        self.metadata.mark_points_expired(&run.run_id, now).await?;
                        tracing::info!(
                            run_id = run.run_id,
                            project = run.project,
                            "retention deleted the run's points"
                        );
                        metrics::counter!(metric_names::EXPIRED_POINT_SETS).increment(1);
                        report.expired_points.push(run.run_id.clone());
                    }
                }
            }
            if due.len() < RETENTION_PAGE {
                break;
            }
        }
        Ok(())
    }

    /// Runs passes every `interval` until `shutdown` resolves. A failed pass is logged and retried next time.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {
                    if let Err(error) = self.run_once(Utc::now()).await {
                        tracing::warn!(%error, "processor pass failed; retrying next interval");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use trackstack_domain::model::{
        JsonMap, MetricPoint, NewRun, Retention, RunListQuery, RunState, RunUpdate, StepRange, SummaryMetric,
    };
    use trackstack_store_sqlite::{EmbeddedSeriesStore, SqliteMetadataStore};

    struct Stores {
        metadata: Arc<dyn MetadataStore>,
        series: Arc<dyn SeriesStore>,
        _dir: tempfile::TempDir,
    }

    fn stores() -> Stores {
        let dir = tempfile::tempdir().unwrap();
        let metadata = Arc::new(SqliteMetadataStore::open(&dir.path().join("m.db")).unwrap());
        let series = Arc::new(EmbeddedSeriesStore::open(&dir.path().join("s.db")).unwrap());
        Stores { metadata, series, _dir: dir }
    }

    fn processor(stores: &Stores) -> Processor {
        let settings = ProcessorSettings { interval: Duration::from_secs(30), crash_after: Duration::from_secs(300) };
        Processor::new(stores.metadata.clone(), stores.series.clone(), settings)
    }

    fn new_run(id: &str) -> NewRun {
        NewRun {
            id: id.into(),
            project: "p".into(),
            name: id.into(),
            group: None,
            job_type: None,
            tags: vec![],
            notes: String::new(),
            config: JsonMap::new(),
            metadata: JsonMap::new(),
        }
    }

    #[tokio::test]
    async fn a_run_that_stops_heartbeating_is_marked_crashed_once() {
        let stores = stores();
        let store = stores.metadata.clone();
        let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        store.create_run(new_run("r1"), start).await.unwrap();
        let processor = processor(&stores);
        assert!(processor.run_once(start + chrono::Duration::seconds(299)).await.unwrap().crashed_runs.is_empty());
        let report = processor.run_once(start + chrono::Duration::seconds(301)).await.unwrap();
        assert_eq!(report.crashed_runs, ["r1"]);
        assert_eq!(store.get_run("r1").await.unwrap().unwrap().state, RunState::Crashed);
        assert!(processor.run_once(start + chrono::Duration::seconds(400)).await.unwrap().crashed_runs.is_empty());
    }

    #[tokio::test]
    async fn two_processors_at_once_mark_each_run_once() {
        let stores = stores();
        let store = stores.metadata.clone();
        let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        for i in 0..50 {
            store.create_run(new_run(&format!("r{i}")), start).await.unwrap();
        }
        let (one, two) = (processor(&stores), processor(&stores));
        let later = start + chrono::Duration::seconds(600);
        let (a, b) = tokio::join!(one.run_once(later), two.run_once(later));
        let mut marked = [a.unwrap().crashed_runs, b.unwrap().crashed_runs].concat();
        marked.sort();
        let mut expected: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
        expected.sort();
        assert_eq!(marked, expected, "every run is marked by exactly one of the two");
    }

    fn points(count: i64) -> Vec<MetricPoint> {
        (0..count)
            .map(|step| MetricPoint { key: "loss".into(), step, value: 1.0 / (step + 1) as f64, time_ms: 0 })
            .collect()
    }

    async fn stored_points(stores: &Stores, run_id: &str) -> usize {
        let raw = stores.series.read_raw("p", run_id, "loss", StepRange::default(), None, 1_000).await.unwrap();
        raw.len()
    }

    #[tokio::test]
    async fn retention_deletes_points_then_runs_as_their_days_pass() {
        let stores = stores();
        let day = chrono::Duration::days(1);
        let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let retention = Retention { runs_days: Some(30), points_days: Some(7) };
        stores.metadata.create_project("p", "", retention, start).await.unwrap();
        for id in ["ended", "running"] {
            stores.metadata.create_run(new_run(id), start).await.unwrap();
            stores.series.write_points("p", id, &points(100)).await.unwrap();
        }
        let finish = RunUpdate {
            state: Some(RunState::Finished),
            summary_metrics: vec![SummaryMetric { key: "loss".into(), step: 99, value: 0.01 }],
            ..Default::default()
        };
        stores.metadata.update_run("ended", finish, start).await.unwrap();
        let keep_alive = RunUpdate { heartbeat: true, ..Default::default() };
        let processor = processor(&stores);

        stores.metadata.update_run("running", keep_alive.clone(), start + day * 6).await.unwrap();
        assert_eq!(processor.run_once(start + day * 6).await.unwrap(), PassReport::default());
        assert_eq!(stored_points(&stores, "ended").await, 100);

        stores.metadata.update_run("running", keep_alive.clone(), start + day * 8).await.unwrap();
        let report = processor.run_once(start + day * 8).await.unwrap();
        assert_eq!(report.expired_points, ["ended"]);
        assert_eq!(stored_points(&stores, "ended").await, 0, "the points are gone");
        let ended = stores.metadata.get_run("ended").await.unwrap().unwrap();
        assert_eq!(ended.points_expired_at, Some(start + day * 8));
        assert_eq!(ended.summary["loss"], 0.01, "the summary stays");
        assert_eq!(stored_points(&stores, "running").await, 100, "a running run keeps its points");
        stores.metadata.update_run("running", keep_alive.clone(), start + day * 9).await.unwrap();
        assert_eq!(processor.run_once(start + day * 9).await.unwrap(), PassReport::default(), "done once");

        stores.metadata.update_run("running", keep_alive, start + day * 31).await.unwrap();
        let report = processor.run_once(start + day * 31).await.unwrap();
        assert_eq!(report.deleted_runs, ["ended"]);
        assert_eq!(stores.metadata.get_run("ended").await.unwrap(), None);
        assert!(stores.metadata.get_run("running").await.unwrap().is_some());
        assert_eq!(stored_points(&stores, "running").await, 100);
    }

    #[tokio::test]
    async fn a_retention_backlog_larger_than_a_page_is_worked_off() {
        let stores = stores();
        let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let retention = Retention { runs_days: Some(1), points_days: None };
        stores.metadata.create_project("p", "", retention, start).await.unwrap();
        let count = RETENTION_PAGE + 7;
        for i in 0..count {
            let id = format!("r{i}");
            stores.metadata.create_run(new_run(&id), start).await.unwrap();
            let finish = RunUpdate { state: Some(RunState::Finished), ..Default::default() };
            stores.metadata.update_run(&id, finish, start).await.unwrap();
        }
        let report = processor(&stores).run_once(start + chrono::Duration::days(2)).await.unwrap();
        assert_eq!(report.deleted_runs.len(), count);
        let everything = RunListQuery { project: "p".into(), limit: 10, ..Default::default() };
        assert!(stores.metadata.list_runs(&everything).await.unwrap().runs.is_empty());
    }
}
