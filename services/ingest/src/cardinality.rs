//! Cardinality guards. The per-run metric key limit (`limits.max_keys_per_run`): a batch that would give a run
//! more distinct keys than allowed is refused whole, naming the first key over the limit, so a runaway logging
//! loop (a key per step, a key per sample id) is stopped at its first batch instead of filling storage. The
//! configured batch size and key length limits ([`within_batch_limits`]) tighten the fixed ceilings in
//! `trackstack_domain::limits`.
//!
//! Each process remembers the keys it has seen per run (loaded once from the series store), so the check costs
//! nothing once a run's keys are known. With several ingest processes the limit is per process view: two
//! replicas admitting new keys for the same run at the same moment can overshoot it by what they admit together.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use trackstack_domain::model::MetricPoint;
use trackstack_domain::Error;
use trackstack_store::SeriesStore;

use crate::service::IngestLimits;

/// Checks a batch against the configured points-per-batch and key-length limits.
pub(crate) fn within_batch_limits(points: &[MetricPoint], limits: &IngestLimits) -> Result<(), Error> {
    if points.len() > limits.max_points_per_batch {
        return Err(Error::invalid(
            "metrics",
            format!(
                "{} points in one batch; limits.max_points_per_batch = {}",
                points.len(),
                limits.max_points_per_batch
            ),
        ));
    }
    if let Some((index, point)) = points.iter().enumerate().find(|(_, p)| p.key.len() > limits.max_key_bytes) {
        return Err(Error::invalid(
            format!("metrics[{index}].key"),
            format!("metric key is {} bytes; limits.max_key_bytes = {}", point.key.len(), limits.max_key_bytes),
        ));
    }
    Ok(())
}

/// Runs whose keys are remembered before the memory starts over (a reload costs one `list_series`).
const REMEMBERED_RUNS: usize = 10_000;

pub(crate) struct KeyGuard {
    max_keys: usize,
    known: Mutex<HashMap<String, HashSet<String>>>,
}

impl KeyGuard {
    pub(crate) fn new(max_keys: usize) -> Self {
        Self { max_keys, known: Mutex::new(HashMap::new()) }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits the batch's keys for the run, or names the first one over the limit.
    pub(crate) async fn admit(
        &self,
        series: &dyn SeriesStore,
        project: &str,
        run_id: &str,
        points: &[MetricPoint],
    ) -> Result<(), Error> {
        if let Some(keys) = self.known().get(run_id) {
            if points.iter().all(|p| keys.contains(&p.key)) {
                return Ok(());
            }
        }
        if !self.known().contains_key(run_id) {
            let stored: HashSet<String> =
                series.list_series(project, run_id).await?.into_iter().map(|s| s.key).collect();
            let mut known = self.known();
            if known.len() >= REMEMBERED_RUNS {
                known.clear();
            }
            known.entry(run_id.to_owned()).or_insert(stored);
        }
        let mut known = self.known();
        let keys = known.entry(run_id.to_owned()).or_default();
        let mut added: Vec<&str> = Vec::new();
        for (index, point) in points.iter().enumerate() {
            if keys.contains(&point.key) || added.contains(&point.key.as_str()) {
                continue;
            }
            if keys.len() + added.len() >= self.max_keys {
                return Err(Error::invalid(
                    format!("metrics[{index}].key"),
                    format!(
                        "run `{run_id}` already has {} metric keys; `{}` would exceed limits.max_keys_per_run = {}",
                        keys.len() + added.len(),
                        point.key,
                        self.max_keys
                    ),
                ));
            }
            added.push(&point.key);
        }
        // Counted before the write lands: if it then fails, the retry writes the same keys.
        keys.extend(added.into_iter().map(str::to_owned));
        Ok(())
    }
}
