//! Accounting: the bytes `/stats` books to a technique (and to publishing) equal, in each
//! direction, the bytes a counting test client saw on its socket, at every quiet point of a
//! connection's life and once it is closed. Along the way each test prints the bytes on the
//! wire for one ~100-byte comment delivered to one subscriber (`cargo test -- --nocapture`).
//! Also: `/metrics` is Prometheus text with a line per account.

use futures_util::{SinkExt, StreamExt};
use pushlab::net::ByteMeter;
use pushlab::techniques::Technique;
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// Length of a comment's JSON in these tests, as in the issue's closing note.
const COMMENT_JSON_BYTES: usize = 100;

/// Publishes, from alice to everyone, a comment whose JSON is `COMMENT_JSON_BYTES` long.
async fn publish_100_byte_comment(addr: SocketAddr, id: u64) -> u64 {
    // The JSON with an empty text; publish times have 16 digits until the year 2286.
    let bare =
        format!(r#"{{"id":{id},"from":"alice","text":"","published_at_us":1234567890123456}}"#);
    let text = "x".repeat(COMMENT_JSON_BYTES - bare.len());
    let published = publish(addr, "alice", None, &text).await;
    assert_eq!(published, id);
    published
}

/// Waits until `/stats` books to `name` exactly the bytes `meter` counted, and returns them
/// as (up, down) = (bytes_in, bytes_out).
async fn settle(addr: SocketAddr, name: &str, meter: &ByteMeter) -> (u64, u64) {
    let (up, down) = meter.totals();
    wait_stats(
        addr,
        &format!("{name} bytes in/out = client up/down {up}/{down}"),
        |s| {
            let a = account(s, name);
            (a.bytes_in, a.bytes_out) == (up, down)
        },
    )
    .await;
    (up, down)
}

/// After the client closed its connection: once `/stats` shows it closed, the account's
/// bytes equal the client's count exactly.
async fn assert_closed_and_equal(
    addr: SocketAddr,
    name: &str,
    meter: &ByteMeter,
    connections: u64,
) {
    let s = wait_stats(addr, &format!("{name} connections closed"), |s| {
        let a = account(s, name);
        a.connections_open == 0 && a.connections_opened == connections
    })
    .await;
    let a = account(&s, name);
    let (up, down) = meter.totals();
    assert_eq!(a.bytes_in, up, "{name}: server bytes_in vs client bytes up");
    assert_eq!(
        a.bytes_out, down,
        "{name}: server bytes_out vs client bytes down"
    );
}

fn minus(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0 - b.0, a.1 - b.1)
}

/// One line of the bytes-per-comment figures.
fn report(
    technique: &str,
    setup_label: &str,
    setup: (u64, u64),
    comment: (u64, u64),
    total: (u64, u64),
) {
    println!(
        "bytes on the wire, {technique}: {setup_label} up {} down {}; the ~{COMMENT_JSON_BYTES}-byte \
         comment up {} down {} = {} B; whole connection in {} out {} = {} B",
        setup.0,
        setup.1,
        comment.0,
        comment.1,
        comment.0 + comment.1,
        total.0,
        total.1,
        total.0 + total.1,
    );
}

