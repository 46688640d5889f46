//! What crossed the wire, as recorded by the load generator's own counting client: one real
//! exchange per technique (request and response heads, an SSE event, a WebSocket frame), and
//! the study's probes (an upstream publish over WebSocket against a POST, the longest URL the
//! server accepts). Plain data for `summary.json` and `probes.json`; the report escapes and
//! splits nothing here, it only reads.

use serde::{Deserialize, Serialize};

/// Which way a chunk of bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// Consecutive reads (or writes) of one connection, merged: one side's turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireChunk {
    pub direction: Direction,
    /// Microseconds from the connection's first byte (either way) to this turn's first byte.
    pub at_us: u64,
    /// Microseconds from the connection's first byte to this turn's last byte.
    pub end_us: u64,
    /// The bytes, escaped so a JSON file and a reader can hold them: printable ASCII as is,
    /// `\r`, `\n`, `\\`, and `\xNN` for any other byte. `bytes` is the unescaped length.
    pub text: String,
    pub bytes: u64,
}

/// The first connection of one subscriber, from its first byte to the first comment it
/// parsed (its last turns, when the connection carried more than `WireCapture::LIMIT`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCapture {
    /// The opening turns, up to the first downstream turn that ends a response head.
    pub opening: Vec<WireChunk>,
    /// The turns of the exchange that carried the first delivered comment: for the polling
    /// techniques the last request and its answer, for the streams the frame or event. Empty
    /// when the opening itself carried it.
    pub delivery: Vec<WireChunk>,
    /// Exchanges (request and answer) between the opening and the delivery, not kept.
    pub skipped_exchanges: u64,
    /// True when a comment was parsed before the capture ended; false when the connection
    /// closed (or the cell ended) first.
    pub delivered: bool,
}

/// Escapes bytes as [`WireChunk::text`] holds them.
pub fn escape(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => text.push_str("\\r"),
            b'\n' => text.push_str("\\n"),
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(b as char),
            _ => text.push_str(&format!("\\x{b:02x}")),
        }
    }
    text
}

/// What the study's probes measured against a fresh server, beside its scenario runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Probes {
    /// Claim 5: publishing upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamProbe>,
    /// Claim 4: what a GET can carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_limit: Option<UrlLimitProbe>,
}

/// The same comments published by `POST /publish` on a keep-alive connection and as frames
/// on an open WebSocket, one at a time, each waiting for its answer (201 / `{"ack":ID}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UpstreamProbe {
    pub publishes: u64,
    /// The comment text's size.
    pub payload_bytes: u64,
    pub post: PublishCost,
    pub websocket: PublishCost,
}

/// One way of publishing, per publish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishCost {
    /// Publishes the server accepted.
    pub accepted: u64,
    /// Bytes sent, per publish, at the publisher's socket (set-up excluded).
    pub bytes_up: f64,
    /// Bytes received, per publish.
    pub bytes_down: f64,
    /// Median time from sending to the answer, microseconds.
    pub p50_us: u64,
    /// Set-up before the first publish (TCP connect, and for WebSocket the upgrade), bytes
    /// both ways.
    pub setup_bytes: u64,
}

/// Growing `GET /sse?user=...&pad=...` URLs against the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UrlLimitProbe {
    /// The longest request target answered with a stream (200).
    pub longest_accepted: u64,
    /// The shortest refused, and how (status line, or a closed connection); `None` when
    /// every size tried was accepted.
    pub shortest_refused: Option<u64>,
    pub refusal: Option<String>,
    /// The answer to `POST /sse`, status line: whether the stream needs a GET at this server.
    pub post_status: String,
}
