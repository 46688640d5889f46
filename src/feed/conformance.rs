//! The feed conformance suite: the checks every backend passes, unchanged. Each is a
//! `pub async fn` taking a factory that builds a fresh, empty backend from `FeedOptions`;
//! `conformance_tests!(factory)` turns them all into `#[tokio::test]`s, so a backend's test
//! module runs the whole suite with one line (see the bottom of `memory.rs`).
//!
//! The checks await events, never sleep for timing: a wait for the backend's fan-out reads
//! the subscription's horizon, and `within` is only a safety net against a hang.
//! Counting a dropped subscriber is the handler's part (`tests/server/limits.rs`); here the
//! backend must drop it with `Lagged` naming its resume cursor.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{CATCHUP_PAGE, Feed, FeedError, FeedOptions, NewComment, Subscription};

/// How long any one wait may take before the check fails rather than hangs.
const DEADLINE: Duration = Duration::from_secs(30);

/// Roomy sizes, for the checks that must not evict or drop.
const ROOMY: FeedOptions = FeedOptions {
    history: 100_000,
    queue: 100_000,
};

/// The text of the broadcast comment that tells concurrent readers the run is over.
const END: &str = "end of the run";

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
}

fn comment(from: &str, to: Option<&str>, text: &str) -> NewComment {
    NewComment {
        from: from.into(),
        to: to.map(Into::into),
        text: text.into(),
    }
}

async fn publish(feed: &dyn Feed, to: Option<&str>, text: &str) -> u64 {
    let stored = within("a publish", feed.publish(comment("alice", to, text)))
        .await
        .expect("the feed accepts a publish");
    stored.comment.id
}

async fn next_id(subscription: &mut Subscription) -> u64 {
    within("a comment", subscription.next())
        .await
        .expect("the subscription yields")
        .comment
        .id
}

