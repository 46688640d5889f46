//! `POST /admin/drop?technique=T`, on only with `--admin`: drops the live connections of one
//! technique, as a network fault would, for the browser test and fault scenarios. With
//! `users=a,b,c` only those users' connections are dropped; with `share=0.1` a random tenth
//! of the users with live connections (the answer names them).

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
    /// Comma-separated user ids.
    users: Option<String>,
    /// A fraction of the users, more than 0 and at most 1.
    share: Option<f64>,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/drop", post(drop_connections))
}

async fn drop_connections(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<DropQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let technique: Technique = query.technique.parse().map_err(AppError::bad_request)?;
    let switch = state.drop_switch(technique);
    match (query.users, query.share) {
        (Some(_), Some(_)) => Err(AppError::bad_request("give `users` or `share`, not both")),
        (Some(users), None) => {
            let dropped = switch.fire_users(users.split(',').filter(|u| !u.is_empty()));
            Ok(Json(
                serde_json::json!({ "technique": technique.name(), "users_dropped": dropped }),
            ))
        }
        (None, Some(share)) => {
            if !(share.is_finite() && share > 0.0 && share <= 1.0) {
                return Err(AppError::bad_request(format!(
                    "`share` is {share}; it must be more than 0 and at most 1"
                )));
            }
            let dropped = switch.fire_share(share);
            Ok(Json(
                serde_json::json!({ "technique": technique.name(), "users_dropped": dropped }),
            ))
        }
        (None, None) => {
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
    }
}
