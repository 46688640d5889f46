//! Tests of `pushlab-server` (issue 2) over real sockets on 127.0.0.1, port 0.
//!
//! Every test starts its own server with `pushlab::server::spawn`, so its accounts start at
//! zero and tests run in parallel. Tests synchronise on events (a subscriber's `ready`
//! counter, an SSE `connect` event, a `/stats` condition polled under a deadline), never on a
//! fixed sleep. The helpers below are the test client: the crate's own counted HTTP client,
//! WebSocket over a counted socket, and the techniques' `run_client` functions.
//!
//! | module | covers |
//! | --- | --- |
//! | `delivery` | per technique: delivery, targeting, resuming; long-poll, WebSocket and SSE specifics |
//! | `accounting` | `/stats` bytes equal the client's socket count; `/metrics` |
//! | `bad_input` | every refusal's status and JSON body; invalid WebSocket frames |
//! | `http2` | h2c for every technique, per-stream accounting, h2 idle timeout, `--tls` ALPN |
//! | `hostile` | raw malformed and hostile bytes: protocol errors, smuggling, Origin, frames, timeouts |
//! | `limits` | connection cap, slow subscribers, the admin drop endpoint |
//! | `lifecycle` | graceful shutdown; the `pushlab-server` binary |
//! | `redis` | over the Redis feed: a killed and restarted Redis, two instances over one |
//! | `stuck` | subscribers that stop reading: write stall, full queue, shutdown, admin drop; pings |

mod accounting;
mod admin_drop;
mod bad_input;
mod delivery;
mod hostile;
mod http2;
mod lifecycle;
mod limits;
mod redis;
mod restart;
mod stuck;
mod techniques;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, StatusCode};
use pushlab::feed::Comment;
use pushlab::http::client::{HttpConnection, connect_counted};
use pushlab::model::stats::AccountStats;
use pushlab::net::{ByteMeter, CountingStream};
use pushlab::server::{RunningServer, ServerConfig, StatsSnapshot};
use pushlab::techniques::{Subscriber, Target, Technique};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound on anything a test awaits: generous, as the machine is shared and loaded.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Starts a server with the default configuration.
pub async fn start() -> RunningServer {
    start_with(ServerConfig::default()).await
}

/// Starts a server on 127.0.0.1:0.
pub async fn start_with(config: ServerConfig) -> RunningServer {
    pushlab::server::spawn(config)
        .await
        .expect("the server binds 127.0.0.1:0")
}

/// The id the server's feed gives its first comment: ids start above the incarnation's
/// time-based base, not at 1.
pub fn first_id(server: &RunningServer) -> u64 {
    server.state.feed.info().first_id
}

pub fn target(addr: SocketAddr) -> Target {
    Target { addr }
}

/// Awaits `future`, failing the test after `DEADLINE`.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// Polls `condition` until it holds, failing the test after `DEADLINE`.
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// Asserts a refusal: `status`, a JSON content type, and a body `{"error": "..."}` whose
    /// message mentions each of `words` (case-insensitively).
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, words: &[&str]) {
        assert_eq!(self.status, status, "status of {}", self.text());
        let content_type = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            content_type.starts_with("application/json"),
            "content type {content_type:?} of {}",
            self.text()
        );
        assert_error_json(&self.json(), words);
    }
}

