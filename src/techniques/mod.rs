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
use crate::http::client::{ClientError, HttpConnection};
use crate::http::error::AppError;
use crate::http::h2client::H2Connection;
use crate::http::link::{Connection, HttpLink};
pub use crate::model::stats::ClientCounters;
pub use crate::model::{Target, Technique};
use crate::net::{ByteMeter, CutSwitch, Tape};
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
    /// Delay before reconnecting after an error, until the server sends an SSE `retry:`:
    /// the first step of the back-off.
    pub reconnect_delay: Duration,
    /// The longest the back-off grows to after consecutive failures.
    pub reconnect_max: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            poll_phase: Duration::ZERO,
            long_poll_timeout: Duration::from_secs(30),
            reconnect_delay: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
        }
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
    /// HTTP/1.1, or HTTP/2 on a connection of its own or a shared one.
    pub http: HttpLink,
    /// Severs this subscriber's live connections when a client-side fault fires it.
    pub cut: Arc<CutSwitch>,
    /// A slow subscriber's read rate, bytes per second: its sockets get a small receive
    /// buffer and paced reads. `None` reads as fast as the bytes come.
    pub read_bytes_per_s: Option<u64>,
    /// Records the bytes of this subscriber's first connection (the report's "on the
    /// wire"); `None` records nothing.
    pub tape: Option<Arc<Tape>>,
}

/// The receive buffer a slow subscriber asks for (the kernel doubles it and keeps a floor).
pub const SLOW_RECV_BUFFER: u32 = 4096;

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
            http: Default::default(),
            cut: Arc::default(),
            read_bytes_per_s: None,
            tape: None,
        }
    }

    /// A counted TCP connection to the target that this subscriber's cut switch can sever.
    pub(crate) async fn connect(
        &self,
    ) -> Result<crate::net::CountingStream<tokio::net::TcpStream, ByteMeter>, ClientError> {
        use crate::http::client::{connect_counted, connect_counted_small};
        let stream = match self.read_bytes_per_s {
            None => connect_counted(&self.target, self.meter.clone()).await?,
            Some(rate) => connect_counted_small(&self.target, self.meter.clone(), SLOW_RECV_BUFFER)
                .await?
                .with_pace(rate),
        };
        if let Ok(local) = stream.get_ref().local_addr() {
            self.cut.note_port(local.port());
        }
        let stream = match &self.tape {
            Some(tape) => stream.with_tape(tape),
            None => stream,
        };
        Ok(stream.with_cut(&self.cut))
    }

    /// A keep-alive HTTP connection over [`Subscriber::connect`].
    pub(crate) async fn open_http(&self) -> Result<HttpConnection, ClientError> {
        HttpConnection::over(self.connect().await?, &self.target).await
    }

    /// A connection by this subscriber's link, and whether a TCP connection was opened for
    /// it (a shared HTTP/2 one may already be open). HTTP/1.1 and per-client HTTP/2 go over
    /// [`Subscriber::connect`], so cuts and slow reading apply to them; a shared HTTP/2
    /// connection belongs to no one subscriber and is neither cut nor paced.
    pub(crate) async fn open_connection(&self) -> Result<(Connection, bool), ClientError> {
        Ok(match &self.http {
            HttpLink::H1 => (Connection::H1(self.open_http().await?), true),
            HttpLink::H2PerClient => {
                let stream = self.connect().await?;
                (
                    Connection::H2(H2Connection::over(stream, &self.target).await?),
                    true,
                )
            }
            HttpLink::H2Shared(shared) => {
                let (connection, opened) = shared.get().await?;
                (Connection::H2(connection), opened)
            }
        })
    }

    /// The query string naming the user and, if known, the cursor.
    pub(crate) fn query(&self, after: Option<u64>) -> String {
        let mut query = String::new();
        if let Some(user) = &self.user {
            query.push_str("user=");
            query.push_str(&crate::http::client::encode_component(user));
        }
        if let Some(after) = after {
            push_param(&mut query, 0, format_args!("after={after}"));
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

/// Appends `param` to the query string that starts at `start` in `out`, after a `&` unless
/// it is the first.
pub(crate) fn push_param(out: &mut String, start: usize, param: std::fmt::Arguments<'_>) {
    use std::fmt::Write;
    if out.len() > start {
        out.push('&');
    }
    let _ = out.write_fmt(param);
}

/// Receives every comment a subscriber parsed, with the moment it was parsed.
pub trait DeliverySink: Send {
    fn deliver(&mut self, comment: Comment, received_at: Instant);

    /// The subscriber's cursor was gone (410) and it resumes after `gone.resume_after`: what
    /// it had not read before is lost, for `gone.cause`. Called before the resumed comments.
    fn cursor_gone(&mut self, gone: &Gone) {
        let _ = gone;
    }

    /// A new connection (or stream) of this subscriber is up and subscribed: deliveries after
    /// it come over that connection. Fault scenarios time recovery from a drop to the first
    /// delivery after this.
    fn connected(&mut self) {}
}

/// A sink that stops a [`Tape`] at the first comment it is handed, then passes everything on:
/// what the recording subscriber's tape keeps ends with the exchange that carried it.
pub struct TapedSink<'a> {
    pub inner: &'a mut dyn DeliverySink,
    pub tape: Arc<Tape>,
}

impl DeliverySink for TapedSink<'_> {
    fn deliver(&mut self, comment: Comment, received_at: Instant) {
        self.tape.delivered();
        self.inner.deliver(comment, received_at);
    }

    fn cursor_gone(&mut self, gone: &Gone) {
        self.inner.cursor_gone(gone);
    }

    fn connected(&mut self) {
        self.inner.connected();
    }
}

