//! WebSocket: `GET /ws?user=U&after=N` upgrades, then the server sends a first frame naming
//! the starting cursor and one text frame per comment (the comment's JSON) and the client may publish by sending
//! `{"to":...,"text":...}`, acknowledged with `{"ack":ID}`: the two-way half of the protocol.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Backoff, ClientCounters, Context, DeliverySink, Gone, Subscriber, feed_error};
use crate::accounting::{ConnInfo, ConnMeter};
use crate::feed::{Comment, FeedError, Subscription};
use crate::http::client::connect_counted;
use crate::http::error::{AppError, AppQuery, ObjectOnly, checked_comment, checked_user};

#[derive(Deserialize)]
struct WsQuery {
    user: Option<String>,
    after: Option<u64>,
}

/// What a client sends to publish over its WebSocket.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WsPublish {
    #[serde(default)]
    to: Option<String>,
    text: String,
}

/// Close code for a subscriber dropped for falling behind (private-use range 4000-4999).
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Close code for a connection dropped through the admin endpoint.
pub const CLOSE_DROPPED: u16 = 4010;
/// Close code for a subscriber dropped because the feed's backend is unavailable: RFC 6455's
/// registered 1013 "Try Again Later"; the reason names the cursor to resume after.
pub const CLOSE_TRY_AGAIN: u16 = 1013;

pub fn routes() -> Router<Context> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<Context>,
    ConnectInfo(connection): ConnectInfo<ConnInfo>,
    AppQuery(query): AppQuery<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let upgrade = upgrade.map_err(|rejection| {
        AppError::new(
            StatusCode::UPGRADE_REQUIRED,
            format!(
                "/ws takes only WebSocket upgrade requests: {}",
                rejection.body_text()
            ),
        )
    })?;
    let user = checked_user(query.user)?;
    // Subscribe before upgrading so a bad cursor is an HTTP error the client can read.
    let subscription = state
        .feed
        .subscribe(query.after, user.clone())
        .await
        .map_err(|error| feed_error(&state, error))?;
    let meter = Some(connection.meter);
    // Taken before the upgrade, so a shutdown cannot slip in before the session holds it.
    let guard = state.session_guard();
    let message_limit = state.config.max_message_bytes();
    Ok(upgrade
        // Sized for comments: tungstenite's 128 KiB default read buffer alone would cost
        // about 134 KiB per idle connection (floors.md).
        .read_buffer_size(state.config.ws_read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(message_limit * 4 + 64 * 1024)
        .max_message_size(message_limit)
        .max_frame_size(message_limit)
        .on_upgrade(move |socket| async move {
            session(socket, state, subscription, user, meter).await;
            drop(guard);
        }))
}

async fn session(
    mut socket: WebSocket,
    state: Context,
    mut subscription: Subscription,
    user: Option<String>,
    meter: Option<Arc<ConnMeter>>,
) {
    if let Some(meter) = &meter {
        meter.read_directly();
    }
    let stats = state.counters();
    let dropped = state.drop_signal();
    // A first frame naming the starting cursor, like SSE's `connect` event: a client that
    // drops before its first comment still knows where to resume from.
    let hello =
        serde_json::json!({ "connected": { "user": user, "after": subscription.cursor() } });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                close(&mut socket, 1001, "server shutting down").await;
                return;
            }
            _ = dropped.cancelled() => {
                // Like a network fault: no close frame, the TCP connection just goes away.
                stats.dropped_by_admin.fetch_add(1, Ordering::Relaxed);
                return;
            }
            next = subscription.next() => match next {
                Ok(comment) => {
                    if socket.send(Message::Text(comment.json.as_ref().into())).await.is_err() {
                        return;
                    }
                    stats.comments_delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(error @ FeedError::Lagged { .. }) => {
                    stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    close(&mut socket, CLOSE_TOO_SLOW, &error.to_string()).await;
                    return;
                }
                Err(FeedError::Unavailable { reason }) => {
                    stats.dropped_unavailable.fetch_add(1, Ordering::Relaxed);
                    // The cursor first: a close reason is cut to 100 characters.
                    let reason = format!("feed unavailable; resume after id {}: {reason}", subscription.cursor());
                    close(&mut socket, CLOSE_TRY_AGAIN, &reason).await;
                    return;
                }
                Err(_) => {
                    close(&mut socket, 1001, "feed closed").await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                None => return,
                Some(Ok(Message::Close(_))) => {
                    // tungstenite queues the close reply RFC 6455 asks for but sends it only
                    // on the next write or flush; returning at once dropped it, and clients
                    // saw "reset without closing handshake".
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(1),
                        futures_util::SinkExt::flush(&mut socket),
                    )
                    .await;
                    return;
                }
                Some(Ok(Message::Text(text))) => {
                    let reply = publish(&state, user.as_deref(), text.as_str()).await;
                    if socket.send(Message::Text(reply.into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    close(&mut socket, 1003, "binary frames are not supported; send JSON text").await;
                    return;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(error)) => {
                    // A protocol violation (bad frame, bad UTF-8, oversized message): say
                    // why in the close frame, as RFC 6455 asks, and end the connection.
                    let (code, reason) = close_reason(&error);
                    close(&mut socket, code, &reason).await;
                    return;
                }
            }
        }
    }
}

