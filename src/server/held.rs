//! Held requests (an SSE stream, a long poll) served without hyper, for memory: an idle
//! subscriber's connection held a request open in hyper's HTTP/1 server for its whole life,
//! and with it two 8 KiB buffers hyper does not let go of (a write buffer allocated at
//! accept, and a read buffer it re-reserves while a request is in flight, to notice the
//! client leaving; `max_buf_size` cannot go below 8 KiB). Those two buffers were most of an
//! idle SSE or long-poll connection's memory (heaptrack), so a connection whose first
//! request is a held one is driven here instead: its head is read into a buffer sized for
//! it and dropped once parsed, the response is written from small buffers made per write,
//! and a 64-byte read notices a client leaving.
//!
//! Everything between the bytes and the handlers is unchanged: the request goes through the
//! same router (the edge's `guard`, the accounting, the handlers), and the response is
//! framed the way hyper frames it (status line, the handler's headers in order, then
//! `content-length` or `transfer-encoding: chunked`, then `date`; chunks with upper-case hex
//! sizes), so the bytes on the wire are the same as before, byte for byte (tests compare
//! them with the floor's and with the wire capture). Anything this path does not serve (a
//! request with a body, an upgrade, `Connection` or `Expect` headers, HTTP/1.0, a head over
//! 4 KiB, another route) is handed to hyper with the bytes read so far, for the rest of the
//! connection's life.

use std::convert::Infallible;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use bytes::{Buf, Bytes};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use crate::wake::Alarm;

/// The routes whose requests are held open, served here.
const HELD_PATHS: [&str; 2] = ["/sse", "/long-poll"];
/// The longest head served here; a longer one (a long URL, many headers) goes to hyper,
/// which answers it or refuses it (414, 431) as before.
const HEAD_LIMIT: usize = 4096;
/// Headers a held request may carry before it is hyper's (hyper allows 100).
const MAX_HEADERS: usize = 32;
/// Headers that make a request hyper's: a body, an upgrade, or connection handling this
/// path does not do.
const NOT_HELD_HEADERS: [HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::EXPECT,
    header::UPGRADE,
];
/// Bytes kept from a client that sends while its request is held (a pipelined request);
/// past this nothing more is read until the response is out, as hyper stops at its limit.
const PENDING_LIMIT: usize = HEAD_LIMIT;

/// How a connection left this path.
pub enum Outcome {
    /// It is over: closed by either side, or at shutdown.
    Closed,
    /// A request this path does not serve: hyper takes the connection, first reading
    /// these bytes (the part of the stream already read).
    HandOver(Bytes),
}

/// Whether a connection whose first bytes are `first` should start here: they begin (or,
/// when only a few have arrived, could begin) a `GET` of a held route. Only a hint: a
/// request that turns out otherwise is handed over.
pub fn starts_held(first: &[u8]) -> bool {
    HELD_PATHS.iter().any(|path| {
        let line = b"GET ".iter().chain(path.as_bytes());
        first.iter().zip(line).all(|(a, b)| a == b)
            && first.get(4 + path.len()).is_none_or(|c| b"? ".contains(c))
    })
}

/// Serves held requests on `io` until the connection ends or a request is not one for this
/// path. `call` routes a request (the connection's router, with its `ConnectInfo`);
/// `signal`'s receivers all dropped means the server is shutting down: the request in
/// flight finishes (its handler sees the shutdown too) and the connection closes.
pub async fn serve<S, C>(io: &mut S, call: C, signal: &watch::Sender<()>) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Fn(Request) -> RouteFuture<Infallible>,
{
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let head = tokio::select! {
            head = read_head(io, std::mem::take(&mut pending)) => head,
            // Between requests: nothing in flight to finish.
            _ = signal.closed() => return Outcome::Closed,
        };
        let (request, rest) = match head {
            Head::Closed => return Outcome::Closed,
            Head::NotOurs(bytes) => return Outcome::HandOver(bytes),
            Head::Held(request, rest) => (request, rest),
        };
        pending = rest;
        let response = tokio::select! {
            response = call(*request) => match response {
                Ok(response) => response,
                Err(never) => match never {},
            },
            // The client left while its request was held (a long poll): as hyper does,
            // drop the handler.
            () = watch_read(io, &mut pending) => return Outcome::Closed,
        };
        let close = response
            .headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if !write_response(io, response, &mut pending).await || close || signal.is_closed() {
            let _ = io.shutdown().await;
            return Outcome::Closed;
        }
    }
}

