//! The comment feed every technique serves: the `Feed` interface the transports use
//! (publish, read after a cursor, subscribe from a cursor), the visibility rule every backend
//! keeps, and its errors.
//!
//! Transports only see this interface, so the Redis backend (`redis.rs`: one stream shared by
//! several server instances) replaces the in-memory one (`memory.rs`) without touching them;
//! `redis_server.rs` runs a private redis-server for its tests. What every
//! backend shares lives beside the trait, not in a backend: rendering a comment's wire JSON
//! and its publish time (`render.rs`), the subscription a backend feeds (`subscription.rs`),
//! and the live fan-out that feeds it (`fanout.rs`: the registry of live subscribers and
//! their bounded queues, delivery to a comment's recipients, `Lagged` on a full queue, ending
//! them all), which a backend embeds under the lock it fans out under and keeps its horizon
//! beside. `conformance.rs` holds the checks every backend passes unchanged.

#[cfg(test)]
pub(crate) mod conformance;
mod fanout;
mod memory;
pub mod redis;
pub mod redis_server;
mod render;
mod subscription;

use std::sync::Arc;

pub use crate::model::comment::{Comment, NewComment, now_micros};
pub use crate::model::stats::FeedInfo;
pub use memory::MemoryFeed;
pub use redis::RedisFeed;
pub use render::{Draft, StoredComment};
pub use subscription::{Catchup, EndCause, EndWatch, Live, Pager, Subscription};

/// How many comments a subscription fetches from the history per step while it catches up
/// from an old cursor: what one step holds the feed's lock for, and what a subscriber that
/// does not read can hold, whatever the history's size.
pub const CATCHUP_PAGE: usize = 256;

/// A page of comments after a cursor, as short and long polling return it.
#[derive(Debug, Default)]
pub struct Page {
    /// The comments for the reader, in id order.
    pub comments: Vec<Arc<StoredComment>>,
    /// The cursor to ask from next time: past every comment this read looked at, including
    /// comments addressed to other users, so a per-user poller does not rescan them.
    pub next: u64,
}

/// The sizes a backend is built with, so the conformance suite can build any backend small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedOptions {
    /// How many of the newest comments the history keeps; older cursors get `CursorExpired`.
    pub history: usize,
    /// How many comments a subscriber may fall behind before it is dropped (`Lagged`).
    pub queue: usize,
}

/// Why the feed could not serve a publish, a read or a subscription. Loss is never silent:
/// each of these reaches the client as an explicit error.
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
    /// The cursor is below this feed's first id: it was handed out by an earlier incarnation
    /// (the server restarted, its history gone). Whatever that feed held after the cursor and
    /// the subscriber had not read is lost to the restart; it resumes after `oldest - 1`.
    // Its own variant, not `CursorExpired`: with ids offset by the incarnation's start time,
    // "comments 42 to 1754000000000000 were evicted" would count microseconds as comments.
    #[error(
        "cursor {cursor} is from an earlier incarnation of the feed (the server restarted; \
         this feed's ids start at {first}): what that feed held after the cursor is lost to the \
         restart; the oldest kept id is {oldest}, resume after id {resume_after}",
        resume_after = .oldest - 1
    )]
    CursorFromEarlierFeed {
        cursor: u64,
        first: u64,
        oldest: u64,
    },
    /// The cursor names a comment the feed never published (a restarted server, a typo).
    #[error("cursor {cursor} is ahead of the feed, whose last id is {last}")]
    CursorAhead { cursor: u64, last: u64 },
    /// The subscriber fell further behind than its queue allows and was dropped; it can
    /// resume from its cursor.
    #[error(
        "subscriber fell more than {queue} comments behind and was dropped; resume after id {resume_after}"
    )]
    Lagged { queue: usize, resume_after: u64 },
    /// The backend cannot be reached (a broker down, a connection lost). Nothing is lost:
    /// a publisher may retry, a subscriber resumes from its cursor once the backend is back.
    #[error("the feed is unavailable: {reason}")]
    Unavailable { reason: String },
    /// The feed is shutting down.
    #[error("the feed is closed")]
    Closed,
}

