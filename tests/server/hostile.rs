//! Hostile and malformed input at the connection's edge, sent as raw bytes so nothing
//! between the test and the server tidies it up: broken JSON and types, sizes over the
//! limits, bad queries, headers, methods and versions, pipelined, smuggled and badly chunked
//! requests, foreign origins, bad WebSocket handshakes and frames, slow heads, stalled
//! bodies and idle sockets. Each must get a 4xx with a JSON body `{"error": ...}` (or, for
//! WebSocket frames, a close with the code that says why; for silent sockets, a close), never
//! a 5xx or a panic, and the server must still deliver afterwards.
//!
//! Panics are caught per thread: `#[tokio::test]` runs the server's tasks on the test's own
//! thread, so a hook counting panics in a thread-local sees exactly this test's server.

use std::cell::Cell;
use std::sync::Once;

use pushlab::net::ByteMeter;
use pushlab::server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

thread_local! {
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Counts panics on each thread from now on (and still prints them).
fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

fn panics_here() -> usize {
    PANICS.with(Cell::get)
}

/// One response read off a raw socket.
#[derive(Debug)]
struct RawReply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// A 4xx whose body is JSON `{"error": "..."}`.
    #[track_caller]
    fn assert_refusal(&self, what: &str) {
        assert!(
            (400..500).contains(&self.status),
            "{what}: expected a 4xx, got {}\n{}",
            self.status,
            self.head
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{what}: {}",
            self.head
        );
        let body: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {:?}", self.body));
        assert!(body["error"].is_string(), "{what}: {body}");
    }
}

/// Reads responses off `socket` until `count` were read or the server closed it.
async fn read_replies(socket: &mut (impl AsyncReadExt + Unpin), count: usize) -> Vec<RawReply> {
    let mut buffer = Vec::new();
    let mut replies = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while replies.len() < count {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no status line in {head:?}"));
            let mut reply = RawReply {
                status,
                head,
                body: Vec::new(),
            };
            let length: usize = reply
                .header("content-length")
                .map(|v| v.parse().unwrap())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                reply.body = buffer[end + 4..end + 4 + length].to_vec();
                buffer.drain(..end + 4 + length);
                replies.push(reply);
                continue;
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    replies
}

/// Sends `bytes` on a fresh connection (writing and reading at once, as the server may
/// answer and close before it has read everything) and reads up to `count` responses.
async fn exchange(addr: SocketAddr, bytes: Vec<u8>, count: usize) -> Vec<RawReply> {
    within("a raw exchange", async {
        let socket = TcpStream::connect(addr).await.expect("connect");
        let (mut reader, mut writer) = socket.into_split();
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&bytes).await;
            writer
        });
        let replies = read_replies(&mut reader, count).await;
        drop(writing);
        replies
    })
    .await
}

