//! The admin endpoint's partial drops, for fault scenarios: a list of users, or a share of
//! them, loses its connections while the others keep theirs.

use hyper::StatusCode;
use pushlab::model::ServerConfig;
use pushlab::net::ByteMeter;

use super::{post_json, publish, sse_open, start_with};

#[tokio::test]
async fn a_drop_of_named_users_ends_only_their_streams() {
    let server = start_with(ServerConfig {
        admin: true,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr;
    let mut alice = sse_open(addr, "/sse?user=alice", &[], ByteMeter::new())
        .await
        .expect("200");
    let mut bob = sse_open(addr, "/sse?user=bob", &[], ByteMeter::new())
        .await
        .expect("200");
    for stream in [&mut alice, &mut bob] {
        let connect = stream.next_block().await.unwrap().unwrap();
        assert_eq!(connect.event.as_deref(), Some("connect"));
    }
    let reply = post_json(addr, "/admin/drop?technique=sse&users=alice,nobody", "").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["users_dropped"], serde_json::json!(["alice"]));
    // Alice's stream breaks off (no clean end: like a network fault); Bob's goes on.
    assert!(alice.next_block().await.is_err());
    publish(addr, "carol", None, "still here").await;
    let event = loop {
        let block = bob.next_block().await.unwrap().unwrap();
        if block.event.is_some() {
            break block;
        }
    };
    assert_eq!(event.event.as_deref(), Some("comment"));

    // A share picks among the users with live connections and names them.
    let reply = post_json(addr, "/admin/drop?technique=sse&share=1", "").await;
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["users_dropped"], serde_json::json!(["bob"]));
    assert!(bob.next_block().await.is_err());

    for bad in ["share=0", "share=1.5", "users=a&share=0.5"] {
        let reply = post_json(addr, &format!("/admin/drop?technique=sse&{bad}"), "").await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text()
        );
    }
}
