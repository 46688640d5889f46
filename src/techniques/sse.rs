//! Server-Sent Events: `GET /sse?user=U` answers `text/event-stream`: first an event named
//! `connect` (id: the starting cursor) with a `retry:` hint, as in the study note, then per
//! comment `id: N`,
//! `event: comment`, `data: <json>`, with heartbeat comment lines in between. A reconnecting
//! client resumes after its `Last-Event-ID` header (or `?after=N`), as EventSource does.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Backoff, ClientCounters, Context, DeliverySink, Gone, Subscriber, feed_error};
use crate::accounting::{ConnInfo, ConnMeter};
use crate::feed::{Comment, EndCause, EndWatch, FeedError, StoredComment, Subscription};
use crate::http::client::ClientError;
use crate::http::error::{AppError, AppQuery, checked_user};
use crate::http::link::Connection;
use crate::model::technique::Technique;
use crate::wake::Alarm;

#[derive(Deserialize)]
struct SseQuery {
    user: Option<String>,
    after: Option<u64>,
}

pub fn routes() -> Router<Context> {
    Router::new().route("/sse", get(subscribe))
}

/// Ends a stream abruptly (no terminating chunk), as a dropped network connection would.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the admin endpoint")]
pub struct DroppedByAdmin;

async fn subscribe(
    State(state): State<Context>,
    ConnectInfo(connection): ConnectInfo<ConnInfo>,
    headers: HeaderMap,
    AppQuery(query): AppQuery<SseQuery>,
) -> Result<Response, AppError> {
    let user = checked_user(query.user)?;
    // A reconnecting EventSource repeats its original URL and adds Last-Event-ID, so the
    // header is the newer cursor and wins.
    let cursor = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    AppError::bad_request(
                        "`Last-Event-ID` must be a comment id (an unsigned integer)",
                    )
                })?,
        ),
        None => query.after,
    };
    let subscription = state
        .feed
        .subscribe(cursor, user.clone())
        .await
        .map_err(|error| feed_error(&state, error))?;
    // The connect event carries the cursor as its id, so an EventSource that drops before its
    // first comment still resumes from the right place with Last-Event-ID.
    let data = serde_json::json!({ "user": user, "after": subscription.cursor() });
    let connect = Bytes::from(format!(
        "id: {}\nevent: connect\nretry: {}\ndata: {data}\n\n",
        subscription.cursor(),
        state.config.sse_retry.as_millis()
    ));
    let verdict = Verdict::default();
    // One token for both watchers, taken before either runs, so one admin drop ends both.
    let dropped = state.drop_signal_for(user.as_deref());
    // Ends with the stream: a connection kept alive after it is no longer this subscriber.
    let done = CancellationToken::new();
    connection
        .meter
        .set_write_stall(state.config.write_stall_timeout);
    connection.meter.abort_when(while_stuck(
        state.clone(),
        subscription.end_watch(),
        Arc::downgrade(&connection.meter),
        verdict.clone(),
        done.clone(),
        dropped.clone(),
    ));
    let events = Events::new(
        state,
        subscription,
        connect,
        verdict,
        done.drop_guard(),
        dropped,
    );
    // The head axum's `Sse` wrote; the events are framed here, each comment's once for every
    // subscriber (`StoredComment::framed`), where `Sse` built an `Event` per subscriber.
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::new(events),
    )
        .into_response())
}

/// A comment's SSE event, as axum's `Event` rendered it: `id`, `event`, `data`, blank line.
fn comment_event(comment: &StoredComment) -> Bytes {
    Bytes::from(format!(
        "id: {}\nevent: comment\ndata: {}\n\n",
        comment.comment.id, comment.json
    ))
}

