//! The four push techniques' behaviour. Each file holds both halves of one technique: the
//! server's handler and the load generator's client. What a technique *is* (name, whether it
//! streams, chart style) is in `model::technique`; a fifth technique is one new file here,
//! one arm in each `match` below, and its variant and descriptor there. Handlers get a
//! narrow [`Context`], not the whole server.
//!
//! | file | server | client |
//! | --- | --- | --- |
//! | `short_polling.rs` | `GET /poll`, answers at once | polls on a fixed interval |
//! | `long_polling.rs` | `GET /long-poll`, held until a comment or the timeout | re-asks at once |
//! | `websocket.rs` | `GET /ws`, one text frame per comment; accepts publishes | tokio-tungstenite |
//! | `sse.rs` | `GET /sse`, `text/event-stream` | `eventsource-stream`, `Last-Event-ID` |

mod context;
pub mod long_polling;
pub mod short_polling;
pub mod sse;
pub mod websocket;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::feed::{Comment, FeedError, Page};
use crate::http::error::AppError;
pub use crate::model::{Target, Technique};
use crate::net::ByteMeter;
pub use context::{Context, DropSwitch};

impl Technique {
    /// The server routes of this technique.
    pub fn routes(self) -> Router<Context> {
        match self {
            Technique::ShortPolling => short_polling::routes(),
            Technique::LongPolling => long_polling::routes(),
            Technique::WebSocket => websocket::routes(),
            Technique::Sse => sse::routes(),
        }
    }

    /// Runs one subscriber of this technique until `subscriber.stop` is cancelled.
    pub async fn run_client(self, subscriber: &Subscriber, sink: &mut dyn DeliverySink) {
        match self {
            Technique::ShortPolling => short_polling::run_client(subscriber, sink).await,
            Technique::LongPolling => long_polling::run_client(subscriber, sink).await,
            Technique::WebSocket => websocket::run_client(subscriber, sink).await,
            Technique::Sse => sse::run_client(subscriber, sink).await,
        }
    }
}

/// The answer to a feed error met by a subscriber before it streams: an outage is a
/// resumable drop (503 with Retry-After; the client keeps its cursor), counted.
pub fn feed_error(state: &Context, error: FeedError) -> AppError {
    if matches!(error, FeedError::Unavailable { .. }) {
        state
            .counters()
            .dropped_unavailable
            .fetch_add(1, Ordering::Relaxed);
    }
    error.into()
}

/// The poll response body, `{"comments":[...],"next":M}`, built from each comment's stored
/// JSON so the bytes of a comment are the same as in the streaming techniques.
pub fn page_response(page: &Page) -> Response {
    let mut body = String::with_capacity(
        32 + page
            .comments
            .iter()
            .map(|c| c.json.len() + 1)
            .sum::<usize>(),
    );
    body.push_str("{\"comments\":[");
    for (i, comment) in page.comments.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&comment.json);
    }
    body.push_str("],\"next\":");
    body.push_str(&page.next.to_string());
    body.push('}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The poll response as a client parses it.
#[derive(Debug, Deserialize)]
pub struct PageBody {
    pub comments: Vec<Comment>,
    pub next: u64,
}

/// How clients of each technique behave, from the scenario.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Short polling: time between the starts of two polls.
    pub poll_interval: Duration,
    /// Short polling: delay before this client's first poll, so a crowd of pollers spreads
    /// over the interval as real clients that started at different times would.
    pub poll_phase: Duration,
    /// Long polling: the `timeout_ms` asked of the server.
    pub long_poll_timeout: Duration,
    /// Delay before reconnecting after an error, until the server sends an SSE `retry:`.
    pub reconnect_delay: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            poll_phase: Duration::ZERO,
            long_poll_timeout: Duration::from_secs(30),
            reconnect_delay: Duration::from_millis(200),
        }
    }
}

/// Client-side counts of one group of subscribers (a cell of the load generator).
#[derive(Debug, Default)]
pub struct ClientCounters {
    /// HTTP requests sent (for WebSocket, handshakes).
    pub requests: AtomicU64,
    /// Poll responses without a comment.
    pub empty_responses: AtomicU64,
    /// TCP connections opened.
    pub connections_opened: AtomicU64,
    /// Reconnections after a lost connection or stream.
    pub reconnects: AtomicU64,
    /// Errors seen (refused connections, bad statuses, broken streams).
    pub errors: AtomicU64,
    /// Subscribers whose subscription is established (first response, upgrade, `connect`).
    pub ready: AtomicU64,
}

impl ClientCounters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One subscriber of a technique, as the load generator and the tests run it.
pub struct Subscriber {
    pub target: Target,
    /// The user id to subscribe as; `None` subscribes anonymously.
    pub user: Option<String>,
    /// The cursor to start after; `None` means from now on.
    pub after: Option<u64>,
    pub settings: ClientSettings,
    /// Counts every byte of this subscriber's connections at the socket.
    pub meter: Arc<ByteMeter>,
    pub counters: Arc<ClientCounters>,
    /// Cancelled to end the subscriber.
    pub stop: CancellationToken,
}

impl Subscriber {
    /// A subscriber with default settings and its own counters.
    pub fn new(addr: std::net::SocketAddr, user: Option<&str>, after: Option<u64>) -> Self {
        Self {
            target: Target { addr },
            user: user.map(Into::into),
            after,
            settings: ClientSettings::default(),
            meter: ByteMeter::new(),
            counters: Arc::default(),
            stop: CancellationToken::new(),
        }
    }

    /// The query string naming the user and, if known, the cursor.
    pub(crate) fn query(&self, after: Option<u64>) -> String {
        let mut query = String::new();
        if let Some(user) = &self.user {
            query.push_str("user=");
            query.push_str(&crate::http::client::encode_component(user));
        }
        if let Some(after) = after {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&format!("after={after}"));
        }
        query
    }

    /// Sleeps `delay` unless stopped first; false when stopped.
    pub(crate) async fn pause(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

/// Receives every comment a subscriber parsed, with the moment it was parsed.
pub trait DeliverySink: Send {
    fn deliver(&mut self, comment: Comment, received_at: Instant);
}

/// Collects deliveries in memory (tests, small tools).
impl DeliverySink for Vec<Comment> {
    fn deliver(&mut self, comment: Comment, _received_at: Instant) {
        self.push(comment);
    }
}

/// Forwards deliveries to a channel (tests that await comments as they arrive).
impl DeliverySink for tokio::sync::mpsc::UnboundedSender<Comment> {
    fn deliver(&mut self, comment: Comment, _received_at: Instant) {
        let _ = self.send(comment);
    }
}
