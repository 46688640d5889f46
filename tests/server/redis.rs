//! The server over the Redis feed (`--feed redis://...`), each test with its own
//! redis-server (`pushlab::feed::redis_server`): a killed and restarted Redis is a 503 for
//! publishers and a counted, resumable drop for subscribers, who then resume without loss;
//! two instances over one Redis serve one feed.

use pushlab::feed::now_micros;
use pushlab::feed::redis_server::{Persistence, RedisServer};
use pushlab::model::FeedBackend;

use super::*;

async fn redis(persistence: Persistence) -> RedisServer {
    RedisServer::start(persistence)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

fn over(redis: &RedisServer) -> ServerConfig {
    ServerConfig {
        feed: FeedBackend::Redis { url: redis.url() },
        // Subscribers come back quickly after the outage; the delay is not under test.
        sse_retry: Duration::from_millis(100),
        ..ServerConfig::default()
    }
}

/// Publishes, retrying while the server answers 503 (Redis not back yet); returns the id.
async fn publish_when_back(addr: SocketAddr, text: &str) -> u64 {
    let body = serde_json::json!({ "from": "alice", "text": text }).to_string();
    within("a publish once Redis is back", async {
        loop {
            let reply = post_json(addr, "/comments", &body).await;
            match reply.status {
                StatusCode::CREATED => return reply.json()["id"].as_u64().unwrap(),
                StatusCode::SERVICE_UNAVAILABLE => tokio::task::yield_now().await,
                other => panic!("{other}: {}", reply.text()),
            }
        }
    })
    .await
}

const STREAMING: [Technique; 3] = [Technique::Sse, Technique::WebSocket, Technique::LongPolling];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_is_a_503_and_a_counted_drop_and_everyone_resumes_without_loss() {
    let mut redis = redis(Persistence::AppendOnly).await;
    let server = start_with(over(&redis)).await;
    let addr = server.addr;
    let mut clients: Vec<(Technique, Client)> = STREAMING
        .iter()
        .map(|&technique| (technique, subscribe(technique, addr, None, Some(0))))
        .collect();
    for (_, client) in &clients {
        client.ready().await;
    }
    let mut before = Vec::new();
    for i in 0..5 {
        before.push(publish(addr, "alice", None, &format!("before {i}")).await);
    }
    for (technique, client) in &mut clients {
        assert_eq!(
            client.next_ids(5).await,
            before,
            "{technique} before the outage"
        );
    }

    redis.kill().await;
    let refused = post_json(addr, "/comments", r#"{"from":"alice","text":"during"}"#).await;
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, &["unavailable", "redis"]);
    assert!(refused.headers.contains_key("retry-after"), "{refused:?}");
    let dropped = wait_stats(addr, "every subscriber dropped as unavailable", |s| {
        STREAMING
            .iter()
            .all(|t| account(s, t.name()).dropped_unavailable >= 1)
    })
    .await;
    assert_eq!(
        dropped.comments_published, 5,
        "the refused publish is not counted"
    );

    redis.restart().await.unwrap();
    let mut after = Vec::new();
    for i in 0..5 {
        after.push(publish_when_back(addr, &format!("after {i}")).await);
    }
    assert_eq!(
        after,
        (before[4] + 1..=before[4] + 5).collect::<Vec<_>>(),
        "ids go on from where they were: Redis kept its data, and stored nothing refused"
    );
    for (technique, client) in &mut clients {
        assert_eq!(
            client.next_ids(5).await,
            after,
            "{technique}: resumed from its cursor, nothing lost, nothing twice"
        );
        assert!(
            client
                .subscriber
                .counters
                .reconnects
                .load(Ordering::Relaxed)
                >= 1,
            "{technique} reconnected"
        );
    }
    let last = publish(addr, "alice", None, "last").await;
    for (technique, client) in &mut clients {
        assert_eq!(
            client.next().await.id,
            last,
            "{technique}: nothing in between"
        );
    }
    for (_, client) in clients {
        client.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_over_one_redis_serve_one_feed() {
    let redis = redis(Persistence::None).await;
    let a = start_with(over(&redis)).await;
    let b = start_with(over(&redis)).await;
    let mut on_b = subscribe(Technique::Sse, b.addr, Some("bob"), None);
    let mut on_a = subscribe(Technique::WebSocket, a.addr, Some("bob"), None);
    on_b.ready().await;
    on_a.ready().await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        ids.push(publish(addr, "alice", Some("bob"), &format!("comment {i}")).await);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {ids:?}"
    );
    assert_eq!(
        on_b.next_ids(10).await,
        ids,
        "B's subscriber got A's comments too"
    );
    assert_eq!(on_a.next_ids(10).await, ids, "and A's got B's");
    let (sa, sb) = (stats(a.addr).await, stats(b.addr).await);
    assert_eq!(
        (sa.comments_published, sb.comments_published),
        (5, 5),
        "each instance counts what it accepted"
    );
    on_a.stop().await;
    on_b.stop().await;
}

/// Prints the publish-to-delivery latency of one SSE subscriber over the memory feed and over
/// Redis (the broker's hop), 200 comments each, one at a time. A measurement, not a check of
/// the figures: `cargo test --test tests hop -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement that prints figures"]
async fn hop_latency_of_the_redis_feed_against_memory() {
    let redis = redis(Persistence::None).await;
    for (name, config) in [("memory", ServerConfig::default()), ("redis", over(&redis))] {
        let server = start_with(config).await;
        let mut client = subscribe(Technique::Sse, server.addr, None, None);
        client.ready().await;
        let mut latencies = Vec::new();
        for i in 0..200 {
            let id = publish(server.addr, "alice", None, &format!("{i}")).await;
            let comment = client.next().await;
            let at = now_micros();
            assert_eq!(comment.id, id, "{name}: in order");
            latencies.push(at.saturating_sub(comment.published_at_us));
        }
        latencies.sort_unstable();
        let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "{name}: publish to SSE delivery over 200 comments: p50 {} us, p90 {} us, p99 {} us",
            p(0.5),
            p(0.9),
            p(0.99)
        );
        client.stop().await;
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn the_binary_refuses_to_start_on_an_unreachable_redis_naming_the_flag() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let output = within(
        "pushlab-server to exit",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pushlab-server"))
            .args(["--bind", "127.0.0.1:0", "--feed", &url])
            .output(),
    )
    .await
    .expect("pushlab-server runs");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing listened");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--feed") && stderr.contains(&url) && !stderr.contains("panicked"),
        "{stderr}"
    );
}
