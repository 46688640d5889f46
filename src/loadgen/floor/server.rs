//! The floor server: a bare tokio server with no axum and no hyper. It accepts, reads a
//! request head, and answers `POST /comments`, `GET /stats`, `GET /sse` and `GET /ws` with
//! the very bytes `pushlab-server` writes for the same comments (response heads, SSE events
//! in HTTP/1.1 chunks, WebSocket 101 and text frames); each comment is rendered once and
//! fanned out from one `tokio::sync::broadcast` with a plain `write_all` per connection.
//! What is left out is what pushlab adds on top of the bare fan-out: history and resume
//! (a subscriber gets the comments published after it connected), heartbeats, pings,
//! stall and drop handling, HTTP/2. It exists to be measured against, in the same cell.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use crate::feed::{Draft, now_micros};
use crate::model::Technique;
use crate::model::stats::{Account, Counters, FeedInfo, StatsSnapshot};

/// What the floor takes from the server's flags: what shapes the bytes it writes.
#[derive(Debug, Clone, Copy)]
pub struct FloorConfig {
    /// The `retry:` hint of the SSE connect event (`--sse-retry`).
    pub sse_retry: Duration,
    /// Comments a connection may fall behind before it is closed (`--subscriber-queue`).
    pub queue: usize,
}

impl From<&crate::model::ServerConfig> for FloorConfig {
    fn from(config: &crate::model::ServerConfig) -> Self {
        Self {
            sse_retry: config.sse_retry,
            queue: config.subscriber_queue.max(1),
        }
    }
}

/// One comment, rendered once for every connection.
struct Rendered {
    /// The recipient; `None` for everyone.
    to: Option<String>,
    /// The SSE event in its HTTP/1.1 chunk, as hyper frames it.
    sse: Bytes,
    /// The WebSocket text frame.
    ws: Bytes,
}

/// Everything the connections share.
struct State {
    config: FloorConfig,
    started: Instant,
    started_at_us: u64,
    /// The ids start here (exclusive), as pushlab's memory feed numbers them.
    base: u64,
    last_id: AtomicU64,
    /// Held while an id is taken and its comment sent, so the broadcast is in id order.
    publish: Mutex<()>,
    sender: broadcast::Sender<Arc<Rendered>>,
    counters: [Counters; Account::COUNT],
    published: AtomicU64,
    live: AtomicU64,
}

impl State {
    fn new(config: FloorConfig) -> Self {
        let base = now_micros();
        let (sender, _) = broadcast::channel(config.queue);
        Self {
            config,
            started: Instant::now(),
            started_at_us: base,
            base,
            last_id: AtomicU64::new(base),
            publish: Mutex::new(()),
            sender,
            counters: std::array::from_fn(|_| Counters::default()),
            published: AtomicU64::new(0),
            live: AtomicU64::new(0),
        }
    }

    fn counters(&self, account: Account) -> &Counters {
        &self.counters[account.index()]
    }

    fn publish(&self, from: String, to: Option<String>, text: String) -> u64 {
        let _order = self.publish.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.last_id.load(Ordering::Relaxed) + 1;
        let draft = Draft {
            from,
            to,
            text,
            published_at_us: now_micros(),
        };
        let stored = draft.with_id(id);
        let rendered = Rendered {
            sse: sse_chunk(&comment_event(id, &stored.json)),
            ws: ws_text_frame(stored.json.as_bytes()),
            to: stored.comment.to,
        };
        // No receiver is not an error: nobody is subscribed yet.
        let _ = self.sender.send(Arc::new(rendered));
        self.last_id.store(id, Ordering::Relaxed);
        self.published.fetch_add(1, Ordering::Relaxed);
        id
    }

    fn snapshot(&self) -> StatsSnapshot {
        let last_id = self.last_id.load(Ordering::Relaxed);
        StatsSnapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            comments_published: self.published.load(Ordering::Relaxed),
            connections_live: self.live.load(Ordering::Relaxed),
            accounts: Account::ALL
                .iter()
                .map(|a| (a.name().to_string(), self.counters(*a).snapshot()))
                .collect(),
            process: crate::accounting::process_stats(),
            started_at_us: self.started_at_us,
            feed: FeedInfo {
                incarnation: self.base,
                started_at_us: self.started_at_us,
                first_id: self.base + 1,
                last_id,
            },
            ..StatsSnapshot::default()
        }
    }
}

