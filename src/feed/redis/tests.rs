//! The Redis feed's tests, each against its own redis-server (`RedisServer`): the
//! conformance suite unchanged, the wire bytes, an outage with a killed and restarted Redis,
//! and two instances over one Redis.

use std::sync::Arc;

use super::*;
use crate::feed::NewComment;
use crate::feed::redis_server::{Persistence, RedisServer};

/// Upper bound on anything a test awaits: a safety net against a hang.
const DEADLINE: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
}

async fn server(persistence: Persistence) -> RedisServer {
    RedisServer::start(persistence)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// A feed that owns the redis-server it runs on, so the server lives as long as the feed.
struct OwnedFeed {
    feed: RedisFeed,
    _server: RedisServer,
}

#[async_trait::async_trait]
impl Feed for OwnedFeed {
    async fn append(&self, draft: Draft) -> Result<Arc<StoredComment>, FeedError> {
        self.feed.append(draft).await
    }
    async fn read_after(
        &self,
        cursor: Option<u64>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Page, FeedError> {
        self.feed.read_after(cursor, user, limit).await
    }
    async fn subscribe(
        &self,
        cursor: Option<u64>,
        user: Option<String>,
    ) -> Result<Subscription, FeedError> {
        self.feed.subscribe(cursor, user).await
    }
    async fn last_id(&self) -> Result<u64, FeedError> {
        self.feed.last_id().await
    }
    fn info(&self) -> FeedInfo {
        self.feed.info()
    }
    fn published(&self) -> u64 {
        self.feed.published()
    }
}

/// A fresh redis-server for each conformance check (they start in milliseconds), so the
/// checks run in parallel without sharing keys.
async fn redis_feed(options: FeedOptions) -> Arc<dyn Feed> {
    let server = server(Persistence::None).await;
    let feed = RedisFeed::connect(&server.url(), "conformance", options)
        .await
        .expect("the feed connects");
    Arc::new(OwnedFeed {
        feed,
        _server: server,
    })
}

crate::feed::conformance::conformance_tests!(redis_feed);

const ROOMY: FeedOptions = FeedOptions {
    history: 10_000,
    queue: 10_000,
};

fn new(to: Option<&str>, text: &str) -> NewComment {
    NewComment {
        from: "alice".into(),
        to: to.map(Into::into),
        text: text.into(),
    }
}

#[tokio::test]
async fn comments_read_back_are_byte_identical_to_the_memory_feeds() {
    let server = server(Persistence::None).await;
    let feed = RedisFeed::connect(&server.url(), "bytes", ROOMY)
        .await
        .unwrap();
    let mut subscription = feed.subscribe(None, Some("bob".into())).await.unwrap();
    for (to, text) in [
        (None, "plain"),
        (
            Some("bob"),
            "quotes \" and \\ and \n newlines, é, 😀, \u{0}",
        ),
        (Some("bob"), ""),
    ] {
        let draft = Draft::stamp(new(to, text));
        let published = feed.append(draft.clone()).await.unwrap();
        // What the memory feed stores for the same comment under the same id: the shared
        // rendering (`Draft::with_id`); the pushed and polled copies below are rebuilt from
        // the stream's fields, and must come out the same.
        let from_memory = draft.with_id(published.comment.id);
        assert_eq!(
            published.json, from_memory.json,
            "the publisher's rendering"
        );
        let pushed = within("a comment", subscription.next()).await.unwrap();
        assert_eq!(pushed.json, from_memory.json, "read back from the stream");
        let page = feed
            .read_after(Some(published.comment.id - 1), Some("bob"), 1)
            .await
            .unwrap();
        assert_eq!(
            page.comments[0].json, from_memory.json,
            "read back by a poll"
        );
    }
}

#[tokio::test]
async fn a_bad_url_or_an_unreachable_redis_is_a_clear_error() {
    let error = RedisFeed::connect("http://nowhere", "x", ROOMY).await.err();
    assert!(
        matches!(error, Some(ConnectError::BadUrl { .. })),
        "{error:?}"
    );
    // A port nobody listens on: bound and closed.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let error = RedisFeed::connect(&url, "x", ROOMY).await.err().unwrap();
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&url), "{error}");
}

