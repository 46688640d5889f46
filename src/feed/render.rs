//! What every backend shares about a comment's form: the publish time is read here, and the
//! wire JSON is rendered here once per comment, so a backend only stores and orders, and
//! every technique sends the very same bytes whatever the backend.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::model::comment::{Comment, NewComment, now_micros};
use crate::model::technique::Technique;

/// A comment as the feed hands it out, with its wire JSON rendered once so every technique
/// (and every subscriber: the `Arc<str>` is shared, not copied) sends the very same bytes.
#[derive(Debug)]
pub struct StoredComment {
    /// The decoded comment, for filtering by recipient.
    pub comment: Comment,
    /// `serde_json` rendering of `comment`, shared by all techniques.
    pub json: Arc<str>,
    /// Each technique's own framing of `json` (an SSE event, say), made by the first
    /// subscriber that sends it and shared by the rest: a broadcast to N subscribers
    /// renders it once, not N times.
    framed: [OnceLock<Bytes>; Technique::COUNT],
}

impl StoredComment {
    /// Renders `comment`'s wire JSON: `{"id":..,"from":..,"to":..,"text":..,"published_at_us":..}`
    /// in `Comment`'s field order. A backend that reads comments back (from a broker) calls
    /// this too, so the bytes do not depend on which instance published.
    pub fn new(comment: Comment) -> Self {
        let json: Arc<str> = serde_json::to_string(&comment)
            .expect("a comment of strings and integers always serialises")
            .into();
        Self {
            comment,
            json,
            framed: Default::default(),
        }
    }

    /// `technique`'s framing of this comment, rendered by `render` the first time it is asked
    /// for. Every caller for one technique must pass the same `render`.
    pub fn framed(&self, technique: Technique, render: impl FnOnce(&Self) -> Bytes) -> Bytes {
        self.framed[technique.index()]
            .get_or_init(|| render(self))
            .clone()
    }

    /// `json` as `Bytes` over `json`'s own allocation (no copy), for senders that take
    /// `Bytes` (a WebSocket text frame); pass it to [`Self::framed`] to make it once per
    /// comment rather than once per subscriber.
    pub fn json_as_bytes(&self) -> Bytes {
        Bytes::from_owner(SharedJson(self.json.clone()))
    }

    /// Whether a subscriber named `user` (or anonymous, `None`) should receive this comment.
    pub fn is_for(&self, user: Option<&str>) -> bool {
        match (&self.comment.to, user) {
            (None, _) => true,
            (Some(to), Some(user)) => to == user,
            (Some(_), None) => false,
        }
    }
}

/// `Arc<str>` as the `AsRef<[u8]>` owner `Bytes::from_owner` takes.
struct SharedJson(Arc<str>);

impl AsRef<[u8]> for SharedJson {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A comment stamped with its publish time, waiting for the backend to give it an id.
// Stamped before the backend is called, so a networked backend's hop counts in the delivery
// latency the lab measures, as it would for a real user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The author's user id.
    pub from: String,
    /// The recipient's user id; `None` means everyone.
    pub to: Option<String>,
    /// The comment itself.
    pub text: String,
    /// When the server accepted it, microseconds since the Unix epoch.
    pub published_at_us: u64,
}

impl Draft {
    /// Stamps `new` with the current time.
    pub fn stamp(new: NewComment) -> Self {
        Self {
            from: new.from,
            to: new.to,
            text: new.text,
            published_at_us: now_micros(),
        }
    }

    /// The comment under the id the backend gave it, rendered.
    pub fn with_id(self, id: u64) -> StoredComment {
        StoredComment::new(Comment {
            id,
            from: self.from,
            to: self.to,
            text: self.text,
            published_at_us: self.published_at_us,
        })
    }
}