/// What the next head on the connection is.
enum Head {
    Closed,
    /// Not for this path: the bytes read so far, for hyper.
    NotOurs(Bytes),
    /// A held request, and any bytes read past its head.
    Held(Box<Request>, Vec<u8>),
}

/// Reads until a whole head is in `buffer` (which may already hold one) and parses it.
async fn read_head<S: AsyncRead + Unpin>(io: &mut S, mut buffer: Vec<u8>) -> Head {
    loop {
        if !buffer.is_empty() {
            match parse_head(&buffer) {
                Parsed::Partial if buffer.len() < HEAD_LIMIT => {}
                Parsed::Partial | Parsed::NotOurs => return Head::NotOurs(buffer.into()),
                Parsed::Held(request, length) => {
                    let rest = buffer.split_off(length);
                    return Head::Held(request, rest);
                }
            }
        }
        if buffer.capacity() == 0 {
            // Sized for the heads the lab's clients send (about 100-250 bytes); dropped
            // once parsed, so an idle connection keeps none of it.
            buffer.reserve(512);
        } else if buffer.len() == buffer.capacity() {
            buffer.reserve(buffer.len());
        }
        // The edge's deadlines apply here (header and idle timeouts end the read).
        match io.read_buf(&mut buffer).await {
            Ok(0) | Err(_) if buffer.is_empty() => return Head::Closed,
            // A client that stopped mid-head, or a deadline: hyper says why, if anything.
            Ok(0) | Err(_) => return Head::NotOurs(buffer.into()),
            Ok(_) => {}
        }
    }
}

enum Parsed {
    Partial,
    NotOurs,
    /// The request and its head's length.
    Held(Box<Request>, usize),
}

/// Parses a head with httparse (hyper's own parser); only a bodiless HTTP/1.1 GET of a held
/// route without `Connection`, `Expect` or `Upgrade` is served here.
fn parse_head(buffer: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let length = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::NotOurs,
    };
    let (Some("GET"), Some(target), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Parsed::NotOurs;
    };
    let path = target.split('?').next().unwrap_or_default();
    if !HELD_PATHS.contains(&path) {
        return Parsed::NotOurs;
    }
    let Ok(uri) = Uri::try_from(target) else {
        return Parsed::NotOurs;
    };
    let mut request = Request::new(Body::empty());
    // The edge leaves the response's body unwrapped: `write_response` keeps its parts.
    request.extensions_mut().insert(super::edge::Held);
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    let map = request.headers_mut();
    for field in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) else {
            return Parsed::NotOurs;
        };
        if NOT_HELD_HEADERS.contains(&name) {
            return Parsed::NotOurs;
        }
        map.append(name, value);
    }
    Parsed::Held(Box::new(request), length)
}

/// Completes when the client has closed its side (or the read fails); bytes it sends
/// meanwhile are kept in `pending`, up to a limit, after which this waits forever.
async fn watch_read<S: AsyncRead + Unpin>(io: &mut S, pending: &mut Vec<u8>) {
    std::future::poll_fn(|cx| poll_client_gone(io, pending, cx)).await
}