/// Serves the floor on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: FloorConfig) -> std::io::Result<()> {
    let state = Arc::new(State::new(config));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, say: wait for some to be freed, as pushlab does.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // pushlab's listener sets it too: the same segments on the wire.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            state.live.fetch_add(1, Ordering::Relaxed);
            let mut connection = Connection::new(stream, state.clone());
            connection.run().await;
            connection.close();
            state.live.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The largest request head or body the floor reads.
const MAX_REQUEST: usize = 1 << 20;

/// A parsed request head.
struct Head {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    /// Its length in the read buffer.
    len: usize,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
    }

    fn parse(buffer: &[u8]) -> Option<Head> {
        let end = buffer.windows(4).position(|w| w == b"\r\n\r\n")?;
        let text = String::from_utf8_lossy(&buffer[..end]);
        let mut lines = text.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let method = first.next()?.to_string();
        let target = first.next()?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some(Head {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers,
            len: end + 4,
        })
    }
}

/// One accepted connection and where its bytes are booked, by pushlab's rules: to the
/// account of the request being served.
struct Connection {
    stream: TcpStream,
    state: Arc<State>,
    buffer: Vec<u8>,
    /// The account of the latest request (whose `connections_open` counts this one).
    account: Option<Account>,
    served: [bool; Account::COUNT],
    /// Bytes read and not yet booked (a head being read belongs to its request).
    unbooked_in: u64,
}

impl Connection {
    fn new(stream: TcpStream, state: Arc<State>) -> Self {
        Self {
            stream,
            state,
            buffer: Vec::with_capacity(1024),
            account: None,
            served: [false; Account::COUNT],
            unbooked_in: 0,
        }
    }

