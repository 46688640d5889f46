//! HTTP/2 on the server's port: h2c with prior knowledge for every technique (WebSocket by
//! extended CONNECT, RFC 8441), each stream's bytes booked to its technique's account and
//! the connection's own frames to `h2.overhead_*`, summing exactly to the clients' sockets;
//! the edge's idle timeout on an HTTP/2 connection; `--tls` with ALPN h2 and http/1.1.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pushlab::http::h2client::H2Connection;
use pushlab::net::ByteMeter;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::*;

/// The most a connection's own frames can come to in these tests: the preface (24 B), two
/// SETTINGS and their ACKs, a connection WINDOW_UPDATE or two, a GOAWAY: about 150 B.
const OVERHEAD_BOUND: u64 = 300;

/// Reads `body` until its bytes so far contain `needle`.
async fn read_until(body: &mut Incoming, seen: &mut Vec<u8>, needle: &str) {
    within(&format!("{needle:?} on the stream"), async {
        while !String::from_utf8_lossy(seen).contains(needle) {
            let frame = body
                .frame()
                .await
                .expect("the stream ended")
                .expect("stream error");
            if let Ok(data) = frame.into_data() {
                seen.extend_from_slice(&data);
            }
        }
    })
    .await;
}

fn bytes_sum(s: &StatsSnapshot, names: &[&str]) -> (u64, u64) {
    names.iter().fold((0, 0), |(i, o), name| {
        let a = account(s, name);
        (i + a.bytes_in, o + a.bytes_out)
    })
}

#[tokio::test]
async fn h2c_streams_are_booked_to_their_techniques_and_sum_to_the_sockets() {
    let server = start().await;
    let addr = server.addr;
    let start_id = first_id(&server) - 1;
    let target = target(addr);
    // One connection per account, each counted on its own, so each account can be held
    // against its connection's socket.
    let names = [
        "short-polling",
        "long-polling",
        "websocket",
        "sse",
        "publish",
    ];
    let meters: Vec<Arc<ByteMeter>> = names.iter().map(|_| ByteMeter::new()).collect();
    let mut connections = Vec::new();
    for meter in &meters {
        connections.push(
            H2Connection::open(&target, meter.clone())
                .await
                .expect("h2c"),
        );
    }
    let [short, long, ws, sse, publisher] = &connections[..] else {
        unreachable!()
    };

    let sse_response = sse.send(Method::GET, "/sse", &[], None).await.expect("sse");
    assert_eq!(sse_response.status(), StatusCode::OK);
    assert_eq!(sse_response.version(), hyper::Version::HTTP_2);
    let mut sse_body = sse_response.into_body();
    let mut sse_seen = Vec::new();
    read_until(&mut sse_body, &mut sse_seen, "event: connect").await;

    let socket = ws.websocket("/ws").await.expect("WebSocket over h2");
    let mut socket = WebSocketStream::from_raw_socket(socket, Role::Client, None).await;

    let long_poll = {
        let long = long.clone();
        tokio::spawn(async move {
            long.get(&format!("/long-poll?after={start_id}&timeout=20"))
                .await
                .expect("long poll")
        })
    };
    wait_stats(addr, "the long poll held", |s| {
        account(s, "long-polling").requests == 1
    })
    .await;

    let body = serde_json::json!({ "from": "alice", "text": "over h2" }).to_string();
    let reply = publisher
        .post_json("/comments", &body)
        .await
        .expect("publish");
    let id = serde_json::from_slice::<serde_json::Value>(&reply).unwrap()["id"]
        .as_u64()
        .unwrap();

    let page = within("the long poll's answer", long_poll).await.unwrap();
    assert!(String::from_utf8_lossy(&page).contains("over h2"));
    read_until(&mut sse_body, &mut sse_seen, &format!("id: {id}")).await;
    within("the WebSocket's comment", async {
        loop {
            let message = socket.next().await.expect("a frame").expect("a message");
            if message.to_text().unwrap().contains("over h2") {
                break;
            }
        }
    })
    .await;
    let polled = short
        .get(&format!("/poll?after={start_id}"))
        .await
        .expect("poll");
    assert!(String::from_utf8_lossy(&polled).contains("over h2"));

    drop(sse_body);
    drop(socket);
    drop(connections);

    let s = wait_stats(addr, "the h2c connections closed", |s| {
        s.h2.connections == 5 && s.connections_live <= 1
    })
    .await;
    let (up, down) = meters.iter().fold((0, 0), |(u, d), m| {
        let (mu, md) = m.totals();
        (u + mu, d + md)
    });
    let (booked_in, booked_out) = bytes_sum(&s, &names);
    assert_eq!(
        (booked_in + s.h2.overhead_in, booked_out + s.h2.overhead_out),
        (up, down),
        "accounts {names:?} plus h2 overhead against the clients' sockets: {:#?}",
        s.h2
    );
    for (name, meter) in names.iter().zip(&meters) {
        let a = account(&s, name);
        let (up, down) = meter.totals();
        assert!(a.requests >= 1, "{name}: {a:?}");
        // Each connection carried only this account's streams, plus its own frames.
        assert!(
            a.bytes_in <= up && up - a.bytes_in <= OVERHEAD_BOUND,
            "{name}: booked in {} of the socket's {up}",
            a.bytes_in
        );
        assert!(
            a.bytes_out <= down && down - a.bytes_out <= OVERHEAD_BOUND,
            "{name}: booked out {} of the socket's {down}",
            a.bytes_out
        );
    }
    assert!(s.h2.overhead_in >= 5 * 24, "five prefaces: {:?}", s.h2);
    assert!(s.h2.streams >= 5, "{:?}", s.h2);
    println!(
        "h2c: {} streams on 5 connections; overhead in {} out {} B",
        s.h2.streams, s.h2.overhead_in, s.h2.overhead_out
    );
}