/// Writes `response` as hyper would; false when the connection must end (the client left,
/// a write failed, or the body failed: an SSE stream cut by the admin endpoint ends
/// without its last chunk, as hyper ends it).
async fn write_response<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    response: Response,
    pending: &mut Vec<u8>,
) -> bool {
    // `parts` is kept until the body is done: its extensions hold the edge's note that the
    // request is over (see `edge::Held`).
    let (parts, mut body) = response.into_parts();
    let framing = framing(&parts.headers, body.size_hint().exact());
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let mut out = response_head(&parts, framing, &date);
    // Set when the body last answered `Pending` to this task and nothing has run since that
    // could have taken its wake-up: the next wait need not ask the body again. Every poll
    // of a stream touches its boxed body and its subscription, so asking it once less per
    // event is CPU saved on every delivery.
    let mut asked = false;
    // The client's side is polled only when its socket rang this alarm: a streaming
    // response's task wakes for every event, and the client almost never sends. Made when
    // the body first waits, so a response written at once makes none.
    let mut alarm: Option<Alarm> = None;
    loop {
        let step = std::future::poll_fn(|cx| {
            if !std::mem::take(&mut asked) {
                // Everything the body has ready now goes out in one write, as hyper flushes.
                loop {
                    match Pin::new(&mut body).poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                encode(&mut out, framing, data);
                            }
                        }
                        Poll::Ready(Some(Err(_))) => return Poll::Ready(Step::Failed),
                        Poll::Ready(None) => {
                            if framing == Framing::Chunked {
                                out.extend_from_slice(b"0\r\n\r\n");
                            }
                            return Poll::Ready(Step::End);
                        }
                        Poll::Pending => break,
                    }
                }
                if !out.is_empty() {
                    return Poll::Ready(Step::Write);
                }
            }
            let alarm = alarm.get_or_insert_with(Alarm::new);
            if !alarm.rang(cx) {
                return Poll::Pending;
            }
            let mut quiet = Context::from_waker(alarm.waker());
            poll_client_gone(io, pending, &mut quiet).map(|()| Step::Gone)
        })
        .await;
        match step {
            Step::Write => {
                let (written, waited) = write_all(io, &out).await;
                if written.is_err() {
                    return false;
                }
                // Freed, not kept: an idle connection holds no write buffer.
                out = Vec::new();
                // Had the write waited, a wake-up meant for the body may have been spent on it.
                asked = !waited;
            }
            Step::End => return write_all(io, &out).await.0.is_ok(),
            Step::Failed => {
                let _ = write_all(io, &out).await;
                return false;
            }
            Step::Gone => return false,
        }
    }
}

/// What a response's writer does next.
enum Step {
    /// Frames are ready to go out.
    Write,
    /// The body ended: its last bytes are ready.
    End,
    /// The body failed: the connection ends without its last chunk.
    Failed,
    /// The client left.
    Gone,
}

/// Writes all of `bytes`; also says whether a write had to wait for the socket.
async fn write_all<S: AsyncWrite + Unpin>(io: &mut S, mut bytes: &[u8]) -> (io::Result<()>, bool) {
    let mut waited = false;
    let result = std::future::poll_fn(|cx| {
        while !bytes.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, bytes) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => bytes = &bytes[n..],
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    waited = true;
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    })
    .await;
    (result, waited)
}

