//! Byte counting at the socket. Every figure of bytes on the wire in pushlab comes from a
//! `CountingStream` wrapped around a `TcpStream`, on the server and on the load generator, so
//! request lines, headers, chunked framing, WebSocket handshakes and frame headers, SSE field
//! names and heartbeats are all counted, never estimated from payload sizes.
//!
//! This is the one place pushlab works below the HTTP crates: they do not expose the bytes
//! their sockets carry (reqwest's `Conn` is private), so the counting has to wrap the stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::model::faults::How;
use crate::model::wire::{Direction, WireCapture, WireChunk, escape};

use crate::sys::kernel_count_fd;
pub use crate::sys::{KernelCount, kernel_count};

/// Receives the size of every successful read and write on a counted stream.
pub trait Meter: Send + Sync + 'static {
    /// `n` bytes arrived from the peer.
    fn on_read(&self, n: usize);
    /// `n` bytes were handed to the kernel for the peer.
    fn on_write(&self, n: usize);
    /// The stream is being dropped; `kernel` is the kernel's own count for its socket, where
    /// the stream was made with [`CountingStream::tcp`].
    fn on_close(&self, _kernel: Option<KernelCount>) {}
    /// How long a write may stay blocked (the peer's socket accepting nothing) before the
    /// stream fails it with `TimedOut`; `None` waits as long as the kernel does.
    fn write_stall_limit(&self) -> Option<Duration> {
        None
    }
    /// A write found the socket full; the next successful write (`on_write`) ends the spell.
    fn on_write_blocked(&self) {}
    /// The stream is failing a write that stayed blocked for `write_stall_limit`.
    fn on_write_stall(&self) {}
    /// Polled while a write is blocked: `Ready` fails it with `ConnectionAborted`. This is
    /// how the server ends a connection whose HTTP stack no longer polls anything but the
    /// blocked write (an SSE body behind a stuck socket).
    fn poll_abort(&self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// A stream that reports every byte it carries to a `Meter`.
pub struct CountingStream<S, M: Meter> {
    inner: S,
    meter: Arc<M>,
    /// The socket to read `TCP_INFO` from on drop, for the kernel's cross-check.
    socket: Option<std::os::fd::RawFd>,
    /// Set while a write is blocked, cleared by the next successful write.
    blocked: bool,
    /// The write-stall deadline, armed when a write blocks (kept to be reset, not
    /// reallocated, on the next blocked spell).
    stall: Option<Pin<Box<Sleep>>>,
    /// Once a blocked write was failed, every later write fails the same way (and the stall
    /// is counted once).
    failed: Option<io::ErrorKind>,
    /// A client-side fault that can sever this connection (see [`CutSwitch`]).
    cut: Option<Cut>,
    /// Paced reads, for a slow subscriber (see [`CountingStream::with_pace`]).
    pace: Option<Pace>,
    /// Records the bytes themselves, for the report's "on the wire" (see [`Tape`]).
    tape: Option<Arc<Tape>>,
}

/// Reads limited to a rate: at most a twentieth of a second's worth at a time, the next read
/// not before the bytes already read are paid for.
struct Pace {
    bytes_per_s: u64,
    /// Where a read lands before it is handed on, a twentieth of a second's worth.
    scratch: Vec<u8>,
    /// Not before this may the next read happen.
    wait: Pin<Box<Sleep>>,
}

/// A subscriber's own fault switch, for client-side drops: firing it severs every live
/// connection of that subscriber made with [`CountingStream::with_cut`], closing (FIN) or
/// aborting (RST) the socket; connections made later are not affected.
#[derive(Debug, Default)]
pub struct CutSwitch {
    armed: std::sync::Mutex<(CancellationToken, Option<How>)>,
    /// The local port of the subscriber's newest connection (0 before any), so a fault
    /// that acts on packets can find it.
    port: std::sync::atomic::AtomicU32,
}

impl CutSwitch {
    /// Notes the local port of a connection just made.
    pub fn note_port(&self, port: u16) {
        self.port.store(u32::from(port), Ordering::Relaxed);
    }

    /// The local port of the newest connection, if any was made.
    pub fn port(&self) -> Option<u16> {
        u16::try_from(self.port.load(Ordering::Relaxed))
            .ok()
            .filter(|p| *p != 0)
    }

    /// Severs the live connections: `How::Close` shuts the socket's sending half down at
    /// once (a FIN) and `How::Reset` sets `SO_LINGER` 0 so its close sends an RST; either way
    /// the owner then sees the connection fail and drops it.
    pub fn fire(&self, how: How) {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        armed.1 = Some(how);
        std::mem::take(&mut armed.0).cancel();
    }

    fn watch(self: &Arc<Self>) -> Cut {
        let token = self
            .armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone();
        Cut {
            fired: Box::pin(token.cancelled_owned()),
            switch: self.clone(),
        }
    }

    fn how(&self) -> How {
        self.armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .unwrap_or(How::Close)
    }
}

/// A connection's watch on its subscriber's [`CutSwitch`].
struct Cut {
    fired: Pin<Box<WaitForCancellationFutureOwned>>,
    switch: Arc<CutSwitch>,
}

impl<S, M: Meter> CountingStream<S, M> {
    pub fn new(inner: S, meter: Arc<M>) -> Self {
        Self {
            inner,
            meter,
            socket: None,
            blocked: false,
            stall: None,
            failed: None,
            cut: None,
            pace: None,
            tape: None,
        }
    }

    /// The meter this stream reports to.
    pub fn meter(&self) -> &Arc<M> {
        &self.meter
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Lets `switch` sever this connection (a client-side fault). Needs a stream made with
    /// [`CountingStream::tcp`], whose socket it acts on.
    pub fn with_cut(mut self, switch: &Arc<CutSwitch>) -> Self {
        self.cut = Some(switch.watch());
        self
    }

    /// Records this connection's bytes on `tape` (the first connection a tape is offered to;
    /// later ones are left unrecorded, see [`Tape::attach`]).
    pub fn with_tape(mut self, tape: &Arc<Tape>) -> Self {
        if tape.attach() {
            self.tape = Some(tape.clone());
        }
        self
    }

    /// Reads at most `bytes_per_s` bytes a second from the socket, as a slow subscriber on a
    /// thin link would; the kernel's receive buffer fills and the sender is held back.
    pub fn with_pace(mut self, bytes_per_s: u64) -> Self {
        let bytes_per_s = bytes_per_s.max(1);
        self.pace = Some(Pace {
            bytes_per_s,
            scratch: vec![0; (bytes_per_s / 20).clamp(1, 64 * 1024) as usize],
            wait: Box::pin(tokio::time::sleep(Duration::ZERO)),
        });
        self
    }

    /// Polled before every read and write: once the cut fired, acts on the socket (once) and
    /// fails this and every later call, so the owner drops the connection.
    fn poll_cut(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let cut = self.cut.as_mut()?;
        if cut.fired.as_mut().poll(cx).is_pending() {
            return None;
        }
        let how = cut.switch.how();
        if self.failed.is_none() {
            if let Some(fd) = self.socket {
                // Best effort: a socket the peer already closed needs nothing more.
                let _ = match how {
                    How::Close => crate::sys::shutdown_write(fd),
                    How::Reset => crate::sys::set_linger_zero(fd),
                };
            }
            self.failed = Some(io::ErrorKind::ConnectionAborted);
        }
        Some(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection severed by a client-side fault",
        ))
    }
}

impl<M: Meter> CountingStream<tokio::net::TcpStream, M> {
    /// A counted TCP stream that also hands the kernel's own count (`TCP_INFO`) to the meter
    /// when it is dropped, so the stream-level count can be checked against the kernel's.
    pub fn tcp(inner: tokio::net::TcpStream, meter: Arc<M>) -> Self {
        use std::os::fd::AsRawFd;
        let socket = Some(inner.as_raw_fd());
        Self {
            inner,
            meter,
            socket,
            blocked: false,
            stall: None,
            failed: None,
            cut: None,
            pace: None,
            tape: None,
        }
    }
}

impl<S, M: Meter> Drop for CountingStream<S, M> {
    fn drop(&mut self) {
        // The fields, and so the socket, are dropped only after this runs: the fd is live.
        self.meter.on_close(self.socket.and_then(kernel_count_fd));
    }
}

impl<S: AsyncRead + Unpin, M: Meter> AsyncRead for CountingStream<S, M> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(error) = self.poll_cut(cx) {
            return Poll::Ready(Err(error));
        }
        if self.pace.is_some() {
            return self.poll_read_paced(cx, buf);
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let n = buf.filled().len() - before;
            if n > 0 {
                self.meter.on_read(n);
                if let Some(tape) = &self.tape {
                    tape.record(Direction::Down, &buf.filled()[before..]);
                }
            }
        }
        poll
    }
}

