//! The server's accounting, shared by the listener, the technique handlers and `/stats`:
//! live counters per account, and each connection's meter, which books the bytes counted at
//! its socket to the account of the request they served.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::model::stats::{Account, Counters, H2Counters, ProcessStats, StatsSnapshot, Timeouts};
use crate::model::technique::Technique;
use crate::net::Meter;

/// The server's counters, shared by every connection and handler.
#[derive(Debug)]
pub struct Stats {
    /// One per account, in `Account::ALL` order.
    accounts: [Counters; Account::COUNT],
    /// HTTP/2 bytes outside the accounts (see `model::stats::H2Stats`).
    pub h2: H2Counters,
    connections_refused: AtomicU64,
    connections_live: AtomicU64,
    /// Timeouts by cause, in the order of [`Timeout`].
    timeouts: [AtomicU64; 4],
    started: Instant,
    /// The same moment on the wall clock, for `/stats`: a restart changes it.
    started_at_us: u64,
}

/// Why the server gave up waiting on a connection or request (see [`Timeouts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    HeaderRead,
    BodyRead,
    Idle,
    UserTimeout,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            accounts: std::array::from_fn(|_| Counters::default()),
            h2: H2Counters::default(),
            connections_refused: AtomicU64::new(0),
            connections_live: AtomicU64::new(0),
            timeouts: Default::default(),
            started: Instant::now(),
            started_at_us: crate::model::comment::now_micros(),
        }
    }
}

impl Stats {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The live counters of one account.
    pub fn account(&self, account: Account) -> &Counters {
        &self.accounts[account.index()]
    }

    /// The counters of one technique.
    pub fn technique(&self, technique: Technique) -> &Counters {
        self.account(Account::Technique(technique))
    }

    /// Books a poll response, noting whether it was empty.
    pub fn record_page(&self, technique: Technique, comments: usize) {
        let counters = self.technique(technique);
        counters
            .comments_delivered
            .fetch_add(comments as u64, Ordering::Relaxed);
        if comments == 0 {
            counters.empty_responses.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a timeout of `cause`.
    pub fn record_timeout(&self, cause: Timeout) {
        self.timeouts[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn connections_live(&self) -> u64 {
        self.connections_live.load(Ordering::Relaxed)
    }

    /// The counters now, with the feed's count and the process's figures as given.
    pub fn snapshot(&self, comments_published: u64, process: ProcessStats) -> StatsSnapshot {
        let accounts = Account::ALL
            .iter()
            .map(|account| {
                (
                    account.name().to_string(),
                    self.account(*account).snapshot(),
                )
            })
            .collect();
        StatsSnapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            comments_published,
            connections_refused: self.connections_refused.load(Ordering::Relaxed),
            connections_live: self.connections_live(),
            timeouts: {
                let count = |cause: Timeout| self.timeouts[cause as usize].load(Ordering::Relaxed);
                Timeouts {
                    header_read: count(Timeout::HeaderRead),
                    body_read: count(Timeout::BodyRead),
                    idle: count(Timeout::Idle),
                    user_timeout: count(Timeout::UserTimeout),
                }
            },
            accounts,
            process,
            started_at_us: self.started_at_us,
            feed: Default::default(),
            h2: self.h2.snapshot(),
        }
    }
}

/// CPU time (getrusage) and memory (`/proc/self/status`) of this process.
pub fn process_stats() -> ProcessStats {
    let mut stats = ProcessStats {
        cpu_seconds: crate::sys::cpu_seconds(),
        ..ProcessStats::default()
    };
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let kib = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            };
            if line.starts_with("VmRSS:") {
                stats.rss_bytes = kib(line);
            } else if line.starts_with("VmHWM:") {
                stats.peak_rss_bytes = kib(line);
            }
        }
    }
    stats
}

/// `current` before any route has claimed the connection.
const UNATTRIBUTED: usize = usize::MAX;

// `seen` keeps one bit per account.
const _: () = assert!(Account::COUNT <= 32);

