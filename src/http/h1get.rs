//! The polling clients' HTTP/1.1 keep-alive connection, written by hand over the counted
//! socket: one `GET` at a time, the whole answer read before the next. hyper's client runs
//! each connection as a task of its own and hands every request, response and body chunk
//! across channels to it, which cost the load generator more CPU per poll than the server
//! spent answering it (`pushlab-loadgen bench polls`); here the polling task writes the
//! request and reads the answer itself, with no task, channel or header map in between.
//!
//! It writes the very bytes hyper's client wrote (`GET PATH HTTP/1.1`, `host:`, blank line)
//! and reads answers framed by `content-length`, chunked or by the connection's close, so the
//! bytes on the wire, and their count at the socket, are unchanged.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::client::ClientError;
use crate::model::Target;
use crate::net::{ByteMeter, CountingStream};

/// The most header lines an answer may carry (pushlab-server sends four).
const MAX_HEADERS: usize = 32;

/// How much room a read is given at least.
const READ_CHUNK: usize = 8 * 1024;

/// One keep-alive connection that only sends `GET`s.
pub struct GetConnection {
    stream: CountingStream<TcpStream, ByteMeter>,
    /// The `host:` header's value, `IP:PORT`.
    host: String,
    /// The request being written, kept to be refilled rather than reallocated.
    request: Vec<u8>,
    /// Bytes read from the socket: the answer being parsed, then its body.
    read: Vec<u8>,
    /// Where the body lies in `read` once an answer is complete.
    body: std::ops::Range<usize>,
    /// Set once the connection can carry no further request: the server closed it or said
    /// `connection: close`, an answer was malformed or cut off, or an exchange was dropped
    /// midway (its answer would be read as the next one's).
    spent: bool,
    /// Set while an exchange is under way; still set on the next call means it was dropped.
    busy: bool,
}

/// How an answer's body is framed.
enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

impl GetConnection {
    /// A connection over a counted stream already connected to `target` (HTTP/1.1 needs no
    /// handshake: nothing is sent until the first request).
    pub fn over(stream: CountingStream<TcpStream, ByteMeter>, target: &Target) -> Self {
        Self {
            stream,
            host: target.host(),
            request: Vec::with_capacity(128),
            read: Vec::with_capacity(READ_CHUNK),
            body: 0..0,
            spent: false,
            busy: false,
        }
    }

