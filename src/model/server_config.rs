//! The server's settings, declared once: `pushlab-server` parses them from its flags, tests
//! build them with `Default`, and the load generator renders them back into flags for the
//! server it starts (`to_args`), so a default lives in exactly one place.

use std::time::Duration;

use clap::builder::RangedU64ValueParser;

/// Everything the server can be tuned with; `pushlab-server --help` documents each.
#[derive(Debug, Clone, PartialEq, Eq, clap::Parser)]
pub struct ServerConfig {
    /// Comments kept for resuming from a cursor; an older cursor gets 410 Gone.
    #[arg(long = "history", default_value_t = 1_000_000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub history_capacity: usize,
    /// Slots in each subscriber's queue; a subscriber further behind is disconnected and
    /// counted in `dropped_slow`, and may resume from its cursor.
    #[arg(long, default_value_t = 1024, value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub subscriber_queue: usize,
    /// Largest comment text in bytes; larger ones get 413.
    #[arg(long, default_value_t = 4096, value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_048_576))]
    pub max_comment_bytes: usize,
    /// Most connections served at once; more get 503 with Retry-After.
    #[arg(long, default_value_t = 19_500, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// Interval of SSE heartbeat comment lines, e.g. 15s or 500ms.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub sse_heartbeat: Duration,
    /// The `retry:` reconnection hint sent to SSE clients.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub sse_retry: Duration,
    /// Longest `timeout_ms` a long poll may ask for.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub long_poll_max_timeout: Duration,
    /// How long a long poll is held when the request names no `timeout_ms`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub long_poll_default_timeout: Duration,
    /// Most comments in one poll response.
    #[arg(long, default_value_t = 1000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub page_limit: usize,
    /// Read buffer of each WebSocket, in bytes (tungstenite's default of 128 KiB costs about
    /// 134 KiB per idle connection). tungstenite zero-fills all of it before its first read,
    /// so every byte is resident: 512 B holds a client's pong or a short publish, and a
    /// larger frame grows the buffer as needed (1 KiB cost 0.5 KiB more per idle WebSocket,
    /// 8.12 against 7.63 KiB at 5,000; 4 KiB cost 3 KiB more).
    #[arg(long, default_value_t = 512, value_parser = RangedU64ValueParser::<usize>::new().range(256..=1_048_576))]
    pub ws_read_buffer: usize,
    /// Where comments are kept: `memory` (in this process, the default) or a Redis URL such as
    /// redis://127.0.0.1:6379/0, whose stream several instances share and which outlives them.
    #[arg(long, default_value = "memory", value_parser = FeedBackend::parse)]
    pub feed: FeedBackend,
    /// Longest wait for a request's head: from accepting a connection (or from the first byte
    /// of a later request on it) until the headers are complete. Slower heads get 408 and
    /// the connection is closed; counted in `/stats` as `timeouts.header_read`.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    pub header_timeout: Duration,
    /// Longest wait for a request's body, from its head on; a stalled body gets 408 and the
    /// connection is closed (`timeouts.body_read`).
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    pub body_timeout: Duration,
    /// How long a keep-alive connection may sit idle between requests before it is closed
    /// (`timeouts.idle`).
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    pub idle_timeout: Duration,
    /// TCP_USER_TIMEOUT of every connection: how long sent data may stay unacknowledged
    /// before the kernel gives up on a vanished peer (`timeouts.user_timeout`); 0 leaves the
    /// kernel's default (retransmissions for about 15 minutes).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub user_timeout: Duration,
    /// An origin (`scheme://host[:port]`) allowed to open WebSockets and use the admin
    /// endpoint, besides the server's own (the request's `Host`) and requests with no
    /// `Origin` header; repeatable; `*` allows any. Others get 403.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// How long an SSE or WebSocket subscriber's socket may accept nothing before it is
    /// dropped and counted in `dropped_stalled`, e.g. 10s; 0s never drops.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_stall_timeout: Duration,
    /// Silence after which the server pings a WebSocket client, e.g. 30s; 0s never pings.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub ws_ping_interval: Duration,
    /// How long a pinged WebSocket client has to answer (any frame will do) before it is
    /// closed with code 4009 and counted in `dropped_unresponsive`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ws_pong_timeout: Duration,
    /// Enables POST /admin/drop?technique=T, which drops the live connections of one
    /// technique (for fault tests and demonstrations); `&users=a,b` or `&share=0.1` drops only
    /// some users' connections. Off by default.
    #[arg(long)]
    pub admin: bool,
    /// Serves TLS with a self-signed certificate made at start (for localhost and
    /// 127.0.0.1), offering HTTP/2 and HTTP/1.1 by ALPN, so browsers negotiate HTTP/2.
    /// Without it the port speaks HTTP/1.1 and h2c (HTTP/2 with prior knowledge).
    #[arg(long)]
    pub tls: bool,
}