/// Why a cursor was refused with 410, as the answer's `cause` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneCause {
    /// The cursor is from an earlier incarnation of the feed: the server restarted.
    Restart,
    /// The comments after the cursor were evicted from the bounded history.
    Evicted,
}

/// A 410 answer to a subscriber's cursor: why, and where to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone {
    pub cause: GoneCause,
    /// The cursor the subscriber asked with.
    pub cursor: u64,
    /// The cursor to resume after: the one before the oldest id the feed keeps.
    pub resume_after: u64,
}

impl Gone {
    /// Reads a 410 body, `{"error":..,"cursor":C,"oldest":O,"cause":"restart"|"evicted"}`.
    pub fn parse(body: &[u8]) -> Option<Gone> {
        #[derive(Deserialize)]
        struct Body {
            cursor: u64,
            oldest: u64,
            #[serde(default)]
            cause: Option<String>,
        }
        let body: Body = serde_json::from_slice(body).ok()?;
        let cause = match body.cause.as_deref() {
            Some("restart") => GoneCause::Restart,
            _ => GoneCause::Evicted,
        };
        Some(Gone {
            cause,
            cursor: body.cursor,
            resume_after: body.oldest.saturating_sub(1),
        })
    }

    /// Counts it and tells the sink, before the client resumes.
    pub(crate) fn record(&self, subscriber: &Subscriber, sink: &mut dyn DeliverySink) {
        let counter = match self.cause {
            GoneCause::Restart => &subscriber.counters.restarts,
            GoneCause::Evicted => &subscriber.counters.evictions,
        };
        ClientCounters::add(counter);
        tracing::info!(
            "cursor {} gone ({:?}); resuming after {}",
            self.cursor,
            self.cause,
            self.resume_after
        );
        sink.cursor_gone(self);
    }
}

/// Delays between reconnection attempts: exponential from the reconnect delay, capped, with
/// jitter, and back to the start after a success. Without it, a restarted server was asked
/// every 200 ms by every client at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// Consecutive failures so far.
    failures: u32,
    /// xorshift state for the jitter (no randomness crate needed for spreading retries).
    seed: u64,
}

impl Backoff {
    pub fn new(settings: &ClientSettings) -> Self {
        static SEEDS: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
        let seed = SEEDS.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            ^ crate::model::comment::now_micros();
        Self {
            base: settings.reconnect_delay,
            max: settings.reconnect_max.max(settings.reconnect_delay),
            failures: 0,
            seed: seed | 1,
        }
    }

    /// The first step becomes `base` (an SSE server's `retry:`).
    pub fn set_base(&mut self, base: Duration) {
        self.base = base;
        self.max = self.max.max(base);
    }

    /// A connection worked: the next failure starts from the first step again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// The wait before the next attempt after a failure: the step `min(max, base * 2^n)`,
    /// half of it fixed and half at random ("equal jitter"). Full jitter could draw ~0 ms and
    /// retry at once; this keeps attempts at least half a step apart while spreading a crowd
    /// of clients over the other half.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let fraction = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        step / 2 + (step / 2).mul_f64(fraction)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_and_resets() {
        let settings = ClientSettings {
            reconnect_delay: Duration::from_millis(100),
            reconnect_max: Duration::from_millis(800),
            ..ClientSettings::default()
        };
        let mut backoff = Backoff::new(&settings);
        let steps = [100, 200, 400, 800, 800, 800];
        for step in steps {
            let delay = backoff.next_delay().as_millis() as u64;
            assert!(
                (step / 2..=step).contains(&delay),
                "{delay} for step {step}"
            );
        }
        backoff.succeeded();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
        // Two clients do not retry in lockstep.
        let mut other = Backoff::new(&settings);
        let mine: Vec<_> = (0..8).map(|_| backoff.next_delay()).collect();
        let theirs: Vec<_> = (0..8).map(|_| other.next_delay()).collect();
        assert_ne!(mine, theirs);
    }

    #[test]
    fn a_gone_body_names_the_cause_and_the_resume_cursor() {
        let restart =
            br#"{"error":"..","cursor":42,"oldest":1000001,"first_id":1000001,"cause":"restart"}"#;
        assert_eq!(
            Gone::parse(restart),
            Some(Gone {
                cause: GoneCause::Restart,
                cursor: 42,
                resume_after: 1_000_000
            })
        );
        let evicted = br#"{"error":"..","cursor":7,"oldest":9,"cause":"evicted"}"#;
        assert_eq!(Gone::parse(evicted).unwrap().cause, GoneCause::Evicted);
        assert_eq!(Gone::parse(b"not json"), None);
    }
}
