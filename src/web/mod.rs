//! The browser page (`GET /`): the same feed in four panes, one per technique, each
//! subscribed with the browser's own API (`fetch` on an interval, a long-poll `fetch` loop,
//! `WebSocket`, `EventSource`). The HTML, script and style live beside this file and are
//! compiled in with `include_str!`, so the server needs no build step, no asset folder at run
//! time and no network beyond itself.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");
const FAVICON_SVG: &str = include_str!("favicon.svg");
/// `GET /seven`: seven SSE streams from one page, the browser's per-origin connection limit
/// over HTTP/1.1 against HTTP/2.
const SEVEN_HTML: &str = include_str!("seven.html");
const SEVEN_JS: &str = include_str!("seven.js");

/// Only this origin's own script, style and sockets: comments are rendered as text, and this
/// keeps a future slip from turning into script injection (the study note's weak point).
/// CSP 3's `'self'` also covers `ws:` to the same host and port.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Routes of the page and its assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset(FAVICON_SVG, "image/svg+xml") }),
        )
        .route(
            "/seven",
            get(|| async { asset(SEVEN_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/seven.js",
            get(|| async { asset(SEVEN_JS, "text/javascript; charset=utf-8") }),
        )
        // Browsers ask for /favicon.ico whatever the page says; an empty answer keeps the
        // console (and the "other" account) free of 404s.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

/// One embedded file. `no-cache` makes the browser revalidate, so a rebuilt server's page
/// is the one shown after a reload.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}
