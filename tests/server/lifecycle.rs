//! Lifecycle: a graceful shutdown closes every stream cleanly (WebSocket close code 1001, the
//! SSE body ends, held long polls answer) and returns within seconds; and the
//! `pushlab-server` binary prints its address, serves, exits on SIGTERM and documents its
//! flags.

use std::process::Stdio;
use std::time::Instant;

use pushlab::net::ByteMeter;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::*;

#[tokio::test]
async fn shutdown_closes_every_stream_cleanly() {
    let server = start().await;
    let addr = server.addr;
    let mut ws = ws_connect(addr, "user=bob", ByteMeter::new()).await;
    let mut sse = sse_open(addr, "/sse?user=bob", &[], ByteMeter::new())
        .await
        .expect("200");
    assert_eq!(sse.next_event().await.event.as_deref(), Some("connect"));
    let long_poll =
        tokio::spawn(async move { get(addr, "/long-poll?after=0&timeout_ms=60000").await });
    wait_stats(addr, "the long poll held", |s| {
        account(s, "long-polling").requests == 1
    })
    .await;

    // The clients read nothing until `stop` has returned: the WebSocket session waits up to
    // a second for a close reply that does not come, and `stop` waits for the session.
    assert_clean_stop(server, &mut ws, &mut sse).await;
    let reply = within("the long poll", long_poll).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["comments"], serde_json::json!([]));
    assert_nobody_listens(addr).await;
}

/// Nothing serves `addr` any more. A connect alone can succeed for a moment after the
/// listener closed: another test spawning a process forks, and the child holds a copy of
/// every socket until it execs. Such a connection is reset, never answered.
async fn assert_nobody_listens(addr: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream
        .write_all(b"GET /stats HTTP/1.1\r\nhost: pushlab\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    match within("the stray connection to be reset", stream.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!(
            "the server answered after stop: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    let server = start().await;
    let mut ws = ws_connect(server.addr, "user=bob", ByteMeter::new()).await;
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    // RFC 6455, 5.5.1: the endpoint that receives a close frame sends one back.
    let (code, _) = ws_close_frame(&mut ws).await;
    assert_eq!(code, 1000);
    assert!(ws_next(&mut ws).await.is_none(), "then the connection ends");
    wait_stats(server.addr, "the WebSocket closed", |s| {
        account(s, "websocket").connections_open == 0
    })
    .await;
}

#[tokio::test]
async fn the_binary_prints_its_address_serves_and_exits_on_sigterm() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushlab-server"))
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("pushlab-server starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = within("the first line", lines.next_line())
        .await
        .unwrap()
        .expect("a first line");
    let addr: SocketAddr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {first:?}"))
        .parse()
        .expect("an address");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    let id = publish(addr, "alice", None, "hello from a test").await;
    let mut ws = ws_connect(addr, "user=bob&after=0", ByteMeter::new()).await;
    let comment: Comment = serde_json::from_str(&ws_text(&mut ws).await).unwrap();
    assert_eq!(comment.id, id);

    let started = Instant::now();
    pushlab::sys::terminate(child.id().expect("running"));
    let (code, _) = ws_close_frame(&mut ws).await;
    assert_eq!(code, 1001);
    let status = within("the server to exit", child.wait()).await.unwrap();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exited in {:?}",
        started.elapsed()
    );
}

#[test]
fn the_binary_documents_every_flag() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab-server"))
        .arg("--help")
        .output()
        .expect("pushlab-server --help runs");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = help.lines().collect();
    // (flag, line index) of every option line: `--name ...` or `-n, --name ...`.
    let flag_lines: Vec<(String, usize)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.trim_start();
            let line = match line.split_once(", ") {
                Some((short, rest)) if short.len() == 2 && short.starts_with('-') => rest,
                _ => line,
            };
            let name = line.strip_prefix("--")?.split([' ', '=', '<']).next()?;
            Some((format!("--{name}"), i))
        })
        .collect();
    let flags = [
        "--bind",
        "--history",
        "--subscriber-queue",
        "--max-comment-bytes",
        "--max-connections",
        "--sse-heartbeat",
        "--sse-retry",
        "--long-poll-max-timeout",
        "--long-poll-default-timeout",
        "--page-limit",
        "--ws-read-buffer",
        "--write-stall-timeout",
        "--ws-ping-interval",
        "--ws-pong-timeout",
        "--admin",
        "--tls",
        "--feed",
        "--header-timeout",
        "--body-timeout",
        "--idle-timeout",
        "--user-timeout",
        "--allowed-origin",
        "--shutdown-grace",
        "--help",
        "--version",
    ];
    for flag in flags {
        let index = flag_lines
            .iter()
            .position(|(name, _)| name == flag)
            .unwrap_or_else(|| panic!("--help does not mention {flag}:\n{help}"));
        // The flag's line or the one after it describes it.
        let line = flag_lines[index].1;
        let description: String = lines[line..(line + 2).min(lines.len())].concat();
        assert!(
            description.len() > flag.len() + 20,
            "{flag} has no description:\n{help}"
        );
    }
    // Every flag clap knows about is in the list above.
    assert_eq!(
        flag_lines.len(),
        flags.len(),
        "a flag is missing from this test:\n{help}"
    );
}
