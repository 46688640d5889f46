//! WebSocket: `GET /ws?user=U&after=N` upgrades, then the server sends a first frame naming
//! the starting cursor and one text frame per comment (the comment's JSON) and the client may publish by sending
//! `{"to":...,"text":...}`, acknowledged with `{"ack":ID}`: the two-way half of the protocol.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Backoff, ClientCounters, Context, DeliverySink, Gone, Subscriber, feed_error};
use crate::accounting::{ConnInfo, ConnMeter};
use crate::feed::{Comment, FeedError, Subscription};
use crate::http::error::{AppError, AppQuery, ObjectOnly, checked_comment, checked_user};

#[derive(Deserialize)]
struct WsQuery {
    user: Option<String>,
    after: Option<u64>,
}

/// What a client sends to publish over its WebSocket.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WsPublish {
    #[serde(default)]
    to: Option<String>,
    text: String,
}

/// Close code for a subscriber dropped for falling behind (private-use range 4000-4999).
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Close code for a connection dropped through the admin endpoint.
pub const CLOSE_DROPPED: u16 = 4010;
/// Close code for a subscriber dropped because the feed's backend is unavailable: RFC 6455's
/// registered 1013 "Try Again Later"; the reason names the cursor to resume after.
pub const CLOSE_TRY_AGAIN: u16 = 1013;
/// Close code for a client that answered no ping within `--ws-pong-timeout`.
pub const CLOSE_NO_PONG: u16 = 4009;

pub fn routes() -> Router<Context> {
    // CONNECT: a WebSocket over HTTP/2 is an extended CONNECT (RFC 8441), which axum's
    // `WebSocketUpgrade` accepts; `server/conn.rs` enables it in hyper's HTTP/2 server.
    let methods = MethodFilter::GET.or(MethodFilter::CONNECT);
    Router::new().route("/ws", on(methods, upgrade))
}

async fn upgrade(
    State(state): State<Context>,
    ConnectInfo(connection): ConnectInfo<ConnInfo>,
    AppQuery(query): AppQuery<WsQuery>,
    method: axum::http::Method,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let mut response = AppError::new(
                StatusCode::UPGRADE_REQUIRED,
                format!(
                    "/ws takes only WebSocket upgrade requests: {}",
                    rejection.body_text()
                ),
            )
            .into_response();
            // RFC 6455, 4.4: name the version the server speaks.
            response
                .headers_mut()
                .insert("sec-websocket-version", HeaderValue::from_static("13"));
            return Ok(response);
        }
    };
    // An extended CONNECT carries no key (RFC 8441, 5: the stream is already the client's).
    if method != axum::http::Method::CONNECT {
        check_key(&headers)?;
    }
    let user = checked_user(query.user)?;
    // Subscribe before upgrading so a bad cursor is an HTTP error the client can read.
    let subscription = state
        .feed
        .subscribe(query.after, user.clone())
        .await
        .map_err(|error| feed_error(&state, error))?;
    let meter = Some(connection.meter);
    // Taken before the upgrade, so a shutdown cannot slip in before the session holds it.
    let guard = state.session_guard();
    let message_limit = state.config.max_message_bytes();
    Ok(upgrade
        // Sized for comments: tungstenite's 128 KiB default read buffer alone would cost
        // about 134 KiB per idle connection (floors.md).
        .read_buffer_size(state.config.ws_read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(message_limit * 4 + 64 * 1024)
        .max_message_size(message_limit)
        .max_frame_size(message_limit)
        .on_upgrade(move |socket| async move {
            session(socket, state, subscription, user, meter).await;
            drop(guard);
        }))
}

/// The session's send half; at most one frame is in flight (see `session`).
type Sink = SplitSink<WebSocket, Message>;
type Source = SplitStream<WebSocket>;

/// How long a send must stay blocked before the session asks whether the feed has given up
/// on it (its queue filled behind the stuck socket): long against a healthy send, short
/// against the write-stall timeout.
const STUCK_CHECK: Duration = Duration::from_millis(250);
/// Most publish replies and pings waiting behind a blocked send; past it the session stops
/// reading the client's messages, so a client that publishes without reading cannot grow it.
const OUTBOX_LIMIT: usize = 16;
/// How long a closing session waits for a blocked send and its close frame to leave, then
/// as long again for the client's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What the frame in flight is, so a comment is counted as delivered once it has left.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sending {
    Comment,
    Other,
}

