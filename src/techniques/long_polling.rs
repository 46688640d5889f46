//! Long polling: `GET /long-poll?user=U&after=N&timeout_ms=T` is held until at least one
//! comment after N exists or T passes; the client asks again as soon as it has an answer.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::short_polling::Poller;
use super::{ClientCounters, Context, DeliverySink, Subscriber, feed_error, page_response};
use crate::feed::{FeedError, Page};
use crate::http::error::{AppError, AppQuery, checked_user};

#[derive(Deserialize)]
struct LongPollQuery {
    user: Option<String>,
    after: Option<u64>,
    timeout_ms: Option<u64>,
}

pub fn routes() -> Router<Context> {
    Router::new().route("/long-poll", get(long_poll))
}

async fn long_poll(
    State(state): State<Context>,
    AppQuery(query): AppQuery<LongPollQuery>,
) -> Result<Response, AppError> {
    let user = checked_user(query.user)?;
    let max = state.config.long_poll_max_timeout.as_millis() as u64;
    let timeout = match query.timeout_ms {
        None => state.config.long_poll_default_timeout,
        Some(ms) if (1..=max).contains(&ms) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(AppError::bad_request(format!(
                "`timeout_ms` is {ms}; it must be between 1 and {max}"
            )));
        }
    };
    // Subscribing from the cursor misses nothing after it (the feed's visibility rule), so a
    // comment published between "nothing yet" and "wait" cannot slip through.
    let dropped = state.drop_signal_for(user.as_deref());
    let mut subscription = state
        .feed
        .subscribe(query.after, user)
        .await
        .map_err(|error| feed_error(&state, error))?;
    let mut page = Page {
        comments: Vec::new(),
        next: subscription.cursor(),
    };
    let first = tokio::select! {
        first = subscription.next() => Some(first),
        _ = tokio::time::sleep(timeout) => None,
        _ = state.shutdown.cancelled() => None,
        _ = dropped.cancelled() => {
            state.counters().dropped_by_admin
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let error = AppError::new(StatusCode::SERVICE_UNAVAILABLE, "connection dropped by the admin endpoint");
            let mut response = error.into_response();
            response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            return Ok(response);
        }
    };
    match first {
        Some(Ok(comment)) => page.comments.push(comment),
        Some(Err(FeedError::Lagged { .. })) | None => {}
        // The client keeps its cursor and asks again after Retry-After.
        Some(Err(error)) => return Err(feed_error(&state, error)),
    }
    // Take whatever else is already there, up to the page limit, without waiting. Once the
    // drain comes up empty, `next` moves to the subscription's horizon, past comments to
    // other users too, as short polling's does. Without this a per-user long poller kept an
    // old cursor while others' comments went by, and once the history moved past it got a
    // 410 although it had lost nothing.
    page.next = subscription.drain_ready(&mut page.comments, state.config.page_limit);
    state.record_page(page.comments.len());
    Ok(page_response(&page))
}

/// Re-asks as soon as each answer arrives, on one keep-alive connection. The first request
/// asks with a 1 ms timeout, so the client knows it is connected and subscribed (and the
/// load generator can wait for every client) without holding a request for a whole timeout.
pub async fn run_client(subscriber: &Subscriber, sink: &mut dyn DeliverySink) {
    let timeout = format!(
        "timeout_ms={}",
        subscriber.settings.long_poll_timeout.as_millis().max(1)
    );
    let mut poller = Poller::new(subscriber);
    let mut first = true;
    loop {
        let query = if first {
            "timeout_ms=1"
        } else {
            timeout.as_str()
        };
        match poller.exchange(subscriber, sink, "/long-poll", query).await {
            None => return,
            Some(true) => first = false,
            Some(false) => {
                ClientCounters::add(&subscriber.counters.retries);
                if !subscriber.pause(poller.backoff.next_delay()).await {
                    return;
                }
            }
        }
    }
}
