//! [`IngestService`]: applies validated batches to the stores.

use std::sync::Arc;

use chrono::Utc;
use trackstack_domain::model::{ChangeEvent, MetricPoint};
use trackstack_domain::{Error, ErrorCode};
use trackstack_store::{ChangeFeed, MetadataStore, SeriesStore};

use crate::batch::{IngestAck, IngestBatch};
use crate::cardinality::{within_batch_limits, KeyGuard};

/// Names of the metrics the write path records.
pub mod metric_names {
    /// Points stored (replays count again: this measures work, not distinct points).
    pub const POINTS: &str = "trackstack_ingest_points_total";
    /// Batches stored.
    pub const BATCHES: &str = "trackstack_ingest_batches_total";
    /// Batches refused, by error `code`.
    pub const REJECTED_BATCHES: &str = "trackstack_ingest_rejected_batches_total";
}

#[derive(Clone)]
pub struct IngestService {
    metadata: Arc<dyn MetadataStore>,
    series: Arc<dyn SeriesStore>,
    changes: Arc<dyn ChangeFeed>,
    keys: Arc<KeyGuard>,
    limits: IngestLimits,
}

/// Limits the write path enforces beyond the fixed ones in `trackstack_domain::limits` (configured ones may only
/// tighten those).
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    pub max_keys_per_run: usize,
    pub max_points_per_batch: usize,
    pub max_key_bytes: usize,
}

impl IngestService {
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        series: Arc<dyn SeriesStore>,
        changes: Arc<dyn ChangeFeed>,
        limits: IngestLimits,
    ) -> Self {
        Self { metadata, series, changes, keys: Arc::new(KeyGuard::new(limits.max_keys_per_run)), limits }
    }

    /// Announces a durable write; a failure costs live freshness only, so it is logged, not returned.
    async fn announce(&self, event: ChangeEvent) {
        if let Err(error) = self.changes.publish(event).await {
            tracing::warn!(%error, "could not publish a change event");
        }
    }

    /// Validates and stores one batch; returns once every part is durable.
    ///
    /// Points are written before the run's metadata, so a failure in between leaves only data a retry of
    /// the same batch rewrites to the same values.
    pub async fn ingest(&self, batch: IngestBatch) -> Result<IngestAck, Error> {
        let (run_id, offered_points) = (batch.run_id.clone(), batch.metrics.len());
        let result = self.store_batch(batch).await;
        if let Err(refusal) = &result {
            self.count_refused_points(&run_id, offered_points, refusal).await;
        }
        match &result {
            Ok(ack) => {
                metrics::counter!(metric_names::BATCHES).increment(1);
                metrics::counter!(metric_names::POINTS).increment(ack.accepted_points as u64);
            }
            Err(error) => {
                metrics::counter!(metric_names::REJECTED_BATCHES, "code" => error.code.as_str()).increment(1);
            }
        }
        result
    }

    /// Counts a refusal of a batch's points (a limit, or a malformed point) on the run, so its page can say
    /// that and why points were refused; the client was told too. Other failures (an unknown run, a store
    /// that is down) are not the points' fault and are not counted.
    async fn count_refused_points(&self, run_id: &str, offered_points: usize, refusal: &Error) {
        let about_points = refusal.field.as_deref().is_some_and(|field| field.starts_with("metrics"));
        if refusal.code != ErrorCode::InvalidArgument || !about_points || offered_points == 0 {
            return;
        }
        let reason = format!("{} (field `{}`)", refusal.message, refusal.field.as_deref().unwrap_or_default());
        if let Err(error) = self.metadata.record_rejection(run_id, offered_points as u64, &reason).await {
            tracing::warn!(%error, run_id, "could not count refused points on the run");
        }
    }

    /// The cardinality guards: batch size, key length and keys per run.
    async fn within_limits(&self, project: &str, run_id: &str, points: &[MetricPoint]) -> Result<(), Error> {
        within_batch_limits(points, &self.limits)?;
        self.keys.admit(self.series.as_ref(), project, run_id, points).await
    }

    async fn store_batch(&self, batch: IngestBatch) -> Result<IngestAck, Error> {
        let now = Utc::now();
        let valid = batch.validate(now.timestamp_millis())?;
        let run = self.metadata.get_run(&valid.run_id).await?.ok_or_else(|| {
            Error::not_found(format!("run `{}` not found; create it first", valid.run_id)).with_field("run_id")
        })?;
        self.within_limits(&run.project, &run.id, &valid.points).await?;
        self.series.write_points(&run.project, &run.id, &valid.points).await?;
        let state_before = run.state;
        let touches_run = valid.update.touches_more_than_heartbeat_and_summary();
        let updated = self.metadata.update_run(&run.id, valid.update, now).await?;
        if let Some(event) = ChangeEvent::points_written(&run.project, &run.id, &valid.points) {
            self.announce(event).await;
        }
        if touches_run || updated.state != state_before {
            self.announce(ChangeEvent::Run { project: updated.project, run_id: updated.id, state: updated.state })
                .await;
        }
        Ok(IngestAck { accepted_points: valid.points.len() })
    }
}
