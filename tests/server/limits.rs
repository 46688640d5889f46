//! Limits and faults: the connection cap (503 with `Retry-After`), slow subscribers dropped
//! for a full queue and resuming from their cursor, poll pages capped, and the admin drop
//! endpoint (on only with `admin: true`), after which the techniques' clients resume.

use std::sync::atomic::Ordering;

use pushlab::feed::NewComment;
use pushlab::net::ByteMeter;
use pushlab::server::ServerConfig;
use pushlab::techniques::Technique;
use tokio_tungstenite::tungstenite::Message;

use super::*;

#[tokio::test]
async fn connections_over_the_cap_get_503_with_retry_after() {
    let server = start_with(ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut connection = HttpConnection::open(&target(addr), ByteMeter::new())
            .await
            .unwrap();
        connection.get("/poll").await.expect("under the cap");
        held.push(connection);
    }
    let refused = get(addr, "/poll").await;
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, &["connection", "2"]);
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    // The held connections are still served.
    held[0]
        .get("/poll")
        .await
        .expect("a held connection still works");

    drop(held);
    let live = server.state.stats.clone();
    wait_for("the connections to close", || live.connections_live() == 0).await;
    let s = stats(addr).await;
    assert_eq!(s.connections_refused, 1);
    wait_for("the connections to close", || live.connections_live() == 0).await;
    assert_serving(addr).await;
}

#[tokio::test]
async fn an_http2_connection_over_the_cap_gets_a_goaway_naming_the_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_with(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let mut held = HttpConnection::open(&target(addr), ByteMeter::new())
        .await
        .unwrap();
    held.get("/poll").await.expect("under the cap");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(pushlab::http::h2frames::PREFACE)
        .await
        .unwrap();
    socket
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut reply = Vec::new();
    within("the refusal", socket.read_to_end(&mut reply))
        .await
        .unwrap();
    // SETTINGS (9 bytes, empty), then GOAWAY: type 7, last stream 0, NO_ERROR, JSON.
    assert_eq!(&reply[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0], "{reply:?}");
    assert_eq!(reply[9 + 3], 7, "a GOAWAY: {reply:?}");
    assert_eq!(&reply[18..26], &[0; 8]);
    let debug: serde_json::Value = serde_json::from_slice(&reply[26..]).unwrap();
    assert_error_json(&debug, &["connection cap", "1"]);
    assert_eq!(stats_over(&mut held).await.connections_refused, 1);
}

/// `/stats` over a connection already held (a new one would be over the cap).
async fn stats_over(connection: &mut HttpConnection) -> pushlab::server::StatsSnapshot {
    serde_json::from_slice(&connection.get("/stats").await.unwrap()).unwrap()
}

fn comment(text: String) -> NewComment {
    NewComment {
        from: "alice".into(),
        to: None,
        text,
    }
}

