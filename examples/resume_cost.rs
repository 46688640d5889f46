//! What resuming from an old cursor costs the server, with 1,000,000 comments in history:
//! publish latency with and without 20 clients resuming from 0 (10 reading SSE streams, 10
//! long pollers asking `after=0` in a loop), memory per SSE subscriber from 0 that does not
//! read, and the time of `/long-poll?after=0` and of `/poll?after=0&user=nobody` on a feed of
//! comments to other users. Publish latency is measured twice: inside the feed (the time
//! `publish` takes, lock waits included) and over HTTP (`POST /comments` round trips on a
//! keep-alive connection). Run with `cargo run --release --example resume_cost`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::Method;
use pushlab::feed::NewComment;
use pushlab::http::client::HttpConnection;
use pushlab::model::ServerConfig;
use pushlab::model::Target;
use pushlab::net::ByteMeter;
use pushlab::server::{RunningServer, spawn};
use tokio_util::sync::CancellationToken;

const HISTORY: usize = 1_000_000;
/// Publishes per second while latency is measured.
const RATE: u64 = 200;
const PHASE: Duration = Duration::from_secs(4);

async fn filled(to: impl Fn(usize) -> Option<String>) -> RunningServer {
    let config = ServerConfig {
        // Room for the comments published while measuring, so `after=0` stays inside the
        // history (the server before incarnations refused it once anything was evicted).
        history_capacity: HISTORY * 2,
        ..ServerConfig::default()
    };
    let server = spawn(config).await.expect("binds");
    let text = "x".repeat(100);
    for i in 0..HISTORY {
        let comment = NewComment {
            from: "alice".into(),
            to: to(i),
            text: text.clone(),
        };
        server.state.feed.publish(comment).await.expect("publish");
    }
    server
}

/// Publishes at `RATE` for `PHASE`, returning each publish's time in the feed, sorted (µs).
async fn publish_latencies(server: &RunningServer) -> Vec<f64> {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut times = Vec::new();
    let end = Instant::now() + PHASE;
    while Instant::now() < end {
        ticker.tick().await;
        let comment = NewComment {
            from: "bob".into(),
            to: None,
            text: "live".into(),
        };
        let started = Instant::now();
        server.state.feed.publish(comment).await.expect("publish");
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    times
}

/// Publishes over HTTP (`POST /comments` on one keep-alive connection) at `RATE` for `PHASE`,
/// returning each round trip, sorted (µs): what a publishing client sees, the feed's lock
/// and the server's scheduling included.
async fn post_latencies(server: &RunningServer) -> Vec<f64> {
    let mut connection = connection(server).await;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut times = Vec::new();
    let end = Instant::now() + PHASE;
    let headers = [("content-type", "application/json")];
    let body = bytes::Bytes::from_static(br#"{"from":"bob","text":"live"}"#);
    while Instant::now() < end {
        ticker.tick().await;
        let started = Instant::now();
        let response = connection
            .send(Method::POST, "/comments", &headers, Some(body.clone()))
            .await
            .expect("201");
        response.into_body().collect().await.expect("body");
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn print_latency(label: &str, times: &[f64]) {
    println!(
        "publish latency {label}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} publishes at {RATE}/s)",
        percentile(times, 0.5) / 1e3,
        percentile(times, 0.99) / 1e3,
        times.last().copied().unwrap_or(0.0) / 1e3,
        times.len()
    );
}

async fn connection(server: &RunningServer) -> HttpConnection {
    let target = Target { addr: server.addr };
    HttpConnection::open(&target, ByteMeter::new())
        .await
        .expect("connects")
}

/// Median time of `n` sequential GETs of `path`, ms.
async fn median_get(server: &RunningServer, path: &str, n: usize) -> f64 {
    let mut connection = connection(server).await;
    let mut times = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        connection.get(path).await.expect("200");
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times[n / 2]
}

fn rss_mib() -> f64 {
    pushlab::accounting::process_stats().rss_bytes as f64 / (1 << 20) as f64
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let server = filled(|_| None).await;
    println!(
        "filled a feed with {HISTORY} broadcasts in {:.1} s; RSS {:.0} MiB",
        started.elapsed().as_secs_f64(),
        rss_mib()
    );

    let quiet = publish_latencies(&server).await;
    print_latency("in the feed, with no client", &quiet);
    let quiet = post_latencies(&server).await;
    print_latency("over HTTP, with no client", &quiet);

    // 20 clients resuming from 0: 10 SSE streams read as fast as they come, 10 long pollers
    // asking after=0 again and again.
    let stop = CancellationToken::new();
    let mut clients = Vec::new();
    let delivered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..10 {
        let mut connection = connection(&server).await;
        let (stop, delivered) = (stop.clone(), delivered.clone());
        clients.push(tokio::spawn(async move {
            let response = connection
                .send(Method::GET, "/sse?after=0", &[], None)
                .await
                .expect("200");
            let mut body = response.into_body();
            while !stop.is_cancelled() {
                match tokio::time::timeout(Duration::from_millis(100), body.frame()).await {
                    Ok(Some(Ok(frame))) => {
                        let n = frame.data_ref().map_or(0, |d| d.len());
                        delivered.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => break,
                    Err(_) => {}
                }
            }
        }));
    }
    for _ in 0..10 {
        let mut connection = connection(&server).await;
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                connection
                    .get("/long-poll?after=0&timeout_ms=1000")
                    .await
                    .expect("200");
            }
        }));
    }
    let resuming = publish_latencies(&server).await;
    print_latency("in the feed, while 20 clients resume from 0", &resuming);
    let resuming = post_latencies(&server).await;
    print_latency("over HTTP, while 20 clients resume from 0", &resuming);
    stop.cancel();
    for client in clients {
        let _ = client.await;
    }
    println!(
        "  (the 10 SSE streams read {:.0} MiB of history meanwhile)",
        delivered.load(std::sync::atomic::Ordering::Relaxed) as f64 / (1 << 20) as f64
    );

    let long_poll = median_get(&server, "/long-poll?after=0&timeout_ms=1000", 21).await;
    println!("/long-poll?after=0: median {long_poll:.2} ms (21 requests)");

    // SSE subscribers from 0 that never read their body.
    let subscribers = 100;
    let before = rss_mib();
    let mut idle = Vec::new();
    for _ in 0..subscribers {
        let mut connection = connection(&server).await;
        let response = connection
            .send(Method::GET, "/sse?after=0", &[], None)
            .await
            .expect("200");
        idle.push((connection, response));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_mib();
    println!(
        "{subscribers} SSE subscribers from 0 that do not read: RSS {before:.0} -> {after:.0} MiB, {:.1} KiB each",
        (after - before) * 1024.0 / f64::from(subscribers)
    );
    drop(idle);
    server.stop().await.expect("stops");

    let per_user = filled(|i| Some(format!("user-{}", i % 1000))).await;
    let poll = median_get(&per_user, "/poll?after=0&user=nobody", 21).await;
    println!(
        "/poll?after=0&user=nobody on {HISTORY} comments to other users: median {poll:.3} ms (21 requests)"
    );
}