/// Waits until the backend has fanned out everything up to `id` (for a networked backend
/// that happens after `publish` returns), yielding to other tasks in between.
async fn fanned_out(subscription: &Subscription, id: u64) {
    within("the fan-out", async {
        while subscription.horizon() < id {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// The id before an empty feed's first: ids start above an incarnation's base, so every
/// check counts from it.
async fn base_of(feed: &dyn Feed) -> u64 {
    let base = feed.last_id().await.expect("an empty feed has a last id");
    assert_eq!(feed.info().first_id, base + 1, "info names the first id");
    base
}

/// Ids are base+1, base+2... over the whole feed, pages and subscriptions yield them in
/// order, `published` counts them and `last_id` names the newest.
pub async fn id_order<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    let feed = factory(ROOMY).await;
    let base = base_of(&*feed).await;
    assert!(base > 0, "ids start above the incarnation's base");
    let mut ids = Vec::new();
    for i in 0..20 {
        let to = (i % 3 == 0).then_some("bob");
        ids.push(publish(&*feed, to, &format!("comment {i}")).await);
    }
    assert_eq!(ids, (base + 1..=base + 20).collect::<Vec<_>>());
    assert_eq!(feed.last_id().await, Ok(base + 20));
    assert_eq!(feed.published(), 20);
    for cursor in [0, base] {
        let page = feed
            .read_after(Some(cursor), Some("bob"), 100)
            .await
            .unwrap();
        let read: Vec<u64> = page.comments.iter().map(|c| c.comment.id).collect();
        assert_eq!(
            read, ids,
            "a page from {cursor} holds every comment for bob, in order"
        );
        assert_eq!(page.next, base + 20);
    }
    let mut subscription = feed.subscribe(Some(0), Some("bob".into())).await.unwrap();
    for id in base + 1..=base + 20 {
        assert_eq!(next_id(&mut subscription).await, id);
    }
    let id = publish(&*feed, None, "live").await;
    assert_eq!(next_id(&mut subscription).await, id);
    assert_eq!(subscription.cursor(), base + 21);
    fanned_out(&subscription, id).await;
    // A networked backend's instance learns of a comment when its reader fans it out, which
    // may come after a subscriber read it from the history: info catches up, never passes.
    within("info to name the newest id", async {
        while feed.info().last_id < base + 21 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(feed.info().last_id, base + 21, "info names the newest id");
}

/// A comment to a user reaches that user only; a broadcast reaches everyone; a page's `next`
/// moves past other users' comments.
pub async fn per_user_filtering<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    let feed = factory(ROOMY).await;
    let base = base_of(&*feed).await;
    let mut bob = feed.subscribe(None, Some("bob".into())).await.unwrap();
    let mut anonymous = feed.subscribe(None, None).await.unwrap();
    publish(&*feed, None, "all").await;
    publish(&*feed, Some("bob"), "to bob").await;
    publish(&*feed, Some("eve"), "to eve").await;
    let texts = |page: &super::Page| -> Vec<String> {
        page.comments
            .iter()
            .map(|c| c.comment.text.clone())
            .collect()
    };
    let page = feed.read_after(Some(0), Some("bob"), 100).await.unwrap();
    assert_eq!(texts(&page), ["all", "to bob"]);
    assert_eq!(page.next, base + 3, "past eve's comment too");
    let page = feed.read_after(Some(0), None, 100).await.unwrap();
    assert_eq!(
        texts(&page),
        ["all"],
        "anonymous readers get broadcasts only"
    );
    let page = feed.read_after(Some(0), Some("eve"), 100).await.unwrap();
    assert_eq!(texts(&page), ["all", "to eve"]);

    assert_eq!(next_id(&mut bob).await, base + 1);
    assert_eq!(next_id(&mut bob).await, base + 2);
    assert_eq!(next_id(&mut anonymous).await, base + 1);
    let end = publish(&*feed, None, END).await;
    assert_eq!(next_id(&mut bob).await, end, "eve's comment is not bob's");
    assert_eq!(next_id(&mut anonymous).await, end);
}

/// Reading or subscribing from a cursor yields exactly what came after it; no cursor means
/// from now on.
pub async fn resume_from_cursor<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    let feed = factory(ROOMY).await;
    let b = base_of(&*feed).await;
    for i in 1..=5 {
        publish(&*feed, None, &i.to_string()).await;
    }
    let page = feed.read_after(Some(b + 2), None, 100).await.unwrap();
    let ids: Vec<u64> = page.comments.iter().map(|c| c.comment.id).collect();
    assert_eq!(ids, [b + 3, b + 4, b + 5]);
    assert_eq!(page.next, b + 5);
    let page = feed.read_after(Some(b + 2), None, 2).await.unwrap();
    assert_eq!(page.comments.len(), 2, "the limit holds");
    assert_eq!(page.next, b + 4, "next is the last comment looked at");
    let page = feed.read_after(None, None, 100).await.unwrap();
    assert!(page.comments.is_empty());
    assert_eq!(page.next, b + 5, "no cursor: from now on");
    let page = feed.read_after(Some(b + 5), None, 100).await.unwrap();
    assert!(page.comments.is_empty());
    assert_eq!(page.next, b + 5);

    let mut from_three = feed.subscribe(Some(b + 3), None).await.unwrap();
    let mut from_now = feed.subscribe(None, None).await.unwrap();
    assert_eq!(from_now.cursor(), b + 5);
    let six = publish(&*feed, None, "6").await;
    assert_eq!(next_id(&mut from_three).await, b + 4);
    assert_eq!(next_id(&mut from_three).await, b + 5);
    assert_eq!(next_id(&mut from_three).await, six);
    assert_eq!(next_id(&mut from_now).await, six);
}

/// A cursor older than the history is `CursorExpired` naming the oldest id kept, which can
/// itself be resumed from; at least `history` comments are kept.
// Written for approximate trimming too (Redis `MAXLEN ~` keeps whole stream nodes): many
// more comments than the history, and bounds rather than one exact oldest id.
pub async fn eviction_names_the_oldest_id<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    let history = 5;
    let feed = factory(FeedOptions { history, queue: 16 }).await;
    let base = base_of(&*feed).await;
    let total = 1000;
    for i in 1..=total {
        publish(&*feed, None, &i.to_string()).await;
    }
    let error = feed.read_after(Some(base), None, 10).await.unwrap_err();
    let FeedError::CursorExpired { cursor, oldest } = error else {
        panic!("expected CursorExpired for cursor {base}, got {error:?}");
    };
    assert_eq!(cursor, base);
    assert!(
        oldest > base + 1,
        "comment 1 was evicted, oldest is {oldest}"
    );
    assert!(
        oldest <= base + total - history as u64 + 1,
        "at least {history} comments are kept, oldest is {oldest}"
    );
    let error = feed.subscribe(Some(base), None).await.err();
    assert_eq!(
        error,
        Some(FeedError::CursorExpired {
            cursor: base,
            oldest
        }),
        "subscribing from an evicted cursor fails the same way"
    );
    let page = feed.read_after(Some(0), None, 1).await.unwrap();
    assert_eq!(
        page.comments[0].comment.id, oldest,
        "cursor 0 means from the oldest kept, whatever was evicted"
    );
    let page = feed.read_after(Some(oldest - 1), None, 1).await.unwrap();
    assert_eq!(page.comments[0].comment.id, oldest, "the oldest id is kept");
    let mut subscription = feed.subscribe(Some(oldest - 1), None).await.unwrap();
    assert_eq!(next_id(&mut subscription).await, oldest);
    let recent = base + total - history as u64;
    let page = feed.read_after(Some(recent), None, 100).await.unwrap();
    assert_eq!(page.comments.len(), history);
}

/// A cursor past the newest id is `CursorAhead`, for reads and subscriptions alike.
pub async fn cursor_ahead_is_refused<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    let feed = factory(ROOMY).await;
    let b = base_of(&*feed).await;
    assert_eq!(
        feed.read_after(Some(b + 1), None, 10).await.unwrap_err(),
        FeedError::CursorAhead {
            cursor: b + 1,
            last: b
        }
    );
    publish(&*feed, None, "1").await;
    publish(&*feed, None, "2").await;
    assert_eq!(
        feed.read_after(Some(b + 5), None, 10).await.unwrap_err(),
        FeedError::CursorAhead {
            cursor: b + 5,
            last: b + 2
        }
    );
    assert_eq!(
        feed.subscribe(Some(b + 3), Some("bob".into())).await.err(),
        Some(FeedError::CursorAhead {
            cursor: b + 3,
            last: b + 2
        })
    );
}

/// Who gets comment `i` of publisher `p` in the concurrent checks: a mix of broadcasts and
/// comments to four users.
fn recipient(p: usize, i: usize) -> Option<String> {
    match (p + i) % 5 {
        0 | 1 => None,
        n => Some(format!("user{}", n % 4)),
    }
}

/// Reads a subscription until the `END` broadcast, returning the ids it yielded.
async fn collect_until_end(mut subscription: Subscription) -> Vec<u64> {
    let mut ids = Vec::new();
    loop {
        let comment = within("a comment", subscription.next())
            .await
            .expect("a roomy subscriber is not dropped");
        ids.push(comment.comment.id);
        if comment.comment.text == END {
            return ids;
        }
    }
}

/// What a reader of `user` from `cursor` should have got: every comment for it, in order.
async fn expected(feed: &dyn Feed, cursor: u64, user: Option<&str>) -> Vec<u64> {
    let page = feed
        .read_after(Some(cursor), user, usize::MAX)
        .await
        .unwrap();
    page.comments.iter().map(|c| c.comment.id).collect()
}

/// 4 publishers x 500 comments race 8 subscribers that start at different moments from
/// known cursors (some per user, some from an older cursor): each gets every comment for
/// it after its cursor, in order, once.
pub async fn concurrent_publishers_and_subscribers<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    const PUBLISHERS: usize = 4;
    const EACH: usize = 500;
    let feed = factory(ROOMY).await;
    let base = base_of(&*feed).await;
    let (progress, watch) = tokio::sync::watch::channel(base);
    let progress = Arc::new(progress);
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let feed = feed.clone();
        let progress = progress.clone();
        publishers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let id = publish(&*feed, recipient(p, i).as_deref(), &format!("{p}/{i}")).await;
                progress.send_modify(|newest| *newest = (*newest).max(id));
            }
        }));
    }
    let (subscribed, mut all_subscribed) = tokio::sync::mpsc::channel(8);
    let mut subscribers = Vec::new();
    for s in 0..8u64 {
        let feed = feed.clone();
        let mut watch = watch.clone();
        let subscribed = subscribed.clone();
        subscribers.push(tokio::spawn(async move {
            // Start once the publishers are that far along: moments spread over the run.
            let at = base + s * (PUBLISHERS * EACH) as u64 / 9;
            let seen = *within("progress", watch.wait_for(|newest| *newest >= at))
                .await
                .unwrap();
            // user1 gets broadcasts only: the others' comments must not reach it.
            let user = (s % 2 == 1)
                .then(|| ["user2", "user3", "user0", "user1"][s as usize / 2].to_string());
            // Half start from an id already published (a resuming client), half from now.
            let cursor = match s % 4 {
                0 | 1 => Some(base + (seen - base) / 2),
                _ => None,
            };
            let subscription = feed.subscribe(cursor, user.clone()).await.unwrap();
            let start = subscription.cursor();
            subscribed.send(()).await.unwrap();
            (start, user, collect_until_end(subscription).await)
        }));
    }
    for publisher in publishers {
        within("a publisher", publisher).await.unwrap();
    }
    let total = (PUBLISHERS * EACH) as u64;
    assert_eq!(feed.last_id().await, Ok(base + total));
    // The end marker goes out only once every subscriber has subscribed, or one starting
    // from now would wait for it forever.
    for _ in 0..subscribers.len() {
        within("the subscriptions", all_subscribed.recv()).await;
    }
    let end = publish(&*feed, None, END).await;
    for handle in subscribers {
        let (start, user, ids) = within("a subscriber", handle).await.unwrap();
        let want = expected(&*feed, start, user.as_deref()).await;
        assert_eq!(
            ids.last(),
            Some(&end),
            "subscriber for {user:?} ends with the marker"
        );
        let unique: BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "no duplicate for {user:?}");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order for {user:?}");
        assert_eq!(ids, want, "no gap for {user:?} from {start}");
    }
}

