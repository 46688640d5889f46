//! The subscription every backend hands out: first it catches up on the history after its
//! cursor, a bounded page at a time fetched on demand from the backend's [`Pager`], then it
//! receives comments as the backend fans them out, through a bounded queue. A backend
//! supplies those parts and keeps the contract written on [`Pager`] and [`Live`]; the
//! ordering, the de-duplication and the horizon are done here, once for every backend.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

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

/// A subscriber's place in the backend's live fan-out.
pub struct Live {
    /// Comments published since registration; bounded, so a slow reader cannot grow memory.
    pub receiver: mpsc::Receiver<Arc<StoredComment>>,
    /// Set by the backend before it drops the sender to end the subscription early.
    pub ended: Arc<OnceLock<EndCause>>,
    /// Unregisters the subscriber from its backend when the subscription is dropped.
    pub registration: Box<dyn Send + Sync>,
}

/// One step of catching up: a page of the history and, once the page reaches the newest id,
/// the live registration made together with it.
pub struct Catchup {
    /// The comments for the subscriber after the cursor asked, in id order; at most
    /// [`super::CATCHUP_PAGE`].
    pub comments: Vec<Arc<StoredComment>>,
    /// Every comment for the subscriber with an id up to this one is in `comments` (or was
    /// before the cursor asked): the next step asks after it.
    pub covered: u64,
    /// Set on the last step: the subscriber is registered, and its queue receives every
    /// comment for it with an id above some `P <= covered` (overlaps are dropped here).
    pub live: Option<Live>,
}

/// A backend's reader of its history for one catching-up subscription.
#[async_trait::async_trait]
pub trait Pager: Send + Sync {
    /// The next step after `after` (an id this pager's earlier step covered, or the
    /// subscription's starting cursor). Each step reads a bounded page; the step that reaches
    /// the newest id registers the subscriber in the live fan-out atomically with that read,
    /// so nothing published in between is missed. An error (an outage, the cursor evicted
    /// meanwhile) ends the subscription like any other.
    async fn next_page(&mut self, after: u64) -> Result<Catchup, FeedError>;
}

/// Tells whether the backend has ended a subscription early, and why, without borrowing the
/// subscription: for a watcher running beside the stream that owns it. It learns the cause
/// once the subscription has gone live (a catching-up subscription is not in the fan-out,
/// so nothing can end it early).
#[derive(Clone, Default)]
pub struct EndWatch(Arc<OnceLock<Arc<OnceLock<EndCause>>>>);

impl EndWatch {
    /// The cause, once the backend has set it.
    pub fn cause(&self) -> Option<&EndCause> {
        self.0.get().and_then(|ended| ended.get())
    }

    /// Called when the subscription joins the live fan-out.
    fn went_live(&self, live: &Live) {
        let _ = self.0.set(live.ended.clone());
    }
}

/// A page fetch in flight, owning the pager until it is done: kept in the subscription, so a
/// caller that stops waiting loses nothing.
type Fetch = Pin<Box<dyn Future<Output = (Box<dyn Pager>, Result<Catchup, FeedError>)> + Send>>;

/// A subscription. See `Feed`'s visibility rule for what it promises.
pub struct Subscription {
    /// Comments fetched while catching up and not yet yielded: at most one page.
    buffer: VecDeque<Arc<StoredComment>>,
    /// While catching up: where the next page comes from (taken while a fetch has it).
    pager: Option<Box<dyn Pager>>,
    /// A page being fetched: it holds the pager and gives it back with the step.
    fetching: Option<Fetch>,
    /// Once caught up: the live queue.
    live: Option<Live>,
    /// While catching up: every comment for the subscriber up to this id has been fetched.
    covered: u64,
    /// The queue's capacity, for the `Lagged` error.
    queue: usize,
    /// The newest id handed out, so nothing is yielded twice or out of order.
    last_yielded: u64,
    /// The backend's fan-out position, shared by all its subscriptions (one atomic, not one
    /// per subscriber): every comment with an id up to it has been queued to its recipients.
    /// Only meaningful once live.
    horizon: Arc<AtomicU64>,
    /// Shared with watchers of an early end (see [`EndWatch`]).
    end_watch: EndWatch,
}

impl Subscription {
    /// A subscription registered in the live fan-out from the start (its cursor is the
    /// newest id). `cursor` is the id the subscriber has already seen; `horizon` is stored
    /// (with `Release`) only once every comment up to it has been sent into the queues of its
    /// recipients, and is `>= cursor` now.
    pub fn live(live: Live, queue: usize, cursor: u64, horizon: Arc<AtomicU64>) -> Self {
        let end_watch = EndWatch::default();
        end_watch.went_live(&live);
        Self {
            buffer: VecDeque::new(),
            pager: None,
            fetching: None,
            live: Some(live),
            covered: cursor,
            queue,
            last_yielded: cursor,
            horizon,
            end_watch,
        }
    }

