//! The Redis feed: comments in one Redis stream shared by every server instance, so
//! subscribers can spread over instances and a restart of one loses nothing.
//!
//! # Data layout (keys under a prefix, `pushlab` for the server)
//! - `PREFIX:base`: the incarnation's base, set once (microseconds since the epoch when this
//!   Redis first served the feed); ids continue above it, so a Redis that lost its data
//!   starts a new incarnation whose ids are above every earlier one.
//! - `PREFIX:last_id`: a string holding the newest id handed out.
//! - `PREFIX:comments`: a stream with one entry per comment, its entry id `<comment id>-0`,
//!   fields `from`, `text`, `at` (publish time, microseconds) and `to` when addressed.
//!   `XADD ... MAXLEN ~ history` bounds it (whole stream nodes are trimmed, so somewhat more
//!   than `history` may be kept).
//!
//! `APPEND` (a Lua script, atomic in Redis) reads `last_id` (or the base), adds the entry
//! under the next id and stores that id, so ids are strictly increasing and contiguous
//! across instances, and the stream holds them in id order. Ids are given only once the
//! entry is stored.
//!
//! # One reader per instance
//! A task reads the stream with `XREAD BLOCK` from the last id it saw, on a connection of its
//! own (a blocked command would stall the shared one), and fans each comment out to this
//! instance's subscriptions through their bounded queues with the `Fanout` the memory feed
//! uses too (`fanout.rs`: the subscriber registry, delivery, `Lagged` on a full queue), kept
//! here in the registry under its mutex; the horizon is moved, under the same lock, only
//! after a comment reached every queue. A subscription from an old cursor pages through the
//! stream (`RedisPager`, one bounded `XRANGE` a step) and registers with the reader once a
//! read reaches the stream's end, reading whatever the reader fanned out meanwhile too, so
//! the page and the queue overlap rather than leave a gap.
//!
//! # When Redis goes down
//! Calls fail with `Unavailable` (publishes answer 503). The reader's `XREAD` fails too: it
//! ends every subscription with `Unavailable` (a counted, resumable drop), refuses new ones
//! until it reads again, and resumes from the id it had reached, so resumed subscribers miss
//! nothing. If Redis came back without its data (no persistence), the feed is a new
//! incarnation: the reader starts over from its base, and clients holding old cursors get
//! `CursorFromEarlierFeed` (410), as after a restart of an in-memory server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, RedisError, Script, Value};
use tokio_util::sync::CancellationToken;

use super::fanout::{Fanout, Unregister};
use super::{
    CATCHUP_PAGE, Catchup, Comment, Draft, EndCause, Feed, FeedError, FeedInfo, FeedOptions, Live,
    Page, Pager, StoredComment, Subscription, now_micros,
};

/// Stores a comment under the next id. KEYS: last_id, stream, base. ARGV: the MAXLEN, a
/// fresh incarnation base (the caller's clock, µs), then the entry's field/value pairs.
/// Before this incarnation's first comment (or after Redis lost its data) the ids continue
/// from `base`, set once per incarnation, so they start above every id an earlier
/// incarnation handed out. Returns the id as a string (`%d`: Lua's numbers are doubles,
/// which print large integers in exponent form; ids below 2^53 stay exact).
const APPEND: &str = r"
local last = redis.call('GET', KEYS[1])
if not last then
  last = redis.call('GET', KEYS[3])
  if not last then
    last = ARGV[2]
    redis.call('SET', KEYS[3], last)
  end
end
local id = tonumber(last) + 1
local text_id = string.format('%d', id)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], text_id .. '-0', unpack(ARGV, 3))
redis.call('SET', KEYS[1], text_id)
return text_id
";

/// Stream entries one `XRANGE` or `XREAD` returns at most: a backlog or a burst is read in
/// steps of this size, so no single reply is unbounded.
const STEP: usize = 1000;

/// How long the reader's `XREAD` blocks before asking again; it also bounds how long a
/// dropped feed's reader lingers.
const BLOCK: Duration = Duration::from_secs(1);