/// A subscriber that does not read is dropped with `Lagged` once its queue is full, naming
/// the cursor it has read to; resuming from there yields the rest, nothing lost.
pub async fn slow_subscriber_is_dropped_and_resumes<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    let queue = 2;
    let feed = factory(FeedOptions {
        history: 1000,
        queue,
    })
    .await;
    let base = base_of(&*feed).await;
    let mut slow = feed.subscribe(None, None).await.unwrap();
    let total = 20;
    for i in 1..=total {
        publish(&*feed, None, &i.to_string()).await;
    }
    fanned_out(&slow, base + total).await;
    let mut read = 0;
    let error = loop {
        match within("the slow subscriber", slow.next()).await {
            Ok(comment) => {
                read += 1;
                assert_eq!(comment.comment.id, base + read, "in order up to the drop");
            }
            Err(error) => break error,
        }
    };
    assert_eq!(
        error,
        FeedError::Lagged {
            queue,
            resume_after: base + read
        }
    );
    assert!(
        read < total,
        "a subscriber {total} behind with a queue of {queue} is dropped"
    );
    let mut resumed = feed.subscribe(Some(base + read), None).await.unwrap();
    for id in base + read + 1..=base + total {
        assert_eq!(next_id(&mut resumed).await, id, "resumed without loss");
    }
}