impl<S: AsyncRead + Unpin, M: Meter> CountingStream<S, M> {
    /// A read through the pace: waits until the last read is paid for, then reads at most
    /// the scratch buffer's worth.
    fn poll_read_paced(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let pace = self.pace.as_mut().expect("called with a pace");
        if pace.wait.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let room = buf.remaining().min(pace.scratch.len());
        let mut scratch = ReadBuf::new(&mut pace.scratch[..room]);
        let poll = Pin::new(&mut self.inner).poll_read(cx, &mut scratch);
        let n = scratch.filled().len();
        if let Poll::Ready(Ok(())) = &poll {
            buf.put_slice(scratch.filled());
            if n > 0 {
                let cost = Duration::from_secs_f64(n as f64 / pace.bytes_per_s as f64);
                pace.wait.as_mut().reset(Instant::now() + cost);
                self.meter.on_read(n);
                if let Some(tape) = &self.tape {
                    tape.record(Direction::Down, scratch.filled());
                }
            }
        }
        poll
    }
}

impl<S, M: Meter> CountingStream<S, M> {
    /// Books a write's outcome; a blocked write arms the stall deadline and may be failed.
    fn written(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match poll {
            Poll::Ready(Ok(n)) => {
                self.meter.on_write(n);
                self.blocked = false;
                Poll::Ready(Ok(n))
            }
            Poll::Pending => match self.poll_blocked(cx) {
                Some(kind) => Poll::Ready(Err(failure(kind))),
                None => Poll::Pending,
            },
            error => error,
        }
    }

