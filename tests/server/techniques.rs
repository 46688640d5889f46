//! Every technique of `Technique::ALL` walks through each per-technique surface of the
//! server: its routes serve its own client, `/stats` has its account, `/metrics` labels it,
//! and `/admin/drop` knows its name and cuts what it holds open. A technique added to the
//! list without one of these fails here.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::{Method, StatusCode};
use pushlab::server::ServerConfig;
use pushlab::techniques::Technique;

use super::{account, get, publish, request, start_with, subscribe, wait_for, wait_stats};

#[tokio::test]
async fn every_technique_is_served_counted_labelled_and_droppable() {
    let server = start_with(ServerConfig {
        admin: true,
        sse_retry: Duration::from_millis(50),
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let metrics = get(addr, "/metrics").await.text();
    for technique in Technique::ALL {
        let name = technique.name();
        assert!(
            metrics.contains(&format!("pushlab_requests_total{{account=\"{name}\"}}")),
            "/metrics has no {name} account:\n{metrics}"
        );
        let mut client = subscribe(technique, addr, Some("bob"), None);
        client.ready().await;
        let first = publish(addr, "alice", Some("bob"), &format!("to {name}")).await;
        assert_eq!(client.next().await.id, first, "{name}");
        let stats = wait_stats(addr, &format!("{name}'s delivery counted"), |s| {
            account(s, name).comments_delivered >= 1
        })
        .await;
        let own = account(&stats, name);
        assert!(own.requests >= 1 && own.bytes_out > 0, "{name}: {own:?}");

        let reply = request(
            addr,
            Method::POST,
            &format!("/admin/drop?technique={name}"),
            &[],
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text());
        assert_eq!(reply.json()["technique"], name);
        if technique.holds_connection() {
            wait_stats(addr, &format!("{name}'s drop counted"), |s| {
                account(s, name).dropped_by_admin == 1
            })
            .await;
            let counters = client.subscriber.counters.clone();
            wait_for(&format!("{name} to reconnect"), || {
                counters.reconnects.load(Ordering::Relaxed)
                    + counters.errors.load(Ordering::Relaxed)
                    >= 1
            })
            .await;
        }
        // Resumed (or never cut): the next comment arrives once.
        let second = publish(addr, "alice", None, &format!("after {name}'s drop")).await;
        assert_eq!(client.next().await.id, second, "{name}");
        client.stop().await;
    }
}
