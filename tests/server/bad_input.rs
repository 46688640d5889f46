//! Bad input: every refusal is a status plus a JSON body `{"error": "..."}` naming the
//! problem, and the server goes on serving. Cursors out of the history's range, publishes
//! refused over WebSocket, and invalid WebSocket frames (closed with a code that says why).

use futures_util::SinkExt;
use pushlab::net::ByteMeter;
use pushlab::server::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// One bad HTTP request and what the server must answer.
struct Case {
    method: Method,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
    status: StatusCode,
    /// Words the error message must contain.
    words: &'static [&'static str],
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

/// Headers of a WebSocket upgrade request, for refusals that come before the upgrade.
const UPGRADE: &[(&str, &str)] = &[
    ("connection", "upgrade"),
    ("upgrade", "websocket"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

fn case(
    method: Method,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &str,
    status: StatusCode,
    words: &'static [&'static str],
) -> Case {
    Case {
        method,
        path,
        headers,
        body: body.as_bytes().to_vec(),
        status,
        words,
    }
}

fn publish_case(body: &str, status: StatusCode, words: &'static [&'static str]) -> Case {
    case(Method::POST, "/comments", JSON, body, status, words)
}

fn get_case(path: &'static str, status: StatusCode, words: &'static [&'static str]) -> Case {
    case(Method::GET, path, &[], "", status, words)
}

async fn check(addr: SocketAddr, cases: Vec<Case>) {
    for case in cases {
        let body = (!case.body.is_empty()).then_some(case.body.clone());
        let reply = request(addr, case.method.clone(), case.path, case.headers, body).await;
        let shown = String::from_utf8_lossy(&case.body[..case.body.len().min(80)]).into_owned();
        eprintln!(
            "{} {} {shown:?} -> {} {}",
            case.method,
            case.path,
            reply.status,
            reply.text()
        );
        reply.assert_error(case.status, case.words);
        assert_serving(addr).await;
    }
}

#[tokio::test]
async fn bad_publishes_are_refused_with_a_reason() {
    let server = start().await;
    let too_long_text =
        serde_json::json!({ "from": "alice", "text": "x".repeat(4097) }).to_string();
    let huge_body =
        serde_json::json!({ "from": "alice", "text": "x".repeat(64 * 1024) }).to_string();
    use StatusCode as S;
    check(
        server.addr,
        vec![
            publish_case(r#"{"from":"alice"}"#, S::UNPROCESSABLE_ENTITY, &["text"]),
            publish_case(r#"{"text":"hi"}"#, S::UNPROCESSABLE_ENTITY, &["from"]),
            publish_case(
                r#"{"from":"alice","text":5}"#,
                S::UNPROCESSABLE_ENTITY,
                &["text"],
            ),
            publish_case(
                r#"{"from":"alice","to":7,"text":"hi"}"#,
                S::UNPROCESSABLE_ENTITY,
                &["to"],
            ),
            publish_case(r#"{"from":"","text":"hi"}"#, S::BAD_REQUEST, &["from"]),
            publish_case(
                r#"{"from":"alice","to":"b\nob","text":"hi"}"#,
                S::BAD_REQUEST,
                &["to"],
            ),
            publish_case(
                r#"{"from":"alice","text":"hi","colour":"red"}"#,
                S::UNPROCESSABLE_ENTITY,
                &["colour"],
            ),
            publish_case("hello", S::BAD_REQUEST, &["json"]),
            publish_case(r#"{"from":"alice","#, S::BAD_REQUEST, &["json"]),
            publish_case("", S::BAD_REQUEST, &["json"]),
            publish_case("[1,2]", S::UNPROCESSABLE_ENTITY, &["object"]),
            publish_case(
                r#"["alice",null,"an array is no comment"]"#,
                S::UNPROCESSABLE_ENTITY,
                &["object"],
            ),
            publish_case("42", S::UNPROCESSABLE_ENTITY, &["object"]),
            case(
                Method::POST,
                "/comments",
                &[("content-type", "text/plain")],
                r#"{"from":"a","text":"b"}"#,
                S::UNSUPPORTED_MEDIA_TYPE,
                &["content-type"],
            ),
            case(
                Method::POST,
                "/comments",
                &[],
                r#"{"from":"a","text":"b"}"#,
                S::UNSUPPORTED_MEDIA_TYPE,
                &["content-type"],
            ),
            publish_case(
                &too_long_text,
                S::PAYLOAD_TOO_LARGE,
                &["text", "4097", "4096"],
            ),
            publish_case(&huge_body, S::PAYLOAD_TOO_LARGE, &["too large"]),
            get_case("/comments", S::METHOD_NOT_ALLOWED, &["GET", "/comments"]),
            get_case("/nowhere", S::NOT_FOUND, &["/nowhere"]),
        ],
    )
    .await;
    // Not one refused comment was stored: only the probes of `assert_serving` were.
    let s = stats(server.addr).await;
    assert_eq!(s.comments_published, 19);
    assert!(
        server
            .state
            .feed
            .read_after(Some(0), None, 100)
            .await
            .unwrap()
            .comments
            .iter()
            .all(|c| c.comment.from == "probe")
    );
}

#[tokio::test]
async fn bad_queries_are_refused_with_a_reason() {
    let server = start().await;
    publish(server.addr, "alice", None, "one").await;
    use StatusCode as S;
    check(
        server.addr,
        vec![
            get_case("/poll?after=abc", S::BAD_REQUEST, &["after"]),
            get_case("/poll?after=-1", S::BAD_REQUEST, &["after"]),
            get_case("/poll?after=1.5", S::BAD_REQUEST, &["after"]),
            get_case("/poll?user=", S::BAD_REQUEST, &["user"]),
            get_case("/poll?user=%00bob", S::BAD_REQUEST, &["user"]),
            get_case("/long-poll?after=abc", S::BAD_REQUEST, &["after"]),
            get_case(
                "/long-poll?after=0&timeout_ms=0",
                S::BAD_REQUEST,
                &["timeout_ms", "0"],
            ),
            get_case(
                "/long-poll?after=0&timeout_ms=300001",
                S::BAD_REQUEST,
                &["timeout_ms", "300001", "300000"],
            ),
            get_case(
                "/long-poll?after=0&timeout_ms=soon",
                S::BAD_REQUEST,
                &["timeout_ms"],
            ),
            get_case(
                "/long-poll?after=0&timeout_ms=-5",
                S::BAD_REQUEST,
                &["timeout_ms"],
            ),
            get_case("/sse?after=abc", S::BAD_REQUEST, &["after"]),
            case(
                Method::GET,
                "/sse",
                &[("last-event-id", "abc")],
                "",
                S::BAD_REQUEST,
                &["last-event-id"],
            ),
            case(
                Method::GET,
                "/sse?after=0",
                &[("last-event-id", "-3")],
                "",
                S::BAD_REQUEST,
                &["last-event-id"],
            ),
            case(
                Method::GET,
                "/ws?after=abc",
                UPGRADE,
                "",
                S::BAD_REQUEST,
                &["after"],
            ),
            case(
                Method::GET,
                "/ws?user=",
                UPGRADE,
                "",
                S::BAD_REQUEST,
                &["user"],
            ),
            get_case("/ws", S::UPGRADE_REQUIRED, &["websocket"]),
            get_case("/ws?user=bob&after=0", S::UPGRADE_REQUIRED, &["websocket"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn cursors_outside_the_history_are_refused() {
    let server = start_with(ServerConfig {
        history_capacity: 2,
        ..ServerConfig::default()
    })
    .await;
    for text in ["one", "two", "three", "four", "five"] {
        publish(server.addr, "alice", None, text).await;
    }
    use StatusCode as S;
    // Ids start above the feed's time-based base `b`. The history keeps b+4 and b+5: a
    // cursor of b+3 still resumes, b+2 has lost comment b+3; cursor 2 is from an earlier
    // incarnation (a restarted server).
    let b = first_id(&server) - 1;
    // `Case` holds static text; a test's few strings may live as long as the test binary.
    let text = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let words =
        |w: Vec<&'static str>| -> &'static [&'static str] { Box::leak(w.into_boxed_slice()) };
    let (c1, c2, c3, c4, c99) = (b + 1, b + 2, b + 3, b + 4, b + 99);
    let cursor2 = text(format!("cursor {c2}"));
    let ahead = words(vec![text(c99.to_string()), "ahead"]);
    check(
        server.addr,
        vec![
            get_case(
                text(format!("/poll?after={c2}")),
                S::GONE,
                words(vec![cursor2, text(c3.to_string())]),
            ),
            get_case(
                text(format!("/long-poll?after={c1}&timeout_ms=1000")),
                S::GONE,
                words(vec![text(format!("cursor {c1}"))]),
            ),
            get_case(
                text(format!("/sse?after={c2}")),
                S::GONE,
                words(vec![cursor2]),
            ),
            case(
                Method::GET,
                text(format!("/sse?after={c4}")),
                Box::leak(Box::new([("last-event-id", text(c2.to_string()))])),
                "",
                S::GONE,
                words(vec![cursor2]),
            ),
            case(
                Method::GET,
                text(format!("/ws?after={c2}")),
                UPGRADE,
                "",
                S::GONE,
                words(vec![cursor2]),
            ),
            get_case(text(format!("/poll?after={c99}")), S::BAD_REQUEST, ahead),
            get_case(
                text(format!("/long-poll?after={c99}")),
                S::BAD_REQUEST,
                ahead,
            ),
            get_case(text(format!("/sse?after={c99}")), S::BAD_REQUEST, ahead),
            case(
                Method::GET,
                text(format!("/ws?after={c99}")),
                UPGRADE,
                "",
                S::BAD_REQUEST,
                ahead,
            ),
            get_case(
                "/poll?after=2",
                S::GONE,
                &["cursor 2", "earlier incarnation", "restart"],
            ),
            get_case(
                "/sse?after=2",
                S::GONE,
                &["cursor 2", "earlier incarnation"],
            ),
        ],
    )
    .await;
    let gone = get(server.addr, &format!("/poll?after={c1}")).await;
    assert_eq!(gone.json()["cursor"], c1);
    assert_eq!(gone.json()["cause"], "evicted");
    assert!(
        gone.json()["oldest"].as_u64().unwrap() > c2,
        "{}",
        gone.text()
    );
    let restarted = get(server.addr, "/poll?after=2").await.json();
    assert_eq!(restarted["cause"], "restart");
    assert_eq!(restarted["first_id"], b + 1);
    // `assert_serving` published more; the newest two are still there to resume from.
    let last = server.state.feed.last_id().await.unwrap();
    let reply = get(server.addr, &format!("/poll?after={}", last - 2)).await;
    assert_eq!(reply.json()["comments"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_websocket_publishes_get_an_error_and_the_connection_stays() {
    let server = start().await;
    let mut alice = ws_connect(server.addr, "user=alice", ByteMeter::new()).await;
    let cases: [(String, &[&str]); 8] = [
        ("hello".into(), &["bad publish message"]),
        (r#"{"to":"bob"}"#.into(), &["text"]),
        (r#"{"text":5}"#.into(), &["text"]),
        (r#"{"text":"hi","from":"mallory"}"#.into(), &["from"]),
        (r#"{"to":"","text":"hi"}"#.into(), &["to"]),
        (
            serde_json::json!({ "text": "x".repeat(4097) }).to_string(),
            &["text", "4096"],
        ),
        ("[]".into(), &["bad publish message", "object"]),
        (r#"["bob","an array is no comment"]"#.into(), &["object"]),
    ];
    for (message, words) in cases {
        alice.send(Message::text(message.clone())).await.unwrap();
        let reply: serde_json::Value = serde_json::from_str(&ws_text(&mut alice).await).unwrap();
        eprintln!("{:?} -> {reply}", &message[..message.len().min(60)]);
        assert_error_json(&reply, words);
    }
    alice
        .send(Message::text(r#"{"text":"finally"}"#))
        .await
        .unwrap();
    assert_eq!(
        ws_text(&mut alice).await,
        format!(r#"{{"ack":{}}}"#, first_id(&server))
    );

    let mut anonymous = ws_connect(server.addr, "", ByteMeter::new()).await;
    anonymous
        .send(Message::text(r#"{"text":"hi"}"#))
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_str(&ws_text(&mut anonymous).await).unwrap();
    assert_error_json(&reply, &["anonymous"]);
    let s = stats(server.addr).await;
    assert_eq!(s.comments_published, 1);
}

/// A masked client frame: FIN, `opcode`, `payload` (up to 125 bytes).
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 125);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn invalid_websocket_frames_close_with_a_code_that_says_why() {
    let server = start().await;
    let addr = server.addr;

    let mut ws = ws_connect(addr, "user=bob", ByteMeter::new()).await;
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let (code, reason) = ws_close_frame(&mut ws).await;
    assert_eq!(code, 1003, "unsupported data: {reason}");
    assert!(reason.contains("binary"), "{reason}");

    let mut ws = ws_connect(addr, "user=bob", ByteMeter::new()).await;
    ws.get_mut()
        .write_all(&masked_frame(0x1, b"caf\xc3\x28"))
        .await
        .unwrap();
    let (code, reason) = ws_close_frame(&mut ws).await;
    assert_eq!(code, 1007, "invalid UTF-8 in a text frame: {reason}");

    let mut ws = ws_connect(addr, "user=bob", ByteMeter::new()).await;
    // An unmasked frame from a client is a protocol error (RFC 6455, 5.1).
    ws.get_mut()
        .write_all(&[0x81, 0x02, b'h', b'i'])
        .await
        .unwrap();
    let (code, reason) = ws_close_frame(&mut ws).await;
    assert_eq!(code, 1002, "protocol error: {reason}");

    let mut ws = ws_connect(addr, "user=bob", ByteMeter::new()).await;
    // Past the message limit (4 KiB of text, JSON-escaped, plus room for the rest).
    ws.send(Message::text("x".repeat(64 * 1024))).await.unwrap();
    let (code, reason) = ws_close_frame(&mut ws).await;
    assert_eq!(code, 1009, "message too big: {reason}");

    wait_stats(addr, "every WebSocket closed", |s| {
        account(s, "websocket").connections_open == 0
    })
    .await;
    assert_serving(addr).await;
    let mut ws = ws_connect(addr, "user=bob", ByteMeter::new()).await;
    ws.send(Message::text(r#"{"text":"still here"}"#))
        .await
        .unwrap();
    assert!(ws_text(&mut ws).await.starts_with(r#"{"ack":"#));
}
