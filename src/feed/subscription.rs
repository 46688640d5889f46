//! The live subscription every backend hands out: first the backlog that existed when it
//! was made, then comments as the backend fans them out, through a bounded queue. A backend
//! builds one from those parts and keeps the contract written on `Subscription::new`; the
//! ordering, the de-duplication and the horizon are done here, once for every backend.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use super::{FeedError, StoredComment};

/// Why a backend ended a subscription, set before it drops the queue's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// The queue was full: the subscriber fell too far behind.
    Lagged,
    /// The backend failed (a broker down); the subscriber may resume once it is back.
    Unavailable { reason: String },
}

/// Tells whether the backend has ended a subscription early, and why.
#[derive(Clone)]
pub struct EndWatch(Arc<OnceLock<EndCause>>);

impl EndWatch {
    /// The cause, once the backend has set it.
    pub fn cause(&self) -> Option<&EndCause> {
        self.0.get()
    }
}

/// A live subscription. See `Feed`'s visibility rule for what it promises.
pub struct Subscription {
    /// Comments after the cursor that were already stored when the subscription began.
    backlog: VecDeque<Arc<StoredComment>>,
    /// Comments published since; bounded, so a slow reader cannot grow memory.
    live: mpsc::Receiver<Arc<StoredComment>>,
    /// Set by the backend when it ends this subscription; unset at the end means closed.
    ended: Arc<OnceLock<EndCause>>,
    /// The queue's capacity, for the `Lagged` error.
    queue: usize,
    /// The newest id handed out, so nothing is yielded twice or out of order.
    last_yielded: u64,
    /// The backend's fan-out position, shared by all its subscriptions (one atomic, not one
    /// per subscriber): every comment with an id up to it has been queued to its recipients.
    horizon: Arc<AtomicU64>,
    /// Unregisters the subscriber from its backend when the subscription is dropped.
    _registration: Box<dyn Send + Sync>,
}

impl Subscription {
    /// Assembles a subscription; `cursor` is the id the subscriber has already seen.
    ///
    /// The backend's side of the contract:
    /// - `backlog` holds, in id order, the comments for this subscriber after `cursor` up to
    ///   some id `B`, and `live` receives, in id order, every one of them published after
    ///   some id `P <= B` (the two may overlap; overlaps are dropped here);
    /// - `horizon` is stored (with `Release`) only once every comment up to it has been sent
    ///   into the queues of its recipients, and is `>= P` when the subscription is made;
    /// - before dropping the sender to end a subscription early, set `ended`.
    pub fn new(
        backlog: VecDeque<Arc<StoredComment>>,
        live: mpsc::Receiver<Arc<StoredComment>>,
        ended: Arc<OnceLock<EndCause>>,
        queue: usize,
        cursor: u64,
        horizon: Arc<AtomicU64>,
        registration: Box<dyn Send + Sync>,
    ) -> Self {
        Self {
            backlog,
            live,
            ended,
            queue,
            last_yielded: cursor,
            horizon,
            _registration: registration,
        }
    }

    /// The id of the last comment this subscription yielded (or its starting cursor): the
    /// cursor to resume from after any error.
    pub fn cursor(&self) -> u64 {
        self.last_yielded
    }

    /// An id up to which every comment for this subscriber has reached this subscription
    /// (yielded, or waiting in it). Read it *before* draining with `try_next`: once the
    /// drain comes up empty, nothing for this subscriber up to the value read is left.
    pub fn horizon(&self) -> u64 {
        self.horizon.load(Ordering::Acquire).max(self.last_yielded)
    }

    /// Whether the backend has already given up on this subscription (its queue overflowed,
    /// or the backend failed), as the error `next` will return once the queue is drained.
    /// A subscriber whose socket is stuck never drains it; this lets it notice anyway.
    pub fn ended_early(&self) -> Option<FeedError> {
        self.ended.get().map(|_| self.end_reason())
    }

    /// A handle that answers `ended_early` without borrowing the subscription, for a watcher
    /// running beside the stream that owns it.
    pub fn end_watch(&self) -> EndWatch {
        EndWatch(self.ended.clone())
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

    /// Takes the comments ready now into `page` (until it holds `limit`), without waiting,
    /// and returns the cursor a poller resumes from: the horizon when everything ready was
    /// taken (so a per-user poller moves past other users' comments), else the last taken.
    pub fn drain_ready(&mut self, page: &mut Vec<Arc<StoredComment>>, limit: usize) -> u64 {
        // Read before draining: see `horizon`.
        let horizon = self.horizon();
        while page.len() < limit {
            match self.try_next() {
                Some(Ok(comment)) => page.push(comment),
                None => return horizon.max(self.last_yielded),
                // The error ends the subscription; the poller resumes from what it has.
                Some(Err(_)) => break,
            }
        }
        self.last_yielded
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
        match self.ended.get() {
            Some(EndCause::Lagged) => FeedError::Lagged {
                queue: self.queue,
                resume_after: self.last_yielded,
            },
            Some(EndCause::Unavailable { reason }) => FeedError::Unavailable {
                reason: reason.clone(),
            },
            None => FeedError::Closed,
        }
    }
}
