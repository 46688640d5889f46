//! The floor server (`pushlab-floor`) writes pushlab-server's bytes; `floor = true` runs each
//! SSE and WebSocket cell against it too; `bench polls` checks its arguments and runs.

use std::net::SocketAddr;

use pushlab::loadgen::floor::server::{FloorConfig, serve};
use pushlab::server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::loadgen::{SERVER, loadgen, run_dir};
use crate::server::{start, within};

/// A floor server in this process on 127.0.0.1:0, with pushlab-server's default flags.
async fn start_floor() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, FloorConfig::from(&ServerConfig::default())));
    addr
}

/// Reads into `buffer` until `done` holds of it.
async fn read_until(stream: &mut TcpStream, buffer: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    within("the server's bytes", async {
        while !done(buffer) {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(buffer));
            buffer.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What may differ between two servers' bytes for the same comment: the `date:` header's
/// value, and the ids, cursors and publish times (long digit runs, of equal length on both,
/// as both number ids from the microseconds at their start). Each is masked keeping its
/// length, so chunk sizes and frame lengths still have to agree.
fn masked(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let text = match text.find("date: ") {
        Some(at) => {
            let end = at + text[at..].find("\r\n").unwrap();
            format!(
                "{}{}{}",
                &text[..at + 6],
                "D".repeat(end - at - 6),
                &text[end..]
            )
        }
        None => text,
    };
    let mut out = String::new();
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 13 {
            out.push_str(&"#".repeat(digits.len()));
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

const COMMENT: &[u8] = br#"{"from":"alice","text":"the same bytes, please"}"#;

/// Subscribes with `request` (SSE or WebSocket), publishes one comment and returns, masked,
/// the publish answer and everything the subscriber got through that comment.
async fn one_comment(addr: SocketAddr, request: &str, ends: fn(&[u8]) -> bool) -> (String, String) {
    let mut subscriber = TcpStream::connect(addr).await.unwrap();
    subscriber.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    // Subscribed once the first event or frame, naming the cursor, is in.
    read_until(&mut subscriber, &mut got, |b| {
        contains(b, b"\"after\":") && contains(b, b"}}") || contains(b, b"}\n\n\r\n")
    })
    .await;
    let mut publisher = TcpStream::connect(addr).await.unwrap();
    let post = format!(
        "POST /comments HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        COMMENT.len()
    );
    publisher.write_all(post.as_bytes()).await.unwrap();
    publisher.write_all(COMMENT).await.unwrap();
    let mut answer = Vec::new();
    read_until(&mut publisher, &mut answer, |b| b.ends_with(b"}")).await;
    read_until(&mut subscriber, &mut got, |b| {
        contains(b, b"the same bytes") && ends(b)
    })
    .await;
    (masked(&answer), masked(&got))
}

#[tokio::test]
async fn the_floor_writes_pushlabs_bytes_for_sse_and_websocket() {
    let pushlab = start().await;
    let floor = start_floor().await;
    let sse = |addr: SocketAddr| {
        format!(
            "GET /sse?user=bob HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\ncache-control: no-cache\r\n\r\n"
        )
    };
    let ws = |addr: SocketAddr| {
        format!(
            "GET /ws?user=bob HTTP/1.1\r\nhost: {addr}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
             sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let sse_end: fn(&[u8]) -> bool = |b| b.ends_with(b"}\n\n\r\n");
    let ws_end: fn(&[u8]) -> bool = |b| b.ends_with(b"}");
    let (pushlab_answer, pushlab_sse) =
        one_comment(pushlab.addr, &sse(pushlab.addr), sse_end).await;
    let (floor_answer, floor_sse) = one_comment(floor, &sse(floor), sse_end).await;
    assert!(pushlab_sse.contains("event: comment"), "{pushlab_sse}");
    assert_eq!(floor_sse, pushlab_sse);
    assert!(
        pushlab_answer.starts_with("HTTP/1.1 201"),
        "{pushlab_answer}"
    );
    assert_eq!(floor_answer, pushlab_answer);
    let (_, pushlab_ws) = one_comment(pushlab.addr, &ws(pushlab.addr), ws_end).await;
    let (_, floor_ws) = one_comment(floor, &ws(floor), ws_end).await;
    assert!(pushlab_ws.starts_with("HTTP/1.1 101"), "{pushlab_ws}");
    assert_eq!(floor_ws, pushlab_ws);
}

#[test]
fn a_floor_cell_runs_beside_each_push_cell_and_the_report_holds_them_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("floor.toml");
    std::fs::write(
        &file,
        r#"
name = "floor"
description = "integration test"
techniques = ["short-polling", "websocket", "sse"]
clients = 3
duration = "1s"
warmup = "300ms"
drain = "1s"
floor = true

[publish]
rate = 10

[short_polling]
interval = "100ms"
"#,
    )
    .unwrap();
    let results = dir.path().join("results");
    let output = loadgen(&[
        "run",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--quiet",
        "--server-binary",
        SERVER,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run = run_dir(&results, "floor");
    let summary = pushlab::report::load_summary(&run).unwrap();
    assert_eq!(summary.cells.len(), 3);
    for cell in &summary.cells {
        let name = cell.technique.name();
        assert!(cell.per_delivery.loadgen_cpu_us > 0.0, "{name}");
        if cell.technique == pushlab::model::Technique::ShortPolling {
            assert!(cell.floor.is_none(), "the floor serves no polls");
            continue;
        }
        let floor = cell.floor.as_ref().expect("a floor run for each push cell");
        assert!(floor.expected > 0, "{name}: {floor:?}");
        assert_eq!(floor.delivered, floor.expected, "{name}: {floor:?}");
        assert!(
            floor.p99_us >= floor.p50_us && floor.p50_us > 0,
            "{name}: {floor:?}"
        );
        assert!(
            floor.server_cpu_us > 0.0,
            "{name}: the floor's /stats gave its CPU"
        );
        assert!(
            floor
                .warnings
                .iter()
                .all(|w| !w.contains("LOSS") && !w.contains("disagree")),
            "{name}: {:?}",
            floor.warnings
        );
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("## pushlab against the floor"), "{report}");
    assert!(report.contains("| sse · ") && report.contains("| websocket · "));
    assert!(report.contains("## The load generator's CPU per delivery"));
}

#[test]
fn bench_polls_checks_its_flags_and_runs_without_wrk() {
    let output = loadgen(&["bench", "polls", "--connections", "0"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--connections"));
    let output = loadgen(&["bench", "polls", "--duration", "100ms"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--duration"));
    let output = loadgen(&[
        "bench",
        "polls",
        "--connections",
        "2",
        "--duration",
        "1s",
        "--without-wrk",
        "--server-binary",
        SERVER,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("loadgen pollers:"), "{stdout}");
    assert!(stdout.contains("wrk:             not measured"), "{stdout}");
}
