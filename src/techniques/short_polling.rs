//! Short polling: `GET /poll?user=U&after=N` answers at once, often with nothing (the
//! "meaningless" answers of the study note); the client asks again on a fixed interval.

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{
    Backoff, ClientCounters, Context, DeliverySink, Gone, PageBody, Subscriber, feed_error,
    page_response, push_param,
};
use crate::http::client::ClientError;
use crate::http::error::{AppError, AppQuery, checked_user};
use crate::http::h1get::GetConnection;
use crate::http::link::{Connection, HttpLink};

#[derive(Deserialize)]
struct PollQuery {
    user: Option<String>,
    after: Option<u64>,
}

pub fn routes() -> Router<Context> {
    Router::new().route("/poll", get(poll))
}

async fn poll(
    State(state): State<Context>,
    AppQuery(query): AppQuery<PollQuery>,
) -> Result<Response, AppError> {
    let user = checked_user(query.user)?;
    let page = state
        .feed
        .read_after(query.after, user.as_deref(), state.config.page_limit)
        .await
        .map_err(|error| feed_error(&state, error))?;
    state.record_page(page.comments.len());
    Ok(page_response(&page))
}

/// Polls every `poll_interval` (measured start to start, as `setInterval` does) on one
/// keep-alive connection, reconnecting when it breaks.
pub async fn run_client(subscriber: &Subscriber, sink: &mut dyn DeliverySink) {
    let mut poller = Poller::new(subscriber);
    if !subscriber.pause(subscriber.settings.poll_phase).await {
        return;
    }
    let mut ticker = tokio::time::interval(subscriber.settings.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Between polls the idle connection is watched, as hyper's connection task did: a
        // server's close is answered at once and a client-side cut acts at once.
        loop {
            tokio::select! {
                _ = subscriber.stop.cancelled() => return,
                _ = ticker.tick() => break,
                _ = poller.connection.closed() => {}
            }
        }
        match poller.exchange(subscriber, sink, "/poll", "").await {
            None => return,
            Some(true) => {}
            // Failures back off beyond the interval, so a crowd of pollers does not hammer a
            // server that is down or refusing them.
            Some(false) => {
                ClientCounters::add(&subscriber.counters.retries);
                let delay = poller.backoff.next_delay();
                let extra = delay.saturating_sub(subscriber.settings.poll_interval);
                if !subscriber.pause(extra).await {
                    return;
                }
            }
        }
    }
}

/// The state both polling clients share: a keep-alive connection, the cursor, and whether
/// the first answer has come.
pub(crate) struct Poller {
    connection: KeepAlive,
    cursor: Option<u64>,
    ready: bool,
    /// Waits between failed exchanges.
    pub(crate) backoff: Backoff,
    /// `user=U`, percent-encoded once (empty for an anonymous subscriber).
    user_query: String,
    /// The request's path and query, rewritten in place for each exchange.
    path: String,
}

impl Poller {
    pub(crate) fn new(subscriber: &Subscriber) -> Self {
        Self {
            connection: KeepAlive::default(),
            cursor: subscriber.after,
            ready: false,
            backoff: Backoff::new(&subscriber.settings),
            user_query: subscriber.query(None),
            path: String::with_capacity(96),
        }
    }

    /// `path?user&after{extra}` into `self.path`, as [`Subscriber::query`] orders them.
    fn render_path(&mut self, path: &str, extra: &str) {
        let out = &mut self.path;
        out.clear();
        out.push_str(path);
        out.push('?');
        let query = out.len();
        out.push_str(&self.user_query);
        if let Some(after) = self.cursor {
            push_param(out, query, format_args!("after={after}"));
        }
        if !extra.is_empty() {
            push_param(out, query, format_args!("{extra}"));
        }
    }

    /// One GET of `path?user&after{extra}`, its comments delivered and the cursor moved.
    /// `None` when the subscriber was stopped; `Some(false)` after a failed exchange.
    pub(crate) async fn exchange(
        &mut self,
        subscriber: &Subscriber,
        sink: &mut dyn DeliverySink,
        path: &str,
        extra: &str,
    ) -> Option<bool> {
        self.render_path(path, extra);
        let path = &self.path;
        // `biased`: a stopped subscriber must not start an exchange it will not finish (its
        // request bytes would be counted with no answer read).
        let opened = self.connection.opened;
        let result = tokio::select! {
            biased;
            _ = subscriber.stop.cancelled() => return None,
            result = self.connection.get_page(subscriber, path) => result,
        };
        match result {
            Ok(page) => {
                if self.connection.opened != opened {
                    sink.connected();
                }
                if !self.ready {
                    self.ready = true;
                    ClientCounters::add(&subscriber.counters.ready);
                }
                deliver_page(page, subscriber, sink, &mut self.cursor);
                self.backoff.succeeded();
                Some(true)
            }
            // The cursor is gone (a restarted server, or evicted): resume from the oldest id
            // kept at once, the loss recorded with its cause.
            Err(ClientError::Status { status, body }) if status == StatusCode::GONE => {
                ClientCounters::add(&subscriber.counters.errors);
                match Gone::parse(body.as_bytes()) {
                    Some(gone) => {
                        gone.record(subscriber, sink);
                        self.cursor = Some(gone.resume_after);
                        Some(true)
                    }
                    None => Some(false),
                }
            }
            Err(error) => {
                tracing::debug!("{} failed: {error}", self.path);
                ClientCounters::add(&subscriber.counters.errors);
                Some(false)
            }
        }
    }
}