/// Longest wait for any reply but the reader's blocked read: past it the call fails with
/// `Unavailable` instead of hanging on a Redis that stopped answering.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between the reader's attempts to reach Redis again.
const MAX_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Why a Redis feed could not be opened. The Redis error is held as text in the message, not
/// as a source: its own `source()` repeats its message, which an error chain would print twice.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{url:?} is not a Redis URL: {cause}")]
    BadUrl { url: String, cause: RedisError },
    #[error("cannot reach Redis at {url}: {cause}")]
    Unreachable { url: String, cause: RedisError },
}

/// The feed over Redis; see the module documentation.
pub struct RedisFeed {
    /// What reads, subscriptions and their pagers share.
    core: Arc<Core>,
    append: Script,
    /// `MAXLEN ~` of the stream.
    history: usize,
    /// Publishes this instance accepted (`Feed::published`).
    published: AtomicU64,
    /// Stops the reader when the feed is dropped.
    stop: CancellationToken,
}

/// The Redis connection and this instance's registry, shared by the feed and the pagers of
/// catching-up subscriptions.
struct Core {
    /// Shared by publishes, reads and subscriptions' catch-up reads; reconnects by itself.
    connection: ConnectionManager,
    keys: Keys,
    /// Capacity of each subscriber's queue (the registry's `Fanout` sizes them), for the
    /// `Lagged` error a subscription reports.
    queue: usize,
    /// What the reader and the subscriptions share.
    shared: Arc<Shared>,
    /// For error messages.
    url: String,
}

#[derive(Clone)]
struct Keys {
    last_id: String,
    stream: String,
    /// The incarnation's base: ids continue from it (see `APPEND`).
    base: String,
}

/// The reader's side, shared with every subscription.
struct Shared {
    registry: Mutex<Registry>,
    /// The newest id the reader has fanned out to every subscription of this instance.
    /// Stored under the registry's lock after the fan-out; read without it.
    horizon: Arc<AtomicU64>,
    /// The incarnation's base as this instance last read it (`Feed::info`).
    base: AtomicU64,
}

struct Registry {
    /// This instance's live subscribers, which the reader fans out to under this lock.
    fanout: Fanout,
    /// Set while the reader cannot read the stream: subscribing then fails with it, as a
    /// subscription would receive nothing.
    down: Option<String>,
}

/// A dropped subscription leaves the fan-out under the registry's lock.
impl Unregister for Shared {
    fn unregister(&self, number: u64) {
        self.lock().fanout.unregister(number);
    }
}

impl Shared {
    /// The lock is never held across an await or a panic-prone call, so a poisoned lock only
    /// means a panic elsewhere; the registry is still consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RedisFeed {
    /// Connects to the Redis at `url` (`redis://HOST:PORT/DB`), keeping its keys under
    /// `prefix`, and starts this instance's reader. Fails if Redis cannot be reached now.
    pub async fn connect(
        url: &str,
        prefix: &str,
        options: FeedOptions,
    ) -> Result<Self, ConnectError> {
        let client = Client::open(url).map_err(|cause| ConnectError::BadUrl {
            url: url.into(),
            cause,
        })?;
        let unreachable = |cause| ConnectError::Unreachable {
            url: url.into(),
            cause,
        };
        // Few, short reconnection attempts: during an outage a publish should fail within
        // moments (503), not wait; every later call tries to reconnect again.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(MAX_RETRY_DELAY)
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut connection = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(unreachable)?;
        let keys = Keys {
            last_id: format!("{prefix}:last_id"),
            stream: format!("{prefix}:comments"),
            base: format!("{prefix}:base"),
        };
        let (base, last) = incarnation(&mut connection, &keys)
            .await
            .map_err(unreachable)?;
        let shared = Arc::new(Shared {
            registry: Mutex::new(Registry {
                fanout: Fanout::new(options.queue),
                down: None,
            }),
            horizon: Arc::new(AtomicU64::new(last)),
            base: AtomicU64::new(base),
        });
        let stop = CancellationToken::new();
        let reader = Reader {
            client,
            keys: keys.clone(),
            shared: shared.clone(),
            stop: stop.clone(),
            url: url.into(),
        };
        tokio::spawn(reader.run());
        Ok(Self {
            core: Arc::new(Core {
                connection,
                keys,
                queue: options.queue.max(1),
                shared,
                url: url.into(),
            }),
            append: Script::new(APPEND),
            history: options.history.max(1),
            published: AtomicU64::new(0),
            stop,
        })
    }
}

