//! Delivery, per technique: a published comment arrives; per-user targeting holds; resuming
//! from a cursor yields exactly the missed comments, once each. Then each technique's own
//! guarantees: long polls return on publish and on timeout, WebSocket clients publish, SSE
//! sends `connect`, `retry:`, heartbeats and resumes after `Last-Event-ID`; and a comment's
//! JSON is the same bytes in all four.

use std::time::Instant;

use pushlab::feed::now_micros;
use pushlab::net::ByteMeter;
use pushlab::server::{RunningServer, ServerConfig};
use pushlab::techniques::Technique;
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// Generates one `#[tokio::test]` per technique for each `async fn NAME(Technique)`.
macro_rules! per_technique {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            use pushlab::techniques::Technique;

            #[tokio::test]
            async fn short_polling() {
                super::$test(Technique::ShortPolling).await;
            }

            #[tokio::test]
            async fn long_polling() {
                super::$test(Technique::LongPolling).await;
            }

            #[tokio::test]
            async fn websocket() {
                super::$test(Technique::WebSocket).await;
            }

            #[tokio::test]
            async fn sse() {
                super::$test(Technique::Sse).await;
            }
        }
    )*};
}

per_technique!(
    receives_a_published_comment,
    delivers_per_user,
    resumes_from_a_cursor
);

fn is_poll(technique: Technique) -> bool {
    matches!(technique, Technique::ShortPolling | Technique::LongPolling)
}

/// A subscriber that gets every comment published from now on. Pollers start from the
/// feed's newest id (a long poller reports `ready` only after its first answer, so waiting
/// for it would wait for a comment); streams start without a cursor, and the test waits for
/// them to be established.
async fn live_client(technique: Technique, server: &RunningServer, user: Option<&str>) -> Client {
    if is_poll(technique) {
        let client = subscribe(
            technique,
            server.addr,
            user,
            Some(server.state.feed.last_id().await.unwrap()),
        );
        if technique == Technique::ShortPolling {
            client.ready().await;
        }
        client
    } else {
        let client = subscribe(technique, server.addr, user, None);
        client.ready().await;
        client
    }
}

async fn receives_a_published_comment(technique: Technique) {
    let server = start().await;
    let mut client = live_client(technique, &server, Some("bob")).await;
    let before = now_micros();
    let id = publish(server.addr, "alice", None, "hello, bob").await;
    let comment = client.next().await;
    assert_eq!(comment.id, id);
    assert_eq!(comment.from, "alice");
    assert_eq!(comment.to, None);
    assert_eq!(comment.text, "hello, bob");
    assert!(
        (before..=now_micros()).contains(&comment.published_at_us),
        "publish time {} is the server's clock at publish",
        comment.published_at_us
    );
    let second = publish(server.addr, "carol", Some("bob"), "second").await;
    let third = publish(server.addr, "alice", None, "third").await;
    assert_eq!(client.next_ids(2).await, [second, third]);
    wait_stats(server.addr, "three deliveries", |s| {
        account(s, technique.name()).comments_delivered == 3
    })
    .await;
    client.stop().await;
}

async fn delivers_per_user(technique: Technique) {
    let server = start().await;
    let mut bob = live_client(technique, &server, Some("bob")).await;
    let mut eve = live_client(technique, &server, Some("eve")).await;
    let mut anonymous = live_client(technique, &server, None).await;
    let to_bob = publish(server.addr, "alice", Some("bob"), "for bob").await;
    let to_eve = publish(server.addr, "alice", Some("eve"), "for eve").await;
    let to_all = publish(server.addr, "alice", None, "for everyone").await;
    // Each subscriber gets its comments in id order, so the to-everyone comment coming right
    // after its own proves it got nothing addressed to someone else.
    let comment = bob.next().await;
    assert_eq!((comment.id, comment.to.as_deref()), (to_bob, Some("bob")));
    assert_eq!(comment.text, "for bob");
    assert_eq!(bob.next().await.id, to_all);
    let comment = eve.next().await;
    assert_eq!((comment.id, comment.to.as_deref()), (to_eve, Some("eve")));
    assert_eq!(eve.next().await.id, to_all);
    let comment = anonymous.next().await;
    assert_eq!((comment.id, comment.to), (to_all, None));
    for client in [bob, eve, anonymous] {
        client.stop().await;
    }
}

