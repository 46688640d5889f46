//! The server's accounting: per technique (and for publishing, and for everything else) the
//! requests, empty responses, connections, bytes in and out, deliveries and drops, plus the
//! process's own CPU time and memory. Served as JSON on `/stats` and as Prometheus text on
//! `/metrics`; the load generator reads `/stats` to set the server's view beside its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::net::Meter;
use crate::techniques::Technique;

/// Where the server books a connection's bytes and requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Account {
    /// One of the push techniques under comparison.
    Technique(Technique),
    /// `POST /comments`, kept apart so publishing does not blur the techniques' figures.
    Publish,
    /// Everything else: `/stats`, `/metrics`, the page, unknown paths, refused connections.
    Other,
}

impl Account {
    /// Every account, in the order `/stats` and `/metrics` list them.
    pub const ALL: [Account; 6] = [
        Account::Technique(Technique::ShortPolling),
        Account::Technique(Technique::LongPolling),
        Account::Technique(Technique::WebSocket),
        Account::Technique(Technique::Sse),
        Account::Publish,
        Account::Other,
    ];

    /// The key used in `/stats` and the `account` label in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Account::Technique(technique) => technique.name(),
            Account::Publish => "publish",
            Account::Other => "other",
        }
    }

    fn index(self) -> usize {
        match self {
            Account::Technique(technique) => technique as usize,
            Account::Publish => 4,
            Account::Other => 5,
        }
    }

    fn from_index(index: u8) -> Option<Account> {
        Account::ALL.get(usize::from(index)).copied()
    }
}

/// Live counters of one account.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub empty_responses: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connections_open: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub comments_delivered: AtomicU64,
    pub comments_published: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub dropped_by_admin: AtomicU64,
    pub dropped_unavailable: AtomicU64,
}

/// One account's figures as `/stats` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStats {
    /// HTTP requests served (for WebSocket, upgrade requests).
    pub requests: u64,
    /// Poll responses that carried no comment: the "meaningless" answers.
    pub empty_responses: u64,
    /// Connections that served at least one request of this account.
    pub connections_opened: u64,
    /// Connections whose latest request was of this account and that are still open.
    pub connections_open: u64,
    /// Bytes received from clients, counted at the socket.
    pub bytes_in: u64,
    /// Bytes sent to clients, counted at the socket.
    pub bytes_out: u64,
    /// Comments handed to subscribers (one per subscriber per comment).
    pub comments_delivered: u64,
    /// Comments accepted through this account (`POST /comments`, WebSocket messages).
    pub comments_published: u64,
    /// Subscribers disconnected because their queue overflowed.
    pub dropped_slow: u64,
    /// Connections dropped on purpose through the admin endpoint.
    pub dropped_by_admin: u64,
    /// Subscribers turned away, with a cursor to resume from, because the feed's backend
    /// was unavailable (streams ended, polls answered 503).
    // Absent from `/stats` of servers older than the field.
    #[serde(default)]
    pub dropped_unavailable: u64,
}

/// The server process's own resource use, read from `/proc/self`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// User plus system CPU time since the process started.
    pub cpu_seconds: f64,
    /// Resident memory now (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident memory (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// The whole `/stats` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Seconds since the server started.
    pub uptime_seconds: f64,
    /// Comments the feed has accepted, over every account.
    pub comments_published: u64,
    /// Connections refused for going over `--max-connections`.
    pub connections_refused: u64,
    /// Connections open now, whatever they serve.
    pub connections_live: u64,
    /// Per account: `short-polling`, `long-polling`, `websocket`, `sse`, `publish`, `other`.
    pub accounts: BTreeMap<String, AccountStats>,
    pub process: ProcessStats,
}

/// The server's counters, shared by every connection and handler.
#[derive(Debug)]
pub struct Stats {
    accounts: [Counters; 6],
    connections_refused: AtomicU64,
    connections_live: AtomicU64,
    started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            accounts: Default::default(),
            connections_refused: AtomicU64::new(0),
            connections_live: AtomicU64::new(0),
            started: Instant::now(),
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

    /// Connections open now.
    pub fn connections_live(&self) -> u64 {
        self.connections_live.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self, comments_published: u64) -> StatsSnapshot {
        let accounts = Account::ALL
            .iter()
            .map(|account| {
                let c = self.account(*account);
                let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
                let stats = AccountStats {
                    requests: load(&c.requests),
                    empty_responses: load(&c.empty_responses),
                    connections_opened: load(&c.connections_opened),
                    connections_open: load(&c.connections_open),
                    bytes_in: load(&c.bytes_in),
                    bytes_out: load(&c.bytes_out),
                    comments_delivered: load(&c.comments_delivered),
                    comments_published: load(&c.comments_published),
                    dropped_slow: load(&c.dropped_slow),
                    dropped_by_admin: load(&c.dropped_by_admin),
                    dropped_unavailable: load(&c.dropped_unavailable),
                };
                (account.name().to_string(), stats)
            })
            .collect();
        StatsSnapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            comments_published,
            connections_refused: self.connections_refused.load(Ordering::Relaxed),
            connections_live: self.connections_live(),
            accounts,
            process: process_stats(),
        }
    }
}

