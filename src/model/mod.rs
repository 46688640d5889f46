//! The plain data every other module shares, using none of them: the technique list, the
//! comment, where a client connects, the server's settings, the `/stats` wire types, the
//! checked scenario and the results of a run.
//!
//! Module arrows point one way (a test in `tests/` checks it):
//! `model` <- `sys` <- `net` <- `feed`, `http` <- `techniques` <- `server`;
//! `model` <- `report` <- `loadgen` (which also drives `techniques` and `http`).

pub mod comment;
pub mod faults;
pub mod network;
pub mod results;
pub mod scenario;
pub mod server_config;
pub mod stats;
pub mod technique;
pub mod wire;

pub use server_config::{FeedBackend, ServerConfig};
pub use technique::Technique;

/// Where a client connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's socket address.
    pub addr: std::net::SocketAddr,
}

impl Target {
    /// The `Host` header value.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}
