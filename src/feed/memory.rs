//! The in-memory feed: a bounded history plus a registry of subscribers, each with its own
//! bounded queue, so a comment to one user wakes only that user's subscribers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::mpsc;

use super::{Draft, EndCause, Feed, FeedError, Page, StoredComment, Subscription};

/// The default in-memory feed.
pub struct MemoryFeed {
    inner: Arc<Mutex<Inner>>,
    /// Capacity of each subscriber's queue; a subscriber that falls further behind is dropped.
    queue: usize,
    /// The newest id fanned out to every subscriber: the horizon every subscription reads.
    /// Stored under the lock after the fan-out, read without it.
    horizon: Arc<AtomicU64>,
}

struct Inner {
    /// The newest comments, ids contiguous, oldest first.
    history: VecDeque<Arc<StoredComment>>,
    /// How many comments `history` keeps.
    history_capacity: usize,
    /// The newest id handed out (0 before the first comment).
    last_id: u64,
    /// Every live subscriber, by registration number.
    subscribers: HashMap<u64, Subscriber>,
    /// Registration numbers of the subscribers that named a user, by user.
    by_user: HashMap<String, Vec<u64>>,
    /// The next registration number.
    next_registration: u64,
    /// A rehearsed outage (`MemoryFeed::set_outage`): while set, every call fails with it.
    outage: Option<String>,
}

struct Subscriber {
    user: Option<String>,
    sender: mpsc::Sender<Arc<StoredComment>>,
    ended: Arc<OnceLock<EndCause>>,
}

/// Removes a subscriber from the registry when its subscription is dropped.
struct Registration {
    inner: Weak<Mutex<Inner>>,
    number: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            lock(&inner).unregister(self.number);
        }
    }
}

/// The feed's lock is never held across an await or a panic-prone call, so a poisoned lock
/// only means a panic elsewhere; the data is still consistent and worth serving.
fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryFeed {
    /// A feed keeping `history_capacity` comments, with `queue` slots per subscriber.
    pub fn new(history_capacity: usize, queue: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                history: VecDeque::with_capacity(history_capacity.min(1 << 16)),
                history_capacity: history_capacity.max(1),
                last_id: 0,
                subscribers: HashMap::new(),
                by_user: HashMap::new(),
                next_registration: 0,
                outage: None,
            })),
            queue: queue.max(1),
            horizon: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Rehearses a backend outage, so the server's handling of one (503s, resumable drops)
    /// can be tested without a broker: `Some(reason)` ends every live subscription with
    /// `Unavailable` and fails every call until `None` ends the outage. The history is kept,
    /// as a broker's would be, so subscribers resume without loss.
    pub fn set_outage(&self, reason: Option<String>) {
        let mut inner = lock(&self.inner);
        if let Some(reason) = &reason {
            for (_, subscriber) in inner.subscribers.drain() {
                let _ = subscriber.ended.set(EndCause::Unavailable {
                    reason: reason.clone(),
                });
            }
            inner.by_user.clear();
        }
        inner.outage = reason;
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

    /// Index into `history` of the first comment after `cursor`, checking the cursor.
    fn index_after(&self, cursor: u64) -> Result<usize, FeedError> {
        if cursor > self.last_id {
            return Err(FeedError::CursorAhead {
                cursor,
                last: self.last_id,
            });
        }
        let oldest = self.oldest_id();
        if cursor + 1 < oldest {
            return Err(FeedError::CursorExpired { cursor, oldest });
        }
        Ok((cursor + 1 - oldest) as usize)
    }

    fn unregister(&mut self, number: u64) {
        let Some(subscriber) = self.subscribers.remove(&number) else {
            return;
        };
        if let Some(user) = subscriber.user {
            if let Some(numbers) = self.by_user.get_mut(&user) {
                numbers.retain(|n| *n != number);
                if numbers.is_empty() {
                    self.by_user.remove(&user);
                }
            }
        }
    }

    /// Queues `comment` for subscriber `number`; a full queue drops the subscriber.
    fn deliver(&mut self, number: u64, comment: &Arc<StoredComment>) {
        let Some(subscriber) = self.subscribers.get(&number) else {
            return;
        };
        match subscriber.sender.try_send(comment.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = subscriber.ended.set(EndCause::Lagged);
                self.unregister(number);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.unregister(number),
        }
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
        if inner.history.len() == inner.history_capacity {
            inner.history.pop_front();
        }
        inner.history.push_back(stored.clone());

        let recipients: Vec<u64> = match &stored.comment.to {
            None => inner.subscribers.keys().copied().collect(),
            Some(to) => inner.by_user.get(to).cloned().unwrap_or_default(),
        };
        for number in recipients {
            inner.deliver(number, &stored);
        }
        // Only now is the comment in every recipient's queue: the horizon may pass it.
        self.horizon.store(id, Ordering::Release);
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
        let start = inner.index_after(cursor)?;
        let mut page = Page {
            comments: Vec::new(),
            next: cursor,
        };
        for stored in inner.history.range(start..) {
            if page.comments.len() == limit {
                break;
            }
            page.next = stored.comment.id;
            if stored.is_for(user) {
                page.comments.push(stored.clone());
            }
        }
        Ok(page)
    }

    async fn subscribe(
        &self,
        cursor: Option<u64>,
        user: Option<String>,
    ) -> Result<Subscription, FeedError> {
        let mut inner = lock(&self.inner);
        inner.available()?;
        let cursor = cursor.unwrap_or(inner.last_id);
        let start = inner.index_after(cursor)?;
        let backlog: VecDeque<_> = inner
            .history
            .range(start..)
            .filter(|stored| stored.is_for(user.as_deref()))
            .cloned()
            .collect();
        let (sender, receiver) = mpsc::channel(self.queue);
        let ended = Arc::new(OnceLock::new());
        let number = inner.next_registration;
        inner.next_registration += 1;
        if let Some(user) = &user {
            inner.by_user.entry(user.clone()).or_default().push(number);
        }
        inner.subscribers.insert(
            number,
            Subscriber {
                user,
                sender,
                ended: ended.clone(),
            },
        );
        let registration = Registration {
            inner: Arc::downgrade(&self.inner),
            number,
        };
        Ok(Subscription::new(
            backlog,
            receiver,
            ended,
            self.queue,
            cursor,
            self.horizon.clone(),
            Box::new(registration),
        ))
    }

    async fn last_id(&self) -> Result<u64, FeedError> {
        let inner = lock(&self.inner);
        inner.available()?;
        Ok(inner.last_id)
    }

    fn published(&self) -> u64 {
        self.horizon.load(Ordering::Acquire)
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
        feed.publish(new("1")).await.unwrap();
        let mut sub = feed.subscribe(Some(0), None).await.unwrap();
        assert_eq!(sub.next().await.unwrap().comment.id, 1);
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
        assert_eq!(resumed.next().await.unwrap().comment.id, 2);
    }
}
