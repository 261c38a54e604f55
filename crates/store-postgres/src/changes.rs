//! [`PostgresChangeFeed`]: live updates across processes through Postgres `LISTEN`/`NOTIFY`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use trackstack_domain::model::ChangeEvent;
use trackstack_store::{ChangeFeed, LocalChangeFeed, StoreError, StoreResult};

pub struct PostgresChangeFeed {
    pool: deadpool_postgres::Pool,
    channel: String,
    local: Arc<LocalChangeFeed>,
    listener: tokio::task::JoinHandle<()>,
}

impl PostgresChangeFeed {
    /// Listens on the database `url` names (the metadata store's), publishing through `pool`.
    pub(crate) fn start(url: &str, pool: deadpool_postgres::Pool, channel: String) -> StoreResult<Self> {
        let config =
            tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Backend(format!("bad postgres URL: {e}")))?;
        let local = Arc::new(LocalChangeFeed::new());
        let listener = tokio::spawn(listen_forever(config, channel.clone(), Arc::clone(&local)));
        Ok(Self { pool, channel, local, listener })
    }
}

impl Drop for PostgresChangeFeed {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Holds a dedicated connection in `LISTEN`, reconnecting after failures; every notification is delivered
/// to this process's subscribers.
async fn listen_forever(config: tokio_postgres::Config, channel: String, local: Arc<LocalChangeFeed>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listening = async {
                    client.batch_execute(&format!("LISTEN {channel}")).await?;
                    Ok::<_, tokio_postgres::Error>(())
                };
                // The connection must be polled for LISTEN to complete, so both run together.
                let (listen_result, first) = tokio::join!(listening, messages.next());
                if let Err(error) = listen_result {
                    tracing::warn!(%error, "cannot LISTEN for changes; retrying");
                } else {
                    backoff = Duration::from_millis(100);
                    let mut next = first;
                    while let Some(message) = next {
                        match message {
                            Ok(AsyncMessage::Notification(note)) => match serde_json::from_str(note.payload()) {
                                Ok(event) => local.deliver(event),
                                Err(error) => tracing::warn!(%error, "unreadable change notification"),
                            },
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "change listener connection failed; reconnecting");
                                break;
                            }
                        }
                        next = messages.next().await;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot connect the change listener; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[async_trait]
impl ChangeFeed for PostgresChangeFeed {
    async fn publish(&self, event: ChangeEvent) -> StoreResult<()> {
        let payload = serde_json::to_string(&event).map_err(StoreError::backend)?;
        let client = self.pool.get().await.map_err(StoreError::backend)?;
        client.execute("SELECT pg_notify($1, $2)", &[&self.channel, &payload]).await.map_err(StoreError::backend)?;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.local.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use trackstack_domain::model::{ChangeEvent, RunState};
    use trackstack_store::ChangeFeed;

    use crate::PostgresMetadataStore;

    #[tokio::test]
    async fn a_change_published_by_one_process_reaches_another() {
        let Some(url) = trackstack_store::testsuite::external_service_url("TRACKSTACK_TEST_POSTGRES_URL") else {
            return;
        };
        let writer = PostgresMetadataStore::connect(&url, 2).await.unwrap().change_feed().unwrap();
        let reader = PostgresMetadataStore::connect(&url, 2).await.unwrap().change_feed().unwrap();
        let mut events = reader.subscribe();
        let event = ChangeEvent::Run {
            project: "p".into(),
            run_id: format!("r{}", rand::random::<u32>()),
            state: RunState::Running,
        };
        // The listener connects in the background; publish until it hears, bounded.
        let received = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                writer.publish(event.clone()).await.unwrap();
                match tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
                    Ok(Ok(got)) if got == event => return got,
                    _ => continue,
                }
            }
        })
        .await
        .expect("the change arrived");
        assert_eq!(received, event);
    }
}
