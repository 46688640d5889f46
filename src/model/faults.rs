//! Faults a scenario injects (its `[faults]` section, checked) and what a cell measured of
//! them: reconnects, recovery time after a dropped connection, what a restart lost, the
//! time the server took to notice clients that left, and the connections open over time.
//! Plain data: the load generator fills it in, the report draws it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The checked `[faults]` section; empty when the scenario has none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Drop a share of the subscribers' connections at intervals; several entries run side
    /// by side (drops from both ends in one cell), each on its own subscribers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<DropFault>,
    /// Moments (from the window's start) at which the server is stopped and started again
    /// on the same address.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "durations")]
    pub restart: Vec<Duration>,
    /// Which server instance `restart` stops and starts (0, the first, unless set): with
    /// several instances over Redis, the others keep serving meanwhile.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restart_instance: u32,
    /// A share of the subscribers closes cleanly, for good, at one moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_page: Option<ClosePage>,
    /// A share of the subscribers read slowly, for the whole cell; each cell is run again
    /// without them, as its control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<Slow>,
    /// A share of the subscribers' network disappears (no FIN, no RST) at one moment; the
    /// cell runs once per server setting listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vanish: Option<Vanish>,
}

/// `vanish = { at = "3s", share = 0.1, settings = [...] }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vanish {
    #[serde(with = "duration")]
    pub at: Duration,
    pub share: f64,
    /// The server settings to run the cell with, one run each (at least one).
    pub settings: Vec<LivenessSettings>,
}

/// The server's liveness settings for a vanish run; unset ones keep the server's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LivenessSettings {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub sse_heartbeat: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub ws_ping_interval: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub ws_pong_timeout: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub user_timeout: Option<Duration>,
}

impl LivenessSettings {
    /// "heartbeat 5s · ping 5s + 5s · user timeout 3s", or "server defaults".
    pub fn label(&self) -> String {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let mut parts = Vec::new();
        if let Some(h) = self.sse_heartbeat {
            parts.push(format!("heartbeat {}", d(h)));
        }
        match (self.ws_ping_interval, self.ws_pong_timeout) {
            (Some(i), Some(t)) => parts.push(format!("ping {} + {}", d(i), d(t))),
            (Some(i), None) => parts.push(format!("ping {}", d(i))),
            (None, Some(t)) => parts.push(format!("pong timeout {}", d(t))),
            (None, None) => {}
        }
        if let Some(u) = self.user_timeout {
            parts.push(format!("user timeout {}", d(u)));
        }
        if parts.is_empty() {
            "server defaults".into()
        } else {
            parts.join(" · ")
        }
    }
}

/// What one vanish run measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VanishRun {
    pub settings: LivenessSettings,
    /// Subscribers whose network disappeared.
    pub vanished: u32,
    /// From the moment their packets were black-holed to each decrement of the server's
    /// `connections_open`; those still open when the window ended are `incomplete`.
    pub detection: TimeSummary,
    /// How long after the vanish the window went on: the longest detection it could see.
    pub watched_ms: u64,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl Faults {
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty()
            && self.restart.is_empty()
            && self.close_page.is_none()
            && self.slow.is_none()
            && self.vanish.is_none()
    }

    /// How many of `clients` subscribers are slow: the first ones.
    pub fn slow_count(&self, clients: u32) -> u32 {
        self.slow.map_or(0, |s| {
            ((s.share * f64::from(clients)).ceil() as u32).clamp(1, clients)
        })
    }
}

/// `slow = { share = 0.05, read_bytes_per_s = 2000 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slow {
    pub share: f64,
    pub read_bytes_per_s: u64,
}

/// A cell with slow subscribers against its control, the same cell run without them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SlowComparison {
    pub slow_subscribers: u32,
    pub read_bytes_per_s: u64,
    /// The other subscribers' latency with the slow ones present, and in the control.
    pub fast_p50_us: u64,
    pub fast_p99_us: u64,
    pub control_p50_us: u64,
    pub control_p99_us: u64,
    /// `fast_p99_us / control_p99_us`: the goal is at most 1.2.
    pub p99_ratio: f64,
    /// Comments the fast subscribers missed (zero expected), and the slow ones.
    pub fast_missing: u64,
    pub slow_missing: u64,
    pub slow_delivered: u64,
    /// The server's peak resident memory with the slow subscribers, and in the control.
    pub peak_rss_bytes: u64,
    pub control_peak_rss_bytes: u64,
    /// Subscribers the server dropped as too slow, stalled, unresponsive or for the TCP user
    /// timeout (whole cell; the control's counts only those dropped as too slow).
    pub dropped: u64,
    pub control_dropped: u64,
    /// Connections the slow subscribers made after their first: each a drop they resumed from.
    pub slow_resumed: u64,
}

/// Which end drops a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// The server, through its admin endpoint (`POST /admin/drop?technique=T&users=...`).
    Server,
    /// The subscriber, by closing or aborting its own socket.
    Client,
}