/// An SSE response's body: the connect event, then each comment's event as it comes, and a
/// heartbeat after `interval` without an event (none at zero), as axum's `KeepAlive` sent;
/// it ends at shutdown, fails at an admin drop (the connection ends without its last chunk),
/// and ends with a `dropped` event when the feed gives up on the subscriber.
///
/// One struct polled directly, because every comment goes through it for every subscriber:
/// it replaced a stream of a connect event chained to an `unfold` over a three-way
/// `select!`, wrapped in a heartbeat, whose every poll went through each layer and locked the
/// shutdown and drop tokens' mutexes. The quiet sources (shutdown, admin drop, heartbeat
/// timer) are now polled only when one of them woke the task ([`Alarm`]), and the heartbeat
/// timer is looked at only when it fires: axum's `KeepAlive` reset it on every event.
struct Events {
    connect: Option<Bytes>,
    /// `None` once the stream has ended: the subscription leaves the feed, and the guard
    /// tells `while_stuck` so, as soon as the last event is made, not when the body is
    /// dropped (a stuck last write then gets the write-stall timeout, not the stuck check).
    live: Option<(Subscription, DropGuard)>,
    state: Context,
    verdict: Verdict,
    /// Rings when the shutdown, the admin drop or the heartbeat timer fires.
    alarm: Alarm,
    /// The server's shutdown or this subscriber's admin drop, whichever comes first.
    stop: Pin<Box<dyn Future<Output = Stop> + Send>>,
    interval: Duration,
    last_event: tokio::time::Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The timer has fired and not been reset since: a heartbeat may be due.
    timer_fired: bool,
}

/// Why a stream stops before its subscription ends.
enum Stop {
    Shutdown,
    Dropped,
}

/// A heartbeat: an SSE comment line with no text, axum's keep-alive.
const HEARTBEAT: Bytes = Bytes::from_static(b":\n\n");

impl Events {
    fn new(
        state: Context,
        subscription: Subscription,
        connect: Bytes,
        verdict: Verdict,
        done: DropGuard,
        dropped: CancellationToken,
    ) -> Self {
        let shutdown = state.shutdown.clone();
        let stop = Box::pin(async move {
            tokio::select! {
                biased;
                () = shutdown.cancelled_owned() => Stop::Shutdown,
                () = dropped.cancelled_owned() => Stop::Dropped,
            }
        });
        let interval = state.config.sse_heartbeat;
        let now = tokio::time::Instant::now();
        Self {
            connect: Some(connect),
            live: Some((subscription, done)),
            state,
            verdict,
            alarm: Alarm::new(),
            stop,
            interval,
            last_event: now,
            timer: Box::pin(tokio::time::sleep_until(now + interval)),
            timer_fired: false,
        }
    }

    /// The event for what the subscription gave; `None` ends the stream after it.
    fn on_next(&mut self, next: Result<Arc<StoredComment>, FeedError>) -> Option<Bytes> {
        let stats = self.state.counters();
        let dropped_event =
            |body: serde_json::Value| Bytes::from(format!("event: dropped\ndata: {body}\n\n"));
        match next {
            Ok(comment) => {
                stats.comments_delivered.fetch_add(1, Ordering::Relaxed);
                self.last_event = tokio::time::Instant::now();
                Some(comment.framed(Technique::Sse, comment_event))
            }
            Err(error @ FeedError::Lagged { resume_after, .. }) => {
                if self.verdict.claim() {
                    stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
                }
                let body =
                    serde_json::json!({ "error": error.to_string(), "resume_after": resume_after });
                self.live = None;
                Some(dropped_event(body))
            }
            // As for a lagged subscriber: the same event, naming the cursor to resume after.
            Err(error @ FeedError::Unavailable { .. }) => {
                if self.verdict.claim() {
                    stats.dropped_unavailable.fetch_add(1, Ordering::Relaxed);
                }
                let cursor = self
                    .live
                    .as_ref()
                    .map(|(subscription, _)| subscription.cursor());
                let body =
                    serde_json::json!({ "error": error.to_string(), "resume_after": cursor });
                self.live = None;
                Some(dropped_event(body))
            }
            Err(_) => {
                self.live = None;
                None
            }
        }
    }
}