/// The server side of one connection's byte count, and its attribution to an account.
///
/// A connection's request bytes are read before any handler knows which technique they are
/// for, so reads wait in `pending_in` until a route attributes the connection; writes always
/// belong to the request being answered. Keep-alive clients send a request only after the
/// previous response, so each request's bytes land in its own account. After a WebSocket
/// upgrade the connection reads frames with no further request, so it books reads directly.
///
/// HTTP/2 multiplexes requests, so there the meter books nothing itself: on h2c the
/// connection's frame books (`server::h2`) book each stream's frames to its request's
/// account and the rest to `h2.overhead_*`; over `--tls` the handshake goes to `other` and
/// an HTTP/2 connection's encrypted bytes to `h2.tls_*` (see the `MODE_*` constants).
#[derive(Debug)]
pub struct ConnMeter {
    stats: Arc<Stats>,
    /// The account of the latest request, or `UNATTRIBUTED`.
    current: AtomicUsize,
    /// Bytes read and not yet booked to an account.
    pending_in: AtomicU64,
    /// Set after a WebSocket upgrade: reads go straight to the current account.
    direct_reads: AtomicBool,
    /// How the socket's bytes are booked: one of the `MODE_*` constants.
    mode: AtomicU8,
    /// Bit per account this connection has served, for `connections_opened`.
    seen: AtomicU32,
    /// When the connection was accepted: the origin of `blocked_since`.
    accepted: Instant,
    /// Nanoseconds after `accepted` at which the current blocked write began, or `NOT_BLOCKED`.
    blocked_since: AtomicU64,
    /// The account whose `writes_blocked` gauge counts this connection while it is blocked.
    blocked_account: AtomicUsize,
    /// The write-stall timeout in nanoseconds, 0 for none; set by the streaming handlers.
    write_stall: AtomicU64,
    /// Ends the connection when it completes while a write is blocked (see `abort_when`).
    abort: Mutex<Option<AbortFuture>>,
}

/// What `ConnMeter::abort_when` waits for.
struct AbortFuture(Pin<Box<dyn Future<Output = ()> + Send>>);

impl std::fmt::Debug for AbortFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AbortFuture")
    }
}

/// `blocked_since` when no write is blocked.
const NOT_BLOCKED: u64 = u64::MAX;

/// HTTP/1.1 (and a connection whose protocol is not known yet): the socket's bytes are
/// booked to the account of the request they carry, as described on [`ConnMeter`].
const MODE_H1: u8 = 0;
/// h2c: the socket's bytes are booked frame by frame by the connection's frame parser
/// (`book_stream`, `book_overhead`), not here.
const MODE_H2: u8 = 1;
/// A `--tls` connection during its handshake: reads wait in `pending_in`, writes go to
/// `other`; the end of the handshake books the reads to `other` too.
const MODE_TLS_HANDSHAKE: u8 = 2;
/// HTTP/2 over TLS: every byte to `h2.tls_in` / `h2.tls_out`, unsplit.
const MODE_H2_TLS: u8 = 3;

/// Which way bytes went on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client.
    In,
    /// To the client.
    Out,
}