    /// A subscription that catches up from `cursor` through `pager`, then goes live.
    pub fn catching_up(
        pager: Box<dyn Pager>,
        queue: usize,
        cursor: u64,
        horizon: Arc<AtomicU64>,
    ) -> Self {
        Self {
            buffer: VecDeque::new(),
            pager: Some(pager),
            fetching: None,
            live: None,
            covered: cursor,
            queue,
            last_yielded: cursor,
            horizon,
            end_watch: EndWatch::default(),
        }
    }

    /// Comments fetched and not yet yielded: bounded by one page, whatever the history.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Whether the subscription has caught up and joined the live fan-out.
    pub fn is_live(&self) -> bool {
        self.live.is_some()
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
        if self.live.is_some() {
            self.horizon.load(Ordering::Acquire).max(self.last_yielded)
        } else {
            // Still catching up: only what was fetched is known to be here.
            self.covered.max(self.last_yielded)
        }
    }

    /// Whether the backend has already given up on this subscription (its queue overflowed,
    /// or the backend failed), as the error `next` will return once the queue is drained.
    /// A subscriber whose socket is stuck never drains it; this lets it notice anyway.
    pub fn ended_early(&self) -> Option<FeedError> {
        let live = self.live.as_ref()?;
        live.ended.get().map(|_| self.end_reason())
    }

    /// A handle that answers `ended_early` without borrowing the subscription.
    pub fn end_watch(&self) -> EndWatch {
        self.end_watch.clone()
    }

    /// The next comment, waiting for one to be published if need be.
    // Cancel-safe, as `select!` arms need: a fetch in flight stays in the subscription.
    pub async fn next(&mut self) -> Result<Arc<StoredComment>, FeedError> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The next comment if there is one now; otherwise `cx` is woken when there may be. For
    /// a response body that polls its subscription directly, with no future per comment.
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Arc<StoredComment>, FeedError>> {
        loop {
            let comment = match self.buffer.pop_front() {
                Some(comment) => comment,
                None => match &mut self.live {
                    Some(live) => match ready!(live.receiver.poll_recv(cx)) {
                        Some(comment) => comment,
                        None => return Poll::Ready(Err(self.end_reason())),
                    },
                    None => {
                        ready!(self.poll_fetch(cx))?;
                        continue;
                    }
                },
            };
            if let Some(comment) = self.accept(comment) {
                return Poll::Ready(Ok(comment));
            }
        }
    }

    /// Fetches the next page of the history, going live on the last one.
    fn poll_fetch(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FeedError>> {
        if self.fetching.is_none() {
            let Some(mut pager) = self.pager.take() else {
                return Poll::Ready(Err(FeedError::Closed));
            };
            let after = self.covered;
            self.fetching = Some(Box::pin(async move {
                let step = pager.next_page(after).await;
                (pager, step)
            }));
        }
        let fetch = self.fetching.as_mut().expect("set above");
        let (pager, step) = ready!(fetch.as_mut().poll(cx));
        self.fetching = None;
        let step = match step {
            Ok(step) => step,
            Err(error) => {
                self.pager = Some(pager);
                return Poll::Ready(Err(error));
            }
        };
        self.buffer.extend(step.comments);
        self.covered = self.covered.max(step.covered);
        match step.live {
            Some(live) => {
                self.end_watch.went_live(&live);
                self.live = Some(live);
            }
            None => self.pager = Some(pager),
        }
        Poll::Ready(Ok(()))
    }

    /// The next comment if one is ready now, without waiting (while catching up, only what
    /// was already fetched is ready).
    pub fn try_next(&mut self) -> Option<Result<Arc<StoredComment>, FeedError>> {
        loop {
            let comment = match self.buffer.pop_front() {
                Some(comment) => comment,
                None => match self.live.as_mut()?.receiver.try_recv() {
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

    /// Drops a comment already yielded (the last page and the live queue can overlap by a few).
    fn accept(&mut self, comment: Arc<StoredComment>) -> Option<Arc<StoredComment>> {
        if comment.comment.id <= self.last_yielded {
            return None;
        }
        self.last_yielded = comment.comment.id;
        Some(comment)
    }

    fn end_reason(&self) -> FeedError {
        match self.live.as_ref().and_then(|live| live.ended.get()) {
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
