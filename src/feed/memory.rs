//! The in-memory feed: a bounded history indexed by recipient, plus the live fan-out
//! (`fanout.rs`: a registry of subscribers, each with its own bounded queue, so a comment to
//! one user wakes only that user's subscribers), both under one mutex so a publish stores and
//! fans out atomically; a read for one user examines only its comments and broadcasts.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::fanout::{Fanout, Unregister};
use super::{
    CATCHUP_PAGE, Catchup, Draft, EndCause, Feed, FeedError, FeedInfo, Live, Page, Pager,
    StoredComment, Subscription,
};
use crate::model::comment::now_micros;

/// The default in-memory feed.
pub struct MemoryFeed {
    inner: Arc<Mutex<Inner>>,
    /// Capacity of each subscriber's queue; a subscriber that falls further behind is dropped.
    queue: usize,
    /// The newest id fanned out to every subscriber: the horizon every subscription reads.
    /// Stored under the lock after the fan-out, read without it.
    horizon: Arc<AtomicU64>,
    /// Comments accepted since the feed started (ids do not count them: they start at the
    /// incarnation's base).
    published: AtomicU64,
    /// History entries reads have looked at, over the feed's life: what a per-user read or a
    /// catch-up step costs, observable without timing it.
    examined: Arc<AtomicU64>,
    /// This incarnation: ids start at `base + 1`.
    base: u64,
}

struct Inner {
    /// The newest comments, ids contiguous, oldest first.
    history: VecDeque<Arc<StoredComment>>,
    /// How many comments `history` keeps.
    history_capacity: usize,
    /// The id before this incarnation's first: 0 and cursors below it are not of this feed.
    base: u64,
    /// The newest id handed out (`base` before the first comment).
    last_id: u64,
    /// Ids of the broadcasts in `history`, in order.
    broadcasts: VecDeque<u64>,
    /// Ids of the comments in `history` addressed to each user, in order.
    by_recipient: HashMap<String, VecDeque<u64>>,
    /// The live subscribers: under this lock, so a publish fans out before the next one
    /// takes an id, and a catch-up registers atomically with its last read.
    fanout: Fanout,
    /// A rehearsed outage (`MemoryFeed::set_outage`): while set, every call fails with it.
    outage: Option<String>,
}

/// A dropped subscription leaves the fan-out under the feed's lock.
impl Unregister for Mutex<Inner> {
    fn unregister(&self, number: u64) {
        lock(self).fanout.unregister(number);
    }
}

/// The feed's lock is never held across an await or a panic-prone call, so a poisoned lock
/// only means a panic elsewhere; the data is still consistent and worth serving.
fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A base for a new incarnation: the microseconds since the Unix epoch, and above every base
/// this process handed out before, so two feeds started in the same microsecond (tests) are
/// still distinct incarnations.
fn incarnation_base() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_micros();
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or_else(|last| last);
    now.max(previous + 1)
}

impl MemoryFeed {
    /// A feed keeping `history_capacity` comments, with `queue` slots per subscriber; a new
    /// incarnation whose ids start after the microseconds since the Unix epoch.
    pub fn new(history_capacity: usize, queue: usize) -> Self {
        let base = incarnation_base();
        Self {
            inner: Arc::new(Mutex::new(Inner {
                history: VecDeque::with_capacity(history_capacity.min(1 << 16)),
                history_capacity: history_capacity.max(1),
                base,
                last_id: base,
                broadcasts: VecDeque::new(),
                by_recipient: HashMap::new(),
                fanout: Fanout::new(queue),
                outage: None,
            })),
            queue: queue.max(1),
            horizon: Arc::new(AtomicU64::new(base)),
            published: AtomicU64::new(0),
            examined: Arc::new(AtomicU64::new(0)),
            base,
        }
    }

