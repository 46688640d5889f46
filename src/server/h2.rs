//! Per-stream byte accounting on an h2c connection. The connection's edge stream feeds every
//! byte it reads and writes, after the socket counted it, to [`H2Books`], which splits both
//! directions into frames, decodes the client's header blocks (HPACK, stateful per
//! connection) to learn each stream's method and `:path`, and books each stream's frames,
//! headers and payload, to the account the router books that request to. The preface,
//! stream 0's frames and frames on no open stream go to `h2.overhead_*`. So the accounts'
//! bytes plus the overhead equal the socket's, byte for byte.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::accounting::{ConnMeter, Direction};
use crate::http::h2frames::{FrameHead, FrameSplit, Piece, RequestHeads, flag, kind};
use crate::model::stats::Account;
use crate::model::technique::Technique;

/// The account the router books `method path` to (the routes in `app()`, the techniques'
/// and publish's files); a test drives every one of them over h2c and compares.
pub fn account_of(method: &str, path: &str) -> Account {
    let read = matches!(method, "GET" | "HEAD");
    match path {
        "/poll" if read => Account::Technique(Technique::ShortPolling),
        "/long-poll" if read => Account::Technique(Technique::LongPolling),
        "/sse" if read => Account::Technique(Technique::Sse),
        // RFC 8441: a WebSocket over HTTP/2 is an extended CONNECT.
        "/ws" if read || method == "CONNECT" => Account::Technique(Technique::WebSocket),
        "/comments" if method == "POST" => Account::Publish,
        _ => Account::Other,
    }
}

/// How many ended streams keep their account, for the frames that cross their end (a
/// WINDOW_UPDATE or RST_STREAM sent as the other side finishes).
const ENDED_KEPT: usize = 256;

/// One stream's booking.
#[derive(Debug, Default)]
struct Stream {
    /// Known once its request's header block is decoded.
    account: Option<Account>,
    /// Bytes of the stream seen before its account was known.
    pending_in: u64,
    pending_out: u64,
    client_ended: bool,
    server_ended: bool,
    ended: bool,
}

/// The frame-level books of one h2c connection: the two directions' frame splits, and the
/// ledger they report to (apart, so a split can report while it holds its own buffer).
pub struct H2Books {
    up: FrameSplit,
    down: FrameSplit,
    ledger: Ledger,
}

/// Each stream's account, and the bookings.
struct Ledger {
    meter: Arc<ConnMeter>,
    heads: RequestHeads,
    streams: HashMap<u32, Stream>,
    /// Ended streams, oldest first, forgotten past `ENDED_KEPT`.
    ended: VecDeque<u32>,
}

impl H2Books {
    pub fn new(meter: Arc<ConnMeter>) -> Self {
        Self {
            up: FrameSplit::client_to_server(true),
            down: FrameSplit::server_to_client(),
            ledger: Ledger {
                meter,
                heads: RequestHeads::default(),
                streams: HashMap::new(),
                ended: VecDeque::new(),
            },
        }
    }

    /// Bytes read from the client (already counted at the socket).
    pub fn read(&mut self, bytes: &[u8]) {
        let ledger = &mut self.ledger;
        self.up
            .feed(bytes, &mut |piece| ledger.apply(piece, Direction::In));
    }

    /// Bytes written to the client (already counted at the socket).
    pub fn wrote(&mut self, bytes: &[u8]) {
        let ledger = &mut self.ledger;
        self.down
            .feed(bytes, &mut |piece| ledger.apply(piece, Direction::Out));
    }
}

impl Ledger {
    fn apply(&mut self, piece: Piece<'_>, direction: Direction) {
        match piece {
            Piece::Bytes { head, n } => self.book(head, n as u64, direction),
            Piece::FrameEnd { head } => self.frame_ended(head, direction),
            Piece::HeaderBlock { stream, block } => {
                // Every block is decoded, trailers too, to keep HPACK's table in step.
                let request = self.heads.decode(block);
                let Some(entry) = self.streams.get_mut(&stream) else {
                    return;
                };
                if entry.account.is_some() {
                    return;
                }
                // A block that does not decode is still the stream's: book it to `other`.
                let account = request
                    .map(|r| account_of(&r.method, &r.path))
                    .unwrap_or(Account::Other);
                entry.account = Some(account);
                let (pending_in, pending_out) = (entry.pending_in, entry.pending_out);
                entry.pending_in = 0;
                entry.pending_out = 0;
                self.meter.book_stream(account, Direction::In, pending_in);
                self.meter.book_stream(account, Direction::Out, pending_out);
            }
        }
    }

    fn book(&mut self, head: FrameHead, n: u64, direction: Direction) {
        if head.stream == 0 {
            self.meter.book_overhead(direction, n);
            return;
        }
        let entry = match self.streams.entry(head.stream) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                if direction == Direction::In && head.kind == kind::HEADERS {
                    self.meter.h2_stream_opened();
                    vacant.insert(Stream::default())
                } else {
                    self.meter.book_overhead(direction, n);
                    return;
                }
            }
        };
        match (entry.account, direction) {
            (Some(account), direction) => self.meter.book_stream(account, direction, n),
            (None, Direction::In) => entry.pending_in += n,
            (None, Direction::Out) => entry.pending_out += n,
        }
    }

    fn frame_ended(&mut self, head: FrameHead, direction: Direction) {
        let Some(entry) = self.streams.get_mut(&head.stream) else {
            return;
        };
        let end_stream =
            matches!(head.kind, kind::DATA | kind::HEADERS) && head.flags & flag::END_STREAM != 0;
        if head.kind == kind::RST_STREAM {
            entry.client_ended = true;
            entry.server_ended = true;
        } else if end_stream {
            match direction {
                Direction::In => entry.client_ended = true,
                Direction::Out => entry.server_ended = true,
            }
        }
        if entry.client_ended && entry.server_ended && !entry.ended {
            entry.ended = true;
            // Its bytes are all booked: an account never decoded (a broken block) was set
            // to `other` with the block, so nothing is left pending here.
            self.ended.push_back(head.stream);
            if self.ended.len() > ENDED_KEPT {
                if let Some(old) = self.ended.pop_front() {
                    self.streams.remove(&old);
                }
            }
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Streams whose header block never completed: their bytes crossed the wire all the
        // same.
        for entry in self.streams.values() {
            if entry.account.is_none() {
                self.meter
                    .book_stream(Account::Other, Direction::In, entry.pending_in);
                self.meter
                    .book_stream(Account::Other, Direction::Out, entry.pending_out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_booked_where_the_router_books_them() {
        let technique = |t| Account::Technique(t);
        assert_eq!(
            account_of("GET", "/poll"),
            technique(Technique::ShortPolling)
        );
        assert_eq!(
            account_of("HEAD", "/long-poll"),
            technique(Technique::LongPolling)
        );
        assert_eq!(account_of("GET", "/sse"), technique(Technique::Sse));
        assert_eq!(
            account_of("CONNECT", "/ws"),
            technique(Technique::WebSocket)
        );
        assert_eq!(account_of("POST", "/comments"), Account::Publish);
        // What the router answers with a fallback (405, 404) is `other`, as there.
        assert_eq!(account_of("POST", "/poll"), Account::Other);
        assert_eq!(account_of("GET", "/comments"), Account::Other);
        assert_eq!(account_of("GET", "/stats"), Account::Other);
        assert_eq!(account_of("GET", "/nowhere"), Account::Other);
    }
}
