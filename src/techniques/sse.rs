//! Server-Sent Events: `GET /sse?user=U` answers `text/event-stream`: first an event named
//! `connect` (id: the starting cursor) with a `retry:` hint, as in the study note, then per
//! comment `id: N`,
//! `event: comment`, `data: <json>`, with heartbeat comment lines in between. A reconnecting
//! client resumes after its `Last-Event-ID` header (or `?after=N`), as EventSource does.

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
    let heartbeat = state.config.sse_heartbeat;
    let events = futures_util::stream::once(async move { Ok(connect) }).chain(comments(
        state,
        subscription,
        verdict,
        done.drop_guard(),
        dropped,
    ));
    // The head axum's `Sse` wrote; the events are framed here, each comment's once for every
    // subscriber (`StoredComment::framed`), where `Sse` built an `Event` per subscriber.
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::new(Heartbeat::new(events, heartbeat)),
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

/// A heartbeat: an SSE comment line with no text, axum's keep-alive.
const HEARTBEAT: Bytes = Bytes::from_static(b":\n\n");

/// Sends a heartbeat after `interval` without an event, as axum's `KeepAlive` did; but where
/// it reset its timer on every event (a timer-wheel update per comment per subscriber), this
/// notes the time of the last event and looks at it only when the timer fires, then sleeps
/// until a heartbeat is due. A zero interval sends none.
struct Heartbeat<S> {
    events: Pin<Box<S>>,
    interval: Duration,
    last_event: tokio::time::Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<S> Heartbeat<S> {
    fn new(events: S, interval: Duration) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            events: Box::pin(events),
            interval,
            last_event: now,
            timer: Box::pin(tokio::time::sleep_until(now + interval)),
        }
    }
}

/// The response body itself (not a stream wrapped into one): each poll of an SSE response
/// goes through no more layers than it must.
impl<S: Stream<Item = Result<Bytes, DroppedByAdmin>>> http_body::Body for Heartbeat<S> {
    type Data = Bytes;
    type Error = DroppedByAdmin;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, DroppedByAdmin>>> {
        let this = &mut *self;
        match this.events.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => {
                this.last_event = tokio::time::Instant::now();
                return Poll::Ready(Some(Ok(http_body::Frame::data(event))));
            }
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending if this.interval.is_zero() => return Poll::Pending,
            Poll::Pending => {}
        }
        loop {
            std::task::ready!(this.timer.as_mut().poll(cx));
            let due = this.last_event + this.interval;
            let now = tokio::time::Instant::now();
            if now >= due {
                this.last_event = now;
                this.timer.as_mut().reset(now + this.interval);
                return Poll::Ready(Some(Ok(http_body::Frame::data(HEARTBEAT))));
            }
            // An event went out since the timer was set: the heartbeat is due later.
            this.timer.as_mut().reset(due);
        }
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
/// blocked write, so the stream in `comments` never sees a shutdown, an admin drop or the
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

/// The comment events of one subscription, until shutdown, a drop or a full queue.
fn comments(
    state: Context,
    subscription: Subscription,
    verdict: Verdict,
    done: DropGuard,
    dropped: CancellationToken,
) -> impl Stream<Item = Result<Bytes, DroppedByAdmin>> {
    // Made once and polled for every event: a fresh `cancelled()` per event would join and
    // leave each token's waiter list every time.
    let shutdown = Box::pin(state.shutdown.clone().cancelled_owned());
    let dropped = Box::pin(dropped.cancelled_owned());
    let context = (state, subscription, shutdown, dropped, verdict, done);
    futures_util::stream::unfold(Some(context), |context| async move {
        let (state, mut subscription, mut shutdown, mut dropped, verdict, done) = context?;
        let stats = state.counters();
        let dropped_event =
            |body: serde_json::Value| Bytes::from(format!("event: dropped\ndata: {body}\n\n"));
        tokio::select! {
            _ = shutdown.as_mut() => None,
            _ = dropped.as_mut() => {
                if verdict.claim() {
                    stats.dropped_by_admin.fetch_add(1, Ordering::Relaxed);
                }
                Some((Err(DroppedByAdmin), None))
            }
            next = subscription.next() => match next {
                Ok(comment) => {
                    stats.comments_delivered.fetch_add(1, Ordering::Relaxed);
                    let event = comment.framed(Technique::Sse, comment_event);
                    Some((Ok(event), Some((state, subscription, shutdown, dropped, verdict, done))))
                }
                Err(error @ FeedError::Lagged { resume_after, .. }) => {
                    if verdict.claim() {
                        stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    }
                    let body = serde_json::json!({ "error": error.to_string(), "resume_after": resume_after });
                    Some((Ok(dropped_event(body)), None))
                }
                // As for a lagged subscriber: the same event, naming the cursor to resume after.
                Err(error @ FeedError::Unavailable { .. }) => {
                    if verdict.claim() {
                        stats.dropped_unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                    let body = serde_json::json!({ "error": error.to_string(), "resume_after": subscription.cursor() });
                    Some((Ok(dropped_event(body)), None))
                }
                Err(_) => None,
            }
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// The next frame's bytes.
    async fn next(
        body: &mut Heartbeat<impl Stream<Item = Result<Bytes, DroppedByAdmin>>>,
    ) -> Bytes {
        body.frame().await.unwrap().unwrap().into_data().unwrap()
    }

    #[tokio::test]
    async fn a_heartbeat_follows_an_interval_without_events_and_none_with_zero() {
        let interval = Duration::from_millis(40);
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let events = tokio_stream_of(receiver);
        let mut stream = Heartbeat::new(events, interval);
        sender.send(Bytes::from_static(b"data: 1\n\n")).unwrap();
        let first = next(&mut stream).await;
        assert_eq!(&first[..], b"data: 1\n\n");
        let sent = tokio::time::Instant::now();
        let heartbeat = tokio::time::timeout(Duration::from_secs(5), next(&mut stream))
            .await
            .expect("a heartbeat within the safety net");
        assert_eq!(heartbeat, HEARTBEAT);
        assert!(sent.elapsed() >= interval - Duration::from_millis(2));
        // An event in between pushes the next heartbeat back by a whole interval.
        sender.send(Bytes::from_static(b"data: 2\n\n")).unwrap();
        assert_eq!(&next(&mut stream).await[..], b"data: 2\n\n");
        let after_event = tokio::time::Instant::now();
        assert_eq!(next(&mut stream).await, HEARTBEAT);
        assert!(after_event.elapsed() >= interval - Duration::from_millis(2));

        let (_sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let mut silent = Heartbeat::new(tokio_stream_of(receiver), Duration::ZERO);
        tokio::task::yield_now().await;
        assert!(
            silent.frame().now_or_never().is_none(),
            "no heartbeat at zero"
        );
    }

    fn tokio_stream_of(
        mut receiver: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    ) -> impl Stream<Item = Result<Bytes, DroppedByAdmin>> {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx).map(|b| b.map(Ok)))
    }
}
