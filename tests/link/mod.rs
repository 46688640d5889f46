//! The link emulator (issue 11) over real sockets on 127.0.0.1, port 0: the delays, the
//! bandwidth and the faithful forwarding of bytes and closes that keep measurements true.
//! Lower bounds only: a loaded machine can make anything later, never earlier. The one
//! timed figure (bandwidth) is a rate over seconds of transfer, paced by the relay's
//! schedule, so scheduling noise of a few milliseconds stays far inside its 10%.

use std::time::Duration;

use hyper::Method;
use pushlab::http::client::HttpConnection;
use pushlab::loadgen::link::{Relay, probe};
use pushlab::model::network::Link;
use pushlab::net::ByteMeter;
use pushlab::techniques::Technique;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::server::{publish, start, subscribe, target, within};

fn rtt(ms: u64) -> Link {
    Link {
        rtt: Duration::from_millis(ms),
        ..Link::DIRECT
    }
}

#[tokio::test]
async fn over_a_100_ms_round_trip_no_sse_delivery_comes_sooner_than_50_ms() {
    let server = start().await;
    let relay = Relay::start(rtt(100), server.addr).await.unwrap();
    let mut client = subscribe(Technique::Sse, relay.addr, Some("ann"), None);
    client.ready().await;
    for i in 0..5 {
        let published = Instant::now();
        let id = publish(server.addr, "bob", None, &format!("comment {i}")).await;
        let comment = client.next().await;
        let took = published.elapsed();
        assert_eq!(comment.id, id);
        assert!(
            took >= Duration::from_millis(50),
            "comment {i} took {took:?}"
        );
    }
}

#[tokio::test]
async fn a_short_poll_round_trip_takes_at_least_the_rtt() {
    let server = start().await;
    let relay = Relay::start(rtt(100), server.addr).await.unwrap();
    let connecting = Instant::now();
    let mut connection = HttpConnection::open(&target(relay.addr), ByteMeter::new())
        .await
        .unwrap();
    for poll in 0..3 {
        let sent = Instant::now();
        let response = within(
            "a poll",
            connection.send(Method::GET, "/poll?user=ann", &[], None),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        let took = sent.elapsed();
        assert!(
            took >= Duration::from_millis(100),
            "poll {poll} took {took:?}"
        );
        if poll == 0 {
            // A new connection also pays TCP's handshake: a round trip before the request.
            let took = connecting.elapsed();
            assert!(
                took >= Duration::from_millis(200),
                "the first took {took:?}"
            );
        }
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_2_mbit_transfer_takes_the_time_its_bytes_need() {
    let link = Link {
        bandwidth_bps: Some(2_000_000),
        ..rtt(20)
    };
    // Two seconds at 2 Mbit/s, so a few milliseconds of timer lateness are well under 1%.
    let bytes = 500_000;
    let transfer = within("the transfer", probe::transfer(link, bytes))
        .await
        .unwrap();
    assert_eq!(transfer.bytes, bytes as u64, "every byte arrives");
    let expected = transfer.timed_bytes as f64 * 8.0 / 2e6;
    let took = transfer.elapsed.as_secs_f64();
    assert!(
        (took / expected - 1.0).abs() < 0.10,
        "{} bytes took {took:.3} s, expected {expected:.3} s",
        transfer.timed_bytes
    );
}

/// A raw peer behind a relay: accepts one connection and hands over both ends.
async fn behind_relay(link: Link) -> (Relay, TcpStream, TcpStream) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let relay = Relay::start(link, listener.local_addr().unwrap())
        .await
        .unwrap();
    let client = TcpStream::connect(relay.addr).await.unwrap();
    let (server, _) = within("the relay's connection", listener.accept())
        .await
        .unwrap();
    (relay, client, server)
}

#[tokio::test]
async fn every_byte_and_each_fin_cross_in_order() {
    let link = Link {
        jitter: Duration::from_millis(10),
        bandwidth_bps: Some(50_000_000),
        ..rtt(20)
    };
    let (_relay, mut client, mut server) = behind_relay(link).await;
    let up: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let down: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let sending = {
        let up = up.clone();
        tokio::spawn(async move {
            client.write_all(&up).await.unwrap();
            client.shutdown().await.unwrap();
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            received
        })
    };
    let mut received = Vec::new();
    within(
        "the client's bytes and FIN",
        server.read_to_end(&mut received),
    )
    .await
    .unwrap();
    assert!(received == up, "the bytes up arrive whole and in order");
    server.write_all(&down).await.unwrap();
    server.shutdown().await.unwrap();
    let received = within("the server's bytes and FIN", sending).await.unwrap();
    assert!(received == down, "the bytes down arrive whole and in order");
}

#[tokio::test]
async fn a_reset_crosses_as_a_reset() {
    let (_relay, client, mut server) = behind_relay(rtt(20)).await;
    // Linger 0: closing sends RST, not FIN.
    client.set_zero_linger().unwrap();
    drop(client);
    let mut buffer = [0u8; 16];
    let read = within("the reset", server.read(&mut buffer)).await;
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "the server sees a reset, not an end of stream"
    );
}

#[tokio::test]
async fn relays_of_one_group_share_its_aggregate_bandwidth() {
    let link = Link {
        aggregate_bps: Some(1_000_000),
        ..Link::DIRECT
    };
    let listeners = [
        TcpListener::bind(("127.0.0.1", 0)).await.unwrap(),
        TcpListener::bind(("127.0.0.1", 0)).await.unwrap(),
    ];
    let upstreams: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let relays = Relay::start_group(link, &upstreams).await.unwrap();
    // Each server sends 62,500 bytes: half a second at 1 Mbit/s alone, a second together.
    for listener in listeners {
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(&[7u8; 62_500]).await.unwrap();
            socket.shutdown().await.unwrap();
        });
    }
    let started = Instant::now();
    let reads = relays.iter().map(|relay| {
        let addr = relay.addr;
        async move {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            let mut received = Vec::new();
            socket.read_to_end(&mut received).await.unwrap();
            received.len()
        }
    });
    let lengths = within("both transfers", futures_util::future::join_all(reads)).await;
    assert_eq!(lengths, [62_500, 62_500]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "two transfers over one 1 Mbit/s link took {took:?}"
    );
}