impl ConnMeter {
    /// A meter for a newly accepted connection.
    pub fn new(stats: Arc<Stats>) -> Arc<Self> {
        stats.connections_live.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            stats,
            current: AtomicUsize::new(UNATTRIBUTED),
            pending_in: AtomicU64::new(0),
            direct_reads: AtomicBool::new(false),
            mode: AtomicU8::new(MODE_H1),
            seen: AtomicU32::new(0),
            accepted: Instant::now(),
            blocked_since: AtomicU64::new(NOT_BLOCKED),
            blocked_account: AtomicUsize::new(UNATTRIBUTED),
            write_stall: AtomicU64::new(0),
            abort: Mutex::new(None),
        })
    }

    /// Fails this connection's writes once its peer has accepted nothing for `limit`
    /// (zero: never), counting it in `dropped_stalled`. Set by streaming handlers: a
    /// request/response connection is bounded by the other timeouts.
    pub fn set_write_stall(&self, limit: Duration) {
        let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        self.write_stall.store(nanos, Ordering::Relaxed);
    }

    /// Ends a blocked spell: the `writes_blocked` gauge no longer counts this connection.
    fn unblock(&self) {
        if self.blocked_since.swap(NOT_BLOCKED, Ordering::AcqRel) != NOT_BLOCKED {
            let index = self.blocked_account.swap(UNATTRIBUTED, Ordering::Relaxed);
            if let Some(account) = Account::from_index(index) {
                self.stats
                    .account(account)
                    .writes_blocked
                    .fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// How long the current write has been blocked, if one is.
    pub fn blocked_for(&self) -> Option<Duration> {
        let since = self.blocked_since.load(Ordering::Relaxed);
        (since != NOT_BLOCKED).then(|| {
            self.accepted
                .elapsed()
                .saturating_sub(Duration::from_nanos(since))
        })
    }

    /// Ends the connection (its blocked write fails) once `trigger` completes. `trigger` is
    /// polled only while a write is blocked, so a flowing connection pays nothing for it;
    /// the handler's own stream ends a flowing one. Replaces any earlier trigger.
    pub fn abort_when(&self, trigger: impl Future<Output = ()> + Send + 'static) {
        *self.abort.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(AbortFuture(Box::pin(trigger)));
    }

    fn current(&self) -> Option<Account> {
        Account::from_index(self.current.load(Ordering::Acquire))
    }

    /// Books the connection, and the request just read on it, to `account`.
    pub fn attribute(&self, account: Account) {
        let index = account.index();
        let previous = self.current.swap(index, Ordering::AcqRel);
        let pending = self.pending_in.swap(0, Ordering::AcqRel);
        let counters = self.stats.account(account);
        counters.bytes_in.fetch_add(pending, Ordering::Relaxed);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        if previous != index {
            if let Some(old) = Account::from_index(previous) {
                self.stats
                    .account(old)
                    .connections_open
                    .fetch_sub(1, Ordering::Relaxed);
            }
            counters.connections_open.fetch_add(1, Ordering::Relaxed);
        }
        let bit = 1u32 << index;
        if self.seen.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            counters.connections_opened.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The connection spoke the HTTP/2 preface (h2c): from now on its frame parser books
    /// every byte. The bytes read so far (the preface and what came with it) are dropped
    /// from `pending_in`, as the parser books them itself.
    pub fn start_h2(&self) {
        self.mode.store(MODE_H2, Ordering::Release);
        self.pending_in.store(0, Ordering::Release);
        H2Counters::add(&self.stats.h2.connections);
    }

    /// A `--tls` connection, before its handshake.
    pub fn start_tls(&self) {
        self.mode.store(MODE_TLS_HANDSHAKE, Ordering::Release);
    }

    /// The TLS handshake ended (`h2`: ALPN chose HTTP/2). The handshake's bytes are booked
    /// to `other`; later ones by the HTTP/1.1 rules, or to `h2.tls_*` whole.
    pub fn tls_established(&self, h2: bool) {
        let pending = self.pending_in.swap(0, Ordering::AcqRel);
        self.stats
            .account(Account::Other)
            .bytes_in
            .fetch_add(pending, Ordering::Relaxed);
        if h2 {
            H2Counters::add(&self.stats.h2.connections);
            self.mode.store(MODE_H2_TLS, Ordering::Release);
        } else {
            self.mode.store(MODE_H1, Ordering::Release);
        }
    }

    /// Books `n` bytes of an h2c stream's frames to `account`.
    pub fn book_stream(&self, account: Account, direction: Direction, n: u64) {
        let counters = self.stats.account(account);
        let counter = match direction {
            Direction::In => &counters.bytes_in,
            Direction::Out => &counters.bytes_out,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Books `n` bytes of h2c frames that belong to no stream.
    pub fn book_overhead(&self, direction: Direction, n: u64) {
        let counter = match direction {
            Direction::In => &self.stats.h2.overhead_in,
            Direction::Out => &self.stats.h2.overhead_out,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a stream opened on an h2c connection.
    pub fn h2_stream_opened(&self) {
        H2Counters::add(&self.stats.h2.streams);
    }

    /// After a WebSocket upgrade: book every later read at once to the current account.
    pub fn read_directly(&self) {
        self.direct_reads.store(true, Ordering::Release);
        let pending = self.pending_in.swap(0, Ordering::AcqRel);
        let account = self.current().unwrap_or(Account::Other);
        self.stats
            .account(account)
            .bytes_in
            .fetch_add(pending, Ordering::Relaxed);
    }
}

impl Meter for ConnMeter {
    fn on_read(&self, n: usize) {
        match self.mode.load(Ordering::Acquire) {
            MODE_H2 => return,
            MODE_H2_TLS => {
                self.stats.h2.tls_in.fetch_add(n as u64, Ordering::Relaxed);
                return;
            }
            _ => {}
        }
        if self.direct_reads.load(Ordering::Acquire) {
            let account = self.current().unwrap_or(Account::Other);
            self.stats
                .account(account)
                .bytes_in
                .fetch_add(n as u64, Ordering::Relaxed);
        } else {
            self.pending_in.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    fn on_write(&self, n: usize) {
        match self.mode.load(Ordering::Acquire) {
            MODE_H2 => {}
            MODE_H2_TLS => {
                self.stats.h2.tls_out.fetch_add(n as u64, Ordering::Relaxed);
            }
            MODE_TLS_HANDSHAKE => {
                self.stats
                    .account(Account::Other)
                    .bytes_out
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            _ => {
                let account = self.current().unwrap_or(Account::Other);
                self.stats
                    .account(account)
                    .bytes_out
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        // A load first: most writes find nothing blocked, and a store would dirty the line.
        if self.blocked_since.load(Ordering::Relaxed) != NOT_BLOCKED {
            self.unblock();
        }
    }

    fn write_stall_limit(&self) -> Option<Duration> {
        match self.write_stall.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    fn on_write_blocked(&self) {
        let since = u64::try_from(self.accepted.elapsed().as_nanos()).unwrap_or(NOT_BLOCKED - 1);
        if self.blocked_since.swap(since, Ordering::AcqRel) == NOT_BLOCKED {
            let account = self.current().unwrap_or(Account::Other);
            self.blocked_account
                .store(account.index(), Ordering::Relaxed);
            self.stats
                .account(account)
                .writes_blocked
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_write_stall(&self) {
        let account = self.current().unwrap_or(Account::Other);
        self.stats
            .account(account)
            .dropped_stalled
            .fetch_add(1, Ordering::Relaxed);
    }

    fn poll_abort(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut abort = self.abort.lock().unwrap_or_else(|p| p.into_inner());
        match abort.as_mut().map(|trigger| trigger.0.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                *abort = None;
                Poll::Ready(())
            }
            _ => Poll::Pending,
        }
    }
}

impl Drop for ConnMeter {
    fn drop(&mut self) {
        // Bytes of a request that never reached a route (a bad request line, a client that
        // hung up mid-request) still crossed the wire: book them where the connection was.
        self.unblock();
        let account = self.current().unwrap_or(Account::Other);
        let pending = *self.pending_in.get_mut();
        self.stats
            .account(account)
            .bytes_in
            .fetch_add(pending, Ordering::Relaxed);
        if self.current().is_some() {
            self.stats
                .account(account)
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
        }
        self.stats.connections_live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What handlers learn about their connection: its meter (to attribute it) and the peer.
#[derive(Clone)]
pub struct ConnInfo {
    pub meter: Arc<ConnMeter>,
    pub remote: SocketAddr,
}
