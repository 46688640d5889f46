//! Short polling: `GET /poll?user=U&after=N` answers at once, often with nothing (the
//! "meaningless" answers of the study note); the client asks again on a fixed interval.

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{
    Backoff, ClientCounters, Context, DeliverySink, Gone, PageBody, Subscriber, feed_error,
    page_response,
};
use crate::http::client::ClientError;
use crate::http::error::{AppError, AppQuery, checked_user};
use crate::http::link::Connection;

#[derive(Deserialize)]
struct PollQuery {
    user: Option<String>,
    after: Option<u64>,
}

pub fn routes() -> Router<Context> {
    Router::new().route("/poll", get(poll))
}

async fn poll(
    State(state): State<Context>,
    AppQuery(query): AppQuery<PollQuery>,
) -> Result<Response, AppError> {
    let user = checked_user(query.user)?;
    let page = state
        .feed
        .read_after(query.after, user.as_deref(), state.config.page_limit)
        .await
        .map_err(|error| feed_error(&state, error))?;
    state.record_page(page.comments.len());
    Ok(page_response(&page))
}

/// Polls every `poll_interval` (measured start to start, as `setInterval` does) on one
/// keep-alive connection, reconnecting when it breaks.
pub async fn run_client(subscriber: &Subscriber, sink: &mut dyn DeliverySink) {
    let mut poller = Poller::new(subscriber);
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
        match poller.exchange(subscriber, sink, "/poll", "").await {
            None => return,
            Some(true) => {}
            // Failures back off beyond the interval, so a crowd of pollers does not hammer a
            // server that is down or refusing them.
            Some(false) => {
                ClientCounters::add(&subscriber.counters.retries);
                let delay = poller.backoff.next_delay();
                let extra = delay.saturating_sub(subscriber.settings.poll_interval);
                if !subscriber.pause(extra).await {
                    return;
                }
            }
        }
    }
}

/// The state both polling clients share: a keep-alive connection, the cursor, and whether
/// the first answer has come.
pub(crate) struct Poller {
    connection: KeepAlive,
    cursor: Option<u64>,
    ready: bool,
    /// Waits between failed exchanges.
    pub(crate) backoff: Backoff,
}

impl Poller {
    pub(crate) fn new(subscriber: &Subscriber) -> Self {
        Self {
            connection: KeepAlive::default(),
            cursor: subscriber.after,
            ready: false,
            backoff: Backoff::new(&subscriber.settings),
        }
    }

    /// One GET of `path?user&after{extra}`, its comments delivered and the cursor moved.
    /// `None` when the subscriber was stopped; `Some(false)` after a failed exchange.
    pub(crate) async fn exchange(
        &mut self,
        subscriber: &Subscriber,
        sink: &mut dyn DeliverySink,
        path: &str,
        extra: &str,
    ) -> Option<bool> {
        let mut query = subscriber.query(self.cursor);
        if !extra.is_empty() {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(extra);
        }
        let path = format!("{path}?{query}");
        // `biased`: a stopped subscriber must not start an exchange it will not finish (its
        // request bytes would be counted with no answer read).
        let opened = self.connection.opened;
        let result = tokio::select! {
            biased;
            _ = subscriber.stop.cancelled() => return None,
            result = self.connection.get_page(subscriber, &path) => result,
        };
        match result {
            Ok(page) => {
                if self.connection.opened != opened {
                    sink.connected();
                }
                if !self.ready {
                    self.ready = true;
                    ClientCounters::add(&subscriber.counters.ready);
                }
                deliver_page(page, subscriber, sink, &mut self.cursor);
                self.backoff.succeeded();
                Some(true)
            }
            // The cursor is gone (a restarted server, or evicted): resume from the oldest id
            // kept at once, the loss recorded with its cause.
            Err(ClientError::Status { status, body }) if status == StatusCode::GONE => {
                ClientCounters::add(&subscriber.counters.errors);
                match Gone::parse(body.as_bytes()) {
                    Some(gone) => {
                        gone.record(subscriber, sink);
                        self.cursor = Some(gone.resume_after);
                        Some(true)
                    }
                    None => Some(false),
                }
            }
            Err(error) => {
                tracing::debug!("{path} failed: {error}");
                ClientCounters::add(&subscriber.counters.errors);
                Some(false)
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
    connection: Option<Connection>,
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
                let (connection, opened) = subscriber.open_connection().await?;
                self.opened += 1;
                // On a shared HTTP/2 connection only its opener counts it.
                if opened {
                    ClientCounters::add(&counters.connections_opened);
                }
                self.connection.insert(connection)
            }
        };
        ClientCounters::add(&counters.requests);
        let body = connection.get(path).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Parse(e.to_string()))
    }
}
