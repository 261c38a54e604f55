//! The state every handler shares.

use trackstack_store::Stores;

#[derive(Clone)]
pub struct ApiState {
    pub stores: Stores,
    pub limits: ApiLimits,
}

#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// Largest single blob upload, in bytes.
    pub max_blob_bytes: u64,
}

impl ApiState {
    /// Announces a change to live subscribers; a failure costs freshness only, so it is logged, not returned.
    pub async fn announce(&self, run: &trackstack_domain::model::Run) {
        let event = trackstack_domain::model::ChangeEvent::Run {
            project: run.project.clone(),
            run_id: run.id.clone(),
            state: run.state,
        };
        if let Err(error) = self.stores.changes.publish(event).await {
            tracing::warn!(%error, "could not publish a change event");
        }
    }
}
