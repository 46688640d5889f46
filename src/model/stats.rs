//! What `/stats` serves, as plain data shared by the server (which fills it) and the load
//! generator (which reads it): per account the request, connection, byte, delivery and drop
//! counts, and the server process's CPU and memory. Counts are declared once per side by
//! the `counts!` macro: one field list makes the plain type (with subtraction, for windows)
//! and the live atomic type with its `snapshot`: [`AccountStats`] and [`Counters`] for the
//! server's accounts, [`ClientCounts`] and [`ClientCounters`] for the load generator's
//! subscribers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::technique::Technique;

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
    /// How many accounts there are: one per technique, then publish and other.
    pub const COUNT: usize = Technique::COUNT + 2;

    /// Every account, in the order `/stats` and `/metrics` list them.
    pub const ALL: [Account; Self::COUNT] = {
        let mut all = [Account::Other; Self::COUNT];
        let mut i = 0;
        while i < Technique::COUNT {
            all[i] = Account::Technique(Technique::ALL[i]);
            i += 1;
        }
        all[Technique::COUNT] = Account::Publish;
        all
    };

    /// The key used in `/stats` and the `account` label in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Account::Technique(technique) => technique.name(),
            Account::Publish => "publish",
            Account::Other => "other",
        }
    }

    /// Position in [`Account::ALL`], for per-account arrays.
    pub fn index(self) -> usize {
        match self {
            Account::Technique(technique) => technique.index(),
            Account::Publish => Technique::COUNT,
            Account::Other => Technique::COUNT + 1,
        }
    }

    /// The account at `index` of [`Account::ALL`].
    pub fn from_index(index: usize) -> Option<Account> {
        Account::ALL.get(index).copied()
    }
}

