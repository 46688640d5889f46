//! "On the wire": per technique, one real exchange as the load generator's counting client
//! recorded it (request and response heads, an SSE event, a WebSocket frame, CRLFs shown),
//! beside the byte breakdown of one delivered comment: payload, protocol framing, HTTP heads
//! and TCP/IP headers (the kernel's segments at 52 B each). Only for cells that carry a
//! capture (`CellResult::wire`), so runs from before it render as they did.

use std::fmt::Write as _;

use crate::model::results::CellResult;
use crate::model::technique::Technique;
use crate::model::wire::{Direction, WireCapture, WireChunk};
use crate::report::fmt::{bytes, int, ms};
use crate::report::plan::View;

/// The escaped length of one byte of `text` at each step: `\r`, `\n`, `\\`, `\xNN` are one.
fn unescaped_len(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        i += match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(b'x')) => 4,
            (b'\\', Some(_)) => 2,
            _ => 1,
        };
        n += 1;
    }
    n
}

/// The length of an HTTP head at the start of a chunk (through its blank line), if it has one.
fn head_len(chunk: &WireChunk) -> Option<u64> {
    let end = chunk.text.find("\\r\\n\\r\\n")?;
    Some(unescaped_len(&chunk.text[..end]) + 4)
}

/// The heads of a connection's opening and how long the answer's head took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// The first request's head, bytes.
    pub request: u64,
    /// The first response's head (a WebSocket's 101), bytes.
    pub response: u64,
    /// From the request's first byte to the read that completed the response head, µs.
    pub answer_us: u64,
}

/// The opening's heads, if it holds a request and a complete response head.
pub fn heads(capture: &WireCapture) -> Option<Heads> {
    let request = capture
        .opening
        .iter()
        .find(|c| c.direction == Direction::Up)?;
    let response = capture
        .opening
        .iter()
        .find(|c| c.direction == Direction::Down)?;
    Some(Heads {
        request: head_len(request)?,
        response: head_len(response)?,
        answer_us: response.end_us.saturating_sub(request.at_us),
    })
}

/// The heads of the exchange that carried the comment: the delivery's request and answer
/// for a poll, or none for a stream (its heads were paid once, at the opening).
fn delivery_heads(capture: &WireCapture) -> u64 {
    let exchange = if capture.delivery.is_empty() {
        &capture.opening
    } else {
        &capture.delivery
    };
    exchange.iter().filter_map(head_len).sum()
}

/// The turn that carried the first comment, split: its bytes, the comment JSON's, and the
/// HTTP head's (a poll's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarriedBy {
    pub turn: u64,
    pub json: u64,
    pub head: u64,
}

impl CarriedBy {
    /// What the protocol wrapped around the JSON beyond the head.
    pub fn framing(&self) -> u64 {
        self.turn.saturating_sub(self.json + self.head)
    }
}

/// The last downstream turn of the delivery exchange (or of the opening, when it carried
/// the comment), with the comment's JSON found from its `{"id":` to the last `}`.
pub fn carried_by(capture: &WireCapture) -> Option<CarriedBy> {
    if !capture.delivered {
        return None;
    }
    let exchange = if capture.delivery.is_empty() {
        &capture.opening
    } else {
        &capture.delivery
    };
    let turn = exchange
        .iter()
        .rev()
        .find(|c| c.direction == Direction::Down)?;
    // Only a turn that holds this one comment and nothing else (not the first frame or
    // event that names the cursor, not a second comment) splits honestly.
    let one = turn.text.matches("{\"id\":").count() == 1
        && !turn.text.contains("\"connected\"")
        && !turn.text.contains("event: connect\\n");
    if !one {
        return None;
    }
    let start = turn.text.find("{\"id\":")?;
    let end = turn.text.rfind('}')?;
    // A poll's answer wraps its comments in `{"comments":[...],"next":N}`: the comment
    // ends at the `}` before `],"next"`.
    let end = match turn.text[start..].find("],\"next\"") {
        Some(i) => start + i - 1,
        None => end,
    };
    let head = if turn.text.starts_with("HTTP/") {
        head_len(turn).unwrap_or(0)
    } else {
        0
    };
    Some(CarriedBy {
        turn: turn.bytes,
        json: unescaped_len(&turn.text[start..=end]),
        head,
    })
}

