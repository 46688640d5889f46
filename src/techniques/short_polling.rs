//! Short polling: `GET /poll?user=U&after=N` answers at once, often with nothing (the
//! "meaningless" answers of the study note); the client asks again on a fixed interval.

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{ClientCounters, DeliverySink, PageBody, Subscriber, Technique, page_response};
use crate::http_client::{ClientError, HttpConnection};
use crate::server::AppState;
use crate::server::error::{AppError, AppQuery, checked_user};

#[derive(Deserialize)]
struct PollQuery {
    user: Option<String>,
    after: Option<u64>,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/poll", get(poll))
}

async fn poll(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<PollQuery>,
) -> Result<Response, AppError> {
    let user = checked_user(query.user)?;
    let page = state
        .feed
        .read_after(query.after, user.as_deref(), state.config.page_limit)?;
    state
        .stats
        .record_page(Technique::ShortPolling, page.comments.len());
    Ok(page_response(&page))
}

/// Polls every `poll_interval` (measured start to start, as `setInterval` does) on one
/// keep-alive connection, reconnecting when it breaks.
pub async fn run_client(subscriber: &Subscriber, sink: &mut dyn DeliverySink) {
    let counters = &subscriber.counters;
    let mut cursor = subscriber.after;
    let mut connection = KeepAlive::default();
    let mut ready = false;
    if !subscriber.pause(subscriber.settings.poll_phase).await {
        return;
    }
    let mut ticker = tokio::time::interval(subscriber.settings.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = subscriber.stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let path = format!("/poll?{}", subscriber.query(cursor));
        let result = tokio::select! {
            _ = subscriber.stop.cancelled() => return,
            result = connection.get_page(subscriber, &path) => result,
        };
        match result {
            Ok(page) => {
                if !ready {
                    ready = true;
                    ClientCounters::add(&counters.ready);
                }
                deliver_page(page, subscriber, sink, &mut cursor);
            }
            Err(error) => {
                tracing::debug!("short poll failed: {error}");
                ClientCounters::add(&counters.errors);
            }
        }
    }
}

/// Hands a page's comments to the sink and moves the cursor past it.
pub(crate) fn deliver_page(
    page: PageBody,
    subscriber: &Subscriber,
    sink: &mut dyn DeliverySink,
    cursor: &mut Option<u64>,
) {
    let received_at = Instant::now();
    if page.comments.is_empty() {
        ClientCounters::add(&subscriber.counters.empty_responses);
    }
    for comment in page.comments {
        sink.deliver(comment, received_at);
    }
    *cursor = Some(page.next);
}

/// A poller's keep-alive connection, reopened (and counted as a reconnect) when lost.
#[derive(Default)]
pub(crate) struct KeepAlive {
    connection: Option<HttpConnection>,
    opened: u64,
}

impl KeepAlive {
    /// GETs `path` and parses a page; a failure drops the connection so the next call
    /// reconnects.
    pub(crate) async fn get_page(
        &mut self,
        subscriber: &Subscriber,
        path: &str,
    ) -> Result<PageBody, ClientError> {
        let result = self.try_get_page(subscriber, path).await;
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn try_get_page(
        &mut self,
        subscriber: &Subscriber,
        path: &str,
    ) -> Result<PageBody, ClientError> {
        let counters = &subscriber.counters;
        let connection = match &mut self.connection {
            Some(connection) if connection.is_open() => connection,
            _ => {
                if self.opened > 0 {
                    ClientCounters::add(&counters.reconnects);
                }
                let connection =
                    HttpConnection::open(&subscriber.target, subscriber.meter.clone()).await?;
                self.opened += 1;
                ClientCounters::add(&counters.connections_opened);
                self.connection.insert(connection)
            }
        };
        ClientCounters::add(&counters.requests);
        let body = connection.get(path).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Parse(e.to_string()))
    }
}