/// The feed's backend (`--feed`). Only the URL's form is checked here; connecting is the
/// server's part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FeedBackend {
    /// The embedded in-memory feed: one process, gone when it exits.
    #[default]
    Memory,
    /// A Redis stream, `redis://HOST:PORT/DB`.
    Redis { url: String },
}

impl FeedBackend {
    fn parse(value: &str) -> Result<Self, String> {
        if value == "memory" {
            Ok(Self::Memory)
        } else if value.starts_with("redis://") {
            Ok(Self::Redis { url: value.into() })
        } else {
            Err(format!(
                "expected `memory` or a redis:// URL such as redis://127.0.0.1:6379/0, not {value:?}"
            ))
        }
    }
}

impl std::fmt::Display for FeedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Redis { url } => f.write_str(url),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        <Self as clap::Parser>::parse_from(["pushlab-server"])
    }
}

/// A duration above zero: a timeout of 0 would refuse every request.
fn positive_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(duration) if duration.is_zero() => Err("must be above 0".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

impl ServerConfig {
    /// The largest request body or WebSocket message that can carry a comment of
    /// `max_comment_bytes`: its text JSON-escaped (up to 6 bytes per byte) plus the user ids.
    /// The text's own limit is checked after parsing, so an oversized comment is a 413 (or a
    /// WebSocket error reply) either way.
    pub fn max_message_bytes(&self) -> usize {
        self.max_comment_bytes
            .saturating_mul(6)
            .saturating_add(1024)
    }

    /// The flags that make `pushlab-server` run with exactly these settings.
    pub fn to_args(&self) -> Vec<String> {
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        let mut args = vec![
            format!("--history={}", self.history_capacity),
            format!("--subscriber-queue={}", self.subscriber_queue),
            format!("--max-comment-bytes={}", self.max_comment_bytes),
            format!("--max-connections={}", self.max_connections),
            format!("--sse-heartbeat={}", duration(self.sse_heartbeat)),
            format!("--sse-retry={}", duration(self.sse_retry)),
            format!(
                "--long-poll-max-timeout={}",
                duration(self.long_poll_max_timeout)
            ),
            format!(
                "--long-poll-default-timeout={}",
                duration(self.long_poll_default_timeout)
            ),
            format!("--page-limit={}", self.page_limit),
            format!("--ws-read-buffer={}", self.ws_read_buffer),
            format!("--feed={}", self.feed),
            format!(
                "--write-stall-timeout={}",
                duration(self.write_stall_timeout)
            ),
            format!("--ws-ping-interval={}", duration(self.ws_ping_interval)),
            format!("--ws-pong-timeout={}", duration(self.ws_pong_timeout)),
        ];
        args.extend([
            format!("--header-timeout={}", duration(self.header_timeout)),
            format!("--body-timeout={}", duration(self.body_timeout)),
            format!("--idle-timeout={}", duration(self.idle_timeout)),
            format!("--user-timeout={}", duration(self.user_timeout)),
        ]);
        for origin in &self.allowed_origins {
            args.push(format!("--allowed-origin={origin}"));
        }
        if self.admin {
            args.push("--admin".into());
        }
        if self.tls {
            args.push("--tls".into());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::{FeedBackend, ServerConfig};

    #[test]
    fn flags_round_trip_and_defaults_come_from_the_flag_definitions() {
        let config = ServerConfig::default();
        assert_eq!(config.history_capacity, 1_000_000);
        assert_eq!(config.max_connections, 19_500);
        assert_eq!(config.long_poll_default_timeout, Duration::from_secs(30));
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert!(config.allowed_origins.is_empty());
        let tuned = ServerConfig {
            sse_heartbeat: Duration::from_millis(500),
            subscriber_queue: 7,
            header_timeout: Duration::from_millis(250),
            user_timeout: Duration::ZERO,
            allowed_origins: vec!["http://a.example".into(), "https://b.example:8443".into()],
            write_stall_timeout: Duration::ZERO,
            ws_ping_interval: Duration::from_millis(1500),
            admin: true,
            feed: FeedBackend::Redis {
                url: "redis://127.0.0.1:6379/2".into(),
            },
            ..config
        };
        let flags = std::iter::once("pushlab-server".to_string()).chain(tuned.to_args());
        assert_eq!(ServerConfig::parse_from(flags), tuned);
    }

    #[test]
    fn a_bad_value_names_the_flag() {
        let error =
            ServerConfig::try_parse_from(["pushlab-server", "--subscriber-queue=0"]).unwrap_err();
        assert!(error.to_string().contains("--subscriber-queue"), "{error}");
        let error =
            ServerConfig::try_parse_from(["pushlab-server", "--feed=http://x"]).unwrap_err();
        assert!(error.to_string().contains("--feed"), "{error}");
        assert_eq!(ServerConfig::default().feed, FeedBackend::Memory);
    }
}