#[tokio::test]
async fn many_h2c_streams_share_one_connection() {
    let server = start().await;
    let addr = server.addr;
    let meter = ByteMeter::new();
    let connection = H2Connection::open(&target(addr), meter.clone())
        .await
        .expect("h2c");
    // Seven event streams on one connection: over HTTP/1.1 a browser would hold the
    // seventh back (six connections per origin); over HTTP/2 all are live at once.
    let mut bodies = Vec::new();
    for _ in 0..7 {
        let response = connection
            .send(Method::GET, "/sse", &[], None)
            .await
            .expect("sse");
        let mut body = response.into_body();
        read_until(&mut body, &mut Vec::new(), "event: connect").await;
        bodies.push(body);
    }
    let s = wait_stats(addr, "seven SSE streams", |s| {
        account(s, "sse").requests == 7
    })
    .await;
    assert_eq!(s.h2.connections, 1);
    assert_eq!(account(&s, "sse").connections_opened, 1);
    drop(bodies);
    drop(connection);
    let s = wait_stats(addr, "the connection closed", |s| s.connections_live <= 1).await;
    let (up, down) = meter.totals();
    let a = account(&s, "sse");
    assert_eq!(
        (
            a.bytes_in + s.h2.overhead_in,
            a.bytes_out + s.h2.overhead_out
        ),
        (up, down)
    );
}

#[tokio::test]
async fn an_idle_h2c_connection_times_out_but_a_streaming_one_does_not() {
    let server = start_with(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        sse_heartbeat: Duration::from_secs(60),
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let idle = H2Connection::open(&target(addr), ByteMeter::new())
        .await
        .expect("h2c");
    idle.get("/poll").await.expect("poll");
    let streaming = H2Connection::open(&target(addr), ByteMeter::new())
        .await
        .expect("h2c");
    let mut body = streaming
        .send(Method::GET, "/sse", &[], None)
        .await
        .expect("sse")
        .into_body();
    read_until(&mut body, &mut Vec::new(), "event: connect").await;
    wait_for("the idle connection closed", || !idle.is_open()).await;
    assert!(streaming.is_open(), "the streaming connection was closed");
    let s = stats(addr).await;
    assert!(s.timeouts.idle >= 1, "{:?}", s.timeouts);
    // The stream still delivers after the other connection's idle timeout.
    let id = publish(addr, "alice", None, "still streaming").await;
    read_until(&mut body, &mut Vec::new(), &format!("id: {id}")).await;
}

#[tokio::test]
async fn h1_still_works_and_tls_offers_h2_and_http11() {
    let server = start_with(ServerConfig {
        tls: true,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    for (alpn, expected) in [
        (&b"h2"[..], hyper::Version::HTTP_2),
        (&b"http/1.1"[..], hyper::Version::HTTP_11),
    ] {
        let stream = tls_connect(addr, alpn).await;
        let response = match expected {
            hyper::Version::HTTP_2 => {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), stream)
                        .await
                        .expect("h2 over TLS");
                tokio::spawn(connection);
                let request = hyper::Request::get(format!("https://{addr}/poll"))
                    .body(http_body_util::Empty::<Bytes>::new())
                    .unwrap();
                sender.send_request(request).await.expect("request")
            }
            _ => {
                let (mut sender, connection) = hyper::client::conn::http1::handshake(stream)
                    .await
                    .expect("http/1.1 over TLS");
                tokio::spawn(connection);
                let request = hyper::Request::get("/poll")
                    .header("host", addr.to_string())
                    .body(http_body_util::Empty::<Bytes>::new())
                    .unwrap();
                sender.send_request(request).await.expect("request")
            }
        };
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), expected);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("comments"));
    }
    // `/stats` over plain HTTP is refused on a TLS port: read the server's state directly.
    let counted =
        |s: &StatsSnapshot| s.h2.connections == 1 && account(s, "short-polling").requests == 2;
    wait_for("both TLS connections counted", || {
        counted(&server.state.snapshot())
    })
    .await;
    let s = server.state.snapshot();
    // The HTTP/2 one is not split per stream: its encrypted bytes are booked apart.
    assert!(s.h2.tls_in > 0 && s.h2.tls_out > 0, "{:?}", s.h2);
    assert_eq!(s.h2.overhead_in, 0);
}

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_rustls::rustls;