    /// Rehearses a backend outage, so the server's handling of one (503s, resumable drops)
    /// can be tested without a broker: `Some(reason)` ends every live subscription with
    /// `Unavailable` and fails every call until `None` ends the outage. The history is kept,
    /// as a broker's would be, so subscribers resume without loss.
    pub fn set_outage(&self, reason: Option<String>) {
        let mut inner = lock(&self.inner);
        if let Some(reason) = &reason {
            inner.fanout.end_all(&EndCause::Unavailable {
                reason: reason.clone(),
            });
        }
        inner.outage = reason;
    }

    /// History entries every read and catch-up step so far has looked at: a read for a user
    /// examines that user's comments and the broadcasts, never other users' comments.
    pub fn comments_examined(&self) -> u64 {
        self.examined.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn available(&self) -> Result<(), FeedError> {
        match &self.outage {
            None => Ok(()),
            Some(reason) => Err(FeedError::Unavailable {
                reason: reason.clone(),
            }),
        }
    }

    fn oldest_id(&self) -> u64 {
        self.history
            .front()
            .map_or(self.last_id + 1, |c| c.comment.id)
    }

    /// The cursor as an id of this feed (0 means "before the oldest kept"), checked.
    fn check_cursor(&self, cursor: u64) -> Result<u64, FeedError> {
        let oldest = self.oldest_id();
        let effective = if cursor == 0 { oldest - 1 } else { cursor };
        if effective > self.last_id {
            return Err(FeedError::CursorAhead {
                cursor,
                last: self.last_id,
            });
        }
        if effective < self.base {
            return Err(FeedError::CursorFromEarlierFeed {
                cursor,
                first: self.base + 1,
                oldest,
            });
        }
        if effective + 1 < oldest {
            return Err(FeedError::CursorExpired {
                cursor: effective,
                oldest,
            });
        }
        Ok(effective)
    }

    /// The comment with id `id`, which the history holds.
    fn get(&self, id: u64) -> &Arc<StoredComment> {
        &self.history[(id - self.oldest_id()) as usize]
    }

    /// Up to `limit` comments for `user` after the checked cursor `after`, and the cursor
    /// past everything looked at; with the number of history entries examined. Merges the
    /// broadcasts' and the user's index, so other users' comments are never looked at.
    fn page(
        &self,
        after: u64,
        user: Option<&str>,
        limit: usize,
    ) -> (Vec<Arc<StoredComment>>, u64, u64) {
        let empty = VecDeque::new();
        let mine = user
            .and_then(|user| self.by_recipient.get(user))
            .unwrap_or(&empty);
        let (mut a, mut b) = (
            self.broadcasts.partition_point(|id| *id <= after),
            mine.partition_point(|id| *id <= after),
        );
        let mut comments = Vec::new();
        while comments.len() < limit {
            let id = match (self.broadcasts.get(a), mine.get(b)) {
                (Some(x), Some(y)) if x < y => {
                    a += 1;
                    *x
                }
                (_, Some(y)) => {
                    b += 1;
                    *y
                }
                (Some(x), None) => {
                    a += 1;
                    *x
                }
                (None, None) => break,
            };
            comments.push(self.get(id).clone());
        }
        let examined = comments.len() as u64;
        let next = if comments.len() == limit {
            comments.last().map_or(after, |c| c.comment.id)
        } else {
            self.last_id
        };
        (comments, next, examined)
    }

    /// Registers a live subscriber to `user`'s comments; `me` is this `Inner`'s mutex, the
    /// caller holding its lock.
    fn register(&mut self, me: &Arc<Mutex<Inner>>, user: Option<String>) -> Live {
        let me: Weak<Mutex<Inner>> = Arc::downgrade(me);
        self.fanout.register(user, me)
    }

    /// Stores `stored` at the end of the history and its indexes, evicting the oldest.
    fn store(&mut self, stored: Arc<StoredComment>) {
        if self.history.len() == self.history_capacity {
            if let Some(evicted) = self.history.pop_front() {
                match &evicted.comment.to {
                    None => {
                        self.broadcasts.pop_front();
                    }
                    Some(to) => {
                        if let Some(ids) = self.by_recipient.get_mut(to) {
                            ids.pop_front();
                            if ids.is_empty() {
                                self.by_recipient.remove(to);
                            }
                        }
                    }
                }
            }
        }
        let id = stored.comment.id;
        match &stored.comment.to {
            None => self.broadcasts.push_back(id),
            Some(to) => self
                .by_recipient
                .entry(to.clone())
                .or_default()
                .push_back(id),
        }
        self.history.push_back(stored);
    }
}

/// Pages one subscription through the history, a short lock per step.
struct MemoryPager {
    inner: Weak<Mutex<Inner>>,
    user: Option<String>,
    examined: Arc<AtomicU64>,
    /// Set until the first step when the subscriber asked from cursor 0 ("from the oldest
    /// kept"): that step reads from whatever is oldest then, so an eviction between
    /// subscribing and the first step is not a loss (the benchmark's long pollers from 0 got
    /// 410s from exactly that race).
    from_oldest: bool,
}

#[async_trait::async_trait]
impl Pager for MemoryPager {
    async fn next_page(&mut self, after: u64) -> Result<Catchup, FeedError> {
        let inner = self.inner.upgrade().ok_or(FeedError::Closed)?;
        let mut guard = lock(&inner);
        guard.available()?;
        let asked = if std::mem::take(&mut self.from_oldest) {
            0
        } else {
            after
        };
        // The cursor may have been evicted while the subscriber read the previous page.
        let after = guard.check_cursor(asked)?;
        let (comments, covered, examined) = guard.page(after, self.user.as_deref(), CATCHUP_PAGE);
        self.examined.fetch_add(examined, Ordering::Relaxed);
        // Caught up: join the fan-out under the same lock as the read, so nothing published
        // between the two is missed.
        let live = (covered == guard.last_id).then(|| guard.register(&inner, self.user.clone()));
        Ok(Catchup {
            comments,
            covered,
            live,
        })
    }
}

#[async_trait::async_trait]
impl Feed for MemoryFeed {
    async fn append(&self, draft: Draft) -> Result<Arc<StoredComment>, FeedError> {
        let mut inner = lock(&self.inner);
        inner.available()?;
        // The id, the history slot and the fan-out are decided under one lock, so every
        // subscriber sees ids in order and a subscription made concurrently misses nothing.
        let id = inner.last_id + 1;
        let stored = Arc::new(draft.with_id(id));
        inner.last_id = id;
        inner.store(stored.clone());

        inner.fanout.fan_out(&stored);
        // Only now is the comment in every recipient's queue: the horizon may pass it.
        self.horizon.store(id, Ordering::Release);
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(stored)
    }