/// The send half and what it is sending. A send is started here and finished by the
/// session's `select!`, never awaited on its own, so a blocked socket stalls only the
/// sending: shutdown, admin drops, pings and the client's messages are still served.
struct Writer {
    sink: Sink,
    sending: Option<Sending>,
}

impl Writer {
    /// Hands `message` to the sink; call only when nothing is in flight.
    fn start(&mut self, message: Message, kind: Sending) -> Result<(), axum::Error> {
        // `SplitSink` is always ready with nothing in flight: its one slot is empty.
        self.sink.start_send_unpin(message)?;
        self.sending = Some(kind);
        Ok(())
    }

    /// Finishes what is in flight, sends a close frame and waits briefly for the reply;
    /// each step is bounded, so a stuck socket delays a shutdown by `CLOSE_WAIT` at most.
    /// Boxed: the session's future, held for the life of every idle WebSocket, would
    /// otherwise reserve room for this rare one's timers and frame.
    fn close<'a>(
        self,
        source: &'a mut Source,
        code: u16,
        reason: &'a str,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(self.close_now(source, code, reason))
    }

    async fn close_now(mut self, source: &mut Source, code: u16, reason: &str) {
        // A close reason must fit in a control frame (125 bytes with the code).
        let reason: String = reason.chars().take(100).collect();
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let sent = tokio::time::timeout(CLOSE_WAIT, async {
            self.sink.flush().await?;
            self.sink.send(Message::Close(Some(frame))).await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
        // Wait briefly for the client's close reply so the TCP close is orderly.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(message)) = source.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// The ping schedule: after `interval` without a frame from the client, ping it; without a
/// frame within `timeout` after that, it is gone.
struct Liveness {
    interval: Duration,
    timeout: Duration,
    /// A ping is out and unanswered.
    awaiting: bool,
    /// When the next ping is due, or (while `awaiting`) when the client is given up on.
    due: Pin<Box<tokio::time::Sleep>>,
}

impl Liveness {
    fn new(config: &crate::model::ServerConfig) -> Self {
        Self {
            interval: config.ws_ping_interval,
            timeout: config.ws_pong_timeout,
            awaiting: false,
            due: Box::pin(tokio::time::sleep(config.ws_ping_interval)),
        }
    }

    fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }

    /// A frame arrived: the client is alive; the next ping is an interval away.
    fn heard(&mut self) {
        self.awaiting = false;
        if self.enabled() {
            self.due
                .as_mut()
                .reset(tokio::time::Instant::now() + self.interval);
        }
    }
}

/// RFC 6455, 4.1: `Sec-WebSocket-Key` is a random 16-byte value, base64-encoded: 24
/// characters, the last two `==`. tungstenite would accept any string.
fn check_key(headers: &HeaderMap) -> Result<(), AppError> {
    let key = headers
        .get("sec-websocket-key")
        .map(|key| key.as_bytes())
        .unwrap_or_default();
    let base64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    // 16 bytes are 128 bits: the 22nd character carries 2 of them and 4 zero bits.
    let valid = key.len() == 24
        && key[..22].iter().all(base64)
        && &key[22..] == b"=="
        && b"AQgw".contains(&key[21]);
    if valid {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "Sec-WebSocket-Key must be 16 bytes, base64-encoded (RFC 6455, 4.1)",
        ))
    }
}