    /// Whether another request may be sent: the server has not closed the connection (nor
    /// sent anything unasked), as hyper's connection task would have noticed. Looks at the
    /// socket without waiting.
    pub fn is_open(&mut self) -> bool {
        if self.spent || self.busy {
            return false;
        }
        self.read.clear();
        self.read.reserve(READ_CHUNK);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let spare = self.read.spare_capacity_mut();
        let mut buf = ReadBuf::uninit(spare);
        match Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf) {
            Poll::Pending => true,
            // End of stream, an error, or bytes no request asked for: the connection is done.
            Poll::Ready(_) => {
                self.spent = true;
                false
            }
        }
    }

    /// Resolves when the idle connection ends: the server closes it (or sends something
    /// unasked), or a client-side fault severs it. Awaited between polls, as hyper's
    /// connection task read while idle, so the close is answered (and a cut acted on) at
    /// once rather than at the next poll. Never resolves on a connection already spent.
    pub async fn closed(&mut self) {
        if self.spent || self.busy {
            return std::future::pending().await;
        }
        self.read.clear();
        self.read.reserve(READ_CHUNK);
        std::future::poll_fn(|cx| {
            let spare = self.read.spare_capacity_mut();
            let mut buf = ReadBuf::uninit(spare);
            Pin::new(&mut self.stream)
                .poll_read(cx, &mut buf)
                .map(|_| ())
        })
        .await;
        self.spent = true;
    }

    /// `GET path_and_query`, returning the body; non-2xx statuses are errors carrying the
    /// body, as [`super::client::HttpConnection::get`] gives them.
    pub async fn get(&mut self, path_and_query: &str) -> Result<&[u8], ClientError> {
        if self.spent || self.busy {
            return Err(ClientError::Protocol("the connection is closed".into()));
        }
        self.busy = true;
        self.request.clear();
        self.request.extend_from_slice(b"GET ");
        self.request.extend_from_slice(path_and_query.as_bytes());
        self.request.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        self.request.extend_from_slice(self.host.as_bytes());
        self.request.extend_from_slice(b"\r\n\r\n");
        let result = self.exchange().await;
        self.busy = false;
        if result.is_err() {
            self.spent = true;
        }
        let status = result?;
        let body = &self.read[self.body.clone()];
        if !status.is_success() {
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(body).into_owned(),
            });
        }
        Ok(body)
    }

    /// Writes the request and reads a whole answer into `read`, its body at `body`.
    async fn exchange(&mut self) -> Result<StatusCode, ClientError> {
        self.stream.write_all(&self.request).await?;
        self.read.clear();
        let (status, framing, head) = loop {
            if let Some(head) = self.parse_head()? {
                let (status, ..) = head;
                // Interim answers (100 Continue and the like) precede the real one.
                if status.is_informational() {
                    self.read.drain(..head.2);
                    continue;
                }
                break head;
            }
            if self.fill().await? == 0 {
                return Err(cut_off("the answer's head"));
            }
        };
        match framing {
            Framing::Length(length) => {
                while self.read.len() < head + length {
                    if self.fill().await? == 0 {
                        return Err(cut_off("the answer's body"));
                    }
                }
                if self.read.len() > head + length {
                    return Err(ClientError::Protocol(
                        "the server sent more than the answer".into(),
                    ));
                }
                self.body = head..head + length;
            }
            Framing::Chunked => self.dechunk(head).await?,
            Framing::Close => {
                while self.fill().await? > 0 {}
                self.spent = true;
                self.body = head..self.read.len();
            }
        }
        Ok(status)
    }

    /// Reads more of the answer; `Ok(0)` at the end of the stream.
    async fn fill(&mut self) -> Result<usize, ClientError> {
        if self.read.capacity() - self.read.len() < READ_CHUNK / 2 {
            self.read.reserve(READ_CHUNK);
        }
        Ok(self.stream.read_buf(&mut self.read).await?)
    }

    /// The status, the body's framing and the head's length, once the head is all in.
    fn parse_head(&mut self) -> Result<Option<(StatusCode, Framing, usize)>, ClientError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(&self.read) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(error) => return Err(ClientError::Protocol(format!("the answer's head: {error}"))),
        };
        let status = StatusCode::from_u16(response.code.unwrap_or(0))
            .map_err(|_| ClientError::Protocol("the answer's status".into()))?;
        // HTTP/1.0 closes after each answer unless asked otherwise; pushlab-server speaks 1.1.
        let mut close = response.version != Some(1);
        let mut framing = Framing::Close;
        for header in response.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                let length = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| ClientError::Protocol("the answer's content-length".into()))?;
                if !matches!(framing, Framing::Chunked) {
                    framing = Framing::Length(length);
                }
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                if ends_with_chunked(header.value) {
                    framing = Framing::Chunked;
                }
            } else if header.name.eq_ignore_ascii_case("connection") {
                close |= has_token(header.value, b"close");
            }
        }
        // Answers that never carry a body (RFC 9112, section 6.3).
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            framing = Framing::Length(0);
        }
        if close {
            self.spent = true;
        }
        Ok(Some((status, framing, head)))
    }

    /// Decodes a chunked body in place: `read[head..]` becomes the body, the body's range is
    /// set. Trailers are read and dropped.
    async fn dechunk(&mut self, head: usize) -> Result<(), ClientError> {
        // `at` is where the next chunk's size line starts; `end` where the decoded body ends.
        let (mut at, mut end) = (head, head);
        loop {
            let line = loop {
                if let Some(n) = find_crlf(&self.read[at..]) {
                    break n;
                }
                if self.fill().await? == 0 {
                    return Err(cut_off("a chunk's size"));
                }
            };
            let size_text = &self.read[at..at + line];
            let size_text = size_text.split(|b| *b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|t| usize::from_str_radix(t.trim(), 16).ok())
                .ok_or_else(|| ClientError::Protocol("a chunk's size".into()))?;
            let data = at + line + 2;
            if size == 0 {
                // Trailer lines up to the blank line that ends the body.
                let mut at = data;
                loop {
                    match find_crlf(&self.read[at..]) {
                        Some(0) => {
                            at += 2;
                            break;
                        }
                        Some(n) => at += n + 2,
                        None => {
                            if self.fill().await? == 0 {
                                return Err(cut_off("the chunked body's end"));
                            }
                        }
                    }
                }
                if self.read.len() > at {
                    return Err(ClientError::Protocol(
                        "the server sent more than the answer".into(),
                    ));
                }
                self.body = head..end;
                return Ok(());
            }
            while self.read.len() < data + size + 2 {
                if self.fill().await? == 0 {
                    return Err(cut_off("a chunk"));
                }
            }
            if &self.read[data + size..data + size + 2] != b"\r\n" {
                return Err(ClientError::Protocol("a chunk's end".into()));
            }
            self.read.copy_within(data..data + size, end);
            end += size;
            at = data + size + 2;
        }
    }
}