/// Ready when the client has closed its side (or the read fails); bytes it sends meanwhile
/// are kept in `pending`, up to a limit, after which its side is no longer watched.
fn poll_client_gone<S: AsyncRead + Unpin>(
    io: &mut S,
    pending: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut chunk = [0u8; 64];
    while pending.len() < PENDING_LIMIT {
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut *io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
            Poll::Ready(Ok(())) => pending.extend_from_slice(buf.filled()),
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Pending
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `content-length`, written by the handler or (`Some`) added here.
    Length(Option<u64>),
    Chunked,
}

/// hyper's choice: the handler's own `content-length` stands; otherwise a body of known
/// length gets one, and any other body is chunked.
fn framing(headers: &axum::http::HeaderMap, exact: Option<u64>) -> Framing {
    if headers.contains_key(header::CONTENT_LENGTH) {
        Framing::Length(None)
    } else if let Some(length) = exact {
        Framing::Length(Some(length))
    } else {
        Framing::Chunked
    }
}

/// A response head as hyper 1.x writes it for HTTP/1.1: status line, the handler's headers
/// in order (lower-case names), the framing header hyper adds, then `date`.
fn response_head(parts: &axum::http::response::Parts, framing: Framing, date: &str) -> Vec<u8> {
    let status: StatusCode = parts.status;
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    head.extend_from_slice(b"\r\n");
    let mut dated = false;
    for (name, value) in &parts.headers {
        dated |= name == header::DATE;
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(Some(length)) => {
            head.extend_from_slice(format!("content-length: {length}\r\n").as_bytes())
        }
        Framing::Length(None) => {}
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if !dated {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(date.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Appends one body frame: a chunk (upper-case hex size, as hyper) or the bytes as they are.
fn encode(out: &mut Vec<u8>, framing: Framing, data: Bytes) {
    if data.is_empty() {
        return;
    }
    out.reserve(data.len() + 12);
    if framing == Framing::Chunked {
        // Written straight into `out`: no string per chunk.
        let _ = write!(out, "{:X}\r\n", data.len());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(&data);
    }
}

/// A connection handed to hyper: the bytes this path already read come first.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(inner: S, prefix: Bytes) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_routes_are_recognised_from_their_first_bytes() {
        assert!(starts_held(b"GET /sse?user=u HTTP/1.1\r\n"));
        assert!(starts_held(b"GET /long-poll?after=1 HTTP/1.1\r\n"));
        assert!(starts_held(b"GET /ss"), "too few bytes to tell: try");
        assert!(!starts_held(b"GET /sse2 HTTP/1.1"));
        assert!(!starts_held(b"GET /poll?x HTTP/1.1"));
        assert!(!starts_held(b"POST /sse HTTP/1.1"));
    }

    #[test]
    fn only_bodiless_http_1_1_gets_of_held_routes_are_served_here() {
        let ok = b"GET /sse?user=a HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\nGET";
        let Parsed::Held(request, length) = parse_head(ok) else {
            panic!("a plain SSE request is served here");
        };
        assert_eq!(length, ok.len() - 3);
        assert_eq!(request.uri(), "/sse?user=a");
        assert_eq!(request.headers()["accept"], "text/event-stream");
        assert!(matches!(
            parse_head(b"GET /sse HTTP/1.1\r\nho"),
            Parsed::Partial
        ));
        for other in [
            &b"GET /sse HTTP/1.0\r\n\r\n"[..],
            b"GET /poll HTTP/1.1\r\n\r\n",
            b"POST /sse HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            b"GET /sse HTTP/1.1\r\nconnection: close\r\n\r\n",
            b"GET /sse HTTP/1.1\r\nupgrade: websocket\r\n\r\n",
            b"GET /long-poll HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET /sse HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(other), Parsed::NotOurs),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn heads_are_framed_as_hyper_frames_them() {
        let (mut parts, ()) = Response::new(()).into_parts();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        parts
            .headers
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let date = "Thu, 26 Nov 2026 03:20:00 GMT";
        // pushlab's SSE head as hyper wrote it (the floor's `sse_head` copies it too).
        assert_eq!(
            String::from_utf8(response_head(&parts, Framing::Chunked, date)).unwrap(),
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
                 transfer-encoding: chunked\r\ndate: {date}\r\n\r\n"
            )
        );
        parts.status = StatusCode::GONE;
        parts.headers.clear();
        assert_eq!(
            response_head(&parts, Framing::Length(Some(12)), date),
            format!("HTTP/1.1 410 Gone\r\ncontent-length: 12\r\ndate: {date}\r\n\r\n").as_bytes()
        );
        let mut out = Vec::new();
        encode(
            &mut out,
            Framing::Chunked,
            Bytes::from_static(b"abcdefghijk"),
        );
        encode(&mut out, Framing::Chunked, Bytes::new());
        assert_eq!(out, b"B\r\nabcdefghijk\r\n");
    }
}