async fn session(
    socket: WebSocket,
    state: Context,
    mut subscription: Subscription,
    user: Option<String>,
    meter: Option<Arc<ConnMeter>>,
) {
    if let Some(meter) = &meter {
        meter.read_directly();
        meter.set_write_stall(state.config.write_stall_timeout);
    }
    let stats = state.counters();
    let dropped = state.drop_signal_for(user.as_deref());
    let (sink, mut source) = socket.split();
    let mut writer = Writer {
        sink,
        sending: None,
    };
    // Publish replies and pings, sent before the next comment.
    let mut outbox: VecDeque<Message> = VecDeque::new();
    // A first frame naming the starting cursor, like SSE's `connect` event: a client that
    // drops before its first comment still knows where to resume from.
    let hello =
        serde_json::json!({ "connected": { "user": user, "after": subscription.cursor() } });
    outbox.push_back(Message::Text(hello.to_string().into()));
    let mut liveness = Liveness::new(&state.config);
    let mut stuck_check = Box::pin(tokio::time::sleep(STUCK_CHECK));
    loop {
        if writer.sending.is_none() {
            if let Some(message) = outbox.pop_front() {
                if writer.start(message, Sending::Other).is_err() {
                    return;
                }
                stuck_check
                    .as_mut()
                    .reset(tokio::time::Instant::now() + STUCK_CHECK);
            }
        }
        let idle = writer.sending.is_none();
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                writer.close(&mut source, 1001, "server shutting down").await;
                return;
            }
            _ = dropped.cancelled() => {
                // Like a network fault: no close frame, the TCP connection just goes away.
                stats.dropped_by_admin.fetch_add(1, Ordering::Relaxed);
                return;
            }
            flushed = std::future::poll_fn(|cx| writer.sink.poll_flush_unpin(cx)), if !idle => {
                match flushed {
                    Ok(()) => {
                        if writer.sending.take() == Some(Sending::Comment) {
                            stats.comments_delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // A write stall (the meter counted it in `dropped_stalled`) or a peer
                    // that went away: no close frame can get through either way.
                    Err(_) => return,
                }
            }
            _ = &mut stuck_check, if !idle => {
                // The feed gives up on a subscriber whose queue overflows, but the session
                // would only learn it after draining that queue through the stuck socket.
                if let Some(error) = subscription.ended_early() {
                    count_early_end(stats, &error);
                    return;
                }
                stuck_check.as_mut().reset(tokio::time::Instant::now() + STUCK_CHECK);
            }
            next = subscription.next(), if idle => match next {
                Ok(comment) => {
                    if writer.start(Message::Text(comment.json.as_ref().into()), Sending::Comment).is_err() {
                        return;
                    }
                    stuck_check.as_mut().reset(tokio::time::Instant::now() + STUCK_CHECK);
                }
                Err(error @ FeedError::Lagged { .. }) => {
                    stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    writer.close(&mut source, CLOSE_TOO_SLOW, &error.to_string()).await;
                    return;
                }
                Err(FeedError::Unavailable { reason }) => {
                    stats.dropped_unavailable.fetch_add(1, Ordering::Relaxed);
                    // The cursor first: a close reason is cut to 100 characters.
                    let reason = format!("feed unavailable; resume after id {}: {reason}", subscription.cursor());
                    writer.close(&mut source, CLOSE_TRY_AGAIN, &reason).await;
                    return;
                }
                Err(_) => {
                    writer.close(&mut source, 1001, "feed closed").await;
                    return;
                }
            },
            _ = &mut liveness.due, if liveness.enabled() => {
                if liveness.awaiting {
                    stats.dropped_unresponsive.fetch_add(1, Ordering::Relaxed);
                    writer.close(&mut source, CLOSE_NO_PONG, "no frame within the pong timeout after a ping").await;
                    return;
                }
                // An empty ping: 2 bytes on the wire, and 6 for the client's masked pong.
                outbox.push_back(Message::Ping(Default::default()));
                liveness.awaiting = true;
                let deadline = tokio::time::Instant::now() + liveness.timeout;
                liveness.due.as_mut().reset(deadline);
            }
            incoming = source.next(), if outbox.len() < OUTBOX_LIMIT => {
                liveness.heard();
                match incoming {
                    None => return,
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite queues the close reply RFC 6455 asks for but sends it
                        // only on the next write or flush; returning at once dropped it, and
                        // clients saw "reset without closing handshake".
                        let _ = tokio::time::timeout(CLOSE_WAIT, writer.sink.flush()).await;
                        return;
                    }
                    Some(Ok(Message::Text(text))) => {
                        // Boxed for the same reason as `Writer::close`.
                        let reply = Box::pin(publish(&state, user.as_deref(), text.as_str())).await;
                        outbox.push_back(Message::Text(reply.into()));
                    }
                    Some(Ok(Message::Binary(_))) => {
                        writer.close(&mut source, 1003, "binary frames are not supported; send JSON text").await;
                        return;
                    }
                    // tungstenite answers pings itself on its next read.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(error)) => {
                        // A protocol violation (bad frame, bad UTF-8, oversized message):
                        // say why in the close frame, as RFC 6455 asks, and end the connection.
                        let (code, reason) = close_reason(&error);
                        writer.close(&mut source, code, &reason).await;
                        return;
                    }
                }
            }
        }
    }
}

