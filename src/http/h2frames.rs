//! The HTTP/2 frame layer as seen from a byte counter: splits one direction of a connection
//! into the client preface and frames (RFC 9113, 4.1: a 9-byte header of length, type,
//! flags and stream id, then the payload), so every byte can be booked to the stream it
//! belongs to or to the connection itself (stream 0 and the preface). It does not act on
//! the frames; the HTTP/2 stack above does. [`RequestHeads`] decodes the client's header
//! blocks with a stateful HPACK decoder, so a server can learn each stream's `:path`.

use std::borrow::Cow;

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`: what a client sends first on an HTTP/2 connection.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113, 6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113, 6).
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// 0 for the connection's own frames (SETTINGS, PING, GOAWAY, connection WINDOW_UPDATE).
    pub stream: u32,
}

/// What [`FrameSplit::feed`] found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// `n` bytes of the frame `head` (its header or payload) on `head.stream`; the preface
    /// is reported as bytes of a frame of stream 0 with kind `u8::MAX`.
    Bytes { head: FrameHead, n: usize },
    /// The frame `head` is complete.
    FrameEnd { head: FrameHead },
    /// A complete header block (HEADERS and its CONTINUATIONs, padding and priority fields
    /// removed) on `stream`, reported after the `FrameEnd` of the frame that ended it. Only
    /// when the split collects blocks.
    HeaderBlock { stream: u32, block: &'a [u8] },
}

/// The largest header block collected: hyper refuses header lists far smaller (16 KiB by
/// default), so a longer one is never served; it is reported cut short and fails to decode.
const MAX_BLOCK: usize = 256 * 1024;

/// The preface's pseudo frame head.
const PREFACE_HEAD: FrameHead = FrameHead {
    len: PREFACE.len() as u32,
    kind: u8::MAX,
    flags: 0,
    stream: 0,
};

/// One direction of an HTTP/2 connection, split into frames as its bytes go by.
#[derive(Debug)]
pub struct FrameSplit {
    /// Preface bytes still expected (24 on the client-to-server direction, else 0).
    preface_left: usize,
    /// The header of the next frame, as far as it has arrived.
    head: [u8; 9],
    head_len: usize,
    /// The frame whose payload is arriving, and how much of it is still to come.
    frame: Option<(FrameHead, usize)>,
    /// Whether header blocks are collected and reported.
    collect: bool,
    /// The header block being collected: its stream and the fragments so far.
    block: Option<(u32, Vec<u8>)>,
    /// The current HEADERS/CONTINUATION frame's payload, to strip padding once complete.
    payload: Vec<u8>,
}

impl FrameSplit {
    /// The client-to-server direction: the preface first, then frames. `collect`: report
    /// header blocks (to decode the requests' heads).
    pub fn client_to_server(collect: bool) -> Self {
        Self::new(PREFACE.len(), collect)
    }

    /// The server-to-client direction: frames only.
    pub fn server_to_client() -> Self {
        Self::new(0, false)
    }

    fn new(preface_left: usize, collect: bool) -> Self {
        Self {
            preface_left,
            head: [0; 9],
            head_len: 0,
            frame: None,
            collect,
            block: None,
            payload: Vec::new(),
        }
    }

    /// Splits `bytes`, the next bytes of this direction, calling `sink` for each piece in
    /// order. Every byte is reported in exactly one `Bytes` piece.
    pub fn feed(&mut self, mut bytes: &[u8], sink: &mut impl FnMut(Piece<'_>)) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
                sink(Piece::Bytes {
                    head: PREFACE_HEAD,
                    n,
                });
                continue;
            }
            let Some((head, left)) = &mut self.frame else {
                let n = (9 - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                bytes = &bytes[n..];
                if self.head_len < 9 {
                    // The head's bytes are reported once it is whole, so they go to its stream.
                    continue;
                }
                self.head_len = 0;
                let h = &self.head;
                let head = FrameHead {
                    len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                };
                sink(Piece::Bytes { head, n: 9 });
                self.frame = Some((head, head.len as usize));
                self.payload.clear();
                if head.len == 0 {
                    self.end_frame(sink);
                }
                continue;
            };
            let head = *head;
            let n = (*left).min(bytes.len());
            *left -= n;
            let done = *left == 0;
            if self.collect
                && matches!(head.kind, kind::HEADERS | kind::CONTINUATION)
                && self.payload.len() < MAX_BLOCK
            {
                let room = MAX_BLOCK - self.payload.len();
                self.payload.extend_from_slice(&bytes[..n.min(room)]);
            }
            bytes = &bytes[n..];
            sink(Piece::Bytes { head, n });
            if done {
                self.end_frame(sink);
            }
        }
    }

    /// The current frame is complete: reports it, and a header block it completes.
    fn end_frame(&mut self, sink: &mut impl FnMut(Piece<'_>)) {
        let Some((head, _)) = self.frame.take() else {
            return;
        };
        sink(Piece::FrameEnd { head });
        if !self.collect {
            return;
        }
        let fragment = match head.kind {
            kind::HEADERS => {
                self.block = Some((head.stream, Vec::new()));
                headers_fragment(&self.payload, head.flags)
            }
            kind::CONTINUATION => &self.payload[..],
            _ => return,
        };
        let Some((stream, block)) = &mut self.block else {
            return;
        };
        if block.len() + fragment.len() <= MAX_BLOCK {
            block.extend_from_slice(fragment);
        }
        if head.flags & flag::END_HEADERS != 0 {
            let stream = *stream;
            let block = std::mem::take(block);
            self.block = None;
            sink(Piece::HeaderBlock {
                stream,
                block: &block,
            });
        }
    }
}

/// A HEADERS payload without its pad length, priority fields and padding (RFC 9113, 6.2).
fn headers_fragment(payload: &[u8], flags: u8) -> &[u8] {
    let mut start = 0;
    let mut end = payload.len();
    if flags & flag::PADDED != 0 {
        let pad = payload.first().copied().unwrap_or(0) as usize;
        start = 1;
        end = end.saturating_sub(pad);
    }
    if flags & flag::PRIORITY != 0 {
        start += 5;
    }
    payload.get(start..end.max(start)).unwrap_or(&[])
}

/// A request's method and path, as its HEADERS named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// `:path` without its query.
    pub path: String,
}

/// Decodes the client's header blocks in order (HPACK's dynamic table is per connection and
/// every block updates it, trailers included, so none may be skipped).
pub struct RequestHeads {
    decoder: loona_hpack::Decoder<'static>,
    /// Set once a block failed to decode: the table is then out of step for good.
    broken: bool,
}

impl Default for RequestHeads {
    fn default() -> Self {
        Self {
            decoder: loona_hpack::Decoder::new(),
            broken: false,
        }
    }
}

impl RequestHeads {
    /// The method and path `block` names, if it decodes and names both (trailers do not).
    pub fn decode(&mut self, block: &[u8]) -> Option<RequestHead> {
        if self.broken {
            return None;
        }
        let mut method = None;
        let mut path = None;
        let result = self
            .decoder
            .decode_with_cb(block, |name: Cow<[u8]>, value: Cow<[u8]>| match &name[..] {
                b":method" => method = Some(String::from_utf8_lossy(&value).into_owned()),
                b":path" => {
                    let value = String::from_utf8_lossy(&value);
                    path = Some(value.split('?').next().unwrap_or("").to_string());
                }
                _ => {}
            });
        if result.is_err() {
            self.broken = true;
            return None;
        }
        Some(RequestHead {
            method: method?,
            path: path?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Feeds `bytes` one byte at a time (the worst split) and returns, per stream, the
    /// bytes reported, and the header blocks.
    type Split = (std::collections::BTreeMap<u32, usize>, Vec<(u32, Vec<u8>)>);

    fn split(bytes: &[u8]) -> Split {
        let mut split = FrameSplit::client_to_server(true);
        let mut per_stream = std::collections::BTreeMap::new();
        let mut blocks = Vec::new();
        for byte in bytes {
            split.feed(std::slice::from_ref(byte), &mut |piece| match piece {
                Piece::Bytes { head, n } => *per_stream.entry(head.stream).or_default() += n,
                Piece::HeaderBlock { stream, block } => blocks.push((stream, block.to_vec())),
                Piece::FrameEnd { .. } => {}
            });
        }
        (per_stream, blocks)
    }

    #[test]
    fn every_byte_goes_to_its_stream_and_blocks_are_reassembled() {
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode([
            (&b":method"[..], &b"GET"[..]),
            (&b":path"[..], &b"/sse?user=bob"[..]),
        ]);
        let (first, rest) = block.split_at(3);
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(4, 0, 0, &[0, 3, 0, 0, 0, 100])); // SETTINGS
        // HEADERS, padded (2 bytes) and with priority, then a CONTINUATION.
        let mut payload = vec![2, 0, 0, 0, 0, 16];
        payload.extend_from_slice(first);
        payload.extend_from_slice(&[0, 0]);
        wire.extend(frame(
            kind::HEADERS,
            flag::PADDED | flag::PRIORITY,
            3,
            &payload,
        ));
        wire.extend(frame(kind::CONTINUATION, flag::END_HEADERS, 3, rest));
        wire.extend(frame(kind::DATA, flag::END_STREAM, 3, b"hello"));
        wire.extend(frame(8, 0, 0, &[0, 0, 1, 0])); // WINDOW_UPDATE
        let (per_stream, blocks) = split(&wire);
        assert_eq!(per_stream.values().sum::<usize>(), wire.len());
        assert_eq!(per_stream[&0], 24 + 9 + 6 + 9 + 4);
        assert_eq!(blocks, vec![(3, block.clone())]);
        let head = RequestHeads::default()
            .decode(&blocks[0].1)
            .expect("decodes");
        assert_eq!(
            head,
            RequestHead {
                method: "GET".into(),
                path: "/sse".into()
            }
        );
    }

    #[test]
    fn a_block_that_does_not_decode_breaks_the_table_for_good() {
        let mut heads = RequestHeads::default();
        // An indexed field far past the static table, with an empty dynamic one.
        assert_eq!(heads.decode(&[0xff, 0x7f]), None);
        let mut encoder = loona_hpack::Encoder::new();
        let good = encoder.encode([(&b":method"[..], &b"GET"[..]), (&b":path"[..], &b"/"[..])]);
        assert_eq!(heads.decode(&good), None, "the table is out of step");
    }
}
