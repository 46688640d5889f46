//! The comment feed every technique serves: the comment type, the `Feed` interface the
//! transports use (publish, read after a cursor, subscribe from a cursor) and its errors.
//!
//! Transports only see this interface, so a distributed backend can replace the in-memory
//! one (`memory.rs`) without touching them.

mod memory;

use std::sync::Arc;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

pub use crate::model::comment::{Comment, NewComment, now_micros};
pub use memory::MemoryFeed;

/// A comment as stored by the feed, with its wire JSON rendered once at publish time so every
/// technique sends the very same bytes (byte comparisons between techniques stay fair).
#[derive(Debug)]
pub struct StoredComment {
    /// The decoded comment, for filtering by recipient.
    pub comment: Comment,
    /// `serde_json` rendering of `comment`, shared by all techniques.
    pub json: Arc<str>,
}

impl StoredComment {
    /// Whether a subscriber named `user` (or anonymous, `None`) should receive this comment.
    pub fn is_for(&self, user: Option<&str>) -> bool {
        match (&self.comment.to, user) {
            (None, _) => true,
            (Some(to), Some(user)) => to == user,
            (Some(_), None) => false,
        }
    }
}

/// A page of comments after a cursor, as short and long polling return it.
#[derive(Debug, Default)]
pub struct Page {
    /// The comments for the reader, in id order.
    pub comments: Vec<Arc<StoredComment>>,
    /// The cursor to ask from next time: past every comment this read looked at, including
    /// comments addressed to other users, so a per-user poller does not rescan them.
    pub next: u64,
}

/// Why the feed could not serve a read or a subscription. Loss is never silent: each of
/// these reaches the client as an explicit error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The comments right after the cursor have left the bounded history.
    // The lost ids are spelled out as a closed range: the message once read "comments
    // 2+1..4", which left the reader to work out that 3 was the one lost.
    #[error(
        "cursor {cursor} is older than the history: comments {first_lost} to {last_lost} were \
         evicted (oldest kept id is {oldest}); they are lost to this subscriber",
        first_lost = .cursor + 1,
        last_lost = .oldest - 1
    )]
    CursorExpired { cursor: u64, oldest: u64 },
    /// The cursor names a comment the feed never published (a restarted server, a typo).
    #[error("cursor {cursor} is ahead of the feed, whose last id is {last}")]
    CursorAhead { cursor: u64, last: u64 },
    /// The subscriber fell further behind than its queue allows and was dropped; it can
    /// resume from its cursor.
    #[error(
        "subscriber fell more than {queue} comments behind and was dropped; resume after id {resume_after}"
    )]
    Lagged { queue: usize, resume_after: u64 },
    /// The feed is shutting down.
    #[error("the feed is closed")]
    Closed,
}

/// The feed interface the transports program against.
pub trait Feed: Send + Sync + 'static {
    /// Stores a comment and hands it to every live subscriber it is addressed to.
    fn publish(&self, new: NewComment) -> Arc<StoredComment>;
    /// Up to `limit` comments after `cursor` for `user`; `cursor = None` means "from now on"
    /// (an empty page whose `next` is the newest id).
    fn read_after(
        &self,
        cursor: Option<u64>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Page, FeedError>;
    /// A live subscription that yields, in id order and each once, every comment after
    /// `cursor` (or from now on) addressed to `user` or to everyone.
    fn subscribe(
        &self,
        cursor: Option<u64>,
        user: Option<String>,
    ) -> Result<Subscription, FeedError>;
    /// The newest id, 0 for an empty feed.
    fn last_id(&self) -> u64;
    /// How many comments were published since start.
    fn published(&self) -> u64;
}

/// A live subscription: first the backlog that existed when it was made, then comments as
/// they are published, through a bounded queue. Any backend builds one from those parts.
pub struct Subscription {
    /// Comments after the cursor that were already stored when the subscription began.
    backlog: VecDeque<Arc<StoredComment>>,
    /// Comments published since; bounded, so a slow reader cannot grow memory.
    live: mpsc::Receiver<Arc<StoredComment>>,
    /// Set by the backend when it dropped this subscriber for a full queue.
    lagged: Arc<AtomicBool>,
    /// The queue's capacity, for the `Lagged` error.
    queue: usize,
    /// The newest id handed out, so nothing is yielded twice or out of order.
    last_yielded: u64,
    /// Unregisters the subscriber from its backend when the subscription is dropped.
    _registration: Box<dyn Send + Sync>,
}

impl Subscription {
    /// Assembles a subscription; `cursor` is the id the subscriber has already seen.
    pub fn new(
        backlog: VecDeque<Arc<StoredComment>>,
        live: mpsc::Receiver<Arc<StoredComment>>,
        lagged: Arc<AtomicBool>,
        queue: usize,
        cursor: u64,
        registration: Box<dyn Send + Sync>,
    ) -> Self {
        Self {
            backlog,
            live,
            lagged,
            queue,
            last_yielded: cursor,
            _registration: registration,
        }
    }

    /// The id of the last comment this subscription yielded (or its starting cursor).
    pub fn cursor(&self) -> u64 {
        self.last_yielded
    }

    /// The next comment, waiting for one to be published if need be.
    pub async fn next(&mut self) -> Result<Arc<StoredComment>, FeedError> {
        loop {
            let comment = match self.backlog.pop_front() {
                Some(comment) => comment,
                None => match self.live.recv().await {
                    Some(comment) => comment,
                    None => return Err(self.end_reason()),
                },
            };
            if let Some(comment) = self.accept(comment) {
                return Ok(comment);
            }
        }
    }

    /// The next comment if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Arc<StoredComment>, FeedError>> {
        loop {
            let comment = match self.backlog.pop_front() {
                Some(comment) => comment,
                None => match self.live.try_recv() {
                    Ok(comment) => comment,
                    Err(mpsc::error::TryRecvError::Empty) => return None,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        return Some(Err(self.end_reason()));
                    }
                },
            };
            if let Some(comment) = self.accept(comment) {
                return Some(Ok(comment));
            }
        }
    }

    /// Drops a comment already yielded (the backlog and the live queue can overlap by a few).
    fn accept(&mut self, comment: Arc<StoredComment>) -> Option<Arc<StoredComment>> {
        if comment.comment.id <= self.last_yielded {
            return None;
        }
        self.last_yielded = comment.comment.id;
        Some(comment)
    }

    fn end_reason(&self) -> FeedError {
        if self.lagged.load(Ordering::Acquire) {
            FeedError::Lagged {
                queue: self.queue,
                resume_after: self.last_yielded,
            }
        } else {
            FeedError::Closed
        }
    }
}
