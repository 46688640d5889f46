//! WebSocket: `GET /ws?user=U&after=N` upgrades, then the server sends a first frame naming
//! the starting cursor and one text frame per comment (the comment's JSON) and the client may publish by sending
//! `{"to":...,"text":...}`, acknowledged with `{"ack":ID}`: the two-way half of the protocol.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::WaitForCancellationFuture;

use super::{Backoff, ClientCounters, Context, DeliverySink, Gone, Subscriber, feed_error};
use crate::accounting::{ConnInfo, ConnMeter};
use crate::feed::{Comment, FeedError, StoredComment, Subscription};
use crate::http::error::{AppError, AppQuery, ObjectOnly, checked_comment, checked_user};
use crate::model::technique::Technique;
use crate::wake::Alarm;

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
    // Taken before the upgrade, so a shutdown cannot slip in before the session holds it.
    let guard = state.session_guard();
    let message_limit = state.config.max_message_bytes();
    let read_buffer = state.config.ws_read_buffer;
    let setup = Box::new(Setup {
        state,
        subscription,
        user,
        meter: Some(connection.meter),
        _guard: guard,
    });
    Ok(upgrade
        // Sized for comments: tungstenite's 128 KiB default read buffer alone would cost
        // about 134 KiB per idle connection (floors.md).
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(message_limit * 4 + 64 * 1024)
        .max_message_size(message_limit)
        .max_frame_size(message_limit)
        .on_upgrade(move |socket| session(socket, setup)))
}

/// What a session needs besides its socket, in one box. A future keeps what it captured
/// for its whole life, and three futures nest here (axum's upgrade task holds our callback,
/// which makes the session's future): captured by value, all of this sat in each of them,
/// three times per idle connection.
struct Setup {
    state: Context,
    subscription: Subscription,
    user: Option<String>,
    meter: Option<Arc<ConnMeter>>,
    /// Held until the session ends, so a shutdown waits for its close frame.
    _guard: tokio::sync::watch::Receiver<()>,
}

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

/// What the socket did, for the session's one socket arm: it both sends and reads, so the
/// socket is not split into halves behind a lock.
enum Io {
    /// The frame in flight has left (or failed).
    Flushed(Result<(), axum::Error>),
    /// The client sent a frame, or the stream ended.
    Incoming(Option<Result<Message, axum::Error>>),
    Shutdown,
    Dropped,
    /// The liveness timer fired: a ping is due, or the pong is overdue.
    PingDue,
}

/// The socket and what it is sending. A send is started and flushed at once; only if the
/// socket takes nothing more is it finished by the session's `select!`, never awaited on
/// its own, so a blocked socket stalls only the sending: shutdown, admin drops, pings and
/// the client's messages are still served.
struct Writer {
    socket: WebSocket,
    sending: Option<Sending>,
}

impl Writer {
    /// Sends `message` and flushes it; call only when nothing is in flight. Returns whether
    /// the frame is still in flight (the socket is blocked), to be finished by `poll_io`.
    // An `async fn` that never waits: `poll_fn` lends it the task's waker, so a blocked
    // flush wakes the session when the socket drains.
    async fn send(&mut self, message: Message, kind: Sending) -> Result<bool, axum::Error> {
        // With nothing in flight tungstenite is ready (its `ready` flag is set by the last
        // flush), and with a write buffer of 0 `start_send` writes the frame to the socket.
        self.socket.start_send_unpin(message)?;
        match std::future::poll_fn(|cx| Poll::Ready(self.socket.poll_flush_unpin(cx))).await {
            Poll::Ready(result) => result.map(|()| false),
            Poll::Pending => {
                self.sending = Some(kind);
                Ok(true)
            }
        }
    }

    /// The socket arm: the frame in flight leaving; else, when `alarm` rang, the quiet
    /// sources (the shutdown, the admin drop, the liveness timer: their futures lock shared
    /// mutexes on every poll, and a session wakes for every comment) and a frame from the
    /// client (when `reading`). The client's side is quiet too: it almost never sends, so
    /// its read (through tungstenite's waker proxies, hyper's upgraded stream, the edge and
    /// the byte meter to the I/O driver) is polled only when its socket rang.
    fn poll_io(
        &mut self,
        cx: &mut std::task::Context<'_>,
        reading: bool,
        alarm: &Alarm,
        mut shutdown: Pin<&mut WaitForCancellationFuture<'_>>,
        mut dropped: Pin<&mut WaitForCancellationFuture<'_>>,
        liveness: &mut Liveness,
    ) -> Poll<Io> {
        if self.sending.is_some() {
            if let Poll::Ready(result) = self.socket.poll_flush_unpin(cx) {
                return Poll::Ready(Io::Flushed(result));
            }
        }
        if !alarm.rang(cx) {
            return Poll::Pending;
        }
        let mut quiet = std::task::Context::from_waker(alarm.waker());
        // Shutdown before an admin drop when both are there (the old `select!` picked at
        // random); then the client's frames before the liveness timer, since a frame
        // answers a ping: a pong and the pong deadline ready together keep the client.
        if shutdown.as_mut().poll(&mut quiet).is_ready() {
            return Poll::Ready(Io::Shutdown);
        }
        if dropped.as_mut().poll(&mut quiet).is_ready() {
            return Poll::Ready(Io::Dropped);
        }
        if reading {
            if let Poll::Ready(incoming) = self.socket.poll_next_unpin(&mut quiet) {
                // tungstenite may hold more frames already read: read again next time (and
                // poll the liveness timer the frame resets).
                alarm.ring();
                return Poll::Ready(Io::Incoming(incoming));
            }
        } else {
            // Owed, for when reading resumes.
            alarm.ring();
        }
        if liveness.enabled() && liveness.due.as_mut().poll(&mut quiet).is_ready() {
            // Polled again once its handler has reset it.
            alarm.ring();
            return Poll::Ready(Io::PingDue);
        }
        Poll::Pending
    }