/// Publishes `n` comments straight into the feed without yielding (the memory feed's publish
/// never waits). The test runtime has one thread, so no subscriber task runs in between: a
/// queue of 2 overflows deterministically.
async fn burst(server: &RunningServer, n: usize) {
    for i in 0..n {
        let published = server.state.feed.publish(comment(format!("burst {i}")));
        published.await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_slow_sse_subscriber_is_dropped_and_resumes() {
    let server = start_with(ServerConfig {
        subscriber_queue: 2,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let mut stream = sse_open(addr, "/sse?user=bob", &[], ByteMeter::new())
        .await
        .expect("200");
    assert_eq!(stream.next_event().await.event.as_deref(), Some("connect"));
    burst(&server, 10).await;
    let b = first_id(&server) - 1;
    assert_eq!(stream.next_event().await.id, Some((b + 1).to_string()));
    assert_eq!(stream.next_event().await.id, Some((b + 2).to_string()));
    let dropped = stream.next_event().await;
    assert_eq!(dropped.event.as_deref(), Some("dropped"), "{dropped:?}");
    let data: serde_json::Value = serde_json::from_str(&dropped.data).unwrap();
    assert_eq!(data["resume_after"], b + 2, "{data}");
    assert_error_json(&data, &["behind", &format!("resume after id {}", b + 2)]);
    assert!(
        matches!(stream.next_block().await, Ok(None)),
        "the stream ends cleanly"
    );
    let s = wait_stats(addr, "the drop counted", |s| {
        account(s, "sse").connections_open == 0
    })
    .await;
    assert_eq!(account(&s, "sse").dropped_slow, 1);

    let mut resumed = sse_open(
        addr,
        "/sse?user=bob",
        &[("last-event-id", &(b + 2).to_string())],
        ByteMeter::new(),
    )
    .await
    .expect("200");
    assert_eq!(resumed.next_event().await.event.as_deref(), Some("connect"));
    for id in b + 3..=b + 10 {
        assert_eq!(resumed.next_event().await.id, Some(id.to_string()));
    }
    let live = publish(addr, "alice", None, "live").await;
    assert_eq!(resumed.next_event().await.id, Some(live.to_string()));
}

#[tokio::test(flavor = "current_thread")]
async fn a_slow_websocket_subscriber_is_dropped_and_resumes() {
    let server = start_with(ServerConfig {
        subscriber_queue: 2,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let mut ws = ws_connect(addr, "user=bob", ByteMeter::new()).await;
    burst(&server, 10).await;
    let ids: Vec<u64> = {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let text = ws_text(&mut ws).await;
            ids.push(serde_json::from_str::<Comment>(&text).unwrap().id);
        }
        ids
    };
    let b = first_id(&server) - 1;
    assert_eq!(ids, [b + 1, b + 2]);
    let (code, reason) = ws_close_frame(&mut ws).await;
    assert_eq!(code, pushlab::techniques::websocket::CLOSE_TOO_SLOW);
    assert!(
        reason.contains(&format!("resume after id {}", b + 2)),
        "{reason}"
    );
    let s = wait_stats(addr, "the drop counted", |s| {
        account(s, "websocket").connections_open == 0
    })
    .await;
    assert_eq!(account(&s, "websocket").dropped_slow, 1);

    let query = format!("user=bob&after={}", b + 2);
    let mut resumed = ws_connect(addr, &query, ByteMeter::new()).await;
    for id in b + 3..=b + 10 {
        let comment: Comment = serde_json::from_str(&ws_text(&mut resumed).await).unwrap();
        assert_eq!(comment.id, id);
    }
}

#[tokio::test]
async fn poll_pages_are_capped_and_continue_from_next() {
    let server = start_with(ServerConfig {
        page_limit: 2,
        ..ServerConfig::default()
    })
    .await;
    for text in ["one", "two", "three"] {
        publish(server.addr, "alice", None, text).await;
    }
    for path in ["/poll", "/long-poll"] {
        let first = get(server.addr, &format!("{path}?after=0")).await.json();
        assert_eq!(
            first["comments"].as_array().unwrap().len(),
            2,
            "{path}: {first}"
        );
        let b = first_id(&server) - 1;
        assert_eq!(first["next"], b + 2, "{path}");
        let rest = get(server.addr, &format!("{path}?after={}", b + 2))
            .await
            .json();
        assert_eq!(rest["comments"][0]["text"], "three", "{path}: {rest}");
        assert_eq!(rest["next"], b + 3, "{path}");
    }
}

fn admin_config() -> ServerConfig {
    ServerConfig {
        admin: true,
        sse_retry: Duration::from_millis(50),
        ..ServerConfig::default()
    }
}

async fn admin_drop(addr: SocketAddr, technique: &str) -> Reply {
    request(
        addr,
        Method::POST,
        &format!("/admin/drop?technique={technique}"),
        &[],
        None,
    )
    .await
}

#[tokio::test]
async fn admin_drop_ends_streams_and_counts_them() {
    let server = start_with(admin_config()).await;
    let addr = server.addr;
    let mut sse = sse_open(addr, "/sse?user=bob", &[], ByteMeter::new())
        .await
        .expect("200");
    assert_eq!(sse.next_event().await.event.as_deref(), Some("connect"));
    let mut ws = ws_connect(addr, "user=bob", ByteMeter::new()).await;
    let addr_copy = addr;
    let long_poll =
        tokio::spawn(async move { get(addr_copy, "/long-poll?after=0&timeout_ms=60000").await });
    wait_stats(addr, "the long poll held", |s| {
        account(s, "long-polling").requests == 1
    })
    .await;

    let reply = admin_drop(addr, "sse").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        serde_json::json!({ "technique": "sse", "connections_signalled": 1 })
    );
    // Like a network fault: the stream breaks off without its terminating chunk.
    assert!(sse.next_block().await.is_err(), "the SSE stream is cut");
    let s = wait_stats(addr, "the SSE drop counted", |s| {
        account(s, "sse").connections_open == 0
    })
    .await;
    assert_eq!(account(&s, "sse").dropped_by_admin, 1);
    assert_eq!(
        account(&s, "websocket").connections_open,
        1,
        "other techniques are untouched"
    );

    assert_eq!(admin_drop(addr, "websocket").await.status, StatusCode::OK);
    match ws_next(&mut ws).await {
        Some(Ok(Message::Close(_))) => panic!("a dropped WebSocket gets no close frame"),
        Some(Ok(other)) => panic!("unexpected {other:?}"),
        None | Some(Err(_)) => {}
    }
    assert_eq!(
        admin_drop(addr, "long-polling").await.status,
        StatusCode::OK
    );
    let reply = within("the long poll", long_poll).await.unwrap();
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, &["admin"]);
    let s = wait_stats(addr, "every drop counted", |s| {
        account(s, "websocket").dropped_by_admin == 1
            && account(s, "long-polling").dropped_by_admin == 1
    })
    .await;
    assert_eq!(account(&s, "websocket").connections_open, 0);

    admin_drop(addr, "carrier-pigeon")
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["carrier-pigeon", "sse"]);
    // Connections made after a drop are not dropped by it.
    let mut sse = sse_open(addr, "/sse?user=bob", &[], ByteMeter::new())
        .await
        .expect("200");
    assert_eq!(sse.next_event().await.event.as_deref(), Some("connect"));
    let id = publish(addr, "alice", None, "after the drop").await;
    assert_eq!(sse.next_event().await.id, Some(id.to_string()));
}

#[tokio::test]
async fn admin_drop_is_404_when_admin_is_off() {
    let server = start().await;
    let mut sse = sse_open(server.addr, "/sse?user=bob", &[], ByteMeter::new())
        .await
        .expect("200");
    assert_eq!(sse.next_event().await.event.as_deref(), Some("connect"));
    admin_drop(server.addr, "sse")
        .await
        .assert_error(StatusCode::NOT_FOUND, &["/admin/drop"]);
    let id = publish(server.addr, "alice", None, "still streaming").await;
    assert_eq!(sse.next_event().await.id, Some(id.to_string()));
    assert_eq!(
        account(&stats(server.addr).await, "sse").dropped_by_admin,
        0
    );
}

/// The streaming clients reconnect after a drop and resume from their cursor
/// (`Last-Event-ID` for SSE, `?after=` for WebSocket): nothing missed, nothing twice.
#[tokio::test]
async fn stream_clients_resume_after_an_admin_drop() {
    let server = start_with(admin_config()).await;
    let addr = server.addr;
    for technique in [Technique::Sse, Technique::WebSocket] {
        let mut client = subscribe(technique, addr, Some("bob"), None);
        client.ready().await;
        let before = publish(addr, "alice", None, "before").await;
        assert_eq!(client.next().await.id, before);
        assert_eq!(
            admin_drop(addr, technique.name()).await.status,
            StatusCode::OK
        );
        let during = [
            publish(addr, "alice", Some("bob"), "during 1").await,
            publish(addr, "alice", None, "during 2").await,
        ];
        assert_eq!(client.next_ids(2).await, during, "{technique}");
        let counters = client.subscriber.counters.clone();
        wait_for("a reconnect", || {
            counters.reconnects.load(Ordering::Relaxed) >= 1
        })
        .await;
        let after = publish(addr, "alice", None, "after").await;
        assert_eq!(client.next().await.id, after, "{technique}: nothing twice");
        client.stop().await;
    }
}

/// A backend outage (rehearsed on the memory feed) never loses a comment silently: a
/// publish is a 503 with Retry-After, every live subscriber is dropped with the cursor to
/// resume after (and counted), and once the backend is back they resume without loss.
#[tokio::test]
async fn a_feed_outage_is_a_503_and_a_counted_resumable_drop() {
    let feed = Arc::new(pushlab::feed::MemoryFeed::new(1000, 64));
    let state = pushlab::server::AppState::with_feed(
        ServerConfig::default(),
        tokio_util::sync::CancellationToken::new(),
        feed.clone(),
    );
    let server = pushlab::server::spawn_with_state(state).await.unwrap();
    let addr = server.addr;
    let first = publish(addr, "alice", None, "before").await;
    let mut sse = sse_open(addr, "/sse?after=0", &[], ByteMeter::new())
        .await
        .expect("200");
    assert_eq!(sse.next_event().await.event.as_deref(), Some("connect"));
    assert_eq!(sse.next_event().await.id, Some(first.to_string()));
    let mut ws = ws_connect(addr, "after=0", ByteMeter::new()).await;
    let comment: serde_json::Value = serde_json::from_str(&ws_text(&mut ws).await).unwrap();
    assert_eq!(comment["id"], first);
    let long_poll = tokio::spawn(async move {
        get(addr, &format!("/long-poll?after={first}&timeout_ms=10000")).await
    });

    feed.set_outage(Some("rehearsed outage".into()));

    let dropped = sse.next_event().await;
    assert_eq!(dropped.event.as_deref(), Some("dropped"), "{dropped:?}");
    let data: serde_json::Value = serde_json::from_str(&dropped.data).unwrap();
    assert_eq!(data["resume_after"], first, "{data}");
    assert_error_json(&data, &["unavailable", "rehearsed outage"]);
    let (code, reason) = ws_close_frame(&mut ws).await;
    assert_eq!(code, pushlab::techniques::websocket::CLOSE_TRY_AGAIN);
    assert!(
        reason.contains(&format!("resume after id {first}")),
        "{reason}"
    );
    // Waiting when the outage began or arriving during it: the same 503, counted once.
    let reply = within("the long poll", long_poll).await.unwrap();
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, &["unavailable"]);
    assert!(reply.headers.contains_key("retry-after"));
    let refused = post_json(addr, "/comments", r#"{"from":"alice","text":"during"}"#).await;
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, &["unavailable"]);
    assert!(refused.headers.contains_key("retry-after"));
    let s = stats(addr).await;
    for technique in ["sse", "websocket", "long-polling"] {
        assert_eq!(account(&s, technique).dropped_unavailable, 1, "{technique}");
    }
    assert_eq!(
        s.comments_published, 1,
        "the refused publish was not stored"
    );

    feed.set_outage(None);
    let mut resumed = sse_open(
        addr,
        "/sse",
        &[("last-event-id", &first.to_string())],
        ByteMeter::new(),
    )
    .await
    .expect("200");
    assert_eq!(resumed.next_event().await.event.as_deref(), Some("connect"));
    let after = publish(addr, "alice", None, "after").await;
    assert_eq!(after, first + 1, "nothing was stored during the outage");
    assert_eq!(resumed.next_event().await.id, Some(after.to_string()));
}