/// The visibility rule, while publishes race: a reader that read up to N and then
/// subscribes from N misses nothing; a per-user poller that moves its cursor to the
/// horizon (as long polling does) misses nothing either.
pub async fn visibility_rule<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    let feed = factory(ROOMY).await;
    let publisher = {
        let feed = feed.clone();
        tokio::spawn(async move {
            for i in 0..1000 {
                let to = match i % 4 {
                    0 => None,
                    1 => Some("bob"),
                    _ => Some("eve"),
                };
                publish(&*feed, to, &i.to_string()).await;
            }
        })
    };

    // Read, then subscribe from where the read ended, in the middle of the publishes.
    let reader = {
        let feed = feed.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut cursor = 0;
            while ids.len() < 20 {
                let page = feed.read_after(Some(cursor), Some("bob"), 7).await.unwrap();
                ids.extend(page.comments.iter().map(|c| c.comment.id));
                cursor = page.next;
                tokio::task::yield_now().await;
            }
            let subscription = feed.subscribe(Some(cursor), Some("bob".into())).await;
            ids.extend(collect_until_end(subscription.unwrap()).await);
            ids
        })
    };

    // A long poller for bob: wait for one comment, take what is ready, move to the horizon.
    let poller = {
        let feed = feed.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut cursor = 0;
            loop {
                let mut subscription = feed.subscribe(Some(cursor), Some("bob".into())).await;
                let subscription = subscription.as_mut().unwrap();
                let first = within("a comment", subscription.next()).await.unwrap();
                let mut page = vec![first];
                cursor = subscription.drain_ready(&mut page, 5);
                assert!(cursor >= page.last().unwrap().comment.id);
                ids.extend(page.iter().map(|c| c.comment.id));
                if page.iter().any(|c| c.comment.text == END) {
                    return ids;
                }
            }
        })
    };

    within("the publisher", publisher).await.unwrap();
    publish(&*feed, None, END).await;
    let want = expected(&*feed, 0, Some("bob")).await;
    assert_eq!(
        within("the reader", reader).await.unwrap(),
        want,
        "read then subscribed"
    );
    assert_eq!(
        within("the poller", poller).await.unwrap(),
        want,
        "long-polled to the horizon"
    );

    // With nothing for bob left, draining moves the cursor past eve's comments.
    let mut bob = feed.subscribe(None, Some("bob".into())).await.unwrap();
    let last = publish(&*feed, Some("eve"), "not for bob").await;
    fanned_out(&bob, last).await;
    let mut page = Vec::new();
    assert_eq!(bob.drain_ready(&mut page, 5), last);
    assert!(page.is_empty());
}