impl http_body::Body for Events {
    type Data = Bytes;
    type Error = DroppedByAdmin;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, DroppedByAdmin>>> {
        let this = &mut *self;
        let data = |bytes| Poll::Ready(Some(Ok(http_body::Frame::data(bytes))));
        if let Some(connect) = this.connect.take() {
            return data(connect);
        }
        if this.live.is_none() {
            return Poll::Ready(None);
        }
        if this.alarm.rang(cx) {
            let mut quiet = TaskContext::from_waker(this.alarm.waker());
            match this.stop.as_mut().poll(&mut quiet) {
                Poll::Ready(Stop::Shutdown) => {
                    this.live = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Stop::Dropped) => {
                    this.live = None;
                    if this.verdict.claim() {
                        let stats = this.state.counters();
                        stats.dropped_by_admin.fetch_add(1, Ordering::Relaxed);
                    }
                    return Poll::Ready(Some(Err(DroppedByAdmin)));
                }
                Poll::Pending => {}
            }
            // A fired timer stays ready until it is reset.
            this.timer_fired =
                !this.interval.is_zero() && this.timer.as_mut().poll(&mut quiet).is_ready();
        }
        let (subscription, _) = this.live.as_mut().expect("checked above");
        if let Poll::Ready(next) = subscription.poll_next(cx) {
            return match this.on_next(next) {
                Some(event) => data(event),
                None => Poll::Ready(None),
            };
        }
        while this.timer_fired {
            let due = this.last_event + this.interval;
            let now = tokio::time::Instant::now();
            if now >= due {
                this.last_event = now;
                this.timer.as_mut().reset(now + this.interval);
                // Registers the new deadline; the next poll looks again if it rings.
                this.alarm.ring();
                return data(HEARTBEAT);
            }
            // An event went out since the timer was set: the heartbeat is due later.
            this.timer.as_mut().reset(due);
            let mut quiet = TaskContext::from_waker(this.alarm.waker());
            this.timer_fired = this.timer.as_mut().poll(&mut quiet).is_ready();
        }
        Poll::Pending
    }
}

/// Settles, once, why a subscriber was dropped: its stream and `while_stuck` can both see
/// the same drop, and it must be counted once.
#[derive(Clone, Default)]
struct Verdict(Arc<AtomicBool>);

impl Verdict {
    /// True for the first caller only.
    fn claim(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }
}

