//! The browser page (`GET /`): the same feed in four panes, one per technique.

use axum::Router;

use crate::server::AppState;

/// Routes of the page and its assets.
pub fn routes() -> Router<AppState> {
    Router::new()
}
