//! `pushlab-floor`: the floor server (`pushlab::loadgen::floor::server`), a bare tokio
//! server writing pushlab's SSE and WebSocket bytes, started by the load generator in place
//! of `pushlab-server` for a scenario's `floor = true` cells. It takes pushlab-server's flags
//! (and uses the few that shape its bytes), so a cell starts either the same way.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use pushlab::loadgen::floor::server::{FloorConfig, serve};
use pushlab::model::ServerConfig;

/// A bare tokio server writing pushlab-server's SSE and WebSocket bytes, to measure against.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on; the bound address is printed first as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    #[command(flatten)]
    config: ServerConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    pushlab::sys::raise_open_files_limit();
    let listener = match tokio::net::TcpListener::bind(args.bind).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("pushlab-floor: error: --bind {}: {error}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(error) => {
            eprintln!("pushlab-floor: error: {error}");
            return ExitCode::FAILURE;
        }
    }
    match serve(listener, FloorConfig::from(&args.config)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pushlab-floor: error: {error}");
            ExitCode::FAILURE
        }
    }
}
