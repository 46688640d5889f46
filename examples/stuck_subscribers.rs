//! Measures what stuck subscribers cost a running `pushlab-server`, and how long they last:
//! opens N SSE and N WebSocket subscribers with a 4 KiB receive buffer that never read, then
//! publishes 1 KiB comments over one keep-alive connection and prints, once a second, the
//! server's RSS and the stuck subscribers still connected and dropped (by cause).
//!
//! ```sh
//! pushlab-server --bind 127.0.0.1:8080 &
//! cargo run --release --example stuck_subscribers -- 127.0.0.1:8080 200 20000 300
//! ```
//! Arguments: server address, subscribers per technique (0 for a baseline), comments to
//! publish, comments per second (0: as fast as possible); a final `watch=S` keeps sampling
//! for S seconds after the last publish.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pushlab::http::client::HttpConnection;
use pushlab::model::stats::StatsSnapshot;
use pushlab::net::ByteMeter;
use pushlab::techniques::Target;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const SSE: &str =
    "GET /sse?user=stuck HTTP/1.1\r\nhost: pushlab\r\naccept: text/event-stream\r\n\r\n";
const WS: &str = "GET /ws?user=stuck HTTP/1.1\r\nhost: pushlab\r\nupgrade: websocket\r\n\
    connection: Upgrade\r\nsec-websocket-version: 13\r\n\
    sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

async fn stuck(addr: SocketAddr, request: &str) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut stream = socket.connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}

async fn snapshot(connection: &mut HttpConnection) -> anyhow::Result<StatsSnapshot> {
    Ok(serde_json::from_slice(&connection.get("/stats").await?)?)
}

fn line(elapsed: Duration, published: usize, s: &StatsSnapshot) -> String {
    let mut text = format!(
        "{:>6.1}s published {:>6} rss {:>6.1} MiB",
        elapsed.as_secs_f64(),
        published,
        s.process.rss_bytes as f64 / 1048576.0
    );
    for name in ["sse", "websocket"] {
        let a = s.accounts.get(name).copied().unwrap_or_default();
        text += &format!(
            " | {name}: open {} blocked {} slow {} stalled {} unresponsive {}",
            a.connections_open,
            a.writes_blocked,
            a.dropped_slow,
            a.dropped_stalled,
            a.dropped_unresponsive
        );
    }
    text
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = args
        .first()
        .map(String::as_str)
        .unwrap_or("127.0.0.1:8080")
        .parse()?;
    let per_technique: usize = args.get(1).map_or(Ok(200), |a| a.parse())?;
    let comments: usize = args.get(2).map_or(Ok(20_000), |a| a.parse())?;
    let rate: u64 = args.get(3).map_or(Ok(0), |a| a.parse())?;
    let watch: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("watch="))
        .map_or(Ok(0), str::parse)?;
    let target = Target { addr };
    let mut probe = HttpConnection::open(&target, ByteMeter::new()).await?;
    let mut publisher = HttpConnection::open(&target, ByteMeter::new()).await?;
    let start = Instant::now();
    println!("{}", line(start.elapsed(), 0, &snapshot(&mut probe).await?));
    let mut held = Vec::new();
    for _ in 0..per_technique {
        held.push(stuck(addr, SSE).await?);
        held.push(stuck(addr, WS).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("{}", line(start.elapsed(), 0, &snapshot(&mut probe).await?));
    let text = "x".repeat(1024);
    let body = serde_json::json!({ "from": "alice", "text": text }).to_string();
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let began = Instant::now();
    let mut peak = 0u64;
    for i in 0..comments {
        if let Some(offset) = (i as u64 * 1_000_000).checked_div(rate) {
            let due = began + Duration::from_micros(offset);
            tokio::time::sleep_until(due.into()).await;
        }
        publisher.post_json("/comments", &body).await?;
        if Instant::now() >= next_report {
            let s = snapshot(&mut probe).await?;
            peak = peak.max(s.process.rss_bytes);
            println!("{}", line(start.elapsed(), i + 1, &s));
            next_report += Duration::from_secs(1);
        }
    }
    for _ in 0..watch {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = snapshot(&mut probe).await?;
        peak = peak.max(s.process.rss_bytes);
        println!("{}", line(start.elapsed(), comments, &s));
    }
    let s = snapshot(&mut probe).await?;
    println!("{}", line(start.elapsed(), comments, &s));
    println!(
        "peak rss seen {:.1} MiB (server VmHWM {:.1} MiB)",
        peak.max(s.process.rss_bytes) as f64 / 1048576.0,
        s.process.peak_rss_bytes as f64 / 1048576.0
    );
    drop(held);
    Ok(())
}
