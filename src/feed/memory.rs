//! The in-memory feed: a bounded history plus a registry of subscribers, each with its own
//! bounded queue, so a comment to one user wakes only that user's subscribers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc;

use super::{Comment, Feed, FeedError, NewComment, Page, StoredComment, Subscription, now_micros};

/// The default in-memory feed.
pub struct MemoryFeed {
    inner: Arc<Mutex<Inner>>,
    /// Capacity of each subscriber's queue; a subscriber that falls further behind is dropped.
    queue: usize,
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
}

struct Subscriber {
    user: Option<String>,
    sender: mpsc::Sender<Arc<StoredComment>>,
    lagged: Arc<AtomicBool>,
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
            })),
            queue: queue.max(1),
        }
    }
}

impl Inner {
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
                subscriber.lagged.store(true, Ordering::Release);
                self.unregister(number);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.unregister(number),
        }
    }
}

impl Feed for MemoryFeed {
    fn publish(&self, new: NewComment) -> Arc<StoredComment> {
        let mut inner = lock(&self.inner);
        // The id, the history slot and the fan-out are decided under one lock, so every
        // subscriber sees ids in order and a subscription made concurrently misses nothing.
        let id = inner.last_id + 1;
        let comment = Comment {
            id,
            from: new.from,
            to: new.to,
            text: new.text,
            published_at_us: now_micros(),
        };
        let json: Arc<str> = serde_json::to_string(&comment)
            .expect("a comment of strings and integers always serialises")
            .into();
        let stored = Arc::new(StoredComment { comment, json });
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
        stored
    }

    fn read_after(
        &self,
        cursor: Option<u64>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Page, FeedError> {
        let inner = lock(&self.inner);
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

    fn subscribe(
        &self,
        cursor: Option<u64>,
        user: Option<String>,
    ) -> Result<Subscription, FeedError> {
        let mut inner = lock(&self.inner);
        let cursor = cursor.unwrap_or(inner.last_id);
        let start = inner.index_after(cursor)?;
        let backlog: VecDeque<_> = inner
            .history
            .range(start..)
            .filter(|stored| stored.is_for(user.as_deref()))
            .cloned()
            .collect();
        let (sender, receiver) = mpsc::channel(self.queue);
        let lagged = Arc::new(AtomicBool::new(false));
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
                lagged: lagged.clone(),
            },
        );
        let registration = Registration {
            inner: Arc::downgrade(&self.inner),
            number,
        };
        Ok(Subscription::new(
            backlog,
            receiver,
            lagged,
            self.queue,
            cursor,
            Box::new(registration),
        ))
    }

    fn last_id(&self) -> u64 {
        lock(&self.inner).last_id
    }

    fn published(&self) -> u64 {
        lock(&self.inner).last_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(from: &str, to: Option<&str>, text: &str) -> NewComment {
        NewComment {
            from: from.into(),
            to: to.map(Into::into),
            text: text.into(),
        }
    }

    #[test]
    fn read_after_filters_by_user_and_advances_past_others() {
        let feed = MemoryFeed::new(10, 4);
        feed.publish(new("a", None, "all"));
        feed.publish(new("a", Some("bob"), "to bob"));
        feed.publish(new("a", Some("eve"), "to eve"));
        let page = feed.read_after(Some(0), Some("bob"), 100).unwrap();
        let texts: Vec<_> = page
            .comments
            .iter()
            .map(|c| c.comment.text.as_str())
            .collect();
        assert_eq!(texts, ["all", "to bob"]);
        assert_eq!(page.next, 3);
        let anonymous = feed.read_after(Some(0), None, 100).unwrap();
        assert_eq!(anonymous.comments.len(), 1);
    }

    #[test]
    fn evicted_cursor_is_an_explicit_error() {
        let feed = MemoryFeed::new(2, 4);
        for i in 0..5 {
            feed.publish(new("a", None, &i.to_string()));
        }
        assert_eq!(
            feed.read_after(Some(1), None, 10).unwrap_err(),
            FeedError::CursorExpired {
                cursor: 1,
                oldest: 4
            }
        );
        assert_eq!(
            feed.read_after(Some(3), None, 10).unwrap().comments.len(),
            2
        );
        assert!(matches!(
            feed.read_after(Some(9), None, 10),
            Err(FeedError::CursorAhead { .. })
        ));
    }

    #[tokio::test]
    async fn subscription_yields_backlog_then_live_once_each() {
        let feed = MemoryFeed::new(10, 4);
        feed.publish(new("a", None, "1"));
        let mut sub = feed.subscribe(Some(0), Some("bob".into())).unwrap();
        feed.publish(new("a", Some("eve"), "not for bob"));
        feed.publish(new("a", Some("bob"), "3"));
        assert_eq!(sub.next().await.unwrap().comment.id, 1);
        assert_eq!(sub.next().await.unwrap().comment.id, 3);
        assert!(sub.try_next().is_none());
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_subscriber_with_its_resume_cursor() {
        let feed = MemoryFeed::new(100, 2);
        let mut sub = feed.subscribe(None, None).unwrap();
        for i in 0..5 {
            feed.publish(new("a", None, &i.to_string()));
        }
        assert_eq!(sub.next().await.unwrap().comment.id, 1);
        assert_eq!(sub.next().await.unwrap().comment.id, 2);
        assert_eq!(
            sub.next().await.unwrap_err(),
            FeedError::Lagged {
                queue: 2,
                resume_after: 2
            }
        );
    }
}
