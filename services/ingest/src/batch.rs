//! The ingest batch: what a client sends for one run in one request.

use serde::{Deserialize, Serialize};
use trackstack_domain::model::{JsonMap, MetricPoint, RunState, RunUpdate, SummaryMetric};
use trackstack_domain::{float, validate, Error};
use utoipa::ToSchema;

/// A batch of changes to one run. Every part is optional and idempotent.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    pub run_id: String,
    /// Metric points; the last write wins per (key, step).
    #[serde(default)]
    pub metrics: Vec<IngestPoint>,
    /// Shallow merge into the run's config.
    #[schema(value_type = Option<Object>)]
    pub config: Option<JsonMap>,
    /// Explicit summary values; `null` removes one.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<JsonMap>,
    /// Replaces the run's tags.
    pub tags: Option<Vec<String>>,
    /// A terminal state finishes the run; `running` resumes it.
    pub state: Option<RunState>,
    pub exit_code: Option<i32>,
}

/// One metric point as sent by a client.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestPoint {
    pub key: String,
    pub step: i64,
    /// A number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    #[serde(with = "float::json")]
    #[schema(value_type = f64)]
    pub value: f64,
    /// Wall time in milliseconds since the Unix epoch; defaults to the server's clock.
    pub time_ms: Option<i64>,
}

/// The acknowledgement of a durable batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct IngestAck {
    pub accepted_points: usize,
}

/// A batch that passed validation, split into what each store receives.
#[derive(Debug)]
pub(crate) struct ValidBatch {
    pub(crate) run_id: String,
    pub(crate) points: Vec<MetricPoint>,
    pub(crate) update: RunUpdate,
}

impl IngestBatch {
    /// Checks every rule before anything is written, so a rejected batch writes nothing.
    pub(crate) fn validate(self, now_ms: i64) -> Result<ValidBatch, Error> {
        validate::run_id(&self.run_id).map_err(|e| e.with_field("run_id"))?;
        let points: Vec<MetricPoint> = self
            .metrics
            .into_iter()
            .map(|p| MetricPoint { key: p.key, step: p.step, value: p.value, time_ms: p.time_ms.unwrap_or(now_ms) })
            .collect();
        validate::metric_points(&points)?;
        let config_merge = self.config.unwrap_or_default();
        validate::json_document("config", &config_merge)?;
        let summary_set = self.summary.unwrap_or_default();
        validate::json_document("summary", &summary_set)?;
        if let Some(tags) = &self.tags {
            validate::tags(tags)?;
        }
        let tags = self.tags.map(validate::dedup_tags);
        let state = match (self.state, self.exit_code) {
            (None, Some(code)) => Some(RunState::from_exit_code(Some(code))),
            (state, _) => state,
        };
        let update = RunUpdate {
            tags,
            config_merge,
            summary_set,
            summary_metrics: newest_per_key(&points),
            state,
            exit_code: self.exit_code,
            heartbeat: true,
            ..Default::default()
        };
        Ok(ValidBatch { run_id: self.run_id, points, update })
    }
}

/// The point at the highest step of each key (the later one on a tie, as the last write wins).
fn newest_per_key(points: &[MetricPoint]) -> Vec<SummaryMetric> {
    let mut newest: std::collections::BTreeMap<&str, (i64, f64)> = std::collections::BTreeMap::new();
    for point in points {
        let entry = newest.entry(&point.key).or_insert((point.step, point.value));
        if point.step >= entry.0 {
            *entry = (point.step, point.value);
        }
    }
    newest.into_iter().map(|(key, (step, value))| SummaryMetric { key: key.to_owned(), step, value }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(key: &str, step: i64, value: f64) -> IngestPoint {
        IngestPoint { key: key.into(), step, value, time_ms: None }
    }

    #[test]
    fn summary_follows_the_newest_step_of_each_key() {
        let batch = IngestBatch {
            run_id: "r1".into(),
            metrics: vec![point("loss", 5, 0.5), point("loss", 2, 0.9), point("acc", 1, 0.1), point("loss", 5, 0.4)],
            ..Default::default()
        };
        let valid = batch.validate(42).unwrap();
        assert_eq!(valid.points[0].time_ms, 42);
        let summary: Vec<(String, i64, f64)> =
            valid.update.summary_metrics.into_iter().map(|m| (m.key, m.step, m.value)).collect();
        assert_eq!(summary, [("acc".into(), 1, 0.1), ("loss".into(), 5, 0.4)]);
    }

    #[test]
    fn an_exit_code_alone_finishes_the_run() {
        let batch = IngestBatch { run_id: "r1".into(), exit_code: Some(2), ..Default::default() };
        assert_eq!(batch.validate(0).unwrap().update.state, Some(RunState::Failed));
    }

    #[test]
    fn one_bad_point_rejects_the_batch_naming_it() {
        let batch = IngestBatch {
            run_id: "r1".into(),
            metrics: vec![point("ok", 0, 1.0), point("", 1, 1.0)],
            ..Default::default()
        };
        assert_eq!(batch.validate(0).unwrap_err().field.as_deref(), Some("metrics[1].key"));
        let bad_id = IngestBatch { run_id: "no spaces".into(), ..Default::default() };
        assert_eq!(bad_id.validate(0).unwrap_err().field.as_deref(), Some("run_id"));
    }
}
