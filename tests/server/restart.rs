//! A restarted server is a new incarnation of the feed: every technique's client gets 410
//! for its old cursor, resumes from the oldest id kept (counting the restart), gets no
//! duplicate, and backs off while the server is down instead of retrying in a tight loop.

use std::sync::atomic::Ordering;

use pushlab::feed::NewComment;
use pushlab::server::AppState;
use tokio_util::sync::CancellationToken;

use super::*;

fn note(text: &str) -> NewComment {
    NewComment {
        from: "alice".into(),
        to: None,
        text: text.into(),
    }
}

#[tokio::test]
async fn clients_resume_after_a_restart_from_the_oldest_id_with_backoff() {
    let earlier = start().await;
    let addr = earlier.addr;
    let mut clients = Vec::new();
    for technique in Technique::ALL {
        let mut subscriber = Subscriber::new(addr, Some("bob"), Some(0));
        subscriber.settings.reconnect_delay = Duration::from_millis(20);
        subscriber.settings.reconnect_max = Duration::from_millis(320);
        let client = subscribe_with(technique, subscriber);
        client.ready().await;
        clients.push((technique, client));
    }
    let before = publish(addr, "alice", None, "before the restart").await;
    for (technique, client) in &mut clients {
        assert_eq!(client.next().await.id, before, "{technique}");
    }
    earlier.stop().await.unwrap();

    // While the server is down, count each client's attempts over a window: a fixed 20 ms
    // retry would make about 50, the back-off (20 ms doubling to 320 ms, each wait at least
    // half its step) at most about 10.
    let retries = |clients: &[(Technique, Client)]| -> Vec<u64> {
        clients
            .iter()
            .map(|(_, c)| c.subscriber.counters.retries.load(Ordering::Relaxed))
            .collect()
    };
    let at_stop = retries(&clients);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during: Vec<u64> = retries(&clients)
        .iter()
        .zip(&at_stop)
        .map(|(now, then)| now - then)
        .collect();
    for ((technique, _), attempts) in clients.iter().zip(&during) {
        assert!(
            (1..=15).contains(attempts),
            "{technique}: {attempts} attempts in 1 s while the server was down"
        );
    }

    // A fresh server on the same address: a new feed keeping one comment, two published
    // before it listens, so the first of them is lost to the restart for everyone.
    let config = ServerConfig {
        history_capacity: 1,
        ..ServerConfig::default()
    };
    let state = AppState::new(config, CancellationToken::new());
    let evicted = state.feed.publish(note("evicted")).await.unwrap();
    let oldest = state.feed.publish(note("oldest kept")).await.unwrap();
    assert!(
        evicted.comment.id > before,
        "the new ids start above the old ones"
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let later = tokio::spawn(pushlab::server::serve(
        listener,
        state.clone(),
        Duration::from_secs(5),
    ));
    for (technique, client) in &mut clients {
        let comment = client.next().await;
        assert_eq!(
            (comment.id, comment.text.as_str()),
            (oldest.comment.id, "oldest kept"),
            "{technique}: resumed from the oldest id kept, nothing twice"
        );
        let counters = &client.subscriber.counters;
        assert_eq!(
            counters.restarts.load(Ordering::Relaxed),
            1,
            "{technique}: the loss is the restart's"
        );
        assert_eq!(counters.evictions.load(Ordering::Relaxed), 0, "{technique}");
    }
    let live = publish(addr, "alice", None, "after the restart").await;
    for (technique, client) in &mut clients {
        assert_eq!(client.next().await.id, live, "{technique}");
    }
    for (_, client) in clients {
        client.stop().await;
    }
    state.shutdown.cancel();
    let _ = later.await;
}