/// Publishes a client's message; the reply is `{"ack":ID}` or `{"error":...}`.
async fn publish(state: &Context, user: Option<&str>, text: &str) -> String {
    let Some(from) = user else {
        return serde_json::json!({
            "error": "anonymous WebSocket clients cannot publish; connect with ?user=NAME"
        })
        .to_string();
    };
    let request: WsPublish = match serde_json::from_str(text) {
        Ok(ObjectOnly(request)) => request,
        Err(error) => {
            return serde_json::json!({
                "error": format!("bad publish message (expected {{\"to\":...,\"text\":...}}): {error}")
            })
            .to_string();
        }
    };
    match checked_comment(
        state.config.max_comment_bytes,
        from.to_string(),
        request.to,
        request.text,
    ) {
        Ok(comment) => {
            let stored = match state.feed.publish(comment).await {
                Ok(stored) => stored,
                // An outage answers `{"error":...}` like any refusal; the client may retry.
                Err(error) => return AppError::from(error).body().to_string(),
            };
            state
                .counters()
                .comments_published
                .fetch_add(1, Ordering::Relaxed);
            serde_json::json!({ "ack": stored.comment.id }).to_string()
        }
        Err(error) => error.body().to_string(),
    }
}

fn close_reason(error: &axum::Error) -> (u16, String) {
    let text = error.to_string();
    let code = if text.contains("too long") || text.contains("Space limit") {
        1009
    } else if text.contains("UTF-8") || text.contains("utf-8") {
        1007
    } else {
        1002
    };
    (code, text)
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    // A close reason must fit in a control frame (125 bytes with the code).
    let reason: String = reason.chars().take(100).collect();
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
    // Wait briefly for the client's close reply so the TCP close is orderly.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Subscribes over WebSocket and reconnects after `?after=LAST` when the connection is lost,
/// backing off with jitter while attempts keep failing. A 410 (its cursor from before a
/// restart, or evicted) resumes at once from the oldest id kept, the loss recorded with its
/// cause.
pub async fn run_client(subscriber: &Subscriber, sink: &mut dyn DeliverySink) {
    let counters = &subscriber.counters;
    let mut cursor = subscriber.after;
    let mut backoff = Backoff::new(&subscriber.settings);
    let mut attempts = 0u64;
    let mut ready = false;
    loop {
        if attempts > 0 {
            ClientCounters::add(&counters.reconnects);
        }
        attempts += 1;
        let outcome = tokio::select! {
            biased;
            _ = subscriber.stop.cancelled() => return,
            outcome = connect(subscriber, cursor) => outcome,
        };
        let mut socket = match outcome {
            Ok(socket) => socket,
            Err(error) => {
                tracing::debug!("WebSocket connect failed: {error}");
                ClientCounters::add(&counters.errors);
                if let Some(gone) = gone_of(&*error) {
                    gone.record(subscriber, sink);
                    cursor = Some(gone.resume_after);
                    continue;
                }
                ClientCounters::add(&counters.retries);
                if !subscriber.pause(backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        backoff.succeeded();
        if !ready {
            ready = true;
            ClientCounters::add(&counters.ready);
        }
        loop {
            let frame = tokio::select! {
                _ = subscriber.stop.cancelled() => {
                    let _ = socket.close(None).await;
                    // Read until the server's close reply so both ends count the same bytes.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                        while let Some(Ok(_)) = socket.next().await {}
                    }).await;
                    return;
                }
                frame = socket.next() => frame,
            };
            match frame {
                Some(Ok(tungstenite::Message::Text(text))) => {
                    let received_at = Instant::now();
                    match serde_json::from_str::<ServerFrame>(text.as_str()) {
                        Ok(ServerFrame::Comment(comment)) => {
                            cursor = Some(comment.id);
                            sink.deliver(comment, received_at);
                        }
                        Ok(ServerFrame::Connected { connected }) => {
                            cursor = cursor.max(Some(connected.after));
                        }
                        Ok(ServerFrame::Other(_)) | Err(_) => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    ClientCounters::add(&counters.errors);
                    break;
                }
            }
        }
        ClientCounters::add(&counters.retries);
        if !subscriber.pause(backoff.next_delay()).await {
            return;
        }
    }
}

/// The 410 answer to a handshake, if that is what refused it.
fn gone_of(error: &(dyn std::error::Error + 'static)) -> Option<Gone> {
    match error.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Http(response) if response.status() == StatusCode::GONE => {
            Gone::parse(response.body().as_deref()?)
        }
        _ => None,
    }
}

/// The text frames a subscriber can receive.
#[derive(Deserialize)]
#[serde(untagged)]
enum ServerFrame {
    Connected {
        connected: Connected,
    },
    Comment(Comment),
    /// Acknowledgements and errors of publishes, which a subscriber does not act on.
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Connected {
    after: u64,
}

type ClientSocket = tokio_tungstenite::WebSocketStream<
    crate::net::CountingStream<tokio::net::TcpStream, crate::net::ByteMeter>,
>;

/// Opens a counted TCP connection and performs the WebSocket handshake on it.
pub async fn connect(
    subscriber: &Subscriber,
    cursor: Option<u64>,
) -> Result<ClientSocket, Box<dyn std::error::Error + Send + Sync>> {
    let stream = connect_counted(&subscriber.target, subscriber.meter.clone()).await?;
    ClientCounters::add(&subscriber.counters.connections_opened);
    ClientCounters::add(&subscriber.counters.requests);
    let url = format!(
        "ws://{}/ws?{}",
        subscriber.target.host(),
        subscriber.query(cursor)
    );
    let request = url.into_client_request()?;
    let config = tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(socket)
}