    /// Books the request about to be served, and the bytes its head came in.
    fn enter(&mut self, account: Account) {
        let counters = self.state.counters(account);
        if self.account != Some(account) {
            if let Some(old) = self.account {
                self.state
                    .counters(old)
                    .connections_open
                    .fetch_sub(1, Ordering::Relaxed);
            }
            counters.connections_open.fetch_add(1, Ordering::Relaxed);
            self.account = Some(account);
        }
        if !self.served[account.index()] {
            self.served[account.index()] = true;
            counters.connections_opened.fetch_add(1, Ordering::Relaxed);
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        self.book_in();
    }

    fn book_in(&mut self) {
        let account = self.account.unwrap_or(Account::Other);
        self.state
            .counters(account)
            .bytes_in
            .fetch_add(std::mem::take(&mut self.unbooked_in), Ordering::Relaxed);
    }

    fn close(&mut self) {
        self.book_in();
        if let Some(account) = self.account {
            self.state
                .counters(account)
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Reads more into the buffer; false at the end of the stream or an error.
    async fn read_more(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.unbooked_in += n as u64;
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        let account = self.account.unwrap_or(Account::Other);
        self.state
            .counters(account)
            .bytes_out
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Serves requests until the connection ends or turns into a stream.
    async fn run(&mut self) {
        loop {
            let head = loop {
                if let Some(head) = Head::parse(&self.buffer) {
                    break head;
                }
                if self.buffer.len() > MAX_REQUEST || !self.read_more().await {
                    return;
                }
            };
            let served = match (head.method.as_str(), head.path.as_str()) {
                ("GET", "/sse") => {
                    self.enter(Account::Technique(Technique::Sse));
                    self.buffer.drain(..head.len);
                    self.sse(&head).await;
                    return;
                }
                ("GET", "/ws") => {
                    self.enter(Account::Technique(Technique::WebSocket));
                    self.buffer.drain(..head.len);
                    self.websocket(&head).await;
                    return;
                }
                ("POST", "/comments") => {
                    self.enter(Account::Publish);
                    self.publish(&head).await
                }
                ("GET", "/stats") => {
                    self.enter(Account::Other);
                    self.buffer.drain(..head.len);
                    let body = serde_json::to_string(&self.state.snapshot())
                        .expect("stats always serialise");
                    self.respond("200 OK", &body).await
                }
                _ => {
                    self.enter(Account::Other);
                    self.buffer.drain(..head.len);
                    let body = serde_json::json!({ "error": format!(
                        "the floor server serves POST /comments, GET /stats, /sse and /ws, not {} {}",
                        head.method, head.path
                    ) });
                    self.respond("404 Not Found", &body.to_string()).await
                }
            };
            if served.is_err() {
                return;
            }
        }
    }

    async fn respond(&mut self, status: &str, body: &str) -> std::io::Result<()> {
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\ndate: {}\r\n\r\n{body}",
            body.len(),
            http_date()
        );
        self.write(response.as_bytes()).await
    }

    async fn publish(&mut self, head: &Head) -> std::io::Result<()> {
        let length: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if length > MAX_REQUEST {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        while self.buffer.len() < head.len + length {
            if !self.read_more().await {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        self.book_in();
        let body: Vec<u8> = self
            .buffer
            .drain(..head.len + length)
            .skip(head.len)
            .collect();
        #[derive(Deserialize)]
        struct Publish {
            from: String,
            #[serde(default)]
            to: Option<String>,
            text: String,
        }
        match serde_json::from_slice::<Publish>(&body) {
            Ok(p) => {
                let id = self.state.publish(p.from, p.to, p.text);
                self.state
                    .counters(Account::Publish)
                    .comments_published
                    .fetch_add(1, Ordering::Relaxed);
                self.respond("201 Created", &format!("{{\"id\":{id}}}"))
                    .await
            }
            Err(error) => {
                let body = serde_json::json!({ "error": format!("the comment: {error}") });
                self.respond("400 Bad Request", &body.to_string()).await
            }
        }
    }

    /// The cursor the subscriber starts after, as pushlab names it in its first event.
    fn cursor(&self, head: &Head) -> u64 {
        head.header("last-event-id")
            .and_then(|v| v.parse().ok())
            .or_else(|| head.param("after").and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| self.state.last_id.load(Ordering::Relaxed))
    }

    async fn sse(&mut self, head: &Head) {
        let user = head.param("user");
        // Subscribed before the first byte goes out, so nothing published after the
        // connect event can be missed.
        let receiver = self.state.sender.subscribe();
        let cursor = self.cursor(head);
        let mut first = sse_head(&http_date()).into_bytes();
        first.extend_from_slice(&sse_chunk(&connect_event(
            cursor,
            self.state.config.sse_retry,
            user.as_deref(),
        )));
        if self.write(&first).await.is_err() {
            return;
        }
        self.fan_out(receiver, user, |r| &r.sse, |_, _| None).await;
    }

    async fn websocket(&mut self, head: &Head) {
        let Some(key) = head.header("sec-websocket-key").map(str::to_string) else {
            let _ = self
                .respond(
                    "400 Bad Request",
                    "{\"error\":\"a WebSocket upgrade needs Sec-WebSocket-Key\"}",
                )
                .await;
            return;
        };
        let user = head.param("user");
        let receiver = self.state.sender.subscribe();
        let cursor = self.cursor(head);
        let mut first = ws_head(&key, &http_date()).into_bytes();
        first.extend_from_slice(&ws_text_frame(hello(cursor, user.as_deref()).as_bytes()));
        if self.write(&first).await.is_err() {
            return;
        }
        self.fan_out(receiver, user, |r| &r.ws, close_reply).await;
    }

    /// Writes each comment meant for `user` as it comes; reads what the client sends (to
    /// count it and see it go) and answers it with what `reply` makes of it; ends when the
    /// client does or falls a whole queue behind.
    async fn fan_out(
        &mut self,
        mut receiver: broadcast::Receiver<Arc<Rendered>>,
        user: Option<String>,
        bytes: fn(&Rendered) -> &Bytes,
        reply: fn(&mut Vec<u8>, &mut bool) -> Option<Vec<u8>>,
    ) {
        let account = self.account.expect("entered before streaming");
        let mut closing = false;
        loop {
            let mut chunk = [0u8; 1024];
            tokio::select! {
                next = receiver.recv() => match next {
                    Ok(comment) => {
                        let wanted = match (&comment.to, &user) {
                            (None, _) => true,
                            (Some(to), Some(user)) => to == user,
                            (Some(_), None) => false,
                        };
                        if wanted {
                            if self.write(bytes(&comment)).await.is_err() {
                                return;
                            }
                            self.state.counters(account).comments_delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.state.counters(account).dropped_slow.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                read = self.stream.read(&mut chunk) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        self.unbooked_in += n as u64;
                        self.book_in();
                        self.buffer.extend_from_slice(&chunk[..n]);
                        if let Some(answer) = reply(&mut self.buffer, &mut closing) {
                            if self.write(&answer).await.is_err() {
                                return;
                            }
                        }
                        if closing {
                            return;
                        }
                    }
                },
            }
        }
    }
}

/// Reads the client's WebSocket frames from `buffer` (masked, RFC 6455); on a close frame,
/// the close reply tungstenite sends (the same code and reason, unmasked), and `closing`.
fn close_reply(buffer: &mut Vec<u8>, closing: &mut bool) -> Option<Vec<u8>> {
    loop {
        if buffer.len() < 2 {
            return None;
        }
        let opcode = buffer[0] & 0x0F;
        let (len, mut at) = match buffer[1] & 0x7F {
            126 if buffer.len() >= 4 => (u16::from_be_bytes([buffer[2], buffer[3]]) as usize, 4),
            127 if buffer.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&buffer[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        let masked = buffer[1] & 0x80 != 0;
        let mask_at = at;
        if masked {
            at += 4;
        }
        if buffer.len() < at + len {
            return None;
        }
        let mut payload: Vec<u8> = buffer[at..at + len].to_vec();
        if masked {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= buffer[mask_at + i % 4];
            }
        }
        buffer.drain(..at + len);
        if opcode == 0x8 {
            *closing = true;
            let mut frame = vec![0x88, payload.len() as u8];
            frame.extend_from_slice(&payload);
            return Some(frame);
        }
    }
}

/// The date header's value, as hyper writes it.
fn http_date() -> String {
    httpdate::fmt_http_date(SystemTime::now())
}

/// pushlab's SSE response head (axum's `Sse` through hyper's HTTP/1.1 encoder).
pub fn sse_head(date: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\ndate: {date}\r\n\r\n"
    )
}

/// pushlab's WebSocket 101 response head for the client's `key`.
pub fn ws_head(key: &str, date: &str) -> String {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: {accept}\r\ndate: {date}\r\n\r\n"
    )
}

/// The SSE connect event pushlab sends first: the cursor as its id, the retry hint.
pub fn connect_event(cursor: u64, retry: Duration, user: Option<&str>) -> String {
    let data = serde_json::json!({ "user": user, "after": cursor });
    format!(
        "id: {cursor}\nevent: connect\nretry: {}\ndata: {data}\n\n",
        retry.as_millis()
    )
}

/// The SSE event of one comment.
pub fn comment_event(id: u64, json: &str) -> String {
    format!("id: {id}\nevent: comment\ndata: {json}\n\n")
}

/// The WebSocket's first frame's text, naming the cursor.
pub fn hello(cursor: u64, user: Option<&str>) -> String {
    serde_json::json!({ "connected": { "user": user, "after": cursor } }).to_string()
}

/// `event` as one HTTP/1.1 chunk, framed as hyper frames it (upper-case hex length).
pub fn sse_chunk(event: &str) -> Bytes {
    Bytes::from(format!("{:X}\r\n{event}\r\n", event.len()))
}

/// An unmasked WebSocket text frame (server to client), FIN set.
pub fn ws_text_frame(payload: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= 0xFFFF => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_length_rfc_6455_asks_for() {
        assert_eq!(&ws_text_frame(b"hi")[..], b"\x81\x02hi");
        let long = vec![b'x'; 300];
        assert_eq!(&ws_text_frame(&long)[..4], &[0x81, 126, 1, 44]);
        assert_eq!(&sse_chunk("abcdefghijk")[..], b"B\r\nabcdefghijk\r\n");
    }

    #[test]
    fn a_masked_close_is_answered_with_its_code_and_data_frames_are_skipped() {
        let mask = [1u8, 2, 3, 4];
        let mut buffer = vec![0x81, 0x82];
        buffer.extend_from_slice(&mask);
        buffer.extend([b'h' ^ 1, b'i' ^ 2]);
        buffer.extend([0x88, 0x82]);
        buffer.extend_from_slice(&mask);
        buffer.extend([0x03 ^ 1, 0xE8 ^ 2]);
        let mut closing = false;
        assert_eq!(
            close_reply(&mut buffer, &mut closing),
            Some(vec![0x88, 2, 0x03, 0xE8])
        );
        assert!(closing);
        assert!(buffer.is_empty());
    }
}