/// Redis killed and restarted with its data: publishes and subscriptions fail with
/// `Unavailable` meanwhile, and resuming from the cursor afterwards loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_redis_is_an_outage_without_loss() {
    let mut server = server(Persistence::AppendOnly).await;
    let feed = RedisFeed::connect(&server.url(), "outage", ROOMY)
        .await
        .unwrap();
    let mut subscription = feed.subscribe(Some(0), None).await.unwrap();
    let first = feed.publish(new(None, "before")).await.unwrap().comment.id;
    assert_eq!(
        within("a comment", subscription.next())
            .await
            .unwrap()
            .comment
            .id,
        first
    );

    server.kill().await;
    let error = within("the drop", subscription.next()).await.unwrap_err();
    assert!(matches!(error, FeedError::Unavailable { .. }), "{error:?}");
    assert_eq!(subscription.cursor(), first);
    let refused = within("a refused publish", feed.publish(new(None, "during"))).await;
    assert!(
        matches!(refused, Err(FeedError::Unavailable { .. })),
        "{refused:?}"
    );
    let refused = within("a refused subscribe", feed.subscribe(Some(first), None)).await;
    assert!(
        matches!(refused, Err(FeedError::Unavailable { .. })),
        "refused subscribe"
    );

    server.restart().await.unwrap();
    // Publishing works again as soon as Redis answers; subscribing once the reader is back.
    let second = within("a publish after the restart", async {
        loop {
            if let Ok(stored) = feed.publish(new(None, "after")).await {
                return stored.comment.id;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        second,
        first + 1,
        "the id survived, nothing was stored meanwhile"
    );
    let mut resumed = within("a resumed subscription", async {
        loop {
            match feed.subscribe(Some(subscription.cursor()), None).await {
                Ok(resumed) => return resumed,
                Err(FeedError::Unavailable { .. }) => tokio::task::yield_now().await,
                Err(other) => panic!("{other:?}"),
            }
        }
    })
    .await;
    assert_eq!(
        within("the backlog", resumed.next())
            .await
            .unwrap()
            .comment
            .id,
        second
    );
    let third = feed.publish(new(None, "live")).await.unwrap().comment.id;
    assert_eq!(
        within("a live comment", resumed.next())
            .await
            .unwrap()
            .comment
            .id,
        third
    );
}

/// Two instances over one Redis: a comment published on either reaches the subscribers of
/// both, and ids strictly increase across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_feed() {
    let server = server(Persistence::None).await;
    let a = RedisFeed::connect(&server.url(), "shared", ROOMY)
        .await
        .unwrap();
    let b = RedisFeed::connect(&server.url(), "shared", ROOMY)
        .await
        .unwrap();
    let mut on_a = a.subscribe(None, Some("bob".into())).await.unwrap();
    let mut on_b = b.subscribe(None, Some("bob".into())).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let feed = if i % 2 == 0 { &a } else { &b };
        let to = (i % 3 == 0).then_some("eve").or(Some("bob"));
        ids.push(
            feed.publish(new(to, &i.to_string()))
                .await
                .unwrap()
                .comment
                .id,
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let first = ids[0];
    assert_eq!(ids, (first..first + 20).collect::<Vec<_>>(), "contiguous");
    assert_eq!(
        (a.published(), b.published()),
        (10, 10),
        "counted where accepted"
    );
    let for_bob: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| (id - first) % 3 != 0)
        .collect();
    for subscription in [&mut on_a, &mut on_b] {
        let mut got = Vec::new();
        while got.len() < for_bob.len() {
            got.push(
                within("a comment", subscription.next())
                    .await
                    .unwrap()
                    .comment
                    .id,
            );
        }
        assert_eq!(got, for_bob);
    }
}

/// Redis restarted without persistence has lost the stream: the reader notices that Redis
/// came back without this instance's comments, and the feed starts a new incarnation whose
/// ids continue above every earlier one; a client resuming from an old cursor is told its
/// cursor is from an earlier feed (410, never mistaken for a cursor of the new one), and new
/// subscribers are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_without_its_data_starts_a_new_incarnation() {
    let mut server = server(Persistence::None).await;
    let feed = RedisFeed::connect(&server.url(), "lost", ROOMY)
        .await
        .unwrap();
    let before = feed.info();
    let mut subscription = feed.subscribe(None, None).await.unwrap();
    let mut old = Vec::new();
    for i in 0..3 {
        old.push(
            feed.publish(new(None, &i.to_string()))
                .await
                .unwrap()
                .comment
                .id,
        );
    }
    assert_eq!(old[0], before.first_id);
    for id in &old {
        assert_eq!(
            within("a comment", subscription.next())
                .await
                .unwrap()
                .comment
                .id,
            *id
        );
    }
    server.restart().await.unwrap();
    let error = within("the drop", subscription.next()).await.unwrap_err();
    assert!(matches!(error, FeedError::Unavailable { .. }), "{error:?}");
    let mut fresh = within("the reader back", async {
        loop {
            match feed.subscribe(None, None).await {
                Ok(fresh) => return fresh,
                Err(FeedError::Unavailable { .. }) => tokio::task::yield_now().await,
                Err(other) => panic!("{other:?}"),
            }
        }
    })
    .await;
    let after = feed.info();
    assert!(
        after.incarnation > before.incarnation,
        "{before:?} {after:?}"
    );
    assert!(after.first_id > old[2], "new ids are above the old ones");
    match feed.subscribe(Some(old[2]), None).await.err() {
        Some(FeedError::CursorFromEarlierFeed { cursor, first, .. }) => {
            assert_eq!((cursor, first), (old[2], after.first_id));
        }
        other => panic!("expected CursorFromEarlierFeed, got {other:?}"),
    }
    let id = feed
        .publish(new(None, "first of the new feed"))
        .await
        .unwrap()
        .comment
        .id;
    assert_eq!(id, after.first_id);
    assert_eq!(
        within("a comment", fresh.next()).await.unwrap().comment.id,
        id
    );
}