/// A TLS client connection offering `alpn`, trusting any certificate (the server's is
/// self-signed and made at start).
async fn tls_connect(
    addr: SocketAddr,
    alpn: &[u8],
) -> TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.expect("TLS handshake");
    let negotiated = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(negotiated.as_deref(), Some(alpn), "ALPN");
    TokioIo::new(stream)
}

/// Accepts any certificate, checking only that signatures are well formed.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Each technique's own load-generator client over HTTP/2 (shared and per-client
/// connections): it delivers, and once it stopped and its connections closed, the server's
/// account plus its HTTP/2 overhead equals what the client's socket counted.
#[tokio::test]
async fn the_techniques_clients_speak_http2_and_both_ends_agree() {
    use pushlab::http::link::{HttpLink, SharedH2};
    use pushlab::techniques::Subscriber;
    let server = start().await;
    let addr = server.addr;
    for technique in Technique::ALL {
        for shared in [true, false] {
            let before = stats(addr).await;
            let meter = ByteMeter::new();
            let link = if shared {
                HttpLink::H2Shared(SharedH2::new(target(addr), meter.clone()))
            } else {
                HttpLink::H2PerClient
            };
            let mut clients = Vec::new();
            for user in ["bob", "carol"] {
                let mut subscriber = Subscriber::new(addr, Some(user), None);
                subscriber.meter = meter.clone();
                subscriber.http = link.clone();
                clients.push(subscribe_with(technique, subscriber));
            }
            drop(link);
            for client in &clients {
                client.ready().await;
            }
            let id = publish(addr, "alice", None, "over h2").await;
            for client in &mut clients {
                assert_eq!(client.next().await.id, id, "{technique} shared={shared}");
            }
            for client in clients {
                client.stop().await;
            }
            let name = technique.name();
            let s = wait_stats(addr, &format!("{name}'s connections closed"), |s| {
                account(s, name).connections_open == 0 && s.connections_live <= 1
            })
            .await;
            let a = account(&s, name) - account(&before, name);
            let h2 = s.h2 - before.h2;
            let (up, down) = meter.totals();
            assert_eq!(
                (a.bytes_in + h2.overhead_in, a.bytes_out + h2.overhead_out),
                (up, down),
                "{name} shared={shared}: account {a:?}, h2 {h2:?}"
            );
            assert_eq!(h2.connections, if shared { 1 } else { 2 }, "{name}");
        }
    }
}

/// An HTTP/2 connection that sends its preface and no request is closed at the header
/// timeout, without an HTTP/1.1 408 written into it, and counted.
#[tokio::test]
async fn a_silent_h2c_connection_is_closed_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_with(ServerConfig {
        header_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
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
    within("the close", socket.read_to_end(&mut reply))
        .await
        .unwrap();
    // Only HTTP/2 frames came back (the server's SETTINGS and its ACK of ours).
    assert!(!reply.starts_with(b"HTTP/1.1"), "{reply:?}");
    assert_eq!(reply[3], 4, "a SETTINGS frame first: {reply:?}");
    let s = stats(addr).await;
    assert_eq!(s.timeouts.header_read, 1, "{:?}", s.timeouts);
    assert_eq!(s.h2.connections, 1);
}

/// A request the client cancels (RST_STREAM) while the server holds it still ends, for the
/// connection's deadlines: the connection, idle again, is closed at the idle timeout.
#[tokio::test]
async fn a_cancelled_h2c_request_lets_its_connection_idle_out() {
    let server = start_with(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let connection = H2Connection::open(&target(addr), ByteMeter::new())
        .await
        .expect("h2c");
    let held = {
        let connection = connection.clone();
        tokio::spawn(async move {
            let _ = connection.get("/long-poll?timeout_ms=60000").await;
        })
    };
    wait_stats(addr, "the long poll held", |s| {
        account(s, "long-polling").requests == 1
    })
    .await;
    held.abort();
    wait_for("the idle connection closed", || !connection.is_open()).await;
    assert!(stats(addr).await.timeouts.idle >= 1);
}