    /// Called while a write is blocked: `Some` when the write must fail instead of waiting.
    fn poll_blocked(&mut self, cx: &mut Context<'_>) -> Option<io::ErrorKind> {
        if !self.blocked {
            self.blocked = true;
            self.meter.on_write_blocked();
            match self.meter.write_stall_limit() {
                Some(limit) => {
                    let deadline = Instant::now() + limit;
                    match &mut self.stall {
                        Some(stall) => stall.as_mut().reset(deadline),
                        None => self.stall = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                None => self.stall = None,
            }
        }
        let stalled = match &mut self.stall {
            Some(stall) => stall.as_mut().poll(cx).is_ready(),
            None => false,
        };
        let kind = if self.meter.poll_abort(cx).is_ready() {
            io::ErrorKind::ConnectionAborted
        } else if stalled {
            self.meter.on_write_stall();
            io::ErrorKind::TimedOut
        } else {
            return None;
        };
        self.failed = Some(kind);
        Some(kind)
    }
}

fn failure(kind: io::ErrorKind) -> io::Error {
    let what = match kind {
        io::ErrorKind::TimedOut => "the peer accepted nothing for the write-stall timeout",
        _ => "the connection was ended while its write was blocked",
    };
    io::Error::new(kind, what)
}

impl<S: AsyncWrite + Unpin, M: Meter> AsyncWrite for CountingStream<S, M> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.poll_cut(cx) {
            return Poll::Ready(Err(error));
        }
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(failure(kind)));
        }
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        let poll = self.written(cx, poll);
        if let (Some(tape), Poll::Ready(Ok(n))) = (&self.tape, &poll) {
            tape.record(Direction::Up, &buf[..*n]);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.poll_cut(cx) {
            return Poll::Ready(Err(error));
        }
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(failure(kind)));
        }
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        let poll = self.written(cx, poll);
        if let (Some(tape), Poll::Ready(Ok(n))) = (&self.tape, &poll) {
            let mut left = *n;
            for slice in bufs {
                let take = left.min(slice.len());
                tape.record(Direction::Up, &slice[..take]);
                left -= take;
                if left == 0 {
                    break;
                }
            }
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

/// A plain up/down byte meter, for the client side of a connection (the load generator and
/// the tests), shared by every connection that should be counted together.
#[derive(Debug, Default)]
pub struct ByteMeter {
    /// Bytes received from the server.
    pub down: AtomicU64,
    /// Bytes sent to the server.
    pub up: AtomicU64,
    /// The kernel's counts, summed over the closed sockets made with `CountingStream::tcp`.
    pub kernel_sockets: AtomicU64,
    pub kernel_bytes_acked: AtomicU64,
    pub kernel_bytes_received: AtomicU64,
    pub kernel_segs_out: AtomicU64,
    pub kernel_segs_in: AtomicU64,
}

impl ByteMeter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// (up, down) so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
        )
    }

    /// The kernel's counts over the closed sockets, and how many sockets that covers.
    pub fn kernel_totals(&self) -> (u64, KernelCount) {
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let count = KernelCount {
            bytes_acked: load(&self.kernel_bytes_acked),
            bytes_received: load(&self.kernel_bytes_received),
            segs_out: load(&self.kernel_segs_out),
            segs_in: load(&self.kernel_segs_in),
        };
        (load(&self.kernel_sockets), count)
    }
}

