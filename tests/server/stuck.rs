//! Subscribers whose socket accepts nothing: dropped and counted while they are stuck (the
//! write-stall timeout, or a full queue noticed behind the stuck socket), while a reading
//! subscriber on the same server gets everything; a blocked send holds up neither shutdown
//! nor an admin drop; a WebSocket that answers no ping is closed with code 4009.

use pushlab::feed::NewComment;
use pushlab::net::ByteMeter;
use pushlab::server::ServerConfig;
use pushlab::techniques::Technique;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::*;

/// A comment near the default size limit, so few of them fill a socket.
fn big(i: usize) -> NewComment {
    NewComment {
        from: "alice".into(),
        to: None,
        text: format!("{i:>6} {}", "x".repeat(3_990)),
    }
}

/// Opens a connection with a 4 KiB receive buffer, sends `request` and never reads.
async fn stuck_client(addr: SocketAddr, request: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = within("connect", socket.connect(addr)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

const SSE_REQUEST: &str =
    "GET /sse?user=stuck HTTP/1.1\r\nhost: pushlab\r\naccept: text/event-stream\r\n\r\n";
const WS_REQUEST: &str = "GET /ws?user=stuck HTTP/1.1\r\nhost: pushlab\r\nupgrade: websocket\r\n\
    connection: Upgrade\r\nsec-websocket-version: 13\r\n\
    sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A stuck SSE and a stuck WebSocket subscriber, both past their handshake.
async fn stuck_pair(addr: SocketAddr) -> (TcpStream, TcpStream) {
    let before = stats(addr).await;
    let open = |s: &StatsSnapshot, name| account(s, name).connections_open;
    let sse = stuck_client(addr, SSE_REQUEST).await;
    let ws = stuck_client(addr, WS_REQUEST).await;
    wait_stats(addr, "both stuck subscribers connected", |s| {
        open(s, "sse") == open(&before, "sse") + 1
            && open(s, "websocket") == open(&before, "websocket") + 1
    })
    .await;
    (sse, ws)
}

/// Publishes big comments, a batch at a time, until `done` holds; returns how many.
async fn publish_until(
    server: &RunningServer,
    what: &str,
    done: impl Fn(&StatsSnapshot) -> bool,
) -> usize {
    let mut published = 0;
    for _ in 0..400 {
        if done(&stats(server.addr).await) {
            return published;
        }
        for _ in 0..25 {
            server.state.feed.publish(big(published)).await.unwrap();
            published += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{published} comments published and still not {what}");
}

fn both(s: &StatsSnapshot, field: impl Fn(&AccountStats) -> u64) -> bool {
    field(&account(s, "sse")) == 1 && field(&account(s, "websocket")) == 1
}

#[tokio::test]
async fn stuck_subscribers_are_dropped_for_a_write_stall_while_a_reader_gets_everything() {
    let server = start_with(ServerConfig {
        write_stall_timeout: Duration::from_millis(500),
        // Large enough that the stall, not the queue, ends the stuck subscribers.
        subscriber_queue: 100_000,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let mut readers = Vec::new();
    for technique in [Technique::Sse, Technique::WebSocket] {
        let reader = subscribe(technique, addr, Some("reader"), None);
        reader.ready().await;
        readers.push(reader);
    }
    let _stuck = stuck_pair(addr).await;
    let published = publish_until(&server, "dropped for a write stall", |s| {
        both(s, |a| a.dropped_stalled)
    })
    .await;
    let s = wait_stats(addr, "the stuck connections closed", |s| {
        // The readers are still connected.
        account(s, "sse").connections_open == 1 && account(s, "websocket").connections_open == 1
    })
    .await;
    for name in ["sse", "websocket"] {
        let a = account(&s, name);
        assert_eq!((a.dropped_stalled, a.dropped_slow), (1, 0), "{name}: {a:?}");
        assert_eq!(a.writes_blocked, 0, "{name}: {a:?}");
    }
    for reader in &mut readers {
        let ids = reader.next_ids(published).await;
        let first = first_id(&server);
        assert_eq!(ids, (first..first + published as u64).collect::<Vec<_>>());
    }
    for reader in readers {
        reader.stop().await;
    }
}

#[tokio::test]
async fn a_queue_that_overflows_behind_a_stuck_socket_is_noticed_while_stuck() {
    let server = start_with(ServerConfig {
        // Never, within this test: the full queue must be what ends them.
        write_stall_timeout: Duration::from_secs(3600),
        subscriber_queue: 64,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let _stuck = stuck_pair(addr).await;
    publish_until(&server, "dropped for a full queue", |s| {
        both(s, |a| a.dropped_slow)
    })
    .await;
    let s = wait_stats(addr, "the stuck connections closed", |s| {
        both(s, |a| 1 - a.connections_open.min(1))
    })
    .await;
    for name in ["sse", "websocket"] {
        let a = account(&s, name);
        assert_eq!((a.dropped_slow, a.dropped_stalled), (1, 0), "{name}: {a:?}");
    }
    assert_serving(addr).await;
}

#[tokio::test]
async fn an_admin_drop_ends_subscribers_whose_send_is_blocked() {
    let server = start_with(ServerConfig {
        admin: true,
        write_stall_timeout: Duration::ZERO,
        subscriber_queue: 100_000,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let _stuck = stuck_pair(addr).await;
    publish_until(&server, "blocked", |s| both(s, |a| a.writes_blocked)).await;
    for technique in ["sse", "websocket"] {
        let reply = post_json(addr, &format!("/admin/drop?technique={technique}"), "").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let s = wait_stats(addr, "the blocked connections dropped", |s| {
        both(s, |a| 1 - a.connections_open.min(1))
    })
    .await;
    for name in ["sse", "websocket"] {
        let a = account(&s, name);
        assert_eq!(
            (a.dropped_by_admin, a.writes_blocked),
            (1, 0),
            "{name}: {a:?}"
        );
    }
}

#[tokio::test]
async fn shutdown_is_prompt_with_stuck_subscribers_and_healthy_ones_get_their_close() {
    let server = start_with(ServerConfig {
        write_stall_timeout: Duration::ZERO,
        subscriber_queue: 100_000,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let _stuck = stuck_pair(addr).await;
    publish_until(&server, "blocked", |s| both(s, |a| a.writes_blocked)).await;
    // Connected after the flood, from now on: nothing is waiting for them.
    let mut ws = ws_connect(addr, "user=bob", ByteMeter::new()).await;
    let mut sse = sse_open(addr, "/sse?user=bob", &[], ByteMeter::new())
        .await
        .expect("200");
    assert_eq!(sse.next_event().await.event.as_deref(), Some("connect"));

    // Without the fix the stuck WebSocket held `stop` for its whole 5 s grace period.
    assert_clean_stop(server, &mut ws, &mut sse).await;
}

#[tokio::test]
async fn a_websocket_that_answers_no_ping_is_closed_with_4009() {
    let server = start_with(ServerConfig {
        ws_ping_interval: Duration::from_millis(200),
        ws_pong_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    // A client that reads but never writes: the handshake by hand, then raw frames.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent.write_all(WS_REQUEST.as_bytes()).await.unwrap();
    // A healthy client on the same server, reading all along, answers its pings
    // (tungstenite does) and stays.
    let mut healthy = subscribe(Technique::WebSocket, addr, Some("bob"), None);
    healthy.ready().await;
    let mut received = Vec::new();
    within(
        "the silent client to be closed",
        silent.read_to_end(&mut received),
    )
    .await
    .unwrap();
    let head_end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a handshake response")
        + 4;
    assert!(received.starts_with(b"HTTP/1.1 101"), "{received:?}");
    let frames = server_frames(&received[head_end..]);
    let opcodes: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
    // The hello, one ping, then the close.
    assert_eq!(opcodes, [0x1, 0x9, 0x8], "{frames:?}");
    let close = &frames[2].1;
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 4009);
    assert_eq!(frames[1].1, b"", "an empty ping");

    let s = stats(addr).await;
    assert_eq!(account(&s, "websocket").dropped_unresponsive, 1);
    // The healthy client has answered pings for longer than the silent one lasted.
    let id = publish(addr, "alice", None, "still here?").await;
    assert_eq!(healthy.next().await.id, id);
    let s = stats(addr).await;
    assert_eq!(account(&s, "websocket").dropped_unresponsive, 1);
    assert_eq!(
        healthy
            .subscriber
            .counters
            .reconnects
            .load(Ordering::Relaxed),
        0
    );
    healthy.stop().await;
}

/// Splits unmasked server frames into (opcode, payload).
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, start) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => panic!("no frame here is that long"),
            n => (n as usize, 2),
        };
        frames.push((opcode, bytes[start..start + len].to_vec()));
        bytes = &bytes[start + len..];
    }
    frames
}