impl Core {
    fn unavailable(&self, error: RedisError) -> FeedError {
        unavailable(&self.url, &error)
    }

    /// The comments for `user` after `cursor` (0: from the oldest kept), read in steps of
    /// `STEP` entries, until `limit` are found, the stream's end, or (with `one_step`) the
    /// first step's end; and the newest id when the read began. A cursor from an earlier
    /// incarnation is `CursorFromEarlierFeed`; a gap before the first entry is
    /// `CursorExpired`; a gap met later (the history trimmed past the read while it went on)
    /// ends the page there, and the next read reports it, unless `whole` asks for everything
    /// up to the end, which then fails the same way.
    async fn scan(
        &self,
        cursor: u64,
        user: Option<&str>,
        limit: usize,
        whole: bool,
        one_step: bool,
    ) -> Result<(Page, u64), FeedError> {
        let mut connection = self.connection.clone();
        let start = if cursor == 0 {
            "-".to_string()
        } else {
            entry_id(cursor + 1)
        };
        let (last, base, reply): (Option<u64>, Option<u64>, Value) = redis::pipe()
            .cmd("GET")
            .arg(&self.keys.last_id)
            .cmd("GET")
            .arg(&self.keys.base)
            .cmd("XRANGE")
            .arg(&self.keys.stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(STEP)
            .query_async(&mut connection)
            .await
            .map_err(|e| self.unavailable(e))?;
        let base = base.unwrap_or(0);
        let last = last.unwrap_or(base);
        let mut entries = self.entries(reply)?;
        let oldest = entries.first().map_or(last + 1, |c| c.comment.id);
        // Cursor 0 asks from whatever is oldest now, in every incarnation.
        let cursor = if cursor == 0 { oldest - 1 } else { cursor };
        if cursor > last {
            return Err(FeedError::CursorAhead { cursor, last });
        }
        if cursor < base {
            return Err(FeedError::CursorFromEarlierFeed {
                cursor,
                first: base + 1,
                oldest,
            });
        }
        let mut page = Page {
            comments: Vec::new(),
            next: cursor,
        };
        loop {
            let full_step = entries.len() == STEP;
            for stored in entries {
                let id = stored.comment.id;
                if id != page.next + 1 {
                    // Ids are contiguous: the ones in between were trimmed away.
                    if page.next == cursor || whole {
                        return Err(FeedError::CursorExpired { cursor, oldest: id });
                    }
                    return Ok((page, last));
                }
                if page.comments.len() == limit {
                    return Ok((page, last));
                }
                page.next = id;
                if stored.is_for(user) {
                    page.comments.push(stored);
                }
            }
            if !full_step || one_step {
                break;
            }
            let reply: Value = redis::cmd("XRANGE")
                .arg(&self.keys.stream)
                .arg(entry_id(page.next + 1))
                .arg("+")
                .arg("COUNT")
                .arg(STEP)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.unavailable(e))?;
            entries = self.entries(reply)?;
        }
        if page.next == cursor && cursor < last {
            // Everything after the cursor is gone (the stream was emptied behind the id).
            return Err(FeedError::CursorExpired {
                cursor,
                oldest: last + 1,
            });
        }
        Ok((page, last))
    }

    fn entries(&self, reply: Value) -> Result<Vec<Arc<StoredComment>>, FeedError> {
        parse_entries(reply).map_err(|reason| FeedError::Unavailable {
            reason: format!("Redis at {} holds a malformed comment: {reason}", self.url),
        })
    }

    /// Registers a subscriber with the reader; from now on it gets every comment the reader
    /// fans out, i.e. every comment after the horizon returned (read under the registry's
    /// lock, under which the reader fans out and moves the horizon).
    fn register(&self, user: Option<String>) -> Result<(Live, u64), FeedError> {
        let mut registry = self.shared.lock();
        if let Some(reason) = &registry.down {
            return Err(FeedError::Unavailable {
                reason: reason.clone(),
            });
        }
        let owner: Weak<Shared> = Arc::downgrade(&self.shared);
        let live = registry.fanout.register(user, owner);
        let horizon = self.shared.horizon.load(Ordering::Acquire);
        Ok((live, horizon))
    }