async fn resumes_from_a_cursor(technique: Technique) {
    let server = start().await;
    let first = publish(server.addr, "alice", None, "one").await;
    let second = publish(server.addr, "alice", Some("bob"), "two").await;
    let _for_eve = publish(server.addr, "alice", Some("eve"), "not for bob").await;
    let fourth = publish(server.addr, "alice", None, "four").await;
    let mut client = subscribe(technique, server.addr, Some("bob"), Some(first));
    let missed = [client.next().await, client.next().await];
    assert_eq!(missed.clone().map(|c| c.id), [second, fourth]);
    assert_eq!(missed.map(|c| c.text), ["two", "four"]);
    let live = publish(server.addr, "alice", None, "live").await;
    // The next delivery is the live comment: nothing missed was delivered twice.
    assert_eq!(client.next().await.id, live);
    client.stop().await;
}

#[tokio::test]
async fn omitting_after_means_from_now_on() {
    let server = start().await;
    let old = publish(server.addr, "alice", None, "before anyone subscribed").await;
    for path in ["/poll?user=bob", "/long-poll?user=bob&timeout_ms=50"] {
        let reply = get(server.addr, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(
            reply.json(),
            serde_json::json!({ "comments": [], "next": old }),
            "{path}"
        );
    }
    for technique in [Technique::WebSocket, Technique::Sse] {
        let mut client = subscribe(technique, server.addr, Some("bob"), None);
        client.ready().await;
        let new = publish(server.addr, "alice", None, "after").await;
        assert_eq!(client.next().await.id, new, "{technique}");
        client.stop().await;
    }
}

#[tokio::test]
async fn long_poll_returns_on_publish() {
    let server = start().await;
    let addr = server.addr;
    let started = Instant::now();
    let poll =
        tokio::spawn(
            async move { get(addr, "/long-poll?user=bob&after=0&timeout_ms=60000").await },
        );
    wait_stats(addr, "the long poll held", |s| {
        account(s, "long-polling").requests == 1
    })
    .await;
    assert!(
        !poll.is_finished(),
        "a long poll with nothing to return is held"
    );
    let id = publish(addr, "alice", Some("bob"), "wake up").await;
    let reply = within("the long poll", poll).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it returned on publish, not on its 60 s timeout"
    );
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["comments"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["comments"][0]["id"], id);
    assert_eq!(body["comments"][0]["text"], "wake up");
    assert_eq!(body["next"], id);
}

#[tokio::test]
async fn long_poll_returns_on_timeout() {
    let server = start().await;
    let started = Instant::now();
    let reply = get(server.addr, "/long-poll?user=bob&after=0&timeout_ms=300").await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        serde_json::json!({ "comments": [], "next": first_id(&server) - 1 }),
        "cursor 0 is the feed's first cursor"
    );
    assert!(
        elapsed >= Duration::from_millis(300),
        "held for {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "held for {elapsed:?}");
    // A comment to someone else does not end bob's poll; its timeout does, with the cursor
    // moved past the comment bob need not see again.
    let for_eve = publish(server.addr, "alice", Some("eve"), "not for bob").await;
    let reply = get(server.addr, "/long-poll?user=bob&after=0&timeout_ms=300").await;
    assert_eq!(
        reply.json(),
        serde_json::json!({ "comments": [], "next": for_eve })
    );
    let s = stats(server.addr).await;
    assert_eq!(account(&s, "long-polling").empty_responses, 2);
}