/// The feed interface the transports program against, as `Arc<dyn Feed>`.
///
/// # The visibility rule
/// Every backend keeps it, and callers rely on nothing else (no lock, no timing):
///
/// 1. **Resuming misses nothing.** A subscriber that has read up to cursor `N` (every
///    comment for it with id `<= N`) and then reads or subscribes from `N` gets every
///    comment for it with id `> N`, however publishes race with the call, until it is told
///    otherwise by an error (`CursorExpired`, `Lagged`, `Unavailable`, `Closed`), after which
///    it can resume from its cursor again.
/// 2. **In id order, each once.** A page and a subscription yield ids strictly increasing.
/// 3. **A subscription knows how far it is complete.** `Subscription::horizon()` is an id up
///    to which every comment for the subscriber has reached the subscription (yielded or
///    waiting in it). A per-user poller that drained its subscription may therefore move its
///    cursor to the horizon, past other users' comments, and lose nothing.
///
/// Ids are strictly increasing and contiguous over the whole feed (every instance, every
/// user), so a cursor is one integer.
///
/// # Incarnations
/// A feed that starts afresh (a restarted in-memory server, a wiped broker) is a new
/// incarnation, and its ids start above every id an earlier one can have handed out: the
/// memory feed starts after the microseconds since the Unix epoch at its start (an earlier
/// incarnation would have had to average more than a million comments a second to reach
/// them). A cursor below `info().first_id - 1` is therefore from an earlier incarnation and
/// is refused with `CursorFromEarlierFeed` (410), never mistaken for one of this feed's.
/// Cursor 0 means "from the oldest comment kept" in every incarnation.
///
/// # Resume cost
/// A subscription from an old cursor pages through the history in steps of at most
/// [`CATCHUP_PAGE`] comments (each step a short read), and joins the live fan-out only once
/// it has caught up: subscribing copies nothing, and a subscriber that does not read holds
/// one page. Reads for one user do not examine comments addressed to other users.
///
/// # Why `async_trait`
/// Native `async fn` in traits cannot be called through `dyn Feed`, and the server holds
/// its backend as `Arc<dyn Feed>` chosen at start-up. `async_trait` boxes each call's
/// future: one allocation per publish, read or subscribe, none per delivered comment (a
/// `Subscription` is a concrete type, so fan-out to many subscribers pays nothing for it),
/// and a networked backend writes plain `async fn`s.
#[async_trait::async_trait]
pub trait Feed: Send + Sync + 'static {
    /// Stamps a comment with its publish time, stores it with the next id and hands it to
    /// every live subscriber it is addressed to. Backends implement `append`, not this, so
    /// the stamp and the rendering are the same for every backend.
    async fn publish(&self, new: NewComment) -> Result<Arc<StoredComment>, FeedError> {
        self.append(Draft::stamp(new)).await
    }

    /// Stores a stamped comment under the next id (rendering it with `Draft::with_id`) and
    /// hands it to its live subscribers, in id order.
    async fn append(&self, draft: Draft) -> Result<Arc<StoredComment>, FeedError>;

    /// Up to `limit` comments after `cursor` for `user`; `cursor = None` means "from now on"
    /// (an empty page whose `next` is the newest id).
    async fn read_after(
        &self,
        cursor: Option<u64>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Page, FeedError>;

    /// A live subscription that yields, in id order and each once, every comment after
    /// `cursor` (or from now on) addressed to `user` or to everyone.
    async fn subscribe(
        &self,
        cursor: Option<u64>,
        user: Option<String>,
    ) -> Result<Subscription, FeedError>;

    /// The newest id; for an empty feed, the id before its first (`info().first_id - 1`).
    async fn last_id(&self) -> Result<u64, FeedError>;

    /// This incarnation's identity and the newest id this instance has fanned out, for
    /// `/stats`: local and synchronous, so it answers during an outage.
    fn info(&self) -> FeedInfo;

    /// How many comments this instance accepted since it started: a local counter, so
    /// `/stats` answers during an outage, and summing it over instances counts each once.
    fn published(&self) -> u64;
}