/// Hands a page's comments to the sink and moves the cursor past it.
pub(crate) fn deliver_page(
    page: PageBody,
    subscriber: &Subscriber,
    sink: &mut dyn DeliverySink,
    cursor: &mut Option<u64>,
) {
    let received_at = Instant::now();
    if page.comments.is_empty() {
        ClientCounters::add(&subscriber.counters.empty_responses);
    }
    for comment in page.comments {
        sink.deliver(comment, received_at);
    }
    *cursor = Some(page.next);
}

/// A poller's keep-alive connection, reopened (and counted as a reconnect) when lost.
#[derive(Default)]
pub(crate) struct KeepAlive {
    connection: Option<PollConnection>,
    opened: u64,
}

/// HTTP/1.1 goes over the hand-written `GET` connection (the CPU per poll); HTTP/2 over
/// hyper's client, shared or not.
enum PollConnection {
    H1(GetConnection),
    Link(Connection),
}

impl PollConnection {
    fn is_open(&mut self) -> bool {
        match self {
            PollConnection::H1(c) => c.is_open(),
            PollConnection::Link(c) => c.is_open(),
        }
    }
}

impl KeepAlive {
    /// GETs `path` and parses a page; a failure drops the connection so the next call
    /// reconnects.
    pub(crate) async fn get_page(
        &mut self,
        subscriber: &Subscriber,
        path: &str,
    ) -> Result<PageBody, ClientError> {
        let result = self.try_get_page(subscriber, path).await;
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    /// Resolves when the idle HTTP/1.1 connection is closed by the server or cut (see
    /// [`GetConnection::closed`]); never, for HTTP/2 (hyper's task watches those) or with no
    /// connection.
    pub(crate) async fn closed(&mut self) {
        match &mut self.connection {
            Some(PollConnection::H1(c)) => c.closed().await,
            _ => std::future::pending().await,
        }
    }

    async fn try_get_page(
        &mut self,
        subscriber: &Subscriber,
        path: &str,
    ) -> Result<PageBody, ClientError> {
        let counters = &subscriber.counters;
        if self.connection.as_mut().is_some_and(|c| !c.is_open()) {
            self.connection = None;
        }
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                if self.opened > 0 {
                    ClientCounters::add(&counters.reconnects);
                }
                let (connection, opened) = match subscriber.http {
                    HttpLink::H1 => {
                        let stream = subscriber.connect().await?;
                        let connection = GetConnection::over(stream, &subscriber.target);
                        (PollConnection::H1(connection), true)
                    }
                    _ => {
                        let (connection, opened) = subscriber.open_connection().await?;
                        (PollConnection::Link(connection), opened)
                    }
                };
                self.opened += 1;
                // On a shared HTTP/2 connection only its opener counts it.
                if opened {
                    ClientCounters::add(&counters.connections_opened);
                }
                self.connection.insert(connection)
            }
        };
        ClientCounters::add(&counters.requests);
        match connection {
            PollConnection::H1(c) => parse_page(c.get(path).await?),
            PollConnection::Link(c) => parse_page(&c.get(path).await?),
        }
    }
}

/// The empty page ends most polls, so its exact form, `{"comments":[],"next":N}` as
/// `page_response` writes it, is read without serde; any other body goes through serde,
/// which reads that form the same way.
pub(crate) fn parse_page(body: &[u8]) -> Result<PageBody, ClientError> {
    let next = body
        .strip_prefix(b"{\"comments\":[],\"next\":")
        .and_then(|rest| rest.strip_suffix(b"}"));
    if let Some(digits) = next {
        // JSON numbers have no leading zeros; u64 parsing refuses signs and overflow.
        let canonical = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits[0] != b'0' || digits.len() == 1);
        if let Some(next) = canonical
            .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
            .flatten()
        {
            return Ok(PageBody {
                comments: Vec::new(),
                next,
            });
        }
    }
    serde_json::from_slice(body).map_err(|e| ClientError::Parse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_page;

    #[test]
    fn the_empty_page_reads_as_serde_reads_it() {
        for body in [
            &b"{\"comments\":[],\"next\":1795663255421346}"[..],
            b"{\"comments\":[],\"next\":0}",
            b"{\"comments\":[],\"next\":18446744073709551615}",
        ] {
            let fast = parse_page(body).unwrap();
            let serde: super::PageBody = serde_json::from_slice(body).unwrap();
            assert_eq!((fast.comments.len(), fast.next), (0, serde.next));
        }
        // Not the exact form: serde decides, and refuses what JSON refuses.
        for bad in [
            &b"{\"comments\":[],\"next\":01}"[..],
            b"{\"comments\":[],\"next\":18446744073709551616}",
            b"{\"comments\":[],\"next\":-1}",
            b"{\"comments\":[],\"next\":}",
        ] {
            assert!(parse_page(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let spaced = parse_page(b"{\"comments\": [], \"next\": 7}").unwrap();
        assert_eq!(spaced.next, 7);
    }
}