/// A request with `Host: x` (so the server's own origin is `http://x`), the given method,
/// target, headers and body (with its Content-Length when it has one).
fn http(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n").into_bytes();
    for header in headers {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn post(body: &[u8]) -> Vec<u8> {
    http(
        "POST",
        "/comments",
        &["Content-Type: application/json"],
        body,
    )
}

fn get_raw(target: &str) -> Vec<u8> {
    http("GET", target, &[], b"")
}

const WS_HEADERS: [&str; 4] = [
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

/// A WebSocket handshake with `extra` headers, minus those named in `without`.
fn ws(target: &str, extra: &[&str], without: &[&str]) -> Vec<u8> {
    let mut headers: Vec<&str> = WS_HEADERS
        .iter()
        .copied()
        .filter(|h| !without.iter().any(|w| h.starts_with(w)))
        .collect();
    headers.extend_from_slice(extra);
    http("GET", target, &headers, b"")
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                    Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    out.extend_from_slice(body);
    out
}

/// (category, what, request, expected status).
type Case = (&'static str, String, Vec<u8>, u16);

fn cases(limit: usize) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |category: &'static str, what: &str, bytes: Vec<u8>, status: u16| {
        cases.push((category, what.to_string(), bytes, status));
    };
    // JSON
    for (what, body, status) in [
        ("open brace", &b"{"[..], 400),
        ("unterminated object", br#"{"from":"a","text":"b""#, 400),
        ("trailing characters", br#"{"from":"a","text":"b"}}"#, 400),
        ("trailing garbage", br#"{"from":"a","text":"b"} x"#, 400),
        ("lone surrogate", br#"{"from":"a","text":"\ud800"}"#, 400),
        ("NUL byte", b"{\"from\":\"a\",\0\"text\":\"b\"}", 400),
        (
            "byte-order mark",
            b"\xef\xbb\xbf{\"from\":\"a\",\"text\":\"b\"}",
            400,
        ),
        (
            "invalid UTF-8",
            b"{\"from\":\"\xff\xfe\",\"text\":\"b\"}",
            400,
        ),
        ("single quotes", b"{'from':'a','text':'b'}", 400),
        ("comment", b"/* hi */ {\"from\":\"a\",\"text\":\"b\"}", 400),
        ("whitespace only", b"   \r\n\t ", 400),
        ("bare word", b"undefined", 400),
        (
            "number out of range",
            br#"{"from":"a","text":"b","to":1e999}"#,
            400,
        ),
        (
            "duplicate field",
            br#"{"from":"a","text":"b","from":"c"}"#,
            422,
        ),
        ("null", b"null", 422),
        ("string", br#""a comment""#, 422),
        ("true", b"true", 422),
        ("empty object", b"{}", 422),
        ("bad escape", br#"{"from":"a","text":"\q"}"#, 400),
        (
            "control character in a string",
            b"{\"from\":\"a\",\"text\":\"a\x01b\"}",
            400,
        ),
    ] {
        add("json", what, post(body), status);
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    add("json", "10,000 nested arrays", post(deep.as_bytes()), 422);
    let deep = format!(
        r#"{{"from":"a","text":"b","to":{}1{}}}"#,
        "[".repeat(500),
        "]".repeat(500)
    );
    add("json", "nesting inside a field", post(deep.as_bytes()), 422);
    // types
    for (what, body, status) in [
        ("from is a number", &br#"{"from":1,"text":"b"}"#[..], 422),
        ("from is an array", br#"{"from":["a"],"text":"b"}"#, 422),
        ("from is an object", br#"{"from":{"a":1},"text":"b"}"#, 422),
        ("from is null", br#"{"from":null,"text":"b"}"#, 422),
        (
            "to is a boolean",
            br#"{"from":"a","to":true,"text":"b"}"#,
            422,
        ),
        ("text is null", br#"{"from":"a","text":null}"#, 422),
        ("text is an array", br#"{"from":"a","text":["b"]}"#, 422),
        ("text is an object", br#"{"from":"a","text":{}}"#, 422),
        (
            "from is 65 bytes",
            format!(r#"{{"from":"{}","text":"b"}}"#, "a".repeat(65)).as_bytes(),
            400,
        ),
        ("from has a bell", br#"{"from":"a\u0007","text":"b"}"#, 400),
        ("to is empty", br#"{"from":"a","to":"","text":"b"}"#, 400),
        (
            "to has DEL",
            br#"{"from":"a","to":"b\u007f","text":"b"}"#,
            400,
        ),
    ] {
        add("types", what, post(body), status);
    }
    // sizes
    let text = format!(r#"{{"from":"a","text":"{}"}}"#, "x".repeat(4097));
    add("sizes", "text of 4097 bytes", post(text.as_bytes()), 413);
    let escaped = format!(r#"{{"from":"a","text":"{}"}}"#, "\\u00e9".repeat(3000));
    add(
        "sizes",
        "3000 escaped characters",
        post(escaped.as_bytes()),
        413,
    );
    add(
        "sizes",
        "body one byte over the limit",
        post(&vec![b' '; limit + 1]),
        413,
    );
    let declared = b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Length: 104857600\r\n\r\n";
    add("sizes", "declared 100 MiB", declared.to_vec(), 413);
    let expect = b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                   Expect: 100-continue\r\nContent-Length: 104857600\r\n\r\n";
    add(
        "sizes",
        "declared 100 MiB, expecting 100",
        expect.to_vec(),
        413,
    );
    let mut over = b"{\"from\":\"a\",\"text\":\"".to_vec();
    over.extend(std::iter::repeat_n(b'x', limit));
    let mut body = format!("{:x}\r\n", over.len()).into_bytes();
    body.extend_from_slice(&over);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    add("sizes", "chunked body over the limit", chunked(&body), 413);
    add(
        "sizes",
        "URI of 70 KB",
        get_raw(&format!("/poll?user={}", "a".repeat(70_000))),
        414,
    );
    let many: Vec<String> = (0..150).map(|i| format!("X-H{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    add(
        "sizes",
        "150 headers",
        http("GET", "/stats", &many, b""),
        431,
    );
    let big = format!("X-Big: {}", "a".repeat(1 << 20));
    add(
        "sizes",
        "a 1 MiB header",
        http("GET", "/stats", &[&big], b""),
        431,
    );
    let name = format!("X-{}: v", "n".repeat(500_000));
    add(
        "sizes",
        "a 500 KB header name",
        http("GET", "/stats", &[&name], b""),
        431,
    );
    // query
    for (what, target, status) in [
        ("user=%FF%FE", "/poll?user=%FF%FE", 400),
        ("overlong UTF-8", "/poll?user=%C0%AF", 400),
        (
            "lone continuation byte",
            "/long-poll?user=%80&timeout_ms=10",
            400,
        ),
        ("bad UTF-8 in a name", "/poll?%FF=1", 400),
        ("bad UTF-8 on SSE", "/sse?user=%FE", 400),
        (
            "after overflows u64",
            "/poll?after=99999999999999999999999",
            400,
        ),
        ("after twice", "/poll?after=1&after=2", 400),
        ("after is blank", "/poll?after=%20", 400),
        ("after is hex", "/poll?after=0x10", 400),
        (
            "user of 65 bytes",
            "/poll?user=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            400,
        ),
        ("user with a newline", "/poll?user=a%0Ab", 400),
        ("user with a tab", "/sse?user=a%09b", 400),
        (
            "timeout_ms in exponent form",
            "/long-poll?timeout_ms=1e3",
            400,
        ),
        (
            "timeout_ms overflows",
            "/long-poll?timeout_ms=18446744073709551616",
            400,
        ),
        ("admin without a technique", "/admin/drop", 400),
    ] {
        let method = if target.starts_with("/admin") {
            "POST"
        } else {
            "GET"
        };
        add("query", what, http(method, target, &[], b""), status);
    }
    add(
        "query",
        "admin, unknown technique",
        http("POST", "/admin/drop?technique=carrier-pigeon", &[], b""),
        400,
    );
    add(
        "query",
        "WebSocket, bad UTF-8 user",
        ws("/ws?user=%FF", &[], &[]),
        400,
    );
    // headers
    for (what, bytes) in [
        ("HTTP/1.1 without Host", &b"GET /stats HTTP/1.1\r\n\r\n"[..]),
        ("a header without a colon", b"GET /stats HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"),
        ("a space in a header name", b"GET /stats HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n"),
        ("space before the colon", b"GET /stats HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n"),
        ("an empty header name", b"GET /stats HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n"),
        ("NUL in a header value", b"GET /stats HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"),
        ("a folded header", b"GET /stats HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n"),
        ("a bare CR", b"GET /stats HTTP/1.1\r\nHost: x\rX-A: v\r\n\r\n"),
        ("Content-Length: -1", b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        ("Content-Length: +5", b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nabcde"),
        ("Content-Length: abc", b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
        ("Content-Length: 1 2", b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n"),
        ("Content-Length overflows", b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
        ("a bad header byte", b"GET /stats HTTP/1.1\r\nHost: x\r\nX-\x01: v\r\n\r\n"),
    ] {
        add("headers", what, bytes.to_vec(), 400);
    }
    add(
        "headers",
        "Last-Event-ID not a number",
        http("GET", "/sse", &["Last-Event-ID: 1e5"], b""),
        400,
    );
    add(
        "headers",
        "Last-Event-ID in bytes that are not UTF-8",
        http("GET", "/sse", &["Last-Event-ID: \u{00ff}"], b""),
        400,
    );
    add(
        "headers",
        "a JSON body labelled text/html",
        http(
            "POST",
            "/comments",
            &["Content-Type: text/html"],
            br#"{"from":"a","text":"b"}"#,
        ),
        415,
    );
    // methods and versions
    for (what, bytes, status) in [
        ("PUT /comments", http("PUT", "/comments", &[], b"{}"), 405),
        ("DELETE /stats", http("DELETE", "/stats", &[], b""), 405),
        ("PATCH /poll", http("PATCH", "/poll", &[], b""), 405),
        ("POST /poll", http("POST", "/poll", &[], b""), 405),
        ("an invented method", http("BREW", "/stats", &[], b""), 405),
        ("a lower-case method", http("get", "/stats", &[], b""), 405),
        ("TRACE /", http("TRACE", "/", &[], b""), 405),
        (
            "POST /ws with upgrade headers",
            {
                let mut r = ws("/ws", &[], &[]);
                r.splice(..3, *b"POST");
                r
            },
            405,
        ),
        (
            "a bad byte in the method",
            b"G(T /stats HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "HTTP/2.0 in the request line",
            b"GET /stats HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "HTTP/1.2",
            b"GET /stats HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        ("HTTP/0.9 style", b"GET /stats\r\n\r\n".to_vec(), 400),
        (
            "no target",
            b"GET  HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a space in the target",
            b"GET /st ats HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 a TLS hello?\r\n\r\n".to_vec(),
            400,
        ),
        ("a lone line", b"HELLO\r\n\r\n".to_vec(), 400),
        ("unknown path", get_raw("/etc/passwd"), 404),
        ("dot segments", get_raw("/../../etc/passwd"), 404),
        ("an encoded slash", get_raw("/%2e%2e%2fstats"), 404),
    ] {
        add("methods", what, bytes, status);
    }
    // chunking
    for (what, body, status) in [
        (
            "a chunk size that is not hex",
            &b"zz\r\nabc\r\n0\r\n\r\n"[..],
            400,
        ),
        (
            "a chunk size that overflows",
            b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        ("a negative chunk size", b"-1\r\nabc\r\n0\r\n\r\n", 400),
        (
            "a chunk longer than its size",
            b"3\r\nabcdef\r\n0\r\n\r\n",
            400,
        ),
        ("no CRLF after a chunk", b"3\r\nabc0\r\n\r\n", 400),
        ("a bad chunk extension", b"3;\x01\r\nabc\r\n0\r\n\r\n", 400),
        ("only a last chunk", b"0\r\n\r\n", 400),
        (
            "valid chunks of bad JSON",
            b"4\r\n{\"fr\r\n3\r\nom\"\r\n0\r\n\r\n",
            400,
        ),
    ] {
        add("chunking", what, chunked(body), status);
    }
    // request smuggling
    let te = |value: &str, body: &[u8]| {
        let mut out = format!(
            "POST /comments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: {value}\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    };
    add(
        "smuggling",
        "Transfer-Encoding: identity",
        te("identity", b"{}"),
        400,
    );
    add(
        "smuggling",
        "chunked, then identity",
        te("chunked, identity", b"0\r\n\r\n"),
        400,
    );
    add("smuggling", "xchunked", te("xchunked", b"0\r\n\r\n"), 400);
    add(
        "smuggling",
        "gzip, chunked",
        te("gzip, chunked", b"0\r\n\r\n"),
        400,
    );
    add(
        "smuggling",
        "Transfer-Encoding on HTTP/1.0",
        b"POST /comments HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            .to_vec(),
        400,
    );
    add(
        "smuggling",
        "two different Content-Lengths",
        b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
            .to_vec(),
        400,
    );
    add(
        "smuggling",
        "a Content-Length list that disagrees",
        b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd".to_vec(),
        400,
    );
    add(
        "smuggling",
        "space before the Transfer-Encoding colon",
        b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
            .to_vec(),
        400,
    );
    // Origin
    for (what, origin) in [
        ("a foreign site", "http://evil.example"),
        ("a look-alike suffix", "http://x.evil.example"),
        ("a look-alike prefix", "http://evil-x"),
        ("user info", "http://x@evil.example"),
        ("the null origin", "null"),
        ("another port", "http://x:8080"),
        ("a file page", "file://"),
    ] {
        let header = format!("Origin: {origin}");
        add(
            "origin",
            &format!("WebSocket from {what}"),
            ws("/ws", &[&header], &[]),
            403,
        );
        add(
            "origin",
            &format!("admin from {what}"),
            http("POST", "/admin/drop?technique=sse", &[&header], b""),
            403,
        );
    }
    // WebSocket handshakes
    for (what, key) in [
        ("a short key", "abc"),
        ("an empty key", ""),
        ("a 4 KB key", &*"A".repeat(4096).leak()),
        ("a key that is not base64", "!!!!!!!!!!!!!!!!!!!!!!=="),
        ("a key of 15 bytes", "AAAAAAAAAAAAAAAAAAAA"),
        ("a key of 17 bytes", "AAAAAAAAAAAAAAAAAAAAAAA="),
        ("a non-canonical key", "dGhlIHNhbXBsZSBub25jZR=="),
    ] {
        let header = format!("Sec-WebSocket-Key: {key}");
        add(
            "websocket",
            what,
            ws("/ws", &[&header], &["Sec-WebSocket-Key"]),
            400,
        );
    }
    for (what, extra, without) in [
        (
            "version 8",
            &["Sec-WebSocket-Version: 8"][..],
            &["Sec-WebSocket-Version"][..],
        ),
        ("no version", &[], &["Sec-WebSocket-Version"]),
        ("no key", &[], &["Sec-WebSocket-Key"]),
        ("no Upgrade header", &[], &["Upgrade"]),
        ("Upgrade: h2c", &["Upgrade: h2c"], &["Upgrade"]),
        (
            "Connection: keep-alive",
            &["Connection: keep-alive"],
            &["Connection"],
        ),
    ] {
        add("websocket", what, ws("/ws", extra, without), 426);
    }
    cases
}

#[tokio::test]
async fn hostile_requests_get_a_json_refusal_and_the_server_keeps_serving() {
    watch_panics();
    let server = start_with(ServerConfig {
        admin: true,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let cases = cases(server.state.config.max_message_bytes());
    let mut by_category = std::collections::BTreeMap::<&str, usize>::new();
    let mut mismatches = Vec::new();
    for (category, what, bytes, status) in &cases {
        let replies = exchange(addr, bytes.clone(), 1).await;
        let reply = replies
            .first()
            .unwrap_or_else(|| panic!("{category}: {what}: no response"));
        eprintln!(
            "{category}: {what} -> {} {:?}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        reply.assert_refusal(&format!("{category}: {what}"));
        if reply.status != *status {
            mismatches.push(format!(
                "{category}: {what}: expected {status}, got {}",
                reply.status
            ));
        }
        if *status == 426 {
            assert_eq!(reply.header("sec-websocket-version"), Some("13"), "{what}");
        }
        *by_category.entry(category).or_default() += 1;
    }
    eprintln!("{} hostile requests: {by_category:?}", cases.len());
    assert!(
        mismatches.is_empty(),
        "unexpected statuses:\n{}",
        mismatches.join("\n")
    );
    assert!(cases.len() >= 140, "{} cases", cases.len());
    assert_serving(addr).await;
    // None of them published anything: only the probe of `assert_serving` did.
    assert_eq!(stats(addr).await.comments_published, 1);
    assert_eq!(panics_here(), 0, "the server panicked");
    let mut ws = ws_connect(addr, "user=still", ByteMeter::new()).await;
    ws.send(Message::text(r#"{"text":"after all that"}"#))
        .await
        .unwrap();
    assert!(ws_text(&mut ws).await.starts_with(r#"{"ack":"#));
    drop(ws);
    server.stop().await.expect("the server ends cleanly");
}

#[tokio::test]
async fn pipelined_and_smuggled_requests_are_answered_in_order_or_not_at_all() {
    watch_panics();
    let server = start().await;
    let addr = server.addr;
    let good = get_raw("/stats");
    let join = |parts: &[&[u8]]| parts.concat();
    // (what, bytes, statuses in order, whether the server then closes the connection: it
    // does after a protocol error or a refused body, so nothing behind them is read)
    let cases: Vec<(&str, Vec<u8>, Vec<u16>, bool)> = vec![
        (
            "good, then garbage",
            join(&[&good, b"GARBAGE\r\n\r\n", &good]),
            vec![200, 400],
            true,
        ),
        (
            "good, then an oversized declared body",
            join(&[
                &good,
                b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n",
                &good,
            ]),
            vec![200, 413],
            true,
        ),
        (
            "bad JSON, then good",
            join(&[&post(b"{"), &good]),
            vec![400, 200],
            false,
        ),
        (
            "404, 405, then good",
            join(&[
                &get_raw("/nowhere"),
                &http("DELETE", "/stats", &[], b""),
                &good,
            ]),
            vec![404, 405, 200],
            false,
        ),
        (
            "good, then no Host",
            join(&[&good, b"GET /stats HTTP/1.1\r\n\r\n"]),
            vec![200, 400],
            false,
        ),
        (
            "good, then 150 headers",
            join(&[
                &good,
                &http(
                    "GET",
                    "/stats",
                    &(0..150).map(|_| "X-A: b").collect::<Vec<_>>(),
                    b"",
                ),
                &good,
            ]),
            vec![200, 431],
            true,
        ),
        (
            // hyper honours Transfer-Encoding over Content-Length and closes afterwards, so
            // the request hidden in the body is never served.
            "Content-Length and chunked, a request hidden behind",
            join(&[
                b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                &get_raw("/poll?after=0"),
            ]),
            vec![400],
            true,
        ),
        (
            "a Content-Length shorter than the body, a request hidden behind",
            join(&[&post(b"{}"), b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"]),
            vec![422, 404],
            false,
        ),
    ];
    let total = cases.len();
    for (what, bytes, statuses, closes) in cases {
        // Where the server closes, ask for one reply more: none may come.
        let replies = exchange(addr, bytes, statuses.len() + usize::from(closes)).await;
        let got: Vec<u16> = replies.iter().map(|r| r.status).collect();
        eprintln!("{what} -> {got:?}");
        assert_eq!(got, statuses, "{what}");
        for reply in replies.iter().filter(|r| r.status >= 400) {
            reply.assert_refusal(what);
        }
    }
    eprintln!("{total} pipelined or smuggled exchanges");
    assert_serving(addr).await;
    assert_eq!(stats(addr).await.comments_published, 1);
    assert_eq!(panics_here(), 0, "the server panicked");
}

/// A masked client frame with the given first byte and payload (up to 125 bytes).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[tokio::test]
async fn hostile_websocket_frames_close_with_the_code_that_says_why() {
    watch_panics();
    let server = start().await;
    let addr = server.addr;
    let mut long_header = vec![0x81, 0xff];
    long_header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    long_header.extend_from_slice(&[1, 2, 3, 4]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("reserved opcode 3", frame(0x83, b"x"), 1002),
        ("reserved control opcode 11", frame(0x8b, b""), 1002),
        ("RSV1 without an extension", frame(0xc1, b"hi"), 1002),
        ("RSV3 set", frame(0x91, b"hi"), 1002),
        ("a fragmented ping", frame(0x09, b"x"), 1002),
        (
            "a continuation with nothing to continue",
            frame(0x80, b"x"),
            1002,
        ),
        (
            "a new text frame inside a fragmented one",
            [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
            1002,
        ),
        (
            "a close frame with a 1-byte payload",
            frame(0x88, b"x"),
            1002,
        ),
        (
            "a close frame with code 999",
            frame(0x88, &999u16.to_be_bytes()),
            1002,
        ),
        (
            "a close frame with code 1005",
            frame(0x88, &1005u16.to_be_bytes()),
            1002,
        ),
        (
            "a close reason that is not UTF-8",
            frame(0x88, &[0x03, 0xe8, 0xff, 0xfe]),
            1007,
        ),
        (
            "a text frame that is not UTF-8",
            frame(0x81, b"\xc0\xaf"),
            1007,
        ),
        ("a frame declaring 1 TiB", long_header, 1009),
        ("a binary frame", frame(0x82, b"\x00\x01"), 1003),
    ];
    let total = cases.len();
    for (what, bytes, code) in cases {
        let mut ws = ws_connect(addr, "user=mallory", ByteMeter::new()).await;
        ws.get_mut().write_all(&bytes).await.unwrap();
        let (got, reason) = ws_close_frame(&mut ws).await;
        eprintln!("{what} -> {got} {reason:?}");
        assert_eq!(got, code, "{what}: {reason}");
    }
    eprintln!("{total} hostile frames");
    wait_stats(addr, "every WebSocket closed", |s| {
        account(s, "websocket").connections_open == 0
    })
    .await;
    assert_serving(addr).await;
    assert_eq!(panics_here(), 0, "the server panicked");
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(socket: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    within("the server to close the connection", async {
        let _ = socket.read_to_end(&mut out).await;
    })
    .await;
    out
}

#[tokio::test]
async fn slow_heads_stalled_bodies_and_idle_sockets_are_cut_off_and_counted() {
    watch_panics();
    let timeout = Duration::from_millis(300);
    let server = start_with(ServerConfig {
        header_timeout: timeout,
        body_timeout: timeout,
        idle_timeout: timeout,
        max_connections: 8,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let connect = || async { TcpStream::connect(addr).await.expect("connect") };

    // A long poll, held while everything below times out.
    let mut poll = connect().await;
    poll.write_all(&get_raw("/long-poll?after=0&timeout_ms=8000"))
        .await
        .unwrap();
    wait_stats(addr, "the long poll to be held", |s| {
        account(s, "long-polling").connections_open == 1
    })
    .await;

    // Silent sockets fill every other slot; they are closed (with nothing sent) at the
    // header timeout, and the server answers again.
    let mut silent = Vec::new();
    for _ in 0..7 {
        silent.push(connect().await);
    }
    wait_for("the silent sockets to be accepted", || {
        server.state.stats.connections_live() == 8
    })
    .await;
    for socket in &mut silent {
        assert_eq!(
            until_closed(socket).await,
            b"",
            "a silent socket gets no reply"
        );
    }

    // Half a head, then nothing: 408 with a JSON body.
    let mut slow = connect().await;
    slow.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let reply = read_replies(&mut slow, 1).await;
    reply[0].assert_refusal("half a head");
    assert_eq!(reply[0].status, 408);

    // A head dripped a byte at a time, too slowly to finish in time.
    let mut drip = connect().await;
    let head = b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut sent = 0;
    let replies = within("the dripped head's refusal", async {
        loop {
            if sent < head.len() && drip.write_all(&head[sent..=sent]).await.is_ok() {
                sent += 1;
            }
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(50), drip.peek(&mut byte)).await {
                Ok(_) => break read_replies(&mut drip, 1).await,
                Err(_) => continue,
            }
        }
    })
    .await;
    assert_eq!(replies[0].status, 408, "{}", replies[0].head);
    replies[0].assert_refusal("a dripped head");

    // A body stalled after 10 of 1,000 bytes, then a chunked one stalled after one chunk.
    for (what, bytes) in [
        (
            "a stalled body",
            b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"from\":\"a"
                .to_vec(),
        ),
        ("a stalled chunked body", chunked(b"a\r\n{\"from\":\"a\r\n")),
    ] {
        let mut socket = connect().await;
        socket.write_all(&bytes).await.unwrap();
        let reply = read_replies(&mut socket, 1).await;
        reply[0].assert_refusal(what);
        assert_eq!(reply[0].status, 408, "{what}");
        assert_eq!(reply[0].header("connection"), Some("close"), "{what}");
        until_closed(&mut socket).await;
    }

    // A keep-alive connection that idles after its response is closed without a word.
    let mut idle = connect().await;
    idle.write_all(&get_raw("/stats")).await.unwrap();
    assert_eq!(read_replies(&mut idle, 1).await[0].status, 200);
    assert_eq!(until_closed(&mut idle).await, b"");

    // A client that sends half a head and hangs up gets nothing and costs nothing.
    let mut quitter = connect().await;
    quitter.write_all(b"GET /st").await.unwrap();
    quitter.shutdown().await.unwrap();
    until_closed(&mut quitter).await;

    // The long poll opened first is not idle: it outlived every timeout above (the silent
    // sockets' closing proves that much time passed) and still delivers.
    publish(addr, "alice", None, "for the patient").await;
    let reply = read_replies(&mut poll, 1).await;
    assert_eq!(reply[0].status, 200, "{}", reply[0].head);

    let s = wait_stats(addr, "the timeouts counted", |s| {
        s.timeouts.header_read >= 9 && s.timeouts.body_read == 2 && s.timeouts.idle >= 1
    })
    .await;
    eprintln!("timeouts: {:?}", s.timeouts);
    let metrics = get(addr, "/metrics").await.text();
    assert!(
        metrics.contains(&format!(
            "pushlab_timeouts_total{{cause=\"body_read\"}} {}",
            s.timeouts.body_read
        )),
        "{metrics}"
    );
    assert_serving(addr).await;
    assert_eq!(panics_here(), 0, "the server panicked");
}

#[tokio::test]
async fn allowed_origins_pass_and_the_page_s_own_origin_is_always_allowed() {
    let server = start_with(ServerConfig {
        allowed_origins: vec!["http://friend.example".into()],
        admin: true,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    for origin in ["http://x", "https://x", "http://friend.example"] {
        let header = format!("Origin: {origin}");
        let reply = &exchange(addr, ws("/ws?user=a", &[&header], &[]), 1).await[0];
        assert_eq!(reply.status, 101, "{origin}: {}", reply.head);
        let reply = &exchange(
            addr,
            http("POST", "/admin/drop?technique=sse", &[&header], b""),
            1,
        )
        .await[0];
        assert_eq!(reply.status, 200, "{origin}: {}", reply.head);
    }
    // No Origin at all: not a browser page, such as the load generator.
    let reply = &exchange(addr, ws("/ws?user=a", &[], &[]), 1).await[0];
    assert_eq!(reply.status, 101, "{}", reply.head);
}

/// Held requests (SSE, long polls) on a connection that starts with one are served without
/// hyper (`server/held.rs`); on a connection that starts otherwise, hyper serves them. The
/// bytes must not tell the two apart (but for the date), and a held connection whose next
/// request is something else is handed to hyper with nothing lost.
#[tokio::test]
async fn held_requests_are_framed_byte_for_byte_as_hyper_frames_them() {
    let server = start().await;
    let addr = server.addr;
    let poll = get_raw("/long-poll?user=a&timeout_ms=1");
    let without_date = |reply: &RawReply| -> String {
        let lines = reply.head.lines().filter(|l| !l.starts_with("date: "));
        lines.collect::<Vec<_>>().join("\r\n")
    };
    // Held from the first byte: two long polls, pipelined.
    let held = exchange(addr, [poll.clone(), poll.clone()].concat(), 2).await;
    // hyper's: the connection starts with another request.
    let hypers = exchange(addr, [get_raw("/stats"), poll.clone()].concat(), 2).await;
    assert_eq!(held.len(), 2, "both pipelined long polls answered");
    assert_eq!(hypers.len(), 2);
    for reply in &held {
        assert_eq!(reply.status, 200, "{}", reply.head);
        assert_eq!(without_date(reply), without_date(&hypers[1]));
        assert_eq!(reply.body, hypers[1].body);
        assert!(reply.header("date").is_some_and(|d| d.ends_with(" GMT")));
    }
    // A held connection that then publishes: hyper takes over and answers in order.
    let body = br#"{"from":"a","text":"after a long poll"}"#;
    let mixed = exchange(addr, [poll.clone(), post(body), poll].concat(), 3).await;
    let statuses: Vec<u16> = mixed.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 201, 200], "{mixed:?}");
    // SSE: the head and the connect event.
    let sse = get_raw("/sse?user=a");
    let held_sse = sse_start(addr, sse.clone()).await;
    let hyper_sse = sse_start(addr, [get_raw("/stats"), sse].concat()).await;
    let hyper_sse = &hyper_sse[hyper_sse
        .windows(12)
        .position(|w| w == b"HTTP/1.1 200")
        .unwrap()..];
    let hyper_sse = &hyper_sse[hyper_sse[1..]
        .windows(12)
        .position(|w| w == b"HTTP/1.1 200")
        .unwrap()
        + 1..];
    let strip = |bytes: &[u8]| -> String {
        let text = String::from_utf8_lossy(bytes).into_owned();
        text.split("\r\n")
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    assert!(held_sse.starts_with(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"));
    assert_eq!(strip(&held_sse), strip(hyper_sse));
}

/// Sends `bytes` and reads until an SSE `connect` event's chunk has ended.
async fn sse_start(addr: SocketAddr, bytes: Vec<u8>) -> Vec<u8> {
    within("an SSE stream's first event", async {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        socket.write_all(&bytes).await.expect("send");
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !(buffer.windows(14).any(|w| w == b"event: connect") && buffer.ends_with(b"\n\n\r\n"))
        {
            let n = socket.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buffer));
            buffer.extend_from_slice(&chunk[..n]);
        }
        buffer
    })
    .await
}
