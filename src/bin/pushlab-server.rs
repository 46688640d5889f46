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
    #[command(flatten)]
    config: ServerConfig,
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
    pushlab::sys::raise_open_files_limit();
    let shutdown = CancellationToken::new();
    // The feed first: a Redis that cannot be reached fails the start before anything listens.
    let state = AppState::open(args.config, shutdown.clone()).await?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("--bind {}: cannot listen there", args.bind))?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    tokio::spawn(cancel_on_signal(shutdown));
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