/// One delivered comment's bytes by layer, averaged over the cell's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breakdown {
    /// The comment JSON.
    pub payload: f64,
    /// HTTP request and response heads.
    pub heads: f64,
    /// Everything else the protocol carried: chunk sizes, the poll's JSON envelope, SSE field
    /// names, WebSocket frame headers, heartbeats, pings, empty answers' bodies.
    pub framing: f64,
    /// TCP/IP headers: the kernel's segments on the subscribers' sockets at 52 B each, in the
    /// window's share of the cell's bytes; `None` where the kernel counted no socket.
    pub tcp_ip: Option<f64>,
}

impl Breakdown {
    /// Application bytes (what the sockets counted) plus TCP/IP headers where known.
    pub fn total(&self) -> f64 {
        self.payload + self.heads + self.framing + self.tcp_ip.unwrap_or(0.0)
    }
}

/// The breakdown of `cell`'s bytes per delivered comment. Polls pay heads on every request
/// (requests per delivery times the heads of the delivery's exchange); streams pay them per
/// connection opened within the window.
pub fn breakdown(cell: &CellResult) -> Option<Breakdown> {
    let capture = cell.wire.as_ref()?;
    let per = &cell.per_delivery;
    if cell.deliveries.delivered_in_window == 0 || per.bytes <= 0.0 {
        return None;
    }
    let heads = if cell.technique.streams() {
        let h = heads(capture)?;
        (h.request + h.response) as f64 * cell.client.connections_opened as f64
            / cell.deliveries.delivered_in_window as f64
    } else {
        per.requests * delivery_heads(capture) as f64
    };
    let heads = heads.min(per.bytes - per.payload_bytes).max(0.0);
    let framing = (per.bytes - per.payload_bytes - heads).max(0.0);
    let whole = (cell.agreement.client_up + cell.agreement.client_down) as f64;
    let tcp_ip = (cell.kernel.sockets > 0 && whole > 0.0)
        .then(|| cell.kernel.header_bytes as f64 * per.bytes / whole);
    Some(Breakdown {
        payload: per.payload_bytes,
        heads,
        framing,
        tcp_ip,
    })
}

