//! The connection's edge, where the server meets clients that are slow, silent, gone or
//! hostile, before any route sees them:
//!
//! - deadlines: a head must be complete within `--header-timeout` (from accepting the
//!   connection, or from the first byte of a later request), a body within `--body-timeout`
//!   of its head, and a keep-alive connection may idle `--idle-timeout` between requests;
//!   while a request is being served (a long poll, an SSE stream) or after a WebSocket
//!   upgrade, no read deadline applies. Each timeout is counted in `/stats` by cause;
//! - hyper's own refusals (400 for an unparsable request line, header, Content-Length or
//!   Transfer-Encoding, 414, 431) carry no body, so [`EdgeStream`] writes a JSON one in their
//!   place, as it does for its own 408;
//! - request checks no route should have to repeat: `Host` on HTTP/1.1, a declared
//!   `Content-Length` over the limit (refused before `100 Continue`), and the `Origin` of
//!   WebSocket upgrades and admin requests.
//!
//! Deadlines are kept by the stream (hyper reads it whenever it waits for a head), and the
//! middleware [`guard`] tells it when a request starts and when its response is done.
//!
//! HTTP/2 (h2c with prior knowledge, recognised by its preface, or ALPN `h2` over `--tls`)
//! multiplexes requests, so there the deadlines follow the streams in flight: the header
//! timeout runs from accepting the connection to its first request, the idle timeout
//! whenever no request is in flight; a timeout closes the connection without a reply (an
//! HTTP/1.1 408 would be garbage in an HTTP/2 stream). hyper's HTTP/2 layer keeps its own
//! limits (concurrent streams, header list size, flow control). The body timeout applies per
//! request on both. On h2c the stream also hands every byte to the connection's frame books
//! (`h2.rs`), which book each stream's frames to its request's account.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::AppState;
use super::h2::H2Books;
use super::tls::Transport;
use crate::accounting::{ConnInfo, ConnMeter, Stats, Timeout};
use crate::http::body::TimedBody;
use crate::http::error::AppError;
use crate::http::h2frames::PREFACE;
use crate::model::ServerConfig;
use crate::model::stats::Account;

/// What one connection is doing, shared by its stream and the requests it carries.
pub struct Edge {
    stats: Arc<Stats>,
    header_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<EdgeState>,
}

struct EdgeState {
    phase: Phase,
    /// Counts the connection's requests, so a late "response done" of an earlier request
    /// cannot end a later one's `Busy`.
    generation: u64,
    /// The task last parked on this connection's read: woken when the deadline changes, so
    /// it re-arms its timer. Without it, a read that went pending while `Busy` (no deadline)
    /// slept on until some older timer fired, and an idle timeout shorter than the header
    /// timeout only took effect at the header deadline.
    reader: Option<std::task::Waker>,
    /// The connection speaks HTTP/2: requests overlap, so `active` rules, not `generation`.
    h2: bool,
    /// HTTP/2 requests in flight (their responses not done).
    active: u64,
}

#[derive(Clone, Copy)]
enum Phase {
    /// Waiting for a request's head until `deadline`; `started` once a byte of it arrived.
    Waiting {
        deadline: Instant,
        cause: Timeout,
        started: bool,
    },
    /// A request is being served: its handler decides how long that takes.
    Busy,
    /// A WebSocket: its session keeps its own liveness.
    Upgraded,
}