    /// Finishes what is in flight, sends a close frame and waits briefly for the reply;
    /// each step is bounded, so a stuck socket delays a shutdown by `CLOSE_WAIT` at most.
    /// Boxed: the session's future, held for the life of every idle WebSocket, would
    /// otherwise reserve room for this rare one's timers and frame.
    fn close(self, code: u16, reason: &str) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(self.close_now(code, reason))
    }

    async fn close_now(mut self, code: u16, reason: &str) {
        // A close reason must fit in a control frame (125 bytes with the code).
        let reason: String = reason.chars().take(100).collect();
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let sent = tokio::time::timeout(CLOSE_WAIT, async {
            self.socket.flush().await?;
            self.socket.send(Message::Close(Some(frame))).await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
        // Wait briefly for the client's close reply so the TCP close is orderly.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(message)) = self.socket.next().await {
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

/// A comment's text frame: its JSON shared with every other subscriber, not copied.
fn comment_frame(comment: &StoredComment) -> Message {
    let json = comment.framed(Technique::WebSocket, StoredComment::json_as_bytes);
    let text = Utf8Bytes::try_from(json).expect("a comment's JSON is a Rust string, so UTF-8");
    Message::Text(text)
}

/// The session. A plain function around an `async` block rather than an `async fn`: an
/// `async fn`'s future keeps each argument twice (the argument, and the local it is moved
/// into), and the socket is the biggest thing in it. The block captures the writer and the
/// setup and uses them in place, so each is held once.
fn session(socket: WebSocket, mut setup: Box<Setup>) -> impl Future<Output = ()> + Send {
    let mut writer = Writer {
        socket,
        sending: None,
    };
    async move {
        let setup = &mut *setup;
        if let Some(meter) = &setup.meter {
            meter.read_directly();
            meter.set_write_stall(setup.state.config.write_stall_timeout);
        }
        let stats = setup.state.counters();
        // Made once, not per pass of the loop: each one made anew registers with (and its
        // drop unregisters from) a list every session shares, under its lock.
        let mut shutdown = std::pin::pin!(setup.state.shutdown.cancelled());
        // Taken once the socket is upgraded, as the connection goes live for the admin
        // endpoint.
        let drop_signal = setup.state.drop_signal_for(setup.user.as_deref());
        let mut dropped = std::pin::pin!(drop_signal.cancelled());
        // Publish replies and pings waiting behind a blocked send, sent before the next
        // comment.
        let mut outbox: VecDeque<Message> = VecDeque::new();
        // Armed only while a send is blocked: a timer reset on every send cost a timer-wheel
        // operation per delivery, and its expiry a needless wakeup 250 ms later.
        let mut stuck_check: Option<Pin<Box<tokio::time::Sleep>>> = None;
        // A first frame naming the starting cursor, like SSE's `connect` event: a client
        // that drops before its first comment still knows where to resume from.
        let hello = serde_json::json!({
            "connected": { "user": setup.user, "after": setup.subscription.cursor() }
        })
        .to_string();
        outbox.push_back(Message::Text(hello.into()));
        let mut liveness = Liveness::new(&setup.state.config);
        // Rings when the shutdown, the admin drop or the liveness timer fires: they are
        // polled only then, not on every comment (see `Alarm`).
        let alarm = Alarm::new();
        loop {
            if writer.sending.is_none() {
                if let Some(message) = outbox.pop_front() {
                    match writer.send(message, Sending::Other).await {
                        Ok(true) => arm(&mut stuck_check),
                        Ok(false) => {}
                        Err(_) => return,
                    }
                } else if outbox.capacity() != 0 {
                    // Drained: an idle connection holds no queue.
                    outbox = VecDeque::new();
                }
            }
            let idle = writer.sending.is_none();
            let reading = outbox.len() < OUTBOX_LIMIT;
            tokio::select! {
                io = std::future::poll_fn(|cx| {
                    writer.poll_io(cx, reading, &alarm, shutdown.as_mut(), dropped.as_mut(), &mut liveness)
                }) => match io {
                    Io::Shutdown => {
                        writer.close(1001, "server shutting down").await;
                        return;
                    }
                    Io::Dropped => {
                        // Like a network fault: no close frame, the TCP connection just goes away.
                        stats.dropped_by_admin.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Io::PingDue => {
                        if liveness.awaiting {
                            stats.dropped_unresponsive.fetch_add(1, Ordering::Relaxed);
                            writer.close(CLOSE_NO_PONG, "no frame within the pong timeout after a ping").await;
                            return;
                        }
                        // An empty ping: 2 bytes on the wire, and 6 for the client's masked pong.
                        outbox.push_back(Message::Ping(Default::default()));
                        liveness.awaiting = true;
                        let deadline = tokio::time::Instant::now() + liveness.timeout;
                        liveness.due.as_mut().reset(deadline);
                    }
                    Io::Flushed(Ok(())) => {
                        if writer.sending.take() == Some(Sending::Comment) {
                            stats.comments_delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        stuck_check = None;
                    }
                    // A write stall (the meter counted it in `dropped_stalled`) or a peer
                    // that went away: no close frame can get through either way.
                    Io::Flushed(Err(_)) => return,
                    Io::Incoming(incoming) => {
                        // Resets the liveness timer: `poll_io` rang the alarm, so it is polled again.
                        liveness.heard();
                        match incoming {
                            None => return,
                            Some(Ok(Message::Close(_))) => {
                                // tungstenite queues the close reply RFC 6455 asks for but sends
                                // it only on the next write or flush; returning at once dropped
                                // it, and clients saw "reset without closing handshake".
                                let flush = tokio::time::timeout(CLOSE_WAIT, writer.socket.flush());
                                // Boxed for the same reason as `Writer::close`.
                                let _ = Box::pin(flush).await;
                                return;
                            }
                            Some(Ok(Message::Text(text))) => {
                                let reply = Box::pin(publish(&setup.state, setup.user.as_deref(), text.as_str())).await;
                                outbox.push_back(Message::Text(reply.into()));
                            }
                            Some(Ok(Message::Binary(_))) => {
                                writer.close(1003, "binary frames are not supported; send JSON text").await;
                                return;
                            }
                            // tungstenite answers pings itself on its next read.
                            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                            Some(Err(error)) => {
                                // A protocol violation (bad frame, bad UTF-8, oversized message):
                                // say why in the close frame, as RFC 6455 asks, and end the connection.
                                let (code, reason) = close_reason(&error);
                                writer.close(code, &reason).await;
                                return;
                            }
                        }
                    }
                },
                _ = std::future::poll_fn(|cx| poll_armed(&mut stuck_check, cx)), if !idle => {
                    // The feed gives up on a subscriber whose queue overflows, but the session
                    // would only learn it after draining that queue through the stuck socket.
                    if let Some(error) = setup.subscription.ended_early() {
                        count_early_end(stats, &error);
                        return;
                    }
                    arm(&mut stuck_check);
                }
                next = setup.subscription.next(), if idle => match next {
                    Ok(comment) => match writer.send(comment_frame(&comment), Sending::Comment).await {
                        Ok(true) => arm(&mut stuck_check),
                        Ok(false) => {
                            stats.comments_delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => return,
                    },
                    Err(error @ FeedError::Lagged { .. }) => {
                        stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
                        writer.close(CLOSE_TOO_SLOW, &error.to_string()).await;
                        return;
                    }
                    Err(FeedError::Unavailable { reason }) => {
                        stats.dropped_unavailable.fetch_add(1, Ordering::Relaxed);
                        // The cursor first: a close reason is cut to 100 characters.
                        let reason = format!("feed unavailable; resume after id {}: {reason}", setup.subscription.cursor());
                        writer.close(CLOSE_TRY_AGAIN, &reason).await;
                        return;
                    }
                    Err(_) => {
                        writer.close(1001, "feed closed").await;
                        return;
                    }
                },
            }
        }
    }
}

/// (Re)starts the stuck check: `STUCK_CHECK` from now.
fn arm(stuck_check: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    let deadline = tokio::time::Instant::now() + STUCK_CHECK;
    match stuck_check {
        Some(sleep) => sleep.as_mut().reset(deadline),
        None => *stuck_check = Some(Box::pin(tokio::time::sleep_until(deadline))),
    }
}

/// The stuck check's expiry; never, while it is not armed.
fn poll_armed(
    stuck_check: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    cx: &mut std::task::Context<'_>,
) -> Poll<()> {
    match stuck_check {
        Some(sleep) => sleep.as_mut().poll(cx),
        None => Poll::Pending,
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