/// How long a write must stay blocked before a feed that gave up on the subscriber ends the
/// connection: long against a healthy write, short against the write-stall timeout.
const STUCK_CHECK: Duration = Duration::from_millis(250);
/// How long a subscriber stuck at shutdown is given before its connection is cut.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// What ends an SSE connection whose socket is stuck. hyper then polls nothing but the
/// blocked write, so the body (`Events`) never sees a shutdown, an admin drop or the
/// feed giving up; the connection's meter polls this instead, only while a write is blocked,
/// and fails the write when it completes. (The write-stall timeout is the meter's own.)
async fn while_stuck(
    state: Context,
    end: EndWatch,
    meter: Weak<ConnMeter>,
    verdict: Verdict,
    done: CancellationToken,
    dropped: CancellationToken,
) {
    let stats = state.counters();
    tokio::select! {
        // The stream has ended (at a shutdown, say) but its tail may be what is stuck.
        _ = done.cancelled() => {
            state.shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_WAIT).await;
        }
        _ = dropped.cancelled() => {
            if verdict.claim() {
                stats.dropped_by_admin.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ = async { state.shutdown.cancelled().await; tokio::time::sleep(SHUTDOWN_WAIT).await } => {}
        cause = async {
            loop {
                tokio::time::sleep(STUCK_CHECK).await;
                let stuck = meter.upgrade().and_then(|m| m.blocked_for()).is_some_and(|d| d >= STUCK_CHECK);
                match end.cause() {
                    Some(cause) if stuck => break cause.clone(),
                    _ => {}
                }
            }
        } => {
            if verdict.claim() {
                let counter = match cause {
                    EndCause::Lagged => &stats.dropped_slow,
                    EndCause::Unavailable { .. } => &stats.dropped_unavailable,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Subscribes like EventSource: one streaming GET; when the stream ends it waits the
/// server's `retry:` delay (growing with jitter while attempts keep failing) and reconnects
/// with `Last-Event-ID`. A 410 (its cursor from before a restart, or evicted) resumes at
/// once from the oldest id kept, the loss recorded with its cause.
pub async fn run_client(subscriber: &Subscriber, sink: &mut dyn DeliverySink) {
    let counters = &subscriber.counters;
    let path = format!("/sse?{}", subscriber.query(subscriber.after));
    let mut last_event_id: Option<String> = None;
    let mut backoff = Backoff::new(&subscriber.settings);
    let mut attempts = 0u64;
    let mut ready = false;
    loop {
        if attempts > 0 {
            ClientCounters::add(&counters.reconnects);
        }
        attempts += 1;
        let result = tokio::select! {
            biased;
            _ = subscriber.stop.cancelled() => return,
            result = open_stream(subscriber, &path, last_event_id.as_deref()) => result,
        };
        match result {
            Ok(body) => {
                let mut events = body.eventsource();
                loop {
                    let event = tokio::select! {
                        _ = subscriber.stop.cancelled() => return,
                        event = events.next() => event,
                    };
                    let event = match event {
                        Some(Ok(event)) => event,
                        Some(Err(_)) | None => break,
                    };
                    if let Some(delay) = event.retry {
                        backoff.set_base(delay);
                    }
                    // The stream works: a later failure starts from the first step again.
                    backoff.succeeded();
                    if !event.id.is_empty() {
                        last_event_id = Some(event.id.clone());
                    }
                    match event.event.as_str() {
                        "connect" => {
                            sink.connected();
                            if !ready {
                                ready = true;
                                ClientCounters::add(&counters.ready);
                            }
                        }
                        "comment" => {
                            let received_at = Instant::now();
                            if let Ok(comment) = serde_json::from_str::<Comment>(&event.data) {
                                sink.deliver(comment, received_at);
                            }
                        }
                        _ => {}
                    }
                }
                ClientCounters::add(&counters.errors);
            }
            Err(ClientError::Status { status, body }) if status == StatusCode::GONE => {
                ClientCounters::add(&counters.errors);
                if let Some(gone) = Gone::parse(body.as_bytes()) {
                    gone.record(subscriber, sink);
                    last_event_id = Some(gone.resume_after.to_string());
                    continue;
                }
            }
            Err(error) => {
                tracing::debug!("SSE connect failed: {error}");
                ClientCounters::add(&counters.errors);
            }
        }
        ClientCounters::add(&counters.retries);
        if !subscriber.pause(backoff.next_delay()).await {
            return;
        }
    }
}

/// Opens a counted connection and starts the event stream, returning its body bytes.
async fn open_stream(
    subscriber: &Subscriber,
    path: &str,
    last_event_id: Option<&str>,
) -> Result<impl Stream<Item = Result<bytes::Bytes, hyper::Error>> + use<>, ClientError> {
    let (mut connection, opened) = subscriber.open_connection().await?;
    if opened {
        ClientCounters::add(&subscriber.counters.connections_opened);
    }
    ClientCounters::add(&subscriber.counters.requests);
    let mut headers = vec![
        ("accept", "text/event-stream"),
        ("cache-control", "no-cache"),
    ];
    if let Some(id) = last_event_id {
        headers.push(("last-event-id", id));
    }
    let response = connection.send(Method::GET, path, &headers, None).await?;
    let status = response.status();
    if status != StatusCode::OK {
        let body = response.into_body().collect().await?.to_bytes();
        return Err(ClientError::Status {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    // hyper keeps an HTTP/1.1 connection until the body ends, and dropping the stream
    // closes it; an HTTP/2 handle is kept with the stream, so the connection outlives
    // neither (a shared one lives on with its other holders).
    let keep = match connection {
        Connection::H1(_) => None,
        h2 => Some(h2),
    };
    Ok(response.into_body().into_data_stream().map(move |chunk| {
        let _ = &keep;
        chunk
    }))
}