#[tokio::test]
async fn short_polling_bytes_match_the_client() {
    let server = start().await;
    let (addr, name) = (server.addr, Technique::ShortPolling.name());
    let meter = ByteMeter::new();
    let mut connection = HttpConnection::open(&target(addr), meter.clone())
        .await
        .unwrap();
    let empty = connection.get("/poll?user=bob&after=0").await.unwrap();
    let base = first_id(&server) - 1;
    assert_eq!(
        &empty[..],
        format!(r#"{{"comments":[],"next":{base}}}"#).as_bytes()
    );
    let empty_poll = settle(addr, name, &meter).await;
    let id = publish_100_byte_comment(addr, first_id(&server)).await;
    let page = connection.get("/poll?user=bob&after=0").await.unwrap();
    assert!(page.len() > COMMENT_JSON_BYTES, "{page:?}");
    let with_comment = minus(settle(addr, name, &meter).await, empty_poll);
    let again = connection
        .get(&format!("/poll?user=bob&after={id}"))
        .await
        .unwrap();
    assert_eq!(
        &again[..],
        format!(r#"{{"comments":[],"next":{id}}}"#).as_bytes()
    );
    settle(addr, name, &meter).await;
    drop(connection);
    assert_closed_and_equal(addr, name, &meter, 1).await;
    let s = stats(addr).await;
    let a = account(&s, name);
    assert_eq!(
        (a.requests, a.empty_responses, a.comments_delivered),
        (3, 2, 1)
    );
    report(
        name,
        "each empty poll",
        empty_poll,
        with_comment,
        meter.totals(),
    );
}

#[tokio::test]
async fn long_polling_bytes_match_the_client() {
    let server = start().await;
    let (addr, name) = (server.addr, Technique::LongPolling.name());
    let meter = ByteMeter::new();
    let mut connection = HttpConnection::open(&target(addr), meter.clone())
        .await
        .unwrap();
    let (page, _) = tokio::join!(
        connection.get("/long-poll?user=bob&after=0&timeout_ms=30000"),
        async {
            wait_stats(addr, "the long poll held", |s| {
                account(s, name).requests == 1
            })
            .await;
            publish_100_byte_comment(addr, first_id(&server)).await
        }
    );
    assert!(page.unwrap().len() > COMMENT_JSON_BYTES);
    let with_comment = settle(addr, name, &meter).await;
    let timed_out = connection
        .get(&format!(
            "/long-poll?user=bob&after={}&timeout_ms=50",
            first_id(&server)
        ))
        .await
        .unwrap();
    assert_eq!(
        &timed_out[..],
        format!(r#"{{"comments":[],"next":{}}}"#, first_id(&server)).as_bytes()
    );
    let empty_poll = minus(settle(addr, name, &meter).await, with_comment);
    drop(connection);
    assert_closed_and_equal(addr, name, &meter, 1).await;
    report(
        name,
        "each empty (timed-out) poll",
        empty_poll,
        with_comment,
        meter.totals(),
    );
}

#[tokio::test]
async fn websocket_bytes_match_the_client() {
    let server = start().await;
    let (addr, name) = (server.addr, Technique::WebSocket.name());
    let meter = ByteMeter::new();
    let mut ws = ws_connect(addr, "user=bob", meter.clone()).await;
    let handshake = settle(addr, name, &meter).await;
    publish_100_byte_comment(addr, first_id(&server)).await;
    assert_eq!(ws_text(&mut ws).await.len(), COMMENT_JSON_BYTES);
    let with_comment = minus(settle(addr, name, &meter).await, handshake);
    // Frames the client sends are booked too: a publish and its ack.
    ws.send(Message::text(r#"{"to":"carol","text":"hi"}"#))
        .await
        .unwrap();
    assert_eq!(
        ws_text(&mut ws).await,
        format!(r#"{{"ack":{}}}"#, first_id(&server) + 1)
    );
    settle(addr, name, &meter).await;
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = within("the end of the WebSocket", ws.next()).await {}
    drop(ws);
    assert_closed_and_equal(addr, name, &meter, 1).await;
    report(name, "handshake", handshake, with_comment, meter.totals());
}

#[tokio::test]
async fn sse_bytes_match_the_client() {
    let server = start().await;
    let (addr, name) = (server.addr, Technique::Sse.name());
    let meter = ByteMeter::new();
    let mut stream = sse_open(addr, "/sse?user=bob", &[], meter.clone())
        .await
        .expect("200");
    assert_eq!(stream.next_event().await.event.as_deref(), Some("connect"));
    let handshake = settle(addr, name, &meter).await;
    publish_100_byte_comment(addr, first_id(&server)).await;
    assert_eq!(stream.next_event().await.data.len(), COMMENT_JSON_BYTES);
    let with_comment = minus(settle(addr, name, &meter).await, handshake);
    drop(stream);
    assert_closed_and_equal(addr, name, &meter, 1).await;
    report(
        name,
        "request, response head and connect event",
        handshake,
        with_comment,
        meter.totals(),
    );
}

#[tokio::test]
async fn publish_bytes_match_the_client() {
    let server = start().await;
    let addr = server.addr;
    let meter = ByteMeter::new();
    let mut connection = HttpConnection::open(&target(addr), meter.clone())
        .await
        .unwrap();
    for text in ["one", "two"] {
        let body = format!(r#"{{"from":"alice","text":"{text}"}}"#);
        connection.post_json("/comments", &body).await.unwrap();
    }
    let first = settle(addr, "publish", &meter).await;
    drop(connection);
    assert_closed_and_equal(addr, "publish", &meter, 1).await;
    let s = stats(addr).await;
    let publishing = account(&s, "publish");
    assert_eq!((publishing.requests, publishing.comments_published), (2, 2));
    for technique in Technique::ALL {
        let a = account(&s, technique.name());
        assert_eq!(
            (a.bytes_in, a.bytes_out),
            (0, 0),
            "{technique} is untouched by publishing"
        );
    }
    println!(
        "bytes on the wire, publish: two POSTs on one connection up {} down {}",
        first.0, first.1
    );
}

/// Keep-alive requests of different kinds on one connection land in their own accounts.
#[tokio::test]
async fn keep_alive_requests_are_booked_to_their_own_accounts() {
    let server = start().await;
    let addr = server.addr;
    let meter = ByteMeter::new();
    let mut connection = HttpConnection::open(&target(addr), meter.clone())
        .await
        .unwrap();
    connection.get("/poll?after=0").await.unwrap();
    let polled = settle(addr, "short-polling", &meter).await;
    connection
        .post_json("/comments", r#"{"from":"alice","text":"hi"}"#)
        .await
        .unwrap();
    drop(connection);
    let s = wait_stats(addr, "the connection closed", |s| {
        account(s, "short-polling").connections_open == 0
            && account(s, "publish").connections_open == 0
            && account(s, "publish").connections_opened == 1
    })
    .await;
    let poll = account(&s, "short-polling");
    let publishing = account(&s, "publish");
    assert_eq!((poll.bytes_in, poll.bytes_out), polled);
    assert_eq!(
        (publishing.bytes_in, publishing.bytes_out),
        minus(meter.totals(), polled)
    );
}

/// The streaming techniques' own clients (the load generator's) count what the server books,
/// over several subscribers sharing one meter.
#[tokio::test]
async fn stream_clients_count_what_the_server_books() {
    let server = start().await;
    let addr = server.addr;
    for technique in [Technique::WebSocket, Technique::Sse] {
        let meter = ByteMeter::new();
        let mut clients = Vec::new();
        for user in ["bob", "eve", "carol"] {
            let mut subscriber = Subscriber::new(addr, Some(user), None);
            subscriber.meter = meter.clone();
            let client = subscribe_with(technique, subscriber);
            client.ready().await;
            clients.push(client);
        }
        let id =
            publish_100_byte_comment(addr, server.state.feed.last_id().await.unwrap() + 1).await;
        for client in &mut clients {
            assert_eq!(client.next().await.id, id);
        }
        for client in clients {
            client.stop().await;
        }
        assert_closed_and_equal(addr, technique.name(), &meter, 3).await;
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_per_account() {
    let server = start().await;
    let addr = server.addr;
    publish(addr, "alice", None, "hi").await;
    let page = get(addr, "/poll?after=0").await;
    assert_eq!(page.status, StatusCode::OK);
    let reply = get(addr, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = reply.text();

    let mut typed = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE NAME KIND");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_string()), "TYPE of {name} given twice");
        } else if line.starts_with("# HELP ") {
        } else {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let name = series.split('{').next().unwrap();
            assert!(name.starts_with("pushlab_"), "{line}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "metric name {name:?}"
            );
            assert!(
                typed.contains(name),
                "{name} sampled before its # TYPE line"
            );
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "{series} twice"
            );
        }
    }
    let per_account = [
        "requests_total",
        "empty_responses_total",
        "connections_opened_total",
        "connections_open",
        "bytes_in_total",
        "bytes_out_total",
        "comments_delivered_total",
        "comments_published_total",
        "dropped_slow_total",
        "dropped_by_admin_total",
        "dropped_unavailable_total",
    ];
    for metric in per_account {
        for account in [
            "short-polling",
            "long-polling",
            "websocket",
            "sse",
            "publish",
            "other",
        ] {
            let series = format!("pushlab_{metric}{{account=\"{account}\"}}");
            assert!(samples.contains_key(&series), "no {series} in\n{text}");
        }
    }
    let sample = |series: &str| {
        samples
            .get(series)
            .copied()
            .unwrap_or_else(|| panic!("no {series}"))
    };
    assert_eq!(
        sample(r#"pushlab_comments_published_total{account="publish"}"#),
        1.0
    );
    assert_eq!(
        sample(r#"pushlab_requests_total{account="short-polling"}"#),
        1.0
    );
    assert_eq!(
        sample(r#"pushlab_comments_delivered_total{account="short-polling"}"#),
        1.0
    );
    assert_eq!(sample("pushlab_feed_comments_published_total"), 1.0);
    assert!(sample(r#"pushlab_bytes_out_total{account="short-polling"}"#) > 100.0);
    assert!(sample("pushlab_process_resident_memory_bytes") > 0.0);
    assert!(sample("pushlab_process_peak_resident_memory_bytes") > 0.0);
    assert!(samples.contains_key("pushlab_process_cpu_seconds_total"));
    assert!(samples.contains_key("pushlab_connections_live"));
}

/// Refusals made before any route (hyper's protocol errors answered with JSON, a missing
/// Host, an oversized declared body, a foreign Origin, a head that timed out) and silent or
/// idle sockets closed by a timeout are booked to `other`, byte for byte.
#[tokio::test]
async fn refusals_at_the_edge_are_booked_to_other_exactly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let timeout = Duration::from_millis(300);
    let server = start_with(ServerConfig {
        header_timeout: timeout,
        idle_timeout: timeout,
        ..ServerConfig::default()
    })
    .await;
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET /stats HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let requests: [&[u8]; 7] = [
        b"GARBAGE\r\n\r\n",
        many.as_bytes(),
        b"GET /stats HTTP/1.1\r\n\r\n",
        b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\nConnection: Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        b"GET /stats HTTP/1.1\r\nHost: x\r\n",
        b"",
    ];
    let (mut up, mut down) = (0u64, 0u64);
    for request in requests {
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(request).await.unwrap();
        let mut reply = Vec::new();
        within("the server to close", socket.read_to_end(&mut reply))
            .await
            .unwrap();
        assert!(
            request.is_empty() || reply.starts_with(b"HTTP/1.1 4"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        up += request.len() as u64;
        down += reply.len() as u64;
    }
    let stats = server.state.stats.clone();
    wait_for("every connection closed", || stats.connections_live() == 0).await;
    // Read in-process: a /stats request would itself be booked to `other`.
    let snapshot = server.state.snapshot();
    let other = snapshot.account(pushlab::model::stats::Account::Other);
    assert_eq!((other.bytes_in, other.bytes_out), (up, down));
    for (name, account) in &snapshot.accounts {
        if name != "other" {
            assert_eq!((account.bytes_in, account.bytes_out), (0, 0), "{name}");
        }
    }
    assert_eq!(snapshot.timeouts.header_read, 2, "{:?}", snapshot.timeouts);
    eprintln!("edge refusals: {up} B in, {down} B out, all booked to other");
}