/// Books a subscription the feed ended while its socket was stuck, by the feed's cause.
fn count_early_end(stats: &crate::model::stats::Counters, error: &FeedError) {
    let counter = match error {
        FeedError::Unavailable { .. } => &stats.dropped_unavailable,
        _ => &stats.dropped_slow,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Publishes a client's message; the reply is `{"ack":ID}` or `{"error":...}`.
async fn publish(state: &Context, user: Option<&str>, text: &str) -> String {
    let Some(from) = user else {
        return serde_json::json!({
            "error": "anonymous WebSocket clients cannot publish; connect with ?user=NAME"
        })
        .to_string();
    };
    let request: WsPublish = match serde_json::from_str(text) {
        Ok(ObjectOnly(request)) => request,
        Err(error) => {
            return serde_json::json!({
                "error": format!("bad publish message (expected {{\"to\":...,\"text\":...}}): {error}")
            })
            .to_string();
        }
    };
    match checked_comment(
        state.config.max_comment_bytes,
        from.to_string(),
        request.to,
        request.text,
    ) {
        Ok(comment) => {
            let stored = match state.feed.publish(comment).await {
                Ok(stored) => stored,
                // An outage answers `{"error":...}` like any refusal; the client may retry.
                Err(error) => return AppError::from(error).body().to_string(),
            };
            state
                .counters()
                .comments_published
                .fetch_add(1, Ordering::Relaxed);
            serde_json::json!({ "ack": stored.comment.id }).to_string()
        }
        Err(error) => error.body().to_string(),
    }
}

fn close_reason(error: &axum::Error) -> (u16, String) {
    let text = error.to_string();
    let code = if text.contains("too long") || text.contains("Space limit") {
        1009
    } else if text.contains("UTF-8") || text.contains("utf-8") {
        1007
    } else {
        1002
    };
    (code, text)
}

/// Subscribes over WebSocket and reconnects after `?after=LAST` when the connection is lost,
/// backing off with jitter while attempts keep failing. A 410 (its cursor from before a
/// restart, or evicted) resumes at once from the oldest id kept, the loss recorded with its
/// cause.
pub async fn run_client(subscriber: &Subscriber, sink: &mut dyn DeliverySink) {
    let counters = &subscriber.counters;
    let mut cursor = subscriber.after;
    let mut backoff = Backoff::new(&subscriber.settings);
    let mut attempts = 0u64;
    let mut ready = false;
    loop {
        if attempts > 0 {
            ClientCounters::add(&counters.reconnects);
        }
        attempts += 1;
        let outcome = tokio::select! {
            biased;
            _ = subscriber.stop.cancelled() => return,
            outcome = connect(subscriber, cursor) => outcome,
        };
        let mut socket = match outcome {
            Ok(socket) => socket,
            Err(error) => {
                tracing::debug!("WebSocket connect failed: {error}");
                ClientCounters::add(&counters.errors);
                if let Some(gone) = gone_of(&*error) {
                    gone.record(subscriber, sink);
                    cursor = Some(gone.resume_after);
                    continue;
                }
                ClientCounters::add(&counters.retries);
                if !subscriber.pause(backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        backoff.succeeded();
        if !ready {
            ready = true;
            ClientCounters::add(&counters.ready);
        }
        loop {
            let frame = tokio::select! {
                _ = subscriber.stop.cancelled() => {
                    let _ = socket.close(None).await;
                    // Read until the server's close reply so both ends count the same bytes.
                    // Generous: when 100,000 subscribers close at once, busy servers took more
                    // than 2 s to answer some 14,000 of them, whose replies went unread.
                    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async {
                        while let Some(Ok(_)) = socket.next().await {}
                    }).await;
                    return;
                }
                frame = socket.next() => frame,
            };
            match frame {
                Some(Ok(tungstenite::Message::Text(text))) => {
                    let received_at = Instant::now();
                    match serde_json::from_str::<ServerFrame>(text.as_str()) {
                        Ok(ServerFrame::Comment(comment)) => {
                            cursor = Some(comment.id);
                            sink.deliver(comment, received_at);
                        }
                        Ok(ServerFrame::Connected { connected }) => {
                            sink.connected();
                            cursor = cursor.max(Some(connected.after));
                        }
                        Ok(ServerFrame::Other(_)) | Err(_) => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    ClientCounters::add(&counters.errors);
                    break;
                }
            }
        }
        ClientCounters::add(&counters.retries);
        if !subscriber.pause(backoff.next_delay()).await {
            return;
        }
    }
}

/// How long a subscriber that is done waits for the server's reply to its close frame.
const CLOSE_REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The 410 answer to a handshake, if that is what refused it.
fn gone_of(error: &(dyn std::error::Error + 'static)) -> Option<Gone> {
    // Over HTTP/2 the extended CONNECT is refused like any request.
    if let Some(crate::http::client::ClientError::Status { status, body }) =
        error.downcast_ref::<crate::http::client::ClientError>()
    {
        return (*status == StatusCode::GONE)
            .then(|| Gone::parse(body.as_bytes()))
            .flatten();
    }
    match error.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Http(response) if response.status() == StatusCode::GONE => {
            Gone::parse(response.body().as_deref()?)
        }
        _ => None,
    }
}

/// The text frames a subscriber can receive.
#[derive(Deserialize)]
#[serde(untagged)]
enum ServerFrame {
    Connected {
        connected: Connected,
    },
    Comment(Comment),
    /// Acknowledgements and errors of publishes, which a subscriber does not act on.
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Connected {
    after: u64,
}

/// The byte stream under a client's WebSocket: a counted TCP connection of its own
/// (HTTP/1.1 upgrade), or an HTTP/2 stream (extended CONNECT) on a counted connection.
pub trait ClientIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ClientIo for T {}

type ClientSocket = tokio_tungstenite::WebSocketStream<Box<dyn ClientIo>>;

/// Opens a counted TCP connection and performs the WebSocket handshake on it; over HTTP/2,
/// opens a stream by extended CONNECT (RFC 8441) on the subscriber's connection instead.
pub async fn connect(
    subscriber: &Subscriber,
    cursor: Option<u64>,
) -> Result<ClientSocket, Box<dyn std::error::Error + Send + Sync>> {
    let config = tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    if subscriber.http.is_h2() {
        let (connection, opened) = subscriber.open_connection().await?;
        let crate::http::link::Connection::H2(connection) = connection else {
            unreachable!("an HTTP/2 link opens HTTP/2 connections")
        };
        if opened {
            ClientCounters::add(&subscriber.counters.connections_opened);
        }
        ClientCounters::add(&subscriber.counters.requests);
        let tunnel = connection
            .websocket(&format!("/ws?{}", subscriber.query(cursor)))
            .await?;
        let io: Box<dyn ClientIo> = Box::new(tunnel);
        let socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            io,
            tungstenite::protocol::Role::Client,
            Some(config),
        )
        .await;
        return Ok(socket);
    }
    let stream = subscriber.connect().await?;
    ClientCounters::add(&subscriber.counters.connections_opened);
    ClientCounters::add(&subscriber.counters.requests);
    let url = format!(
        "ws://{}/ws?{}",
        subscriber.target.host(),
        subscriber.query(cursor)
    );
    let request = url.into_client_request()?;
    let io: Box<dyn ClientIo> = Box::new(stream);
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(request, io, Some(config)).await?;
    Ok(socket)
}