    async fn read_after(
        &self,
        cursor: Option<u64>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Page, FeedError> {
        let inner = lock(&self.inner);
        inner.available()?;
        let Some(cursor) = cursor else {
            return Ok(Page {
                comments: Vec::new(),
                next: inner.last_id,
            });
        };
        let after = inner.check_cursor(cursor)?;
        let (comments, next, examined) = inner.page(after, user, limit);
        self.examined.fetch_add(examined, Ordering::Relaxed);
        Ok(Page { comments, next })
    }

    async fn subscribe(
        &self,
        cursor: Option<u64>,
        user: Option<String>,
    ) -> Result<Subscription, FeedError> {
        let mut inner = lock(&self.inner);
        inner.available()?;
        let from_oldest = cursor == Some(0);
        let cursor = match cursor {
            None => inner.last_id,
            Some(cursor) => inner.check_cursor(cursor)?,
        };
        if cursor == inner.last_id {
            let live = inner.register(&self.inner, user);
            return Ok(Subscription::live(
                live,
                self.queue,
                cursor,
                self.horizon.clone(),
            ));
        }
        // An older cursor pages through the history on demand: nothing is copied here, and
        // the lock is held only for one page at a time.
        let pager = MemoryPager {
            inner: Arc::downgrade(&self.inner),
            user,
            examined: self.examined.clone(),
            from_oldest,
        };
        Ok(Subscription::catching_up(
            Box::new(pager),
            self.queue,
            cursor,
            self.horizon.clone(),
        ))
    }

    async fn last_id(&self) -> Result<u64, FeedError> {
        let inner = lock(&self.inner);
        inner.available()?;
        Ok(inner.last_id)
    }

    fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    fn info(&self) -> FeedInfo {
        FeedInfo {
            incarnation: self.base,
            started_at_us: self.base,
            first_id: self.base + 1,
            last_id: self.horizon.load(Ordering::Acquire),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{FeedOptions, NewComment};

    /// A fresh memory feed for each conformance check.
    async fn memory_feed(options: FeedOptions) -> Arc<dyn Feed> {
        Arc::new(MemoryFeed::new(options.history, options.queue))
    }

    crate::feed::conformance::conformance_tests!(memory_feed);

    fn new(text: &str) -> NewComment {
        NewComment {
            from: "a".into(),
            to: None,
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn an_outage_fails_every_call_and_ends_subscriptions_resumably() {
        let feed = MemoryFeed::new(10, 4);
        let first = feed.publish(new("1")).await.unwrap().comment.id;
        let mut sub = feed.subscribe(Some(0), None).await.unwrap();
        assert_eq!(sub.next().await.unwrap().comment.id, first);
        feed.set_outage(Some("broker down".into()));
        let down = FeedError::Unavailable {
            reason: "broker down".into(),
        };
        assert_eq!(sub.next().await.unwrap_err(), down);
        assert_eq!(feed.publish(new("lost?")).await.unwrap_err(), down);
        assert_eq!(feed.read_after(Some(0), None, 10).await.unwrap_err(), down);
        assert_eq!(feed.last_id().await.unwrap_err(), down);
        feed.set_outage(None);
        // Nothing was stored during the outage, and the subscriber resumes from its cursor.
        let mut resumed = feed.subscribe(Some(sub.cursor()), None).await.unwrap();
        feed.publish(new("2")).await.unwrap();
        assert_eq!(resumed.next().await.unwrap().comment.id, first + 1);
    }

    /// A read for one user looks at that user's comments and the broadcasts only: after
    /// 10,000 comments to eve, a read for nobody examines none of them.
    #[tokio::test]
    async fn per_user_reads_examine_only_their_comments() {
        let feed = MemoryFeed::new(100_000, 16);
        for i in 0..10_000 {
            let to = if i == 5_000 { None } else { Some("eve".into()) };
            let comment = NewComment {
                from: "a".into(),
                to,
                text: i.to_string(),
            };
            feed.publish(comment).await.unwrap();
        }
        let before = feed.comments_examined();
        let page = feed
            .read_after(Some(0), Some("nobody"), 1000)
            .await
            .unwrap();
        assert_eq!(page.comments.len(), 1, "the one broadcast");
        assert_eq!(
            page.next,
            feed.last_id().await.unwrap(),
            "past eve's comments"
        );
        assert_eq!(
            feed.comments_examined() - before,
            1,
            "eve's were not looked at"
        );
        let before = feed.comments_examined();
        let mut sub = feed
            .subscribe(Some(0), Some("nobody".into()))
            .await
            .unwrap();
        assert_eq!(sub.next().await.unwrap().comment.text, "5000");
        assert_eq!(feed.comments_examined() - before, 1, "nor by a catch-up");
        // Eve's own read examines a page, not the history.
        let before = feed.comments_examined();
        let page = feed.read_after(Some(0), Some("eve"), 100).await.unwrap();
        assert_eq!(page.comments.len(), 100);
        assert_eq!(feed.comments_examined() - before, 100);
    }
}
