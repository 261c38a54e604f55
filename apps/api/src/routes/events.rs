//! Live updates as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use trackstack_domain::model::ChangeEvent;
use trackstack_server_kit::Query;
use utoipa::IntoParams;

use crate::ApiState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Only changes in this project.
    pub project: Option<String>,
    /// Only changes to this run.
    pub run_id: Option<String>,
}

impl EventParams {
    fn wants(&self, event: &ChangeEvent) -> bool {
        self.project.as_deref().is_none_or(|p| p == event.project())
            && self.run_id.as_deref().is_none_or(|r| r == event.run_id())
    }
}

/// Stream changes as they happen: `event: run` (a run was created or changed) and `event: points` (points were
/// written), each with a JSON `ChangeEvent`; `event: lagged` with `{"missed": N}` when this client fell
/// behind and should re-read what it shows. Changes made through any process of the deployment arrive.
#[utoipa::path(get, path = "/api/v1/events", tag = "live", params(EventParams),
    responses((status = 200, description = "A text/event-stream of changes", content_type = "text/event-stream", body = ChangeEvent)))]
pub async fn events(
    State(state): State<ApiState>,
    Query(params): Query<EventParams>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.stores.changes.subscribe();
    let stream = futures_util::stream::unfold((receiver, params), |(mut receiver, params)| async move {
        loop {
            match receiver.recv().await {
                Ok(change) if params.wants(&change) => {
                    let name = match change {
                        ChangeEvent::Run { .. } => "run",
                        ChangeEvent::Points { .. } => "points",
                    };
                    let event = Event::default().event(name).json_data(&change).unwrap_or_default();
                    return Some((Ok(event), (receiver, params)));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    let event = Event::default().event("lagged").data(format!("{{\"missed\":{missed}}}"));
                    return Some((Ok(event), (receiver, params)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
