//! `POST /admin/drop?technique=T`, on only with `--admin`: drops the live connections of one
//! technique, as a network fault would, for the browser test and fault scenarios.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::AppState;
use crate::http::error::{AppError, AppQuery};
use crate::model::technique::Technique;

#[derive(Deserialize)]
struct DropQuery {
    technique: String,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/drop", post(drop_connections))
}

async fn drop_connections(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<DropQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let technique: Technique = query.technique.parse().map_err(AppError::bad_request)?;
    let open = state
        .stats
        .technique(technique)
        .connections_open
        .load(Ordering::Relaxed);
    state.fire_drop(technique);
    Ok(Json(
        serde_json::json!({ "technique": technique.name(), "connections_signalled": open }),
    ))
}