/// A feed started afresh is a new incarnation: its ids start above every id the earlier one
/// handed out, and a cursor of the earlier one is `CursorFromEarlierFeed` naming this feed's
/// first and oldest ids (from which the subscriber resumes), never read as one of its own.
pub async fn earlier_incarnation_cursor_is_refused<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    let earlier = factory(ROOMY).await;
    let mut cursor = 0;
    for i in 0..50 {
        cursor = publish(&*earlier, None, &i.to_string()).await;
    }
    let earlier_info = earlier.info();
    drop(earlier);
    let feed = factory(ROOMY).await;
    let base = base_of(&*feed).await;
    let info = feed.info();
    assert_ne!(
        info.incarnation, earlier_info.incarnation,
        "a new incarnation"
    );
    assert!(
        base >= cursor,
        "ids start above the earlier feed's ({base} < {cursor})"
    );
    let first = publish(&*feed, None, "first of the new feed").await;
    assert_eq!(first, base + 1);
    let refused = FeedError::CursorFromEarlierFeed {
        cursor,
        first,
        oldest: first,
    };
    assert_eq!(
        feed.read_after(Some(cursor), None, 10).await.unwrap_err(),
        refused
    );
    assert_eq!(
        feed.subscribe(Some(cursor), None).await.err(),
        Some(refused)
    );
    let mut resumed = feed.subscribe(Some(first - 1), None).await.unwrap();
    assert_eq!(
        next_id(&mut resumed).await,
        first,
        "resumes from the oldest kept"
    );
}

/// Subscribing from an old cursor copies nothing: the subscription pages through the history
/// on demand, holding at most one page, and yields it all in order with no gap or duplicate
/// while publishes race with the catch-up.
pub async fn resume_pages_through_the_history<F, Fut>(factory: F)
where
    F: Fn(FeedOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Feed>>,
{
    let feed = factory(ROOMY).await;
    let base = base_of(&*feed).await;
    let backlog = 3 * CATCHUP_PAGE as u64 + 17;
    for i in 0..backlog {
        let to = (i % 4 == 1).then_some("eve");
        publish(&*feed, to, &i.to_string()).await;
    }
    let mut subscription = feed.subscribe(Some(0), None).await.unwrap();
    assert_eq!(subscription.buffered(), 0, "subscribing copied nothing");
    assert!(
        !subscription.is_live(),
        "it catches up before it joins the fan-out"
    );
    let racing = {
        let feed = feed.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                publish(&*feed, None, &format!("racing {i}")).await;
                tokio::task::yield_now().await;
            }
            publish(&*feed, None, END).await
        })
    };
    let mut ids = Vec::new();
    let mut most_buffered = 0;
    loop {
        let comment = within("a comment", subscription.next()).await.unwrap();
        most_buffered = most_buffered.max(subscription.buffered());
        ids.push(comment.comment.id);
        if comment.comment.text == END {
            break;
        }
    }
    within("the publisher", racing).await.unwrap();
    assert!(
        most_buffered < CATCHUP_PAGE,
        "at most a page is held, not the history: {most_buffered}"
    );
    assert!(subscription.is_live());
    assert_eq!(
        ids,
        expected(&*feed, base, None).await,
        "every broadcast, in order, once"
    );
    assert!(ids.len() as u64 > backlog / 2);
}

/// One `#[tokio::test]` per check, on the backend `$factory` builds: a backend's test
/// module runs the whole suite with `conformance_tests!(factory);`.
macro_rules! conformance_tests {
    ($factory:expr) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn id_order() {
                $crate::feed::conformance::id_order($factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn per_user_filtering() {
                $crate::feed::conformance::per_user_filtering($factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn resume_from_cursor() {
                $crate::feed::conformance::resume_from_cursor($factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn eviction_names_the_oldest_id() {
                $crate::feed::conformance::eviction_names_the_oldest_id($factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn cursor_ahead_is_refused() {
                $crate::feed::conformance::cursor_ahead_is_refused($factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_publishers_and_subscribers() {
                $crate::feed::conformance::concurrent_publishers_and_subscribers($factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn slow_subscriber_is_dropped_and_resumes() {
                $crate::feed::conformance::slow_subscriber_is_dropped_and_resumes($factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn visibility_rule() {
                $crate::feed::conformance::visibility_rule($factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn earlier_incarnation_cursor_is_refused() {
                $crate::feed::conformance::earlier_incarnation_cursor_is_refused($factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn resume_pages_through_the_history() {
                $crate::feed::conformance::resume_pages_through_the_history($factory).await;
            }
        }
    };
}
pub(crate) use conformance_tests;