/// How a client-side drop ends the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// `shutdown(SHUT_WR)` then close: a FIN (data still in flight draws the kernel's RST).
    Close,
    /// `SO_LINGER` 0 then close: an RST at once, as a crashed middlebox or process would.
    Reset,
}

/// A drop entry's label for reports: "server drop", "client reset (RST)".
pub fn drop_label(side: Side, how: How) -> &'static str {
    match (side, how) {
        (Side::Server, _) => "server drop",
        (Side::Client, How::Close) => "client close (FIN)",
        (Side::Client, How::Reset) => "client reset (RST)",
    }
}

/// `drop = { every = "2s", share = 0.1, side = "server", how = "close" }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DropFault {
    #[serde(with = "duration")]
    pub every: Duration,
    /// Fraction of the subscribers dropped each time (at least one).
    pub share: f64,
    pub side: Side,
    /// How a client-side drop ends its socket; the server's drops abort the stream.
    pub how: How,
}

/// `close_page = { at = "3s", share = 0.1 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClosePage {
    #[serde(with = "duration")]
    pub at: Duration,
    pub share: f64,
}

/// What kind of fault happened at a moment of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Drop,
    Restart,
    ClosePage,
    Vanish,
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub kind: FaultKind,
    /// When it was fired, milliseconds after the window began.
    pub at_ms: u64,
    /// Subscribers it affected (0 for a restart: all of them).
    pub subscribers: u32,
}

/// Times in microseconds over a set of events, and how many never completed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSummary {
    /// Events measured.
    pub count: u64,
    /// Events that never completed before the cell ended (not in the percentiles).
    pub incomplete: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl TimeSummary {
    /// Nearest-rank percentiles of `times` (microseconds).
    pub fn of(mut times: Vec<u64>, incomplete: u64) -> Self {
        times.sort_unstable();
        let rank = |q: f64| {
            if times.is_empty() {
                0
            } else {
                let i = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
                times[i]
            }
        };
        Self {
            count: times.len() as u64,
            incomplete,
            p50_us: rank(0.5),
            p99_us: rank(0.99),
            max_us: times.last().copied().unwrap_or(0),
        }
    }
}

/// Recovery from one `drop` entry's drops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DropRecovery {
    pub side: Side,
    pub how: How,
    pub drops: u64,
    pub recovery: TimeSummary,
}

/// The server's connections open for the cell's technique at one moment (`/stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSample {
    /// Milliseconds after the window began.
    pub at_ms: u64,
    pub open: u64,
}

/// What a cell measured of its faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultResults {
    pub events: Vec<FaultEvent>,
    /// Subscriber connections dropped (by either side).
    pub drops: u64,
    /// Time from a drop to the subscriber's first delivery on a connection made after it,
    /// over every drop of the cell.
    pub recovery: TimeSummary,
    /// The same, for each `drop` entry of the scenario, in its order.
    #[serde(default)]
    pub recovery_by_drop: Vec<DropRecovery>,
    /// Restarts of the server fired in the cell.
    pub restarts: u64,
    /// Time from a restart to each of the restarted instance's subscribers' first comment
    /// over a connection made after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_recovery: Option<TimeSummary>,
    /// Time from a clean close (`close_page`) to the server's `connections_open` having
    /// fallen by one more: the k-th fastest notice is the k-th decrement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_detection: Option<TimeSummary>,
    /// The server's connections open through the window, about every 20 ms.
    pub connections_open: Vec<OpenSample>,
    /// Faults that could not be injected, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// With slow subscribers: the cell against its control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<SlowComparison>,
    /// With vanishing subscribers: one entry per server setting run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vanish: Vec<VanishRun>,
}

/// A `Duration` as a humantime string, as in scenario files.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        humantime::parse_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An optional `Duration` as a humantime string.
mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A list of durations as humantime strings.
mod durations {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let texts: Vec<String> = list
            .iter()
            .map(|d| humantime::format_duration(*d).to_string())
            .collect();
        texts.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| humantime::parse_duration(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = TimeSummary::of((1..=100).collect(), 2);
        assert_eq!((s.count, s.incomplete), (100, 2));
        assert_eq!((s.p50_us, s.p99_us, s.max_us), (50, 99, 100));
        assert_eq!(TimeSummary::of(Vec::new(), 0), TimeSummary::default());
    }

    #[test]
    fn faults_round_trip_through_json() {
        let faults = Faults {
            drop: vec![DropFault {
                every: Duration::from_secs(2),
                share: 0.1,
                side: Side::Client,
                how: How::Reset,
            }],
            restart: vec![Duration::from_millis(5500)],
            restart_instance: 1,
            close_page: None,
            slow: None,
            vanish: None,
        };
        let json = serde_json::to_string(&faults).unwrap();
        assert!(json.contains("\"5s 500ms\""), "{json}");
        assert_eq!(serde_json::from_str::<Faults>(&json).unwrap(), faults);
        assert!(Faults::default().is_empty());
    }
}