    /// `Unavailable` while this instance's reader cannot read the stream.
    fn check_reader(&self) -> Result<(), FeedError> {
        match &self.shared.lock().down {
            Some(reason) => Err(FeedError::Unavailable {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    async fn get_last_id(&self) -> Result<u64, FeedError> {
        let (last, base): (Option<u64>, Option<u64>) = redis::pipe()
            .cmd("GET")
            .arg(&self.keys.last_id)
            .cmd("GET")
            .arg(&self.keys.base)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(last.or(base).unwrap_or(0))
    }
}

impl Drop for RedisFeed {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait::async_trait]
impl Feed for RedisFeed {
    async fn append(&self, draft: Draft) -> Result<Arc<StoredComment>, FeedError> {
        let core = &self.core;
        let mut invocation = self.append.prepare_invoke();
        invocation
            .key(&core.keys.last_id)
            .key(&core.keys.stream)
            .key(&core.keys.base)
            .arg(self.history)
            .arg(now_micros())
            .arg("from")
            .arg(&draft.from)
            .arg("text")
            .arg(&draft.text)
            .arg("at")
            .arg(draft.published_at_us);
        if let Some(to) = &draft.to {
            invocation.arg("to").arg(to);
        }
        let id: u64 = invocation
            .invoke_async(&mut core.connection.clone())
            .await
            .map_err(|e| core.unavailable(e))?;
        self.published.fetch_add(1, Ordering::Relaxed);
        // The reader renders the entry it reads back the same way, so every instance sends
        // these very bytes.
        Ok(Arc::new(draft.with_id(id)))
    }

    async fn read_after(
        &self,
        cursor: Option<u64>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Page, FeedError> {
        match cursor {
            None => Ok(Page {
                comments: Vec::new(),
                next: self.core.get_last_id().await?,
            }),
            Some(cursor) => Ok(self.core.scan(cursor, user, limit, false, false).await?.0),
        }
    }

    async fn subscribe(
        &self,
        cursor: Option<u64>,
        user: Option<String>,
    ) -> Result<Subscription, FeedError> {
        let core = &self.core;
        let Some(cursor) = cursor else {
            // From now on: registered first, at horizon P, the live queue gets every comment
            // after P <= the newest id read next; the overlap is dropped by the subscription.
            let (live, _) = core.register(user)?;
            let cursor = core.get_last_id().await?;
            return Ok(Subscription::live(
                live,
                core.queue,
                cursor,
                core.shared.horizon.clone(),
            ));
        };
        // Checked now, so a bad cursor (or a reader that lost Redis, which could not serve
        // the subscription once caught up) is an error the handler can answer before it
        // streams; the comments are read page by page as the subscriber takes them.
        core.check_reader()?;
        let (checked, _) = core.scan(cursor, user.as_deref(), 0, false, true).await?;
        let pager = RedisPager {
            core: core.clone(),
            user,
        };
        Ok(Subscription::catching_up(
            Box::new(pager),
            core.queue,
            checked.next,
            core.shared.horizon.clone(),
        ))
    }

    async fn last_id(&self) -> Result<u64, FeedError> {
        self.core.get_last_id().await
    }

    fn info(&self) -> FeedInfo {
        let base = self.core.shared.base.load(Ordering::Acquire);
        FeedInfo {
            incarnation: base,
            started_at_us: base,
            first_id: base + 1,
            last_id: self.core.shared.horizon.load(Ordering::Acquire),
        }
    }

    fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

/// Pages one subscription through the stream, a bounded read per step, and registers it
/// with the reader once a read reaches the stream's end.
struct RedisPager {
    core: Arc<Core>,
    user: Option<String>,
}

#[async_trait::async_trait]
impl Pager for RedisPager {
    async fn next_page(&mut self, after: u64) -> Result<Catchup, FeedError> {
        let core = &self.core;
        let user = self.user.as_deref();
        let (page, last) = core.scan(after, user, CATCHUP_PAGE, true, true).await?;
        if page.next < last {
            return Ok(Catchup {
                comments: page.comments,
                covered: page.next,
                live: None,
            });
        }
        // Caught up as of the read. Registered now, the queue gets every comment after the
        // reader's horizon H; if the reader has already fanned out comments past the read
        // (H > covered), those are not in the queue: read them too (the overlap with the
        // queue is dropped by the subscription).
        let (live, horizon) = core.register(self.user.clone())?;
        let mut comments = page.comments;
        let mut covered = page.next;
        if horizon > covered {
            let (rest, _) = core.scan(covered, user, usize::MAX, true, false).await?;
            comments.extend(rest.comments);
            covered = rest.next;
        }
        Ok(Catchup {
            comments,
            covered,
            live: Some(live),
        })
    }
}

/// The incarnation's base and the newest id, setting the base if this Redis has none (a
/// fresh Redis, or one that lost its data): ids then continue above it.
/// Used at connect and by the reader when Redis comes back after an outage.
async fn incarnation(
    connection: &mut (impl redis::aio::ConnectionLike + Send),
    keys: &Keys,
) -> Result<(u64, u64), RedisError> {
    let (base, last): (u64, Option<u64>) = redis::pipe()
        .cmd("SET")
        .arg(&keys.base)
        .arg(now_micros())
        .arg("NX")
        .ignore()
        .cmd("GET")
        .arg(&keys.base)
        .cmd("GET")
        .arg(&keys.last_id)
        .query_async(connection)
        .await?;
    Ok((base, last.unwrap_or(base)))
}

/// This instance's reader of the stream.
struct Reader {
    client: Client,
    keys: Keys,
    shared: Arc<Shared>,
    stop: CancellationToken,
    url: String,
}

impl Reader {
    async fn run(self) {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(BLOCK + RESPONSE_TIMEOUT));
        let mut position = self.shared.horizon.load(Ordering::Acquire);
        let mut connection = None;
        let mut failures: u32 = 0;
        loop {
            let step = async {
                if connection.is_none() {
                    let fresh = self
                        .client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    connection = Some(fresh);
                }
                let connection = connection.as_mut().expect("connected above");
                if self.shared.lock().down.is_some() {
                    // Back after an outage: did Redis keep the stream? (A Redis that lost its
                    // data gets a new incarnation base here.)
                    let (base, last) = incarnation(connection, &self.keys).await?;
                    return Ok::<_, RedisError>(Step::Recovered { base, last });
                }
                let reply: Value = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(STEP)
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&self.keys.stream)
                    .arg(entry_id(position))
                    .query_async(connection)
                    .await?;
                Ok(Step::Read(reply))
            };
            let step = tokio::select! {
                _ = self.stop.cancelled() => return,
                step = step => step,
            };
            match step {
                Ok(Step::Read(reply)) => {
                    failures = 0;
                    match xread_entries(reply) {
                        Ok(entries) => self.fan_out(entries, &mut position),
                        Err(reason) => self.go_down(format!(
                            "Redis at {} holds a malformed comment: {reason}",
                            self.url
                        )),
                    }
                }
                Ok(Step::Recovered { base, last }) => {
                    failures = 0;
                    let mut registry = self.shared.lock();
                    let previous = self.shared.base.swap(base, Ordering::AcqRel);
                    if base != previous || last < position {
                        // Redis came back without the stream: a new incarnation, whose ids
                        // continue above its base. Its subscribers were ended when Redis went
                        // away; their old cursors now get `CursorFromEarlierFeed`.
                        tracing::warn!(
                            "Redis at {} came back without this instance's comments (last id \
                             {last}, base {base}; this instance had reached {position}): a new \
                             incarnation of the feed",
                            self.url
                        );
                        position = last;
                        self.shared.horizon.store(last, Ordering::Release);
                    }
                    registry.down = None;
                }
                Err(error) => {
                    connection = None;
                    self.go_down(unavailable(&self.url, &error).to_string());
                    failures = failures.saturating_add(1);
                    // Paces the reconnection attempts while Redis is down.
                    let delay = (Duration::from_millis(25) * 2u32.saturating_pow(failures))
                        .min(MAX_RETRY_DELAY);
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Ends every subscription (resumably) and refuses new ones until the reader is back.
    fn go_down(&self, reason: String) {
        let mut registry = self.shared.lock();
        if registry.down.is_none() {
            tracing::warn!("the feed's reader lost Redis: {reason}");
        }
        registry.fanout.end_all(&EndCause::Unavailable {
            reason: reason.clone(),
        });
        registry.down = Some(reason);
    }

    /// Queues each comment to its recipients, then moves the horizon past it.
    fn fan_out(&self, entries: Vec<Arc<StoredComment>>, position: &mut u64) {
        if entries.is_empty() {
            return;
        }
        let mut registry = self.shared.lock();
        for comment in entries {
            let id = comment.comment.id;
            if id <= *position {
                continue;
            }
            if id != *position + 1 {
                // The history was trimmed past this reader before it read those comments:
                // its subscribers cannot have them. They resume from their cursors and are
                // told what was lost (`CursorExpired`).
                registry.fanout.end_all(&EndCause::Unavailable {
                    reason: format!(
                        "this server fell behind the feed's history: comments {} to {} were \
                         evicted before it read them",
                        *position + 1,
                        id - 1
                    ),
                });
            }
            registry.fanout.fan_out(&comment);
            *position = id;
            // Only now is the comment in every recipient's queue: the horizon may pass it.
            self.shared.horizon.store(id, Ordering::Release);
        }
    }
}

enum Step {
    Read(Value),
    Recovered { base: u64, last: u64 },
}

fn unavailable(url: &str, error: &RedisError) -> FeedError {
    FeedError::Unavailable {
        reason: format!("Redis at {url}: {error}"),
    }
}

/// The stream entry id of comment `id`.
fn entry_id(id: u64) -> String {
    format!("{id}-0")
}

/// The entries of an `XREAD` reply for one stream (`Nil` when the block timed out).
fn xread_entries(reply: Value) -> Result<Vec<Arc<StoredComment>>, String> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        // RESP2: [[stream, entries]]; RESP3: {stream: entries}.
        Value::Array(mut streams) if streams.len() == 1 => match streams.pop() {
            Some(Value::Array(mut pair)) if pair.len() == 2 => {
                parse_entries(pair.pop().expect("two items"))
            }
            other => Err(format!("unexpected XREAD stream {other:?}")),
        },
        Value::Map(mut streams) if streams.len() == 1 => {
            parse_entries(streams.pop().expect("one stream").1)
        }
        other => Err(format!("unexpected XREAD reply {other:?}")),
    }
}

/// The comments of an `XRANGE` reply (or of one stream of an `XREAD` reply).
fn parse_entries(reply: Value) -> Result<Vec<Arc<StoredComment>>, String> {
    let Value::Array(entries) = reply else {
        return Err(format!("expected an array of entries, got {reply:?}"));
    };
    entries.into_iter().map(parse_entry).collect()
}

/// One entry, `[id, [field, value, ...]]`, rendered as the memory feed renders a comment.
fn parse_entry(entry: Value) -> Result<Arc<StoredComment>, String> {
    let Value::Array(mut parts) = entry else {
        return Err(format!("expected an entry, got {entry:?}"));
    };
    if parts.len() != 2 {
        return Err(format!("expected [id, fields], got {parts:?}"));
    }
    let fields = parts.pop().expect("two parts");
    let entry_id = text(parts.pop().expect("two parts"))?;
    let id = entry_id
        .strip_suffix("-0")
        .and_then(|id| id.parse::<u64>().ok())
        .ok_or_else(|| format!("entry id {entry_id:?} is not <comment id>-0"))?;
    let Value::Array(fields) = fields else {
        return Err(format!("entry {entry_id}: fields {fields:?}"));
    };
    let (mut from, mut to, mut body, mut at) = (None, None, None, None);
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let value = text(value)?;
        match text(name)?.as_str() {
            "from" => from = Some(value),
            "to" => to = Some(value),
            "text" => body = Some(value),
            "at" => at = value.parse::<u64>().ok(),
            _ => {}
        }
    }
    let missing = |field: &str| format!("entry {entry_id} has no valid `{field}`");
    Ok(Arc::new(StoredComment::new(Comment {
        id,
        from: from.ok_or_else(|| missing("from"))?,
        to,
        text: body.ok_or_else(|| missing("text"))?,
        published_at_us: at.ok_or_else(|| missing("at"))?,
    })))
}

fn text(value: Value) -> Result<String, String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|e| e.to_string()),
        Value::SimpleString(text) => Ok(text),
        other => Err(format!("expected a string, got {other:?}")),
    }
}

#[cfg(test)]
mod tests;
