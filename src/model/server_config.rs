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
    /// 134 KiB per idle connection).
    #[arg(long, default_value_t = 4096, value_parser = RangedU64ValueParser::<usize>::new().range(256..=1_048_576))]
    pub ws_read_buffer: usize,
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
    /// technique (for fault tests and demonstrations). Off by default.
    #[arg(long)]
    pub admin: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        <Self as clap::Parser>::parse_from(["pushlab-server"])
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
            format!(
                "--write-stall-timeout={}",
                duration(self.write_stall_timeout)
            ),
            format!("--ws-ping-interval={}", duration(self.ws_ping_interval)),
            format!("--ws-pong-timeout={}", duration(self.ws_pong_timeout)),
        ];
        if self.admin {
            args.push("--admin".into());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::ServerConfig;

    #[test]
    fn flags_round_trip_and_defaults_come_from_the_flag_definitions() {
        let config = ServerConfig::default();
        assert_eq!(config.history_capacity, 1_000_000);
        assert_eq!(config.max_connections, 19_500);
        assert_eq!(config.long_poll_default_timeout, Duration::from_secs(30));
        let tuned = ServerConfig {
            sse_heartbeat: Duration::from_millis(500),
            subscriber_queue: 7,
            write_stall_timeout: Duration::ZERO,
            ws_ping_interval: Duration::from_millis(1500),
            admin: true,
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
    }
}