fn cut_off(what: &str) -> ClientError {
    ClientError::Protocol(format!("the connection closed in {what}"))
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether the last transfer coding is `chunked`, which frames the body.
fn ends_with_chunked(value: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .next_back()
        .is_some_and(|part| part.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ByteMeter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that reads one request per answer in `answers` and writes the answer, then
    /// closes; returns the requests it read.
    async fn serve(answers: Vec<&'static [u8]>) -> (Target, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target {
            addr: listener.local_addr().unwrap(),
        };
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut requests = Vec::new();
            for answer in answers {
                let mut request = Vec::new();
                while !request.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if socket.read(&mut byte).await.unwrap() == 0 {
                        return requests;
                    }
                    request.push(byte[0]);
                }
                requests.push(String::from_utf8(request).unwrap());
                // Written in two parts, so the client has to read more than once.
                let (first, rest) = answer.split_at(answer.len() / 2);
                socket.write_all(first).await.unwrap();
                socket.flush().await.unwrap();
                tokio::task::yield_now().await;
                socket.write_all(rest).await.unwrap();
            }
            requests
        });
        (target, task)
    }

    async fn connect(target: &Target, meter: &std::sync::Arc<ByteMeter>) -> GetConnection {
        let stream = TcpStream::connect(target.addr).await.unwrap();
        GetConnection::over(CountingStream::tcp(stream, meter.clone()), target)
    }

    /// Waits (up to a safety net) until the connection sees the server's close.
    async fn closed(connection: &mut GetConnection) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while connection.is_open() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        true
    }

    #[tokio::test]
    async fn sends_hypers_bytes_and_reads_each_framing() {
        let sized: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        let chunked: &[u8] =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nt: 1\r\n\r\n";
        let gone: &[u8] = b"HTTP/1.1 410 Gone\r\ncontent-length: 8\r\n\r\n{\"a\":1}\n";
        let (target, server) = serve(vec![sized, chunked, gone]).await;
        let meter = ByteMeter::new();
        let mut connection = connect(&target, &meter).await;
        assert!(connection.is_open());
        assert_eq!(connection.get("/poll?user=u").await.unwrap(), b"hello");
        assert!(connection.is_open());
        assert_eq!(connection.get("/poll?after=1").await.unwrap(), b"abcde");
        match connection.get("/x").await {
            Err(ClientError::Status { status, body }) => {
                assert_eq!(status, StatusCode::GONE);
                assert_eq!(body, "{\"a\":1}\n");
            }
            other => panic!("expected a 410, got {:?}", other.map(|b| b.to_vec())),
        }
        let requests = server.await.unwrap();
        let host = target.host();
        assert_eq!(
            requests,
            [
                format!("GET /poll?user=u HTTP/1.1\r\nhost: {host}\r\n\r\n"),
                format!("GET /poll?after=1 HTTP/1.1\r\nhost: {host}\r\n\r\n"),
                format!("GET /x HTTP/1.1\r\nhost: {host}\r\n\r\n"),
            ]
        );
        // Every byte both ways is counted at the socket.
        let up: usize = requests.iter().map(|r| r.len()).sum();
        let down = sized.len() + chunked.len() + gone.len();
        assert_eq!(meter.totals(), (up as u64, down as u64));
        assert!(closed(&mut connection).await);
    }

    #[tokio::test]
    async fn connection_close_and_a_cut_off_answer_end_the_connection() {
        let closing: &[u8] = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
        let (target, _server) = serve(vec![closing]).await;
        let meter = ByteMeter::new();
        let mut connection = connect(&target, &meter).await;
        assert_eq!(connection.get("/a").await.unwrap(), b"ok");
        assert!(!connection.is_open(), "the server said close");

        let short: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
        let (target, _server) = serve(vec![short]).await;
        let mut connection = connect(&target, &meter).await;
        let error = connection.get("/a").await.unwrap_err();
        assert!(
            error.to_string().contains("closed in the answer's body"),
            "{error}"
        );
        assert!(!connection.is_open());
    }
}