/// Asserts `{"error": "..."}` whose message mentions each of `words`.
#[track_caller]
pub fn assert_error_json(body: &serde_json::Value, words: &[&str]) {
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` string in {body}"))
        .to_lowercase();
    for word in words {
        assert!(
            message.contains(&word.to_lowercase()),
            "error {message:?} does not mention {word:?}"
        );
    }
}

/// One request on a fresh connection, read whole.
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    within(&format!("{method} {path}"), async {
        let mut connection = HttpConnection::open(&target(addr), ByteMeter::new())
            .await
            .expect("connect");
        let response = connection
            .send(method.clone(), path, headers, body.map(Bytes::from))
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("body of {method} {path}: {e}"))
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    })
    .await
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, Method::GET, path, &[], None).await
}

pub async fn post_json(addr: SocketAddr, path: &str, json: &str) -> Reply {
    let headers = [("content-type", "application/json")];
    request(addr, Method::POST, path, &headers, Some(json.into())).await
}

/// Publishes through `POST /comments` and returns the new id.
pub async fn publish(addr: SocketAddr, from: &str, to: Option<&str>, text: &str) -> u64 {
    let body = serde_json::json!({ "from": from, "to": to, "text": text }).to_string();
    let reply = post_json(addr, "/comments", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    reply.json()["id"].as_u64().expect("`id` in the reply")
}

/// The server's `/stats`.
pub async fn stats(addr: SocketAddr) -> StatsSnapshot {
    let reply = get(addr, "/stats").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    serde_json::from_slice(&reply.body).expect("/stats parses")
}

/// Polls `/stats` until `condition` holds; fails with the last snapshot after `DEADLINE`.
pub async fn wait_stats(
    addr: SocketAddr,
    what: &str,
    condition: impl Fn(&StatsSnapshot) -> bool,
) -> StatsSnapshot {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let snapshot = stats(addr).await;
        if condition(&snapshot) {
            return snapshot;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("/stats never showed {what}: {snapshot:#?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One account of a snapshot (`short-polling`, ..., `publish`, `other`).
pub fn account(snapshot: &StatsSnapshot, name: &str) -> AccountStats {
    *snapshot
        .accounts
        .get(name)
        .unwrap_or_else(|| panic!("no account {name} in /stats"))
}

/// The server still serves after a refusal: a publish is accepted and a poll returns it.
pub async fn assert_serving(addr: SocketAddr) {
    let id = publish(addr, "probe", None, "still serving?").await;
    let reply = get(addr, &format!("/poll?after={}", id - 1)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["comments"][0]["id"], id, "{}", reply.text());
}

/// A subscriber running a technique's own client, its deliveries forwarded to a channel.
pub struct Client {
    pub subscriber: Arc<Subscriber>,
    comments: mpsc::UnboundedReceiver<Comment>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a technique's `run_client` as `user` after cursor `after` (`None`: from now on).
pub fn subscribe(
    technique: Technique,
    addr: SocketAddr,
    user: Option<&str>,
    after: Option<u64>,
) -> Client {
    subscribe_with(technique, Subscriber::new(addr, user, after))
}

/// Starts a technique's `run_client` for `subscriber`.
pub fn subscribe_with(technique: Technique, mut subscriber: Subscriber) -> Client {
    // Short polls every 20 ms so deliveries arrive quickly; the interval is not under test.
    subscriber.settings.poll_interval = Duration::from_millis(20);
    let subscriber = Arc::new(subscriber);
    let (sender, comments) = mpsc::unbounded_channel();
    let task = tokio::spawn({
        let subscriber = subscriber.clone();
        async move {
            let mut sink = sender;
            technique.run_client(&subscriber, &mut sink).await;
        }
    });
    Client {
        subscriber,
        comments,
        task,
    }
}

impl Client {
    /// Waits until the subscription is established (first response, upgrade, `connect`).
    pub async fn ready(&self) {
        let counters = self.subscriber.counters.clone();
        wait_for("the subscriber to be ready", || {
            counters.ready.load(Ordering::Relaxed) > 0
        })
        .await;
    }

    /// The next comment delivered.
    pub async fn next(&mut self) -> Comment {
        within("a comment", self.comments.recv())
            .await
            .expect("the client is running")
    }

    /// The ids of the next `n` comments delivered.
    pub async fn next_ids(&mut self, n: usize) -> Vec<u64> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(self.next().await.id);
        }
        ids
    }

    /// Stops the client and waits for it to finish.
    pub async fn stop(self) {
        self.subscriber.stop.cancel();
        within("the client to stop", self.task)
            .await
            .expect("the client task does not panic");
    }
}

/// A WebSocket client over a counted socket.
pub type Ws = WebSocketStream<CountingStream<TcpStream, ByteMeter>>;

/// Opens `/ws?QUERY` on a socket counted by `meter` and reads the server's first frame,
/// `{"connected":{"user":...,"after":N}}`.
pub async fn ws_connect(addr: SocketAddr, query: &str, meter: Arc<ByteMeter>) -> Ws {
    let mut ws = ws_connect_raw(addr, query, meter).await;
    let hello: serde_json::Value = serde_json::from_str(&ws_text(&mut ws).await).unwrap();
    assert!(hello["connected"]["after"].is_u64(), "first frame {hello}");
    ws
}

/// Opens `/ws?QUERY` without reading any frame.
pub async fn ws_connect_raw(addr: SocketAddr, query: &str, meter: Arc<ByteMeter>) -> Ws {
    within("a WebSocket handshake", async {
        let stream = connect_counted(&target(addr), meter)
            .await
            .expect("connect");
        let (ws, response) =
            tokio_tungstenite::client_async(format!("ws://{addr}/ws?{query}"), stream)
                .await
                .expect("WebSocket handshake");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        ws
    })
    .await
}

/// The next data or close message (pings and pongs are skipped); `None` at the stream's end.
pub async fn ws_next(ws: &mut Ws) -> Option<Result<Message, String>> {
    within("a WebSocket message", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return Some(Ok(message)),
                Some(Err(error)) => return Some(Err(error.to_string())),
                None => return None,
            }
        }
    })
    .await
}

/// The next text frame, which must be one.
pub async fn ws_text(ws: &mut Ws) -> String {
    match ws_next(ws).await {
        Some(Ok(Message::Text(text))) => text.as_str().to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Expects a close frame and returns its code and reason, after sending the close reply
/// (tungstenite queues it; the flush sends it) as a well-behaved client does.
pub async fn ws_close_frame(ws: &mut Ws) -> (u16, String) {
    let frame = match ws_next(ws).await {
        Some(Ok(Message::Close(Some(frame)))) => (u16::from(frame.code), frame.reason.to_string()),
        other => panic!("expected a close frame with a code, got {other:?}"),
    };
    let _ = within("the close reply", ws.flush()).await;
    frame
}

/// One parsed SSE block: an event, or a comment line such as a heartbeat.
#[derive(Debug, Default, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<String>,
    /// Comment lines (after the `:`), e.g. heartbeats.
    pub comments: Vec<String>,
}

/// An SSE response body read by hand, so tests see every field as sent.
pub struct SseStream {
    body: Incoming,
    buffer: String,
}

/// Sends `GET path` with `headers` on a socket counted by `meter`; returns the status and, on
/// 200, the event stream (else the error body).
pub async fn sse_open(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    meter: Arc<ByteMeter>,
) -> Result<SseStream, Reply> {
    within("an SSE response", async {
        let mut connection = HttpConnection::open(&target(addr), meter)
            .await
            .expect("connect");
        let mut all = vec![("accept", "text/event-stream")];
        all.extend_from_slice(headers);
        let response = connection
            .send(Method::GET, path, &all, None)
            .await
            .expect("SSE request");
        let status = response.status();
        let response_headers = response.headers().clone();
        if status != StatusCode::OK {
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            return Err(Reply {
                status,
                headers: response_headers,
                body,
            });
        }
        assert_eq!(
            response_headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Ok(SseStream {
            body: response.into_body(),
            buffer: String::new(),
        })
    })
    .await
}

impl SseStream {
    /// The next block; `Ok(None)` when the body ended cleanly, `Err` when it broke off.
    pub async fn next_block(&mut self) -> Result<Option<SseEvent>, String> {
        within("an SSE event", async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    return Ok(Some(parse_block(&block)));
                }
                match self.body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            self.buffer
                                .push_str(std::str::from_utf8(&data).expect("UTF-8"));
                        }
                    }
                    Some(Err(error)) => return Err(error.to_string()),
                    None => return Ok(None),
                }
            }
        })
        .await
    }

    /// The next event that is not a heartbeat; panics if the stream ends first.
    pub async fn next_event(&mut self) -> SseEvent {
        loop {
            match self.next_block().await {
                Ok(Some(event)) if event.event.is_none() && event.data.is_empty() => continue,
                Ok(Some(event)) => return event,
                other => panic!("the SSE stream ended while an event was expected: {other:?}"),
            }
        }
    }
}

fn parse_block(block: &str) -> SseEvent {
    let mut event = SseEvent::default();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines().filter(|l| !l.is_empty()) {
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "" => event.comments.push(value.to_string()),
            "id" => event.id = Some(value.to_string()),
            "event" => event.event = Some(value.to_string()),
            "data" => data.push(value),
            "retry" => event.retry = Some(value.to_string()),
            other => panic!("unknown SSE field {other:?} in {block:?}"),
        }
    }
    event.data = data.join("\n");
    event
}

/// Stops `server` and checks a clean shutdown: `stop` returns within 3 s with no connection
/// left open, the WebSocket `ws` gets its 1001 close frame and the SSE body `sse` ends
/// cleanly (with its terminating chunk).
pub async fn assert_clean_stop(server: RunningServer, ws: &mut Ws, sse: &mut SseStream) {
    let live = server.state.stats.clone();
    let started = std::time::Instant::now();
    within("stop()", server.stop())
        .await
        .expect("serve returns Ok");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "stopped in {took:?}");
    assert_eq!(
        live.connections_live(),
        0,
        "stop returned with connections (an upgraded WebSocket?) still open"
    );
    let (code, _) = ws_close_frame(ws).await;
    assert_eq!(code, 1001, "going away");
    assert!(
        matches!(sse.next_block().await, Ok(None)),
        "the SSE body ends cleanly"
    );
}