impl Meter for ByteMeter {
    fn on_read(&self, n: usize) {
        self.down.fetch_add(n as u64, Ordering::Relaxed);
    }
    fn on_write(&self, n: usize) {
        self.up.fetch_add(n as u64, Ordering::Relaxed);
    }
    fn on_close(&self, kernel: Option<KernelCount>) {
        if let Some(k) = kernel {
            self.kernel_sockets.fetch_add(1, Ordering::Relaxed);
            self.kernel_bytes_acked
                .fetch_add(k.bytes_acked, Ordering::Relaxed);
            self.kernel_bytes_received
                .fetch_add(k.bytes_received, Ordering::Relaxed);
            self.kernel_segs_out
                .fetch_add(k.segs_out, Ordering::Relaxed);
            self.kernel_segs_in.fetch_add(k.segs_in, Ordering::Relaxed);
        }
    }
}

/// The bytes of one connection, kept for the report's "on the wire": its opening turns (up
/// to the end of the first response head) and the exchange that carried the first delivered
/// comment, which the owner marks with [`Tape::delivered`]. Each side's consecutive reads or
/// writes merge into one turn; at most [`Tape::LIMIT`] bytes are kept per part, so a tape on
/// a busy connection stays small. Recording stops at the delivery, after which a read or
/// write costs one atomic load.
#[derive(Debug, Default)]
pub struct Tape {
    /// Set by the first connection that records here.
    attached: std::sync::atomic::AtomicBool,
    /// Set at the delivery: later reads and writes check only this.
    frozen: std::sync::atomic::AtomicBool,
    state: std::sync::Mutex<TapeState>,
}

#[derive(Debug, Default)]
struct TapeState {
    start: Option<std::time::Instant>,
    opening: Vec<Turn>,
    /// The opening ended (a response head was complete, or it hit the limit).
    opened: bool,
    current: Vec<Turn>,
    skipped: u64,
    frozen: bool,
    delivered: bool,
}

#[derive(Debug)]
struct Turn {
    direction: Direction,
    at: Duration,
    end: Duration,
    bytes: Vec<u8>,
}

