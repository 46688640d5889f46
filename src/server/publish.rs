//! `POST /comments`: the publish endpoint, accounted apart from the four techniques.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{AppError, AppJson, ObjectOnly, check_user};
use super::{Account, AppState, ServerConfig};
use crate::feed::NewComment;

/// The body of `POST /comments` (and, without `from`, of a WebSocket publish).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub from: String,
    #[serde(default)]
    pub to: Option<String>,
    pub text: String,
}

pub fn routes(config: &ServerConfig) -> Router<AppState> {
    // The body may hold the text JSON-escaped (up to 6 bytes per byte) plus the user ids; the
    // text's own limit is checked after parsing, so an oversized comment is a 413 either way.
    let body_limit = config
        .max_comment_bytes
        .saturating_mul(6)
        .saturating_add(1024);
    Router::new()
        .route("/comments", post(publish))
        .layer(DefaultBodyLimit::max(body_limit))
}

async fn publish(
    State(state): State<AppState>,
    AppJson(ObjectOnly(request)): AppJson<ObjectOnly<PublishRequest>>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let comment = checked_comment(&state, request.from, request.to, request.text)?;
    // An outage is a 503 with Retry-After (`From<FeedError> for AppError`).
    let stored = state.feed.publish(comment).await?;
    state
        .stats
        .account(Account::Publish)
        .comments_published
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": stored.comment.id })),
    ))
}

/// Validates a comment from any entry point (HTTP or WebSocket).
pub fn checked_comment(
    state: &AppState,
    from: String,
    to: Option<String>,
    text: String,
) -> Result<NewComment, AppError> {
    check_user("from", &from)?;
    if let Some(to) = &to {
        check_user("to", to)?;
    }
    let limit = state.config.max_comment_bytes;
    if text.len() > limit {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("`text` is {} bytes; the limit is {limit} bytes", text.len()),
        ));
    }
    Ok(NewComment { from, to, text })
}
