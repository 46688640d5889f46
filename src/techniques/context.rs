//! What a technique's handlers may use of the server, and no more: the feed, the settings,
//! their own technique's counters, the shutdown and drop signals, and the session guard
//! that makes shutdown wait for upgraded WebSockets.

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
/// connections hold and arms a fresh one for connections made later.
#[derive(Debug, Default)]
pub struct DropSwitch {
    token: Mutex<CancellationToken>,
}

impl DropSwitch {
    /// The token live connections watch.
    pub fn signal(&self) -> CancellationToken {
        self.lock().clone()
    }

    /// Drops every connection holding the current token.
    pub fn fire(&self) {
        std::mem::take(&mut *self.lock()).cancel();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CancellationToken> {
        // Nothing panics while holding it; a poisoned lock still holds a valid token.
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }
}
