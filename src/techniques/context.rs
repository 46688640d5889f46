//! What a technique's handlers may use of the server, and no more: the feed, the settings,
//! their own technique's counters, the shutdown and drop signals, and the session guard
//! that makes shutdown wait for upgraded WebSockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::accounting::Stats;
use crate::feed::Feed;
use crate::model::ServerConfig;
use crate::model::stats::Counters;
use crate::model::technique::Technique;

/// The state every handler of one technique shares.
#[derive(Clone)]
pub struct Context {
    /// The technique these handlers serve; their counters are this technique's account.
    pub technique: Technique,
    pub feed: Arc<dyn Feed>,
    pub config: Arc<ServerConfig>,
    pub stats: Arc<Stats>,
    /// Cancelled on SIGINT/SIGTERM: streams close cleanly, long polls return.
    pub shutdown: CancellationToken,
    /// Fired when the admin endpoint drops this technique's connections.
    pub drops: Arc<DropSwitch>,
    /// Every upgraded WebSocket holds a receiver of this channel until its session ends.
    /// axum's graceful shutdown waits only for HTTP connections, and an upgraded socket is no
    /// longer one: without this, `serve` returned (and the binary exited) before sessions had
    /// sent their 1001 close frames, and clients saw resets instead.
    pub sessions: Arc<watch::Sender<()>>,
}

impl Context {
    /// This technique's live counters.
    pub fn counters(&self) -> &Counters {
        self.stats.technique(self.technique)
    }

    /// A token cancelled when the admin endpoint drops this technique's connections.
    pub fn drop_signal(&self) -> CancellationToken {
        self.drops.signal()
    }

    /// As `drop_signal`, for a connection of `user`: with `--admin` the admin endpoint can
    /// also drop this user's connections alone.
    pub fn drop_signal_for(&self, user: Option<&str>) -> CancellationToken {
        match user {
            Some(user) if self.config.admin => self.drops.signal_for(user),
            _ => self.drops.signal(),
        }
    }

    /// Held by a WebSocket session for its lifetime, so shutdown waits for its close frame.
    pub fn session_guard(&self) -> watch::Receiver<()> {
        self.sessions.subscribe()
    }

    /// Books a poll response, noting whether it was empty.
    pub fn record_page(&self, comments: usize) {
        self.stats.record_page(self.technique, comments);
    }
}

/// A drop signal that can fire more than once: each firing cancels the token the live
/// connections hold and arms a fresh one for connections made later. With `--admin` a
/// named user's connections hold a child token of their own, so a fault scenario can drop
/// some users' connections and not the others'.
#[derive(Debug, Default)]
pub struct DropSwitch {
    tokens: Mutex<Tokens>,
}

#[derive(Debug, Default)]
struct Tokens {
    all: CancellationToken,
    /// Per user, children of `all`. Entries stay until dropped or `all` fires (the admin
    /// endpoint is a lab tool: one entry per user seen while it is on).
    users: HashMap<String, CancellationToken>,
}

impl DropSwitch {
    /// The token live connections watch.
    pub fn signal(&self) -> CancellationToken {
        self.lock().all.clone()
    }

    /// The token a connection of `user` watches: fired by `fire` and by `fire_users`.
    pub fn signal_for(&self, user: &str) -> CancellationToken {
        let mut tokens = self.lock();
        let all = tokens.all.clone();
        tokens
            .users
            .entry(user.to_string())
            .or_insert_with(|| all.child_token())
            .clone()
    }

    /// Drops every connection holding the current token.
    pub fn fire(&self) {
        let mut tokens = self.lock();
        tokens.users.clear();
        std::mem::take(&mut tokens.all).cancel();
    }

    /// Drops the connections of these users; returns those that had any since the last
    /// drop of theirs.
    pub fn fire_users<'a>(&self, users: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut tokens = self.lock();
        let mut fired = Vec::new();
        for user in users {
            if let Some(token) = tokens.users.remove(user) {
                token.cancel();
                fired.push(user.to_string());
            }
        }
        fired
    }

    /// Drops the connections of a share (0 to 1, at least one user) of the users that hold
    /// a token, picked at random; returns them.
    pub fn fire_share(&self, share: f64) -> Vec<String> {
        let mut users: Vec<String> = self.lock().users.keys().cloned().collect();
        if users.is_empty() {
            return users;
        }
        let count = ((share * users.len() as f64).ceil() as usize).clamp(1, users.len());
        // A partial Fisher-Yates shuffle with xorshift: no randomness crate for this.
        let mut seed = crate::model::comment::now_micros() | 1;
        for i in 0..count {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let j = i + (seed % (users.len() - i) as u64) as usize;
            users.swap(i, j);
        }
        users.truncate(count);
        self.fire_users(users.iter().map(String::as_str))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        // Nothing panics while holding it; a poisoned lock still holds valid tokens.
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_can_be_dropped_alone_or_all_together() {
        let switch = DropSwitch::default();
        let (a, b, anonymous) = (
            switch.signal_for("a"),
            switch.signal_for("b"),
            switch.signal(),
        );
        assert_eq!(switch.fire_users(["a", "nobody"]), ["a"]);
        assert!(a.is_cancelled() && !b.is_cancelled() && !anonymous.is_cancelled());
        // A reconnecting `a` gets a fresh token.
        assert!(!switch.signal_for("a").is_cancelled());
        assert_eq!(switch.fire_share(0.01).len(), 1);
        switch.fire();
        assert!(b.is_cancelled() && anonymous.is_cancelled());
        assert!(!switch.signal_for("b").is_cancelled());
    }
}