#[tokio::test]
async fn websocket_clients_publish() {
    let server = start().await;
    let mut bob = subscribe(Technique::WebSocket, server.addr, Some("bob"), None);
    let mut sse_anon = subscribe(Technique::Sse, server.addr, None, None);
    bob.ready().await;
    sse_anon.ready().await;
    let mut alice = ws_connect(server.addr, "user=alice", ByteMeter::new()).await;

    alice
        .send(Message::text(r#"{"to":"bob","text":"hi bob"}"#))
        .await
        .unwrap();
    let first = first_id(&server);
    assert_eq!(ws_text(&mut alice).await, format!(r#"{{"ack":{first}}}"#));
    let comment = bob.next().await;
    assert_eq!(comment.id, first);
    assert_eq!(comment.from, "alice", "the author is the connection's user");
    assert_eq!(comment.to.as_deref(), Some("bob"));
    assert_eq!(comment.text, "hi bob");

    alice
        .send(Message::text(r#"{"text":"hi all"}"#))
        .await
        .unwrap();
    // Alice is a subscriber too: her own to-everyone comment reaches her as well as the ack.
    let mut got = [ws_text(&mut alice).await, ws_text(&mut alice).await];
    got.sort();
    assert_eq!(got[0], format!(r#"{{"ack":{}}}"#, first + 1));
    assert!(got[1].contains(r#""text":"hi all""#), "{got:?}");
    assert_eq!(bob.next().await.id, first + 1);
    assert_eq!(
        sse_anon.next().await.id,
        first + 1,
        "the anonymous SSE subscriber skips the comment to bob"
    );
    let s = stats(server.addr).await;
    assert_eq!(account(&s, "websocket").comments_published, 2);
    assert_eq!(s.comments_published, 2);
    bob.stop().await;
    sse_anon.stop().await;
}

#[tokio::test]
async fn sse_sends_connect_retry_and_heartbeats() {
    let server = start_with(ServerConfig {
        sse_heartbeat: Duration::from_millis(100),
        sse_retry: Duration::from_millis(1500),
        ..ServerConfig::default()
    })
    .await;
    let mut stream = sse_open(server.addr, "/sse?user=bob&after=0", &[], ByteMeter::new())
        .await
        .expect("200");
    let connect = stream.next_event().await;
    assert_eq!(connect.event.as_deref(), Some("connect"));
    assert_eq!(connect.retry.as_deref(), Some("1500"));
    let data: serde_json::Value = serde_json::from_str(&connect.data).unwrap();
    assert_eq!(
        data,
        serde_json::json!({ "user": "bob", "after": first_id(&server) - 1 }),
        "cursor 0 is the feed's first cursor"
    );
    // Heartbeats are comment lines, one interval after the last thing sent.
    let connected = std::time::Instant::now();
    let heartbeat = next_heartbeat(&mut stream).await;
    assert!(heartbeat.duration_since(connected) >= Duration::from_millis(90));
    // A comment in between pushes the next heartbeat back a whole interval after it.
    publish(server.addr, "alice", None, "between").await;
    assert_eq!(stream.next_event().await.event.as_deref(), Some("comment"));
    let commented = std::time::Instant::now();
    let heartbeat = next_heartbeat(&mut stream).await;
    assert!(heartbeat.duration_since(commented) >= Duration::from_millis(90));
    let id = publish(server.addr, "alice", None, "hi").await;
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("comment"));
    assert_eq!(event.id, Some(id.to_string()));
    let comment: pushlab::feed::Comment = serde_json::from_str(&event.data).unwrap();
    assert_eq!((comment.id, comment.text.as_str()), (id, "hi"));
}

#[tokio::test]
async fn sse_sends_no_heartbeat_at_a_zero_interval() {
    let server = start_with(ServerConfig {
        sse_heartbeat: Duration::ZERO,
        ..ServerConfig::default()
    })
    .await;
    let mut stream = sse_open(server.addr, "/sse?user=bob", &[], ByteMeter::new())
        .await
        .expect("200");
    assert_eq!(stream.next_event().await.event.as_deref(), Some("connect"));
    // A zero interval is a timer already due: were it looked at, heartbeats would come
    // back to back, before the comment.
    let id = publish(server.addr, "alice", None, "after connect").await;
    let block = stream
        .next_block()
        .await
        .unwrap()
        .expect("the stream goes on");
    assert_eq!(block.event.as_deref(), Some("comment"), "{block:?}");
    assert_eq!(block.id, Some(id.to_string()));
}

/// Reads blocks until a heartbeat (a block of comment lines only) and says when it came.
async fn next_heartbeat(stream: &mut SseStream) -> std::time::Instant {
    loop {
        let block = stream
            .next_block()
            .await
            .unwrap()
            .expect("the stream goes on");
        if block.event.is_none() && block.data.is_empty() {
            assert!(
                !block.comments.is_empty() && block.id.is_none(),
                "{block:?}"
            );
            return std::time::Instant::now();
        }
    }
}

#[tokio::test]
async fn sse_resumes_after_last_event_id() {
    let server = start().await;
    for text in ["one", "two", "three"] {
        publish(server.addr, "alice", None, text).await;
    }
    // EventSource repeats its first URL when it reconnects, so the header wins over `after`.
    let b = first_id(&server) - 1;
    let mut stream = sse_open(
        server.addr,
        "/sse?user=bob&after=0",
        &[("last-event-id", &(b + 2).to_string())],
        ByteMeter::new(),
    )
    .await
    .expect("200");
    let connect = stream.next_event().await;
    assert_eq!(connect.event.as_deref(), Some("connect"));
    let data: serde_json::Value = serde_json::from_str(&connect.data).unwrap();
    assert_eq!(data["after"], b + 2);
    let missed = stream.next_event().await;
    assert_eq!(missed.id, Some((b + 3).to_string()));
    let live = publish(server.addr, "alice", None, "four").await;
    assert_eq!(stream.next_event().await.id, Some(live.to_string()));
}

#[tokio::test]
async fn comment_json_is_byte_identical_across_techniques() {
    let server = start().await;
    let mut ws = ws_connect(server.addr, "user=bob&after=0", ByteMeter::new()).await;
    let mut sse = sse_open(server.addr, "/sse?user=bob&after=0", &[], ByteMeter::new())
        .await
        .expect("200");
    assert_eq!(sse.next_event().await.event.as_deref(), Some("connect"));
    // Text that JSON escapes: quotes, a backslash, a newline, HTML, non-ASCII, an emoji.
    let text = "say \"hi\" \\ to\nbob </script> é 😀";
    let id = publish(server.addr, "alice", Some("bob"), text).await;

    let stored = server
        .state
        .feed
        .read_after(Some(0), Some("bob"), 10)
        .await
        .unwrap()
        .comments[0]
        .json
        .to_string();
    let page = |reply: Reply| {
        let body = reply.text();
        body.strip_prefix(r#"{"comments":["#)
            .and_then(|rest| rest.strip_suffix(&format!(r#"],"next":{id}}}"#)))
            .unwrap_or_else(|| panic!("unexpected page {body}"))
            .to_string()
    };
    let short = page(get(server.addr, "/poll?user=bob&after=0").await);
    let long = page(get(server.addr, "/long-poll?user=bob&after=0&timeout_ms=1000").await);
    let frame = ws_text(&mut ws).await;
    let event = sse.next_event().await.data;

    assert_eq!(short, stored, "short polling");
    assert_eq!(long, stored, "long polling");
    assert_eq!(frame, stored, "WebSocket");
    assert_eq!(event, stored, "SSE");
    let comment: pushlab::feed::Comment = serde_json::from_str(&stored).unwrap();
    assert_eq!(comment.text, text);
}
