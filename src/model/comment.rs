//! The comment as publishers hand it in and as every technique sends it: plain data, and
//! the clock its publish time is read from.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One comment of the feed, as it appears on the wire in every technique.
// The field order is the wire order: the JSON every technique sends is serialised from this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Strictly increasing, assigned by the feed; the cursor every technique resumes from.
    pub id: u64,
    /// The author's user id.
    pub from: String,
    /// The recipient's user id; `None` means everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The comment itself, shown as text, never as HTML.
    pub text: String,
    /// The server's publish time, microseconds since the Unix epoch.
    pub published_at_us: u64,
}

/// What a publisher hands the feed; the feed adds the id and the publish time.
#[derive(Debug, Clone)]
pub struct NewComment {
    /// The author's user id.
    pub from: String,
    /// The recipient's user id; `None` means everyone.
    pub to: Option<String>,
    /// The comment itself.
    pub text: String,
}

/// Microseconds since the Unix epoch, the clock in `Comment::published_at_us`.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
