//! The four push techniques. Each file holds both halves of one technique: the server's
//! handler and the load generator's client, so a fifth technique is one new file plus one
//! variant of `Technique`.
//!
//! | file | server | client |
//! | --- | --- | --- |
//! | `short_polling.rs` | `GET /poll`, answers at once | polls on a fixed interval |
//! | `long_polling.rs` | `GET /long-poll`, held until a comment or the timeout | re-asks at once |
//! | `websocket.rs` | `GET /ws`, one text frame per comment; accepts publishes | tokio-tungstenite |
//! | `sse.rs` | `GET /sse`, `text/event-stream` | `eventsource-stream`, `Last-Event-ID` |

pub mod long_polling;
pub mod short_polling;
pub mod sse;
pub mod websocket;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::feed::{Comment, FeedError, Page};
use crate::net::ByteMeter;
use crate::server::AppState;
use crate::server::error::AppError;

/// A way for the server to push comments to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Technique {
    ShortPolling = 0,
    LongPolling = 1,
    // Not kebab-case's "web-socket": the same name everywhere (scenarios, /stats, results).
    #[serde(rename = "websocket")]
    WebSocket = 2,
    Sse = 3,
}

impl Technique {
    /// Every technique, in the order tables and charts show them.
    pub const ALL: [Technique; 4] = [
        Technique::ShortPolling,
        Technique::LongPolling,
        Technique::WebSocket,
        Technique::Sse,
    ];

    /// The name used in scenario files, `/stats`, results and charts.
    pub fn name(self) -> &'static str {
        match self {
            Technique::ShortPolling => "short-polling",
            Technique::LongPolling => "long-polling",
            Technique::WebSocket => "websocket",
            Technique::Sse => "sse",
        }
    }

    /// The server routes of this technique.
    pub fn routes(self) -> Router<AppState> {
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

#[cfg(test)]
mod tests {
    use super::Technique;

    #[test]
    fn serde_names_are_the_names_used_everywhere() {
        for technique in Technique::ALL {
            let json = serde_json::to_string(&technique).unwrap();
            assert_eq!(json, format!("\"{}\"", technique.name()));
            assert_eq!(technique.name().parse::<Technique>(), Ok(technique));
        }
    }
}

impl fmt::Display for Technique {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Technique {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Technique::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Technique::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown technique `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The answer to a feed error met by a subscriber of `technique` before it streams: an
/// outage is a resumable drop (503 with Retry-After; the client keeps its cursor), counted.
pub fn feed_error(state: &AppState, technique: Technique, error: FeedError) -> AppError {
    if matches!(error, FeedError::Unavailable { .. }) {
        state
            .stats
            .technique(technique)
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

/// Where a client connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's socket address.
    pub addr: std::net::SocketAddr,
}

impl Target {
    /// The `Host` header value.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
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
            query.push_str(&crate::http_client::encode_component(user));
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
