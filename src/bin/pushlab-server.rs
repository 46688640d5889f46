//! `pushlab-server`: serves the comment feed by short polling, long polling, WebSocket and
//! SSE, with exact per-technique accounting on `/stats` and `/metrics`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pushlab::server::{self, AppState, ServerConfig};
use tokio_util::sync::CancellationToken;

/// Serves one comment feed four ways: short polling (/poll), long polling (/long-poll),
/// WebSocket (/ws) and Server-Sent Events (/sse); publish with POST /comments.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port. The bound address is printed on the
    /// first line of output as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Comments kept for resuming from a cursor; an older cursor gets 410 Gone.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    history: u64,
    /// Slots in each subscriber's queue; a subscriber further behind is disconnected and
    /// counted in `dropped_slow`, and may resume from its cursor.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    subscriber_queue: u64,
    /// Largest comment text in bytes; larger ones get 413.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    max_comment_bytes: u64,
    /// Most connections served at once; more get 503 with Retry-After.
    #[arg(long, default_value_t = 19_500, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Interval of SSE heartbeat comment lines, e.g. 15s or 500ms.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    sse_heartbeat: Duration,
    /// The `retry:` reconnection hint sent to SSE clients.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    sse_retry: Duration,
    /// Longest `timeout_ms` a long poll may ask for.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    long_poll_max_timeout: Duration,
    /// Read buffer of each WebSocket, in bytes (tungstenite's default of 128 KiB costs about
    /// 134 KiB per idle connection).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(256..=1_048_576))]
    ws_read_buffer: u64,
    /// Enables POST /admin/drop?technique=T, which drops the live connections of one
    /// technique (for fault tests and demonstrations). Off by default.
    #[arg(long)]
    admin: bool,
    /// How long open streams get to close after SIGINT/SIGTERM before the server exits.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pushlab-server: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    let config = ServerConfig {
        history_capacity: args.history as usize,
        subscriber_queue: args.subscriber_queue as usize,
        max_comment_bytes: args.max_comment_bytes as usize,
        max_connections: args.max_connections as usize,
        sse_heartbeat: args.sse_heartbeat,
        sse_retry: args.sse_retry,
        long_poll_max_timeout: args.long_poll_max_timeout,
        admin: args.admin,
        ws_read_buffer: args.ws_read_buffer as usize,
        ..ServerConfig::default()
    };
    raise_file_limit();
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("--bind {}: cannot listen there", args.bind))?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let state = AppState::new(config, shutdown);
    server::serve(listener, state, args.shutdown_grace).await?;
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    shutdown.cancel();
}

/// Raises the soft open-files limit to the hard one: each connection is a descriptor.
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit/setrlimit to read and write.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
