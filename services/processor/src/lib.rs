//! The processor role: background jobs over the stores. Every job is idempotent, so two processors running at
//! once (a rolling deploy, a second replica) do no harm. [`Processor::run_once`] takes the current time as an
//! argument, so tests step the clock instead of sleeping.
//!
//! Jobs today: crash detection (a `running` run whose client stopped heartbeating becomes `crashed`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use trackstack_store::{MetadataStore, StoreResult};

#[derive(Debug, Clone, Copy)]
pub struct ProcessorSettings {
    pub interval: Duration,
    pub crash_after: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub crashed_runs: Vec<String>,
}

pub struct Processor {
    metadata: Arc<dyn MetadataStore>,
    settings: ProcessorSettings,
}

impl Processor {
    pub fn new(metadata: Arc<dyn MetadataStore>, settings: ProcessorSettings) -> Self {
        Self { metadata, settings }
    }

    /// Runs every job once as of `now`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> StoreResult<PassReport> {
        let crash_after = chrono::Duration::from_std(self.settings.crash_after).unwrap_or(chrono::Duration::MAX);
        let crashed_runs = self.metadata.mark_crashed_runs(now - crash_after, now).await?;
        for run_id in &crashed_runs {
            tracing::info!(run_id, "run stopped heartbeating; marked crashed");
        }
        Ok(PassReport { crashed_runs })
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
    use trackstack_domain::model::{JsonMap, NewRun, RunState};
    use trackstack_store_sqlite::SqliteMetadataStore;

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
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(SqliteMetadataStore::open(&dir.path().join("m.db")).unwrap());
        let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        store.create_run(new_run("r1"), start).await.unwrap();
        let settings = ProcessorSettings { interval: Duration::from_secs(30), crash_after: Duration::from_secs(300) };
        let processor = Processor::new(store.clone(), settings);
        assert!(processor.run_once(start + chrono::Duration::seconds(299)).await.unwrap().crashed_runs.is_empty());
        let report = processor.run_once(start + chrono::Duration::seconds(301)).await.unwrap();
        assert_eq!(report.crashed_runs, ["r1"]);
        assert_eq!(store.get_run("r1").await.unwrap().unwrap().state, RunState::Crashed);
        assert!(processor.run_once(start + chrono::Duration::seconds(400)).await.unwrap().crashed_runs.is_empty());
    }

    #[tokio::test]
    async fn two_processors_at_once_mark_each_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(SqliteMetadataStore::open(&dir.path().join("m.db")).unwrap());
        let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        for i in 0..50 {
            store.create_run(new_run(&format!("r{i}")), start).await.unwrap();
        }
        let settings = ProcessorSettings { interval: Duration::from_secs(30), crash_after: Duration::from_secs(300) };
        let (one, two) = (Processor::new(store.clone(), settings), Processor::new(store.clone(), settings));
        let later = start + chrono::Duration::seconds(600);
        let (a, b) = tokio::join!(one.run_once(later), two.run_once(later));
        let mut marked = [a.unwrap().crashed_runs, b.unwrap().crashed_runs].concat();
        marked.sort();
        let mut expected: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
        expected.sort();
        assert_eq!(marked, expected, "every run is marked by exactly one of the two");
    }
}