/// Declares the per-account counts once: the plain [`AccountStats`] and the atomic
/// [`Counters`], with `snapshot`, subtraction and the field list for `/metrics`.
macro_rules! counts {
    (
        $(#[$plain_doc:meta])* plain $plain:ident;
        $(#[$live_doc:meta])* live $live:ident;
        $( $(#[$doc:meta])* $field:ident : $kind:literal, $help:literal; )*
    ) => {
        $(#[$plain_doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $plain {
            $( $(#[$doc])* #[serde(default)] pub $field: u64, )*
        }

        $(#[$live_doc])*
        #[derive(Debug, Default)]
        pub struct $live {
            $( $(#[$doc])* pub $field: AtomicU64, )*
        }

        impl $live {
            /// The counts now.
            pub fn snapshot(&self) -> $plain {
                $plain { $( $field: self.$field.load(Ordering::Relaxed), )* }
            }

            /// Adds one to `counter`, one of this struct's fields.
            pub fn add(counter: &AtomicU64) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }

        /// Over a window: `end - start`, field by field (gauges become their change).
        /// Saturating, so a counter read out of order cannot wrap.
        impl std::ops::Sub for $plain {
            type Output = $plain;
            fn sub(self, start: $plain) -> $plain {
                $plain { $( $field: self.$field.saturating_sub(start.$field), )* }
            }
        }

        /// Across processes: several instances' counts, field by field (gauges add up too).
        impl std::ops::Add for $plain {
            type Output = $plain;
            fn add(self, other: $plain) -> $plain {
                $plain { $( $field: self.$field.saturating_add(other.$field), )* }
            }
        }

        impl $plain {
            /// Each count's name, Prometheus type, help text and value, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
                vec![ $( (stringify!($field), $kind, $help, self.$field), )* ]
            }
        }
    };
}

counts! {
    /// One account's figures as `/stats` reports them.
    plain AccountStats;
    /// Live counters of one account, incremented by the server as things happen.
    live Counters;
    /// HTTP requests served (for WebSocket, upgrade requests).
    requests: "counter", "HTTP requests (WebSocket: upgrade requests)";
    /// Poll responses that carried no comment: the "meaningless" answers.
    empty_responses: "counter", "poll responses without a comment";
    /// Connections that served at least one request of this account.
    connections_opened: "counter", "connections that served the account";
    /// Connections whose latest request was of this account and that are still open.
    connections_open: "gauge", "connections open now, by their latest request";
    /// Bytes received from clients, counted at the socket.
    bytes_in: "counter", "bytes received at the socket";
    /// Bytes sent to clients, counted at the socket.
    bytes_out: "counter", "bytes sent at the socket";
    /// Comments handed to subscribers (one per subscriber per comment).
    comments_delivered: "counter", "comments handed to subscribers";
    /// Comments accepted through this account (`POST /comments`, WebSocket messages).
    comments_published: "counter", "comments accepted";
    /// Subscribers disconnected because their queue overflowed.
    dropped_slow: "counter", "subscribers dropped for a full queue";
    /// Connections dropped on purpose through the admin endpoint.
    dropped_by_admin: "counter", "connections dropped by the admin endpoint";
    /// Subscribers turned away, with a cursor to resume from, because the feed's backend
    /// was unavailable (streams ended, polls answered 503).
    dropped_unavailable: "counter", "subscribers dropped for an unavailable feed";
    /// Subscribers dropped because their socket accepted nothing for the write-stall
    /// timeout (`--write-stall-timeout`), counted when the timeout fires.
    dropped_stalled: "counter", "subscribers dropped for a write stall";
    /// WebSockets closed for answering no ping within `--ws-pong-timeout`.
    dropped_unresponsive: "counter", "WebSockets closed for an unanswered ping";
    /// Connections whose latest write found the peer's socket full and is still waiting.
    writes_blocked: "gauge", "connections whose write is blocked now";
}

counts! {
    /// The load generator's counts for a group of subscribers (a cell) at one moment, or
    /// over a window (`end - start`).
    plain ClientCounts;
    /// Client-side counters of one group of subscribers, incremented by the techniques'
    /// clients as things happen.
    live ClientCounters;
    /// HTTP requests sent (for WebSocket, handshakes).
    requests: "counter", "HTTP requests sent (WebSocket: handshakes)";
    /// Poll responses without a comment.
    empty_responses: "counter", "poll responses without a comment";
    /// TCP connections opened.
    connections_opened: "counter", "TCP connections opened";
    /// Reconnections after a lost connection or stream.
    reconnects: "counter", "reconnections after a lost connection or stream";
    /// Errors seen (refused connections, bad statuses, broken streams).
    errors: "counter", "errors seen";
    /// Subscribers whose subscription is established (first response, upgrade, `connect`).
    ready: "gauge", "subscribers whose subscription is established";
    /// Times a subscriber's cursor was from an earlier incarnation of the feed (the server
    /// restarted): answered 410 with `cause: restart`, resumed from the oldest id kept.
    restarts: "counter", "cursors from an earlier incarnation of the feed";
    /// Times a subscriber's cursor had been evicted from the history (410, `cause:
    /// evicted`): resumed from the oldest id kept, the comments in between lost.
    evictions: "counter", "cursors evicted from the history";
    /// Connection attempts made after a failure (each waited its back-off first).
    retries: "counter", "connection attempts after a failure";
}

counts! {
    /// The server's HTTP/2 figures: what its HTTP/2 connections carried that belongs to no
    /// stream, shown apart from the accounts. On an h2c connection every stream's frames
    /// (headers and payload) are booked to the account of its request's `:path`; the
    /// preface, the connection's own frames (stream 0: SETTINGS, PING, connection
    /// WINDOW_UPDATE, GOAWAY) and frames on no open stream go to `overhead_*`. An HTTP/2
    /// connection over `--tls` is not split per stream: its encrypted bytes after the
    /// handshake go to `tls_*` whole. The accounts' bytes plus these sum to the sockets'.
    plain H2Stats;
    /// Live HTTP/2 counters of the server.
    live H2Counters;
    /// HTTP/2 connections (h2c with prior knowledge, or ALPN `h2` over `--tls`).
    connections: "counter", "HTTP/2 connections";
    /// HTTP/2 streams opened by clients on h2c connections.
    streams: "counter", "HTTP/2 streams opened (h2c)";
    /// h2c bytes received that belong to no stream: the preface, stream-0 frames, frames on
    /// no open stream.
    overhead_in: "counter", "h2c bytes received outside any stream";
    /// h2c bytes sent that belong to no stream (stream-0 frames, frames on no open stream).
    overhead_out: "counter", "h2c bytes sent outside any stream";
    /// Bytes received on HTTP/2-over-TLS connections after the handshake, not split.
    tls_in: "counter", "HTTP/2-over-TLS bytes received, not split per stream";
    /// Bytes sent on HTTP/2-over-TLS connections after the handshake, not split.
    tls_out: "counter", "HTTP/2-over-TLS bytes sent, not split per stream";
}

/// Connections and requests ended by a timeout at the connection's edge, by cause (each
/// cause is a `pushlab-server` flag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// Heads not complete within `--header-timeout` (silent new connections included).
    pub header_read: u64,
    /// Bodies not complete within `--body-timeout` of their head (answered 408).
    pub body_read: u64,
    /// Keep-alive connections idle between requests for `--idle-timeout`.
    pub idle: u64,
    /// Connections whose peer acknowledged nothing for `--user-timeout` (TCP_USER_TIMEOUT).
    pub user_timeout: u64,
}

impl Timeouts {
    /// Each cause's name and count, in declaration order (for `/metrics`).
    pub fn causes(&self) -> [(&'static str, u64); 4] {
        [
            ("header_read", self.header_read),
            ("body_read", self.body_read),
            ("idle", self.idle),
            ("user_timeout", self.user_timeout),
        ]
    }
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

/// Which incarnation of the feed `/stats` describes, and how far its ids go. A restarted
/// server is a new incarnation: its ids start above every id the earlier one handed out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedInfo {
    /// Changes whenever the feed starts afresh (the memory feed: its start time, µs).
    pub incarnation: u64,
    /// When this incarnation started, microseconds since the Unix epoch.
    pub started_at_us: u64,
    /// The first id this incarnation hands out; a cursor below `first_id - 1` (other than
    /// 0, "from the oldest kept") is from an earlier incarnation and gets `410`.
    pub first_id: u64,
    /// The newest id fanned out (`first_id - 1` before the first comment): the cursor a
    /// client starts after to get everything from now on.
    pub last_id: u64,
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
    /// Connections and requests ended by a timeout, by cause.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Per account: `short-polling`, `long-polling`, `websocket`, `sse`, `publish`, `other`.
    pub accounts: BTreeMap<String, AccountStats>,
    pub process: ProcessStats,
    /// When this server process started, microseconds since the Unix epoch: the counters
    /// above count from then, so a change between two snapshots means a restart, and the
    /// two must not be subtracted. 0 from servers that predate the field.
    #[serde(default)]
    pub started_at_us: u64,
    /// The feed's incarnation and newest id.
    #[serde(default)]
    pub feed: FeedInfo,
    /// HTTP/2 bytes outside the accounts (see [`H2Stats`]); all zero without HTTP/2.
    #[serde(default)]
    pub h2: H2Stats,
}

impl StatsSnapshot {
    /// One account's figures (all zero when the server did not list it).
    pub fn account(&self, account: Account) -> AccountStats {
        self.accounts
            .get(account.name())
            .copied()
            .unwrap_or_default()
    }
}
