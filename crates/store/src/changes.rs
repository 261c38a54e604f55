//! The change feed: how a write in one process becomes a live update in every API process.

use async_trait::async_trait;
use tokio::sync::broadcast;
use trackstack_domain::model::ChangeEvent;

use crate::StoreResult;

/// Events buffered per subscriber; a subscriber that falls further behind skips ahead (and is told so).
pub const SUBSCRIBER_BUFFER: usize = 1024;

/// Publishes changes and delivers every change, from any process sharing the backend, to local subscribers.
#[async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// Announces a change. Delivery is best effort: the data is already durable, so a lost event costs
    /// freshness, never data.
    async fn publish(&self, event: ChangeEvent) -> StoreResult<()>;
    /// Receives every change published from now on.
    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent>;
}

/// The feed of a single process (embedded storage): an in-memory broadcast.
pub struct LocalChangeFeed {
    sender: broadcast::Sender<ChangeEvent>,
}

impl LocalChangeFeed {
    pub fn new() -> Self {
        Self { sender: broadcast::channel(SUBSCRIBER_BUFFER).0 }
    }

    /// Hands an event to local subscribers (backends with a cross-process channel deliver through this).
    pub fn deliver(&self, event: ChangeEvent) {
        // No subscribers is not an error: nobody is watching.
        let _ = self.sender.send(event);
    }
}

impl Default for LocalChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ChangeFeed for LocalChangeFeed {
    async fn publish(&self, event: ChangeEvent) -> StoreResult<()> {
        self.deliver(event);
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.sender.subscribe()
    }
}