/// The recorded turns as a text block: an arrow and size per turn, then its bytes with
/// `\r\n` shown and a line break after each `\n`.
pub fn exchange_text(chunks: &[WireChunk]) -> String {
    let mut out = String::new();
    for chunk in chunks {
        let arrow = match chunk.direction {
            Direction::Up => "client → server",
            Direction::Down => "server → client",
        };
        let _ = writeln!(
            out,
            "── {arrow}, {} B at {} ──",
            int(chunk.bytes),
            ms(chunk.at_us as f64)
        );
        let mut line = String::new();
        let mut chars = chunk.text.chars().peekable();
        while let Some(c) = chars.next() {
            line.push(c);
            if c == '\\' {
                if let Some(next) = chars.next() {
                    line.push(next);
                    if next == 'n' {
                        out.push_str(&line);
                        out.push('\n');
                        line.clear();
                    }
                }
            }
        }
        if !line.is_empty() {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// What a technique's exchange shows, in a sentence.
fn what_it_shows(technique: Technique) -> &'static str {
    match technique {
        Technique::ShortPolling => {
            "Every poll is a full request and response head; the comment rides inside a JSON \
             envelope (`{\"comments\":[...],\"next\":N}`), the empty polls before it carry the \
             envelope alone."
        }
        Technique::LongPolling => {
            "The same request and answer as a short poll, but the server held the request \
             until the comment existed; the next request goes out as soon as this answer is \
             read."
        }
        Technique::WebSocket => {
            "One upgrade (GET with `Upgrade: websocket`, answered `101 Switching Protocols`), \
             then each comment is one frame: 2 B of header before the JSON (`\\x81` is a final \
             text frame, the next byte its length; past 125 B that byte is 126, `~`, and two \
             more bytes hold the length)."
        }
        Technique::Sse => {
            "One GET answered with `text/event-stream` and left open; each comment is an event: \
             `id:`, `event:`, `data:` and a blank line around the JSON, inside an HTTP/1.1 \
             chunk (its hex size and CRLFs). The `id:` is what the client sends back as \
             `Last-Event-ID` when it reconnects."
        }
    }
}

/// The section for every technique with a capture: the first such cell of each, in the
/// view's order (the smallest point).
pub(super) fn section(out: &mut String, view: &View) {
    let cells: Vec<&CellResult> = view
        .techniques
        .iter()
        .filter_map(|t| {
            view.cells
                .iter()
                .find(|c| c.technique == *t && c.wire.is_some())
                .copied()
        })
        .collect();
    if cells.is_empty() {
        return;
    }
    out.push_str("## On the wire\n\n");
    out.push_str(
        "One subscriber's first connection per technique, as the load generator's counting \
         client recorded it: its opening and the exchange that carried its first comment, byte \
         for byte (`\\r\\n` is CRLF, `\\xNN` a byte that is not printable text). Beside it, one \
         delivered comment's bytes by layer over the cell's window.\n\n",
    );
    for cell in cells {
        technique_part(out, view, cell);
    }
}

/// One technique's exchange and breakdown.
pub fn technique_part(out: &mut String, view: &View, cell: &CellResult) {
    exchange_part(out, view, cell);
    breakdown_table(out, &[(String::new(), cell)]);
}

/// A technique's heading, what its exchange shows, and the exchange as recorded.
pub fn exchange_part(out: &mut String, view: &View, cell: &CellResult) {
    let Some(capture) = &cell.wire else {
        return;
    };
    let _ = writeln!(
        out,
        "### {} ({})\n\n{}\n",
        cell.technique.name(),
        view.point_label(&crate::report::plan::Point::of(cell)),
        what_it_shows(cell.technique)
    );
    out.push_str("```text\n");
    out.push_str(&exchange_text(&capture.opening));
    if !capture.delivery.is_empty() {
        if capture.skipped_exchanges > 0 {
            let n = capture.skipped_exchanges;
            let _ = writeln!(
                out,
                "   … {} more exchange{} on this connection …",
                int(n),
                if n == 1 { "" } else { "s" }
            );
        }
        out.push_str(&exchange_text(&capture.delivery));
    }
    if !capture.delivered {
        out.push_str("   (no comment arrived on this connection before it ended)\n");
    }
    out.push_str("```\n\n");
    if let Some(c) = carried_by(capture) {
        let head = if c.head > 0 {
            format!("a {} B response head, ", int(c.head))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "The comment's {} B of JSON arrived in {} B: {head}{} B of framing around it.\n",
            int(c.json),
            int(c.turn),
            int(c.framing())
        );
    }
}

/// A row of the breakdown table: its name and how to show a cell's figure.
type Row<'a> = (&'a str, &'a dyn Fn(&Breakdown) -> String);

/// One delivered comment's bytes by layer, a column per cell (headed by its label when
/// there are several).
pub fn breakdown_table(out: &mut String, columns: &[(String, &CellResult)]) {
    let columns: Vec<(&str, Breakdown)> = columns
        .iter()
        .filter_map(|(label, cell)| breakdown(cell).map(|b| (label.as_str(), b)))
        .collect();
    if columns.is_empty() {
        out.push_str("No delivery in the window to break down.\n\n");
        return;
    }
    let mut head = String::from("| one delivered comment |");
    let mut rule = String::from("| --- |");
    for (label, _) in &columns {
        let _ = write!(
            head,
            " {} |",
            if label.is_empty() { "bytes" } else { label }
        );
        rule.push_str(" ---: |");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    let rows: [Row; 6] = [
        ("payload (the comment JSON)", &|b| bytes(b.payload)),
        ("protocol framing", &|b| bytes(b.framing)),
        ("HTTP heads", &|b| bytes(b.heads)),
        ("counted at the sockets", &|b| {
            bytes(b.payload + b.heads + b.framing)
        }),
        (
            "TCP/IP headers (the cell's segments × 52 B, in the window's share of its bytes)",
            &|b| b.tcp_ip.map_or("n/a".into(), bytes),
        ),
        ("on the wire", &|b| bytes(b.total())),
    ];
    for (name, value) in rows {
        let mut row = format!("| {name} |");
        for (_, b) in &columns {
            let _ = write!(row, " {} |", value(b));
        }
        let _ = writeln!(out, "{row}");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::wire::escape;

    fn chunk(direction: Direction, at_us: u64, end_us: u64, raw: &[u8]) -> WireChunk {
        WireChunk {
            direction,
            at_us,
            end_us,
            text: escape(raw),
            bytes: raw.len() as u64,
        }
    }

    #[test]
    fn escaped_lengths_and_heads_count_raw_bytes() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n\x81\x05hello";
        let c = chunk(Direction::Down, 10, 20, raw);
        assert_eq!(unescaped_len(&c.text), raw.len() as u64);
        assert_eq!(head_len(&c), Some(raw.len() as u64 - 7));
        let capture = WireCapture {
            opening: vec![
                chunk(Direction::Up, 0, 0, b"GET /ws HTTP/1.1\r\nhost: x\r\n\r\n"),
                c,
            ],
            ..Default::default()
        };
        let h = heads(&capture).unwrap();
        assert_eq!((h.request, h.response, h.answer_us), (29, 56, 20));
    }

    #[test]
    fn the_carrying_turn_splits_into_head_json_and_framing() {
        let sse = b"F5\r\nid: 7\nevent: comment\ndata: {\"id\":7,\"text\":\"hi\"}\n\n\r\n";
        let capture = WireCapture {
            opening: vec![chunk(Direction::Up, 0, 0, b"GET /sse HTTP/1.1\r\n\r\n")],
            delivery: vec![chunk(Direction::Down, 5, 5, sse)],
            skipped_exchanges: 0,
            delivered: true,
        };
        let c = carried_by(&capture).unwrap();
        assert_eq!((c.turn, c.json, c.head), (sse.len() as u64, 20, 0));
        assert_eq!(c.framing(), sse.len() as u64 - 20);
        let poll = b"HTTP/1.1 200 OK\r\n\r\n{\"comments\":[{\"id\":7,\"text\":\"hi\"}],\"next\":7}";
        let capture = WireCapture {
            delivery: vec![chunk(Direction::Down, 5, 5, poll)],
            ..capture
        };
        let c = carried_by(&capture).unwrap();
        assert_eq!((c.json, c.head), (20, 19));
        // `{"comments":[` and `],"next":7}`.
        assert_eq!(c.framing(), 13 + 11);
        // A turn that also holds the first frame (the cursor) is not split.
        let ws = b"\x818{\"connected\":{\"after\":1}}\x81\x14{\"id\":7,\"text\":\"hi\"}";
        let capture = WireCapture {
            delivery: vec![chunk(Direction::Down, 5, 5, ws)],
            ..capture
        };
        assert_eq!(carried_by(&capture), None);
    }

    #[test]
    fn the_exchange_breaks_lines_after_each_lf_and_shows_crlf() {
        let text = exchange_text(&[chunk(
            Direction::Up,
            0,
            0,
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        )]);
        assert_eq!(
            text,
            "── client → server, 27 B at 0 ms ──\nGET / HTTP/1.1\\r\\n\nhost: x\\r\\n\n\\r\\n\n"
        );
    }
}
