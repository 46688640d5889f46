//! Errors as HTTP responses: every refusal is a 4xx/5xx with a JSON body `{"error": "..."}`
//! that names the problem, and extractors whose rejections would otherwise be plain text.

use std::fmt;
use std::marker::PhantomData;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::feed::{FeedError, NewComment};

/// An error response: a status and a message naming the problem.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (503 responses).
    pub retry_after: Option<u64>,
    /// Extra machine-readable fields merged into the JSON body.
    pub details: Option<serde_json::Value>,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The JSON body, `{"error": message, ...details}`.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "error": self.message });
        if let (Some(serde_json::Value::Object(details)), Some(map)) =
            (&self.details, body.as_object_mut())
        {
            for (key, value) in details {
                map.insert(key.clone(), value.clone());
            }
        }
        body
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<FeedError> for AppError {
    fn from(error: FeedError) -> Self {
        let message = error.to_string();
        match error {
            FeedError::CursorExpired { cursor, oldest } => Self {
                status: StatusCode::GONE,
                message,
                retry_after: None,
                details: Some(
                    serde_json::json!({ "cursor": cursor, "oldest": oldest, "cause": "evicted" }),
                ),
            },
            // Also 410: the cursor is gone for good. `cause` and `first_id` let a client tell
            // a restart from an eviction and count its loss as the restart's.
            FeedError::CursorFromEarlierFeed {
                cursor,
                first,
                oldest,
            } => Self {
                status: StatusCode::GONE,
                message,
                retry_after: None,
                details: Some(serde_json::json!({
                    "cursor": cursor,
                    "oldest": oldest,
                    "first_id": first,
                    "cause": "restart",
                })),
            },
            FeedError::CursorAhead { cursor, last } => Self {
                status: StatusCode::BAD_REQUEST,
                message,
                retry_after: None,
                details: Some(serde_json::json!({ "cursor": cursor, "last": last })),
            },
            // A backend outage is temporary: the client retries (a publisher) or resumes from
            // its cursor (a subscriber) after the delay.
            FeedError::Lagged { .. } | FeedError::Unavailable { .. } | FeedError::Closed => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
            },
        }
    }
}

/// `Query<T>` whose rejection is a JSON 400 naming the parameter.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        check_query_utf8(parts.uri.query().unwrap_or(""))?;
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

/// Refuses a query whose names or values are not UTF-8 once percent-decoded: the form decoder
/// would replace the bad bytes with U+FFFD, so `user=%FF%FE` and `user=%FE%FF` would both
/// become the same user.
fn check_query_utf8(query: &str) -> Result<(), AppError> {
    for pair in query.split('&') {
        let name = pair.split('=').next().unwrap_or("");
        if pair.split('=').any(|part| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .is_err()
        }) {
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            return Err(AppError::bad_request(format!(
                "bad query string: `{name}` is not UTF-8 once percent-decoded"
            )));
        }
    }
    Ok(())
}

fn query_error(rejection: QueryRejection) -> AppError {
    AppError::new(
        rejection.status(),
        format!("bad query string: {}", rejection.body_text()),
    )
}

/// `Json<T>` whose rejection is a JSON 4xx (413 for an oversized body) naming the problem.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> AppError {
    if let Some(timed_out) = crate::http::body::timed_out(&rejection) {
        return AppError::new(StatusCode::REQUEST_TIMEOUT, timed_out.to_string());
    }
    let status = rejection.status();
    let message = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a JSON body with `Content-Type: application/json`".to_string()
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            format!("request body too large: {}", rejection.body_text())
        }
        _ => format!("bad JSON body: {}", rejection.body_text()),
    };
    AppError::new(status, message)
}

/// A `T` that must come from a JSON object. serde's derived structs also accept an array of
/// their fields in order, which let a body such as `["alice",null,"hi"]` publish a comment.
pub struct ObjectOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Object(PhantomData))
            .map(ObjectOnly)
    }
}

/// Checks a user id from a query or a body: 1 to 64 bytes, no control characters.
pub fn check_user(field: &str, value: &str) -> Result<(), AppError> {
    if value.is_empty() || value.len() > 64 || value.chars().any(char::is_control) {
        return Err(AppError::bad_request(format!(
            "`{field}` must be a user id of 1 to 64 bytes without control characters"
        )));
    }
    Ok(())
}

/// An optional `user` query parameter, checked.
pub fn checked_user(user: Option<String>) -> Result<Option<String>, AppError> {
    if let Some(user) = &user {
        check_user("user", user)?;
    }
    Ok(user)
}

/// Validates a comment from any entry point (HTTP or WebSocket).
pub fn checked_comment(
    max_comment_bytes: usize,
    from: String,
    to: Option<String>,
    text: String,
) -> Result<NewComment, AppError> {
    check_user("from", &from)?;
    if let Some(to) = &to {
        check_user("to", to)?;
    }
    let limit = max_comment_bytes;
    if text.len() > limit {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("`text` is {} bytes; the limit is {limit} bytes", text.len()),
        ));
    }
    Ok(NewComment { from, to, text })
}
