//! The checked scenario, as the runner uses it and `summary.json` records it: every value in
//! range, sweeps expanded into lists. Reading and checking a scenario file is the load
//! generator's (`loadgen::scenario`); this is the plain data both sides of that line share.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::faults::Faults;
use super::technique::Technique;

/// Who each comment is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Audience {
    /// Every comment to everyone: each subscriber receives each comment.
    Broadcast,
    /// Each comment to one subscriber, in turn: the study note's notification feed.
    PerUser,
}

impl Audience {
    pub fn name(self) -> &'static str {
        match self {
            Audience::Broadcast => "broadcast",
            Audience::PerUser => "per-user",
        }
    }
}

/// A checked scenario: every value in range, sweeps expanded into lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    /// What the scenario shows, and which claim of the study note it tests.
    pub description: String,
    pub techniques: Vec<Technique>,
    /// Client counts to sweep (one cell per technique and count).
    pub clients: Vec<u32>,
    /// Publish rates to sweep, comments per second, open loop.
    pub rates: Vec<f64>,
    /// Comment text sizes to sweep, in bytes.
    pub payload_bytes: Vec<u32>,
    pub audience: Audience,
    /// Measured time of each cell, after the warm-up.
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    /// Time before measuring, excluded from every figure.
    #[serde(with = "humantime_serde_compat")]
    pub warmup: Duration,
    /// Longest wait after the last publish for late deliveries before counting losses.
    #[serde(with = "humantime_serde_compat")]
    pub drain: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub long_poll_timeout: Duration,
    /// The server's SSE heartbeat interval when the load generator starts the server.
    #[serde(with = "humantime_serde_compat")]
    pub sse_heartbeat: Duration,
    /// The server's per-subscriber queue when the load generator starts the server.
    pub subscriber_queue: u32,
    /// Faults injected in every cell (`[faults]`); absent from runs made without.
    #[serde(default, skip_serializing_if = "Faults::is_empty")]
    pub faults: Faults,
}

/// One cell of a scenario: a technique at one point of every sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CellSpec {
    pub technique: Technique,
    pub clients: u32,
    pub rate: f64,
    pub payload_bytes: u32,
}

impl Scenario {
    /// The cells in run order: sweeps outermost, techniques innermost, so cells that are
    /// compared with each other run close together in time.
    pub fn cells(&self) -> Vec<CellSpec> {
        let mut cells = Vec::new();
        for &payload_bytes in &self.payload_bytes {
            for &rate in &self.rates {
                for &clients in &self.clients {
                    for &technique in &self.techniques {
                        cells.push(CellSpec {
                            technique,
                            clients,
                            rate,
                            payload_bytes,
                        });
                    }
                }
            }
        }
        cells
    }

    /// Wall time of one cell, before connection set-up and tear-down.
    pub fn cell_time(&self) -> Duration {
        self.warmup + self.duration
    }
}

/// Durations in results files as humantime strings ("2s", "500ms"), as in scenario files.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*duration).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