/// Renders a snapshot in the Prometheus text exposition format.
pub fn prometheus(snapshot: &StatsSnapshot) -> String {
    type Field = fn(&AccountStats) -> u64;
    let per_account: [(&str, &str, &str, Field); 11] = [
        (
            "requests_total",
            "counter",
            "HTTP requests (WebSocket: upgrade requests)",
            |s| s.requests,
        ),
        (
            "empty_responses_total",
            "counter",
            "poll responses without a comment",
            |s| s.empty_responses,
        ),
        (
            "connections_opened_total",
            "counter",
            "connections that served the account",
            |s| s.connections_opened,
        ),
        (
            "connections_open",
            "gauge",
            "connections open now, by their latest request",
            |s| s.connections_open,
        ),
        (
            "bytes_in_total",
            "counter",
            "bytes received at the socket",
            |s| s.bytes_in,
        ),
        (
            "bytes_out_total",
            "counter",
            "bytes sent at the socket",
            |s| s.bytes_out,
        ),
        (
            "comments_delivered_total",
            "counter",
            "comments handed to subscribers",
            |s| s.comments_delivered,
        ),
        (
            "comments_published_total",
            "counter",
            "comments accepted",
            |s| s.comments_published,
        ),
        (
            "dropped_slow_total",
            "counter",
            "subscribers dropped for a full queue",
            |s| s.dropped_slow,
        ),
        (
            "dropped_by_admin_total",
            "counter",
            "connections dropped by the admin endpoint",
            |s| s.dropped_by_admin,
        ),
        (
            "dropped_unavailable_total",
            "counter",
            "subscribers dropped for an unavailable feed",
            |s| s.dropped_unavailable,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, field) in per_account {
        let _ = writeln!(out, "# HELP pushlab_{name} {help}, by account");
        let _ = writeln!(out, "# TYPE pushlab_{name} {kind}");
        for account in Account::ALL {
            let value = snapshot.accounts.get(account.name()).map_or(0, field);
            let _ = writeln!(
                out,
                "pushlab_{name}{{account=\"{}\"}} {value}",
                account.name()
            );
        }
    }
    let singles: [(&str, &str, &str, String); 6] = [
        (
            "feed_comments_published_total",
            "counter",
            "comments the feed accepted",
            { snapshot.comments_published.to_string() },
        ),
        (
            "connections_refused_total",
            "counter",
            "connections refused over the cap",
            { snapshot.connections_refused.to_string() },
        ),
        (
            "connections_live",
            "gauge",
            "connections open now",
            snapshot.connections_live.to_string(),
        ),
        (
            "process_cpu_seconds_total",
            "counter",
            "user and system CPU time",
            { format!("{:.6}", snapshot.process.cpu_seconds) },
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "resident memory",
            { snapshot.process.rss_bytes.to_string() },
        ),
        (
            "process_peak_resident_memory_bytes",
            "gauge",
            "peak resident memory",
            { snapshot.process.peak_rss_bytes.to_string() },
        ),
    ];
    for (name, kind, help, value) in singles {
        let _ = writeln!(out, "# HELP pushlab_{name} {help}");
        let _ = writeln!(out, "# TYPE pushlab_{name} {kind}");
        let _ = writeln!(out, "pushlab_{name} {value}");
    }
    out
}

/// CPU time (getrusage) and memory (`/proc/self/status`) of this process.
pub fn process_stats() -> ProcessStats {
    let mut stats = ProcessStats::default();
    // getrusage has microsecond resolution; /proc/self/stat counts 10 ms clock ticks, too
    // coarse for CPU per delivered comment over a short cell.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        stats.cpu_seconds = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    }
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

const UNATTRIBUTED: u8 = u8::MAX;

/// The server side of one connection's byte count, and its attribution to an account.
///
/// A connection's request bytes are read before any handler knows which technique they are
/// for, so reads wait in `pending_in` until a route attributes the connection; writes always
/// belong to the request being answered. Keep-alive clients send a request only after the
/// previous response, so each request's bytes land in its own account. After a WebSocket
/// upgrade the connection reads frames with no further request, so it books reads directly.
#[derive(Debug)]
pub struct ConnMeter {
    stats: Arc<Stats>,
    /// The account of the latest request, or `UNATTRIBUTED`.
    current: AtomicU8,
    /// Bytes read and not yet booked to an account.
    pending_in: AtomicU64,
    /// Set after a WebSocket upgrade: reads go straight to the current account.
    direct_reads: AtomicBool,
    /// Bit per account this connection has served, for `connections_opened`.
    seen: AtomicU8,
}

impl ConnMeter {
    /// A meter for a newly accepted connection.
    pub fn new(stats: Arc<Stats>) -> Arc<Self> {
        stats.connections_live.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            stats,
            current: AtomicU8::new(UNATTRIBUTED),
            pending_in: AtomicU64::new(0),
            direct_reads: AtomicBool::new(false),
            seen: AtomicU8::new(0),
        })
    }

    fn current(&self) -> Option<Account> {
        Account::from_index(self.current.load(Ordering::Acquire))
    }

    /// Books the connection, and the request just read on it, to `account`.
    pub fn attribute(&self, account: Account) {
        let index = account.index() as u8;
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
        let bit = 1u8 << index;
        if self.seen.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            counters.connections_opened.fetch_add(1, Ordering::Relaxed);
        }
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
        let account = self.current().unwrap_or(Account::Other);
        self.stats
            .account(account)
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl Drop for ConnMeter {
    fn drop(&mut self) {
        // Bytes of a request that never reached a route (a bad request line, a client that
        // hung up mid-request) still crossed the wire: book them where the connection was.
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