impl Edge {
    /// A newly accepted connection: its first head is due within the header timeout.
    pub fn new(stats: Arc<Stats>, config: &ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            stats,
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            state: Mutex::new(EdgeState {
                phase: Phase::Waiting {
                    deadline: Instant::now() + config.header_timeout,
                    cause: Timeout::HeaderRead,
                    started: false,
                },
                generation: 0,
                reader: None,
                h2: false,
                active: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EdgeState> {
        // The state is a few plain values, never left half-written: a poisoned lock's value
        // is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived: on an idle connection they start a head, which is now due within the
    /// header timeout.
    fn on_bytes(&self) {
        let mut state = self.lock();
        if state.h2 {
            // HTTP/2 bytes between requests (PING, WINDOW_UPDATE) start no head.
            return;
        }
        if let Phase::Waiting { cause, started, .. } = &mut state.phase {
            if *cause == Timeout::Idle {
                state.phase = Phase::Waiting {
                    deadline: Instant::now() + self.header_timeout,
                    cause: Timeout::HeaderRead,
                    started: true,
                };
            } else {
                *started = true;
            }
        }
    }

    /// Parks `waker` as the connection's reader (see `EdgeState::reader`) and returns the
    /// read deadline in force, if any: one lock for both, on every pending read.
    fn park(&self, waker: &std::task::Waker) -> Option<(Instant, Timeout, bool)> {
        let mut state = self.lock();
        match &state.reader {
            Some(parked) if parked.will_wake(waker) => {}
            _ => state.reader = Some(waker.clone()),
        }
        match state.phase {
            Phase::Waiting {
                deadline,
                cause,
                started,
            } => Some((deadline, cause, started)),
            Phase::Busy | Phase::Upgraded => None,
        }
    }

    /// A request reached the router; returns its generation.
    fn request_started(&self) -> u64 {
        let mut state = self.lock();
        state.generation += 1;
        state.active += 1;
        if !matches!(state.phase, Phase::Upgraded) {
            state.phase = Phase::Busy;
        }
        state.generation
    }

    /// The response of request `generation` is done: the connection idles until the next.
    fn response_done(&self, generation: u64) {
        let mut state = self.lock();
        state.active = state.active.saturating_sub(1);
        let last = if state.h2 {
            state.active == 0
        } else {
            state.generation == generation
        };
        if last && matches!(state.phase, Phase::Busy) {
            state.phase = Phase::Waiting {
                deadline: Instant::now() + self.idle_timeout,
                cause: Timeout::Idle,
                started: false,
            };
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
        }
    }

    fn upgraded(&self) {
        self.lock().phase = Phase::Upgraded;
    }

    /// The connection turned out to speak HTTP/2.
    fn set_h2(&self) {
        self.lock().h2 = true;
    }
}

/// A connection's handle for the router: its accounting and its edge.
#[derive(Clone)]
pub struct Conn {
    pub info: ConnInfo,
    pub edge: Arc<Edge>,
}

/// Bytes written in place of hyper's own response, and the length hyper asked to write.
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    reported: usize,
}

/// Which protocol a connection speaks, as far as the edge knows.
enum Protocol {
    /// Plain TCP, no byte read yet that rules out HTTP/2: `n` bytes of the preface seen.
    Sniffing(usize),
    /// HTTP/1.x (plain or over TLS).
    H1,
    /// h2c: every byte goes through the frame books.
    H2(Box<H2Books>),
    /// HTTP/2 over TLS: the socket's bytes are encrypted, so not split per stream (see
    /// `accounting::ConnMeter::tls_established`).
    H2Tls,
    /// A `--tls` connection before its handshake ends.
    Handshake,
}

/// The first bytes of a connection, peeked: as many as the HTTP/2 preface at most.
pub struct FirstBytes {
    bytes: [u8; PREFACE.len()],
    len: usize,
}

impl FirstBytes {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// An accepted connection: its byte count, its read deadlines, and hyper's bodiless
/// refusals rewritten with a JSON body.
pub struct EdgeStream {
    inner: Transport,
    meter: Arc<ConnMeter>,
    protocol: Protocol,
    edge: Arc<Edge>,
    sleep: Pin<Box<Sleep>>,
    /// The deadline `sleep` is set to.
    sleep_until: Option<Instant>,
    replacement: Option<Replacement>,
    /// Set once a deadline passed: later reads see the end of the stream.
    timed_out: bool,
    /// Set once the kernel's `TCP_USER_TIMEOUT` was counted for this connection.
    peer_timeout_counted: bool,
}

impl EdgeStream {
    pub fn new(inner: Transport, meter: Arc<ConnMeter>, edge: Arc<Edge>) -> Self {
        let protocol = if inner.is_plain() {
            Protocol::Sniffing(0)
        } else {
            meter.start_tls();
            Protocol::Handshake
        };
        Self {
            inner,
            meter,
            protocol,
            edge,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            sleep_until: None,
            replacement: None,
            timed_out: false,
            peer_timeout_counted: false,
        }
    }

    pub fn meter(&self) -> &Arc<ConnMeter> {
        &self.meter
    }

    /// A plain connection's first bytes, peeked (left in the socket, to be read and counted
    /// as usual), when they rule out the HTTP/2 preface: then it speaks HTTP/1 (see
    /// `conn.rs`), and they tell it which path to take. `None` when they cannot yet (a
    /// prefix of the preface: `P` could start either), for TLS (ALPN decides), and when
    /// nothing arrived within `wait`, the header timeout (the edge's own deadline then ends
    /// the connection, as for any silent one).
    pub async fn sniff_h1(&self, wait: Duration) -> Option<FirstBytes> {
        let Transport::Plain(counted) = &self.inner else {
            return None;
        };
        let mut first = FirstBytes {
            bytes: [0u8; PREFACE.len()],
            len: 0,
        };
        match tokio::time::timeout(wait, counted.get_ref().peek(&mut first.bytes)).await {
            Ok(Ok(n)) if n > 0 && first.bytes[..n] != PREFACE[..n] => {
                first.len = n;
                Some(first)
            }
            _ => None,
        }
    }

    /// Drives the TLS handshake, if one is pending, and books its end.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(self.inner.poll_handshake(cx)) {
            Ok(Some(h2)) => {
                self.meter.tls_established(h2);
                if h2 {
                    self.edge.set_h2();
                    self.protocol = Protocol::H2Tls;
                } else {
                    self.protocol = Protocol::H1;
                }
                Poll::Ready(Ok(()))
            }
            Ok(None) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    /// `bytes` were just read (and counted at the socket): recognise the HTTP/2 preface, and
    /// on h2c hand them to the frame books.
    fn on_read(&mut self, bytes: &[u8]) {
        match &mut self.protocol {
            Protocol::Sniffing(seen) => {
                let seen = *seen;
                let want = &PREFACE[seen..];
                let n = want.len().min(bytes.len());
                if bytes[..n] != want[..n] {
                    self.protocol = Protocol::H1;
                } else if seen + n < PREFACE.len() {
                    self.protocol = Protocol::Sniffing(seen + n);
                } else {
                    // The meter forgets the bytes read so far; the books count them again,
                    // from the start: all but these were the preface's first `seen` bytes.
                    self.meter.start_h2();
                    self.edge.set_h2();
                    let mut books = Box::new(H2Books::new(self.meter.clone()));
                    books.read(&PREFACE[..seen]);
                    books.read(bytes);
                    self.protocol = Protocol::H2(books);
                }
            }
            Protocol::H2(books) => books.read(bytes),
            _ => {}
        }
    }

    /// The first `n` bytes of `bufs` were written: on h2c, hand them to the frame books.
    fn on_written(&mut self, bufs: &[&[u8]], mut n: usize) {
        match &mut self.protocol {
            Protocol::H2(books) => {
                for buf in bufs {
                    let take = n.min(buf.len());
                    books.wrote(&buf[..take]);
                    n -= take;
                    if n == 0 {
                        break;
                    }
                }
            }
            // A response before the preface was complete: not HTTP/2.
            Protocol::Sniffing(_) => self.protocol = Protocol::H1,
            _ => {}
        }
    }

    /// Whether writes may be HTTP/1.x responses (to rewrite hyper's refusals).
    fn speaks_h1(&self) -> bool {
        matches!(self.protocol, Protocol::Sniffing(_) | Protocol::H1)
    }

    pub fn edge(&self) -> &Arc<Edge> {
        &self.edge
    }

    fn note_error(&mut self, error: &io::Error) {
        if crate::sys::is_peer_timeout(error) && !self.peer_timeout_counted {
            self.peer_timeout_counted = true;
            self.edge.stats.record_timeout(Timeout::UserTimeout);
        }
    }

    /// Writes the pending replacement; once it is all out, reports hyper's length.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(replacement) = &mut self.replacement else {
            return Poll::Ready(Ok(0));
        };
        while replacement.written < replacement.bytes.len() {
            let rest = &replacement.bytes[replacement.written..];
            match ready!(Pin::new(&mut self.inner).poll_write(cx, rest)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => replacement.written += n,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        let reported = replacement.reported;
        self.replacement = None;
        Poll::Ready(Ok(reported))
    }

    /// Starts replacing hyper's bodiless refusal `head` (whose write of `len` bytes is being
    /// asked for) with one carrying a JSON body. The refusal is booked to `other`.
    fn replace(&mut self, status: StatusCode, len: usize) {
        self.meter.attribute(Account::Other);
        self.replacement = Some(Replacement {
            bytes: json_response(status, protocol_message(status)),
            written: 0,
            reported: len,
        });
    }
}

impl AsyncRead for EdgeStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = match this.poll_handshake(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_read(cx, buf),
            other => other,
        };
        match poll {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.edge.on_bytes();
                    this.on_read(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => {
                this.note_error(&error);
                Poll::Ready(Err(error))
            }
            Poll::Pending => {
                let Some((deadline, cause, started)) = this.edge.park(cx.waker()) else {
                    return Poll::Pending;
                };
                if this.sleep_until != Some(deadline) {
                    this.sleep.as_mut().reset(deadline);
                    this.sleep_until = Some(deadline);
                }
                ready!(this.sleep.as_mut().poll(cx));
                this.timed_out = true;
                this.edge.stats.record_timeout(cause);
                if cause == Timeout::HeaderRead && started && this.speaks_h1() {
                    // Part of a head arrived: say why the connection ends. Best effort, as
                    // a client that stalls may not read either; the socket's buffer is
                    // empty here, so a short reply is normally taken whole.
                    this.meter.attribute(Account::Other);
                    let message = format!(
                        "the request's headers did not arrive within {:?}",
                        this.edge.header_timeout
                    );
                    let reply = json_response(StatusCode::REQUEST_TIMEOUT, &message);
                    let _ = Pin::new(&mut this.inner).poll_write(cx, &reply);
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, message)));
                }
                // A silent or idle connection: close it, as if the client had.
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for EdgeStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_handshake(cx))?;
        if this.replacement.is_none() && this.speaks_h1() {
            if let Some(status) = hyper_refusal(buf) {
                this.replace(status, buf.len());
            }
        }
        if this.replacement.is_some() {
            return this.poll_replacement(cx);
        }
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        match &poll {
            Poll::Ready(Ok(n)) => this.on_written(&[buf], *n),
            Poll::Ready(Err(error)) => this.note_error(error),
            Poll::Pending => {}
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_handshake(cx))?;
        if this.replacement.is_none() && this.speaks_h1() {
            let first = bufs.iter().find(|b| !b.is_empty());
            if let Some(status) = first.and_then(|b| hyper_refusal(b)) {
                this.replace(status, bufs.iter().map(|b| b.len()).sum());
            }
        }
        if this.replacement.is_some() {
            return this.poll_replacement(cx);
        }
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        match &poll {
            Poll::Ready(Ok(n)) => {
                let slices: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
                this.on_written(&slices, *n);
            }
            Poll::Ready(Err(error)) => this.note_error(error),
            Poll::Pending => {}
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The status of a response hyper wrote by itself for a request it could not parse: a 4xx
/// head with `content-length: 0` and nothing after it. Every refusal of the router has a
/// JSON body, so no response of ours looks like this.
fn hyper_refusal(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = StatusCode::from_bytes(rest.get(..3)?).ok()?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let empty = buf[..head_end]
        .to_ascii_lowercase()
        .windows(21)
        .any(|w| w == b"\r\ncontent-length: 0\r\n");
    (status.is_client_error() && empty && head_end == buf.len()).then_some(status)
}

fn protocol_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::URI_TOO_LONG => "the request's URI is too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "the request's headers are too many or too large"
        }
        _ => {
            "malformed request: its request line, a header, Content-Length or \
             Transfer-Encoding could not be parsed"
        }
    }
}

/// A whole response that closes the connection, with a JSON body `{"error": message}`.
fn json_response(status: StatusCode, message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": message }).to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Outermost middleware: tells the connection's [`Edge`] when a request starts and when its
/// response is done, hands handlers their `ConnInfo`, bounds the body's arrival, and refuses
/// what no route should see.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let conn = request
        .extensions()
        .get::<ConnectInfo<Conn>>()
        .map(|c| c.0.clone());
    // Ends the request for the edge when dropped: with the response body once it is out
    // (a held response's writer keeps it in the response's extensions instead), or here if
    // the request is dropped first (an HTTP/2 stream reset mid-request), so a
    // cancelled request cannot keep its connection "busy", free of deadlines, for good.
    let done = conn.as_ref().map(|conn| {
        request
            .extensions_mut()
            .insert(ConnectInfo(conn.info.clone()));
        RequestDone {
            generation: conn.edge.request_started(),
            edge: conn.edge.clone(),
        }
    });
    let request_version = request.version();
    let held = request.extensions().get::<Held>().is_some();
    let connect = request.method() == axum::http::Method::CONNECT;
    let response = match check(&request, &state.config) {
        Err(error) => {
            super::book(&request, Account::Other);
            error.into_response()
        }
        Ok(()) => {
            if !http_body::Body::is_end_stream(request.body()) {
                let stats = state.stats.clone();
                let timeout = state.config.body_timeout;
                request = request.map(|body| {
                    Body::new(TimedBody::new(
                        body,
                        timeout,
                        Box::new(move || stats.record_timeout(Timeout::BodyRead)),
                    ))
                });
            }
            next.run(request).await
        }
    };
    let mut response = response;
    let h2 = request_version >= Version::HTTP_2;
    if !h2
        && matches!(
            response.status(),
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        )
    {
        // Part of the body may still be on its way: end the connection rather than read it.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let (Some(conn), Some(done)) = (conn, done) else {
        return response;
    };
    // RFC 8441: over HTTP/2 a WebSocket is an extended CONNECT answered 200, its stream
    // the socket. Like an upgraded HTTP/1.1 connection, its connection then keeps no read
    // deadline: the WebSocket's pings watch it.
    let h2_websocket = h2 && connect && response.status().is_success();
    if response.status() == StatusCode::SWITCHING_PROTOCOLS || h2_websocket {
        conn.edge.upgraded();
        return response;
    }
    if held {
        // Its writer keeps the response's parts until the body is out: no wrapper on
        // every poll of the body.
        response
            .extensions_mut()
            .insert(WrittenWith(Arc::new(done)));
        return response;
    }
    response.map(|body| {
        Body::new(Tracked {
            inner: body,
            _done: done,
        })
    })
}

/// Marks a request served by `held`, whose writer holds the response's parts (and their
/// extensions) until the body is done or dropped, as hyper does not.
#[derive(Clone)]
pub struct Held;

/// The request's [`RequestDone`], in a held response's extensions: dropped with them.
#[derive(Clone)]
struct WrittenWith(#[allow(dead_code)] Arc<RequestDone>);

/// Refusals that do not depend on the route.
fn check(request: &Request, config: &ServerConfig) -> Result<(), AppError> {
    // RFC 9112, 3.2: a server must answer 400 to an HTTP/1.1 request without Host.
    if request.version() == Version::HTTP_11 && !request.headers().contains_key(header::HOST) {
        return Err(AppError::bad_request(
            "HTTP/1.1 requests must carry a Host header",
        ));
    }
    let limit = config.max_message_bytes();
    if let Some(length) = request.headers().get(header::CONTENT_LENGTH) {
        let declared = length.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body too large: Content-Length {} is over the limit of {limit} bytes",
                    declared.unwrap_or_default()
                ),
            ));
        }
    }
    let path = request.uri().path();
    if path == "/ws" || path.starts_with("/admin/") {
        check_origin(request, config)?;
    }
    Ok(())
}