impl Tape {
    /// Bytes kept of the opening, and of the delivery exchange.
    pub const LIMIT: usize = 4096;

    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// True for the first caller only: a tape records one connection.
    pub fn attach(&self) -> bool {
        !self.attached.swap(true, Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TapeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes that went `direction` just now.
    pub fn record(&self, direction: Direction, bytes: &[u8]) {
        if self.frozen.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.state();
        if state.frozen || bytes.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        let at = now.duration_since(*state.start.get_or_insert(now));
        let state = &mut *state;
        if !state.opened {
            push_turn(&mut state.opening, direction, at, bytes);
            let kept: usize = state.opening.iter().map(|t| t.bytes.len()).sum();
            let head_done = direction == Direction::Down
                && state
                    .opening
                    .last()
                    .is_some_and(|t| t.bytes.windows(4).any(|w| w == b"\r\n\r\n"));
            state.opened = head_done || kept >= Self::LIMIT;
            return;
        }
        // A request after an answer starts a new exchange: the one before is dropped.
        let new_exchange = direction == Direction::Up
            && state
                .current
                .last()
                .is_some_and(|t| t.direction == Direction::Down);
        if new_exchange {
            state.current.clear();
            state.skipped += 1;
        }
        push_turn(&mut state.current, direction, at, bytes);
        // Keep the newest turns within the limit (a stream's heartbeats before a comment).
        while state.current.len() > 1
            && state.current.iter().map(|t| t.bytes.len()).sum::<usize>() > Self::LIMIT
        {
            state.current.remove(0);
        }
    }

    /// The owner parsed its first comment: stop recording.
    pub fn delivered(&self) {
        let mut state = self.state();
        if !state.frozen {
            state.frozen = true;
            state.delivered = true;
        }
        self.frozen.store(true, Ordering::Relaxed);
    }

    /// What was recorded, escaped for `summary.json`; `None` if nothing was.
    pub fn capture(&self) -> Option<WireCapture> {
        let state = self.state();
        if state.opening.is_empty() {
            return None;
        }
        let chunks = |turns: &[Turn]| -> Vec<WireChunk> {
            turns
                .iter()
                .map(|t| WireChunk {
                    direction: t.direction,
                    at_us: t.at.as_micros() as u64,
                    end_us: t.end.as_micros() as u64,
                    text: escape(&t.bytes),
                    bytes: t.bytes.len() as u64,
                })
                .collect()
        };
        Some(WireCapture {
            opening: chunks(&state.opening),
            delivery: chunks(&state.current),
            skipped_exchanges: state.skipped,
            delivered: state.delivered,
        })
    }
}

/// Appends to the last turn if it went the same way, else starts one (a turn keeps at most
/// `Tape::LIMIT` bytes; the rest is counted by the meter, not kept).
fn push_turn(turns: &mut Vec<Turn>, direction: Direction, at: Duration, bytes: &[u8]) {
    match turns.last_mut() {
        Some(turn) if turn.direction == direction => {
            let room = Tape::LIMIT.saturating_sub(turn.bytes.len());
            turn.bytes
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
            turn.end = at;
        }
        _ => turns.push(Turn {
            direction,
            at,
            end: at,
            bytes: bytes[..bytes.len().min(Tape::LIMIT)].to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// What the peer sees when a cut fires while the owner is reading, once the owner drops
    /// the failed stream: end of stream for a close, an error for a reset.
    async fn peer_after_cut(how: How) -> io::Result<usize> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let switch = Arc::new(CutSwitch::default());
        let mut stream = CountingStream::tcp(client, ByteMeter::new()).with_cut(&switch);
        let owner = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let result = stream.read(&mut buf).await;
            drop(stream);
            result.map_err(|e| e.kind())
        });
        switch.fire(how);
        let owner = tokio::time::timeout(Duration::from_secs(5), owner)
            .await
            .expect("the cut wakes the blocked read")
            .unwrap();
        assert_eq!(owner, Err(io::ErrorKind::ConnectionAborted));
        let mut buf = [0u8; 16];
        tokio::time::timeout(Duration::from_secs(5), server.read(&mut buf))
            .await
            .expect("the peer learns at once")
    }

    #[tokio::test]
    async fn a_cut_closes_with_a_fin_or_aborts_with_a_reset() {
        assert_eq!(peer_after_cut(How::Close).await.unwrap(), 0);
        let reset = peer_after_cut(How::Reset).await.unwrap_err();
        assert_eq!(reset.kind(), io::ErrorKind::ConnectionReset);
        // Connections made after a firing are not cut by it.
        let switch = Arc::new(CutSwitch::default());
        switch.fire(How::Close);
        let mut later = switch.watch();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(later.fired.as_mut().poll(&mut cx).is_pending());
    }

    /// A tape keeps the opening and the exchange of the first delivery, drops the polls in
    /// between (counting them), and records nothing after the delivery.
    #[test]
    fn a_tape_keeps_the_opening_and_the_delivery_exchange() {
        let tape = Tape::new();
        assert!(tape.attach());
        assert!(!tape.attach(), "one connection per tape");
        tape.record(Direction::Up, b"GET /poll HTTP/1.1\r\n\r\n");
        tape.record(Direction::Down, b"HTTP/1.1 200 OK\r\n");
        tape.record(Direction::Down, b"\r\n{\"comments\":[]}");
        for _ in 0..3 {
            tape.record(Direction::Up, b"GET /poll HTTP/1.1\r\n\r\n");
            tape.record(Direction::Down, b"HTTP/1.1 200 OK\r\n\r\n{\"comments\":[]}");
        }
        tape.record(Direction::Up, b"GET /poll HTTP/1.1\r\n\r\n");
        tape.record(
            Direction::Down,
            b"HTTP/1.1 200 OK\r\n\r\n{\"comments\":[{\"id\":1}]}",
        );
        tape.delivered();
        tape.record(Direction::Up, b"after");
        let capture = tape.capture().unwrap();
        assert!(capture.delivered);
        assert_eq!(capture.opening.len(), 2, "{capture:?}");
        // Two reads of the answer merged into one turn, CRLFs escaped.
        assert_eq!(capture.opening[1].bytes, 34);
        assert!(
            capture.opening[1]
                .text
                .starts_with("HTTP/1.1 200 OK\\r\\n\\r\\n{")
        );
        assert_eq!(capture.skipped_exchanges, 3, "{capture:?}");
        assert_eq!(capture.delivery.len(), 2);
        assert!(capture.delivery[1].text.ends_with("{\"id\":1}]}"));
        assert!(capture.delivery.iter().all(|c| !c.text.contains("after")));
    }
}
