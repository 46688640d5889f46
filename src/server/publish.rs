//! `POST /comments`: the publish endpoint, accounted apart from the four techniques.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::{AppState, ServerConfig};
use crate::http::error::{AppError, AppJson, ObjectOnly, checked_comment};
use crate::model::stats::Account;

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
    let body_limit = config.max_message_bytes();
    Router::new()
        .route("/comments", post(publish))
        .layer(DefaultBodyLimit::max(body_limit))
}

async fn publish(
    State(state): State<AppState>,
    AppJson(ObjectOnly(request)): AppJson<ObjectOnly<PublishRequest>>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let comment = checked_comment(
        state.config.max_comment_bytes,
        request.from,
        request.to,
        request.text,
    )?;
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