/// A browser sends `Origin` with WebSocket handshakes and cross-site POSTs: only the server's
/// own origin and `--allowed-origin` ones may open a WebSocket (and publish as any `?user=`)
/// or use the admin endpoint. Requests without `Origin` (not from a browser page) pass.
fn check_origin(request: &Request, config: &ServerConfig) -> Result<(), AppError> {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    // HTTP/2 names the host in `:authority` (the URI), not in a Host header.
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let own = host.is_some_and(|host| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    });
    let allowed = config
        .allowed_origins
        .iter()
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin));
    if own || allowed {
        return Ok(());
    }
    Err(AppError::new(
        StatusCode::FORBIDDEN,
        format!(
            "origin {origin:?} may not use {}; allow it with --allowed-origin",
            request.uri().path()
        ),
    ))
}

/// A response body that tells the connection's [`Edge`] when it is done (dropped, with the
/// [`RequestDone`] it holds), so the idle timeout starts only once the response is out: an
/// SSE stream or a slow long poll is never "idle".
struct Tracked {
    inner: Body,
    _done: RequestDone,
}

/// One request in flight on a connection: dropping it tells the edge the request is over.
struct RequestDone {
    edge: Arc<Edge>,
    generation: u64,
}

impl Drop for RequestDone {
    fn drop(&mut self) {
        self.edge.response_done(self.generation);
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::hyper_refusal;

    #[test]
    fn only_bodiless_client_errors_count_as_hyper_refusals() {
        let hyper =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(
            hyper_refusal(hyper),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n";
        assert_eq!(hyper_refusal(ours), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_refusal(ok), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nx";
        assert_eq!(hyper_refusal(with_body), None);
        assert_eq!(hyper_refusal(b"{\"id\":1}"), None);
    }
}
