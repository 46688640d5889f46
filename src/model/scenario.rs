//! The checked scenario, as the runner uses it and `summary.json` records it: every value in
//! range, sweeps expanded into lists. Reading and checking a scenario file is the load
//! generator's (`loadgen::scenario`); this is the plain data both sides of that line share.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::faults::Faults;
use super::network::{Link, Network};
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
    /// Subscribers per user: browser tabs of one person, each expecting that user's
    /// comments (1, the default, is one subscriber per user).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub tabs: u32,
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
    /// The emulated link between clients and server; `None` (no `[network]` table) is
    /// plain loopback, as every run before links were emulated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// How the load generator deploys the server for each cell, swept like the other keys:
    /// one process with its in-memory feed (the default), or instances over a Redis feed.
    #[serde(
        default = "Deployment::single",
        skip_serializing_if = "Deployment::are_single"
    )]
    pub deployments: Vec<Deployment>,
    /// Which instances the publisher posts to when there are several.
    #[serde(default, skip_serializing_if = "is_default")]
    pub publish_to: PublishTo,
    /// Whether the Redis the load generator starts keeps its data on disk.
    #[serde(default, skip_serializing_if = "is_default")]
    pub redis_persistence: RedisPersistence,
    /// The HTTP versions the subscribers speak, swept like the other keys.
    #[serde(
        default = "HttpVersion::only_h1",
        skip_serializing_if = "HttpVersion::is_only_h1"
    )]
    pub http: Vec<HttpVersion>,
    /// How HTTP/2 subscribers share connections.
    #[serde(default, skip_serializing_if = "is_default")]
    pub h2_connections: H2Connections,
    /// How many times each cell runs (`repeat = N`), interleaved: every cell once, then every
    /// cell again, so a slow minute of the machine hits every technique alike. 1 (the
    /// default, every run before the key) is left out of results files.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub repeat: u32,
    /// `floor = true`: each SSE and WebSocket cell runs a second time against the floor
    /// server (`pushlab-floor`, a bare tokio server writing the same bytes), and the report
    /// holds pushlab's figures against it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub floor: bool,
    /// `memory_chart = true`: the report draws server memory per idle connection per cell
    /// (runs before the key, which also measured it, redraw without the chart).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory_chart: bool,
    /// How the load generator spreads its subscribers over processes and source addresses.
    #[serde(default, skip_serializing_if = "is_default")]
    pub load: Load,
}

/// `[load]`: the load generator's own shape. A process may open at most 20,000 files and one
/// source address has 28k ephemeral ports per destination, so large cells need several
/// worker processes, and subscribers bound to several loopback addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Worker processes holding the subscribers (0: the load generator's own process).
    #[serde(default, skip_serializing_if = "is_default")]
    pub workers: u32,
    /// Subscribers bind to 127.0.0.2, 127.0.0.3, ... this many addresses, round robin (0:
    /// the kernel's choice, 127.0.0.1).
    #[serde(default, skip_serializing_if = "is_default")]
    pub source_addresses: u32,
}

impl Load {
    /// The source address subscriber `i` binds to, if any: 127.0.0.2 onwards.
    pub fn source_for(&self, i: u32) -> Option<std::net::IpAddr> {
        (self.source_addresses > 0).then(|| {
            let k = 2 + i % self.source_addresses;
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, (k >> 8) as u8, k as u8))
        })
    }

    /// Every source address the subscribers bind to, in turn (none: the kernel's choice).
    pub fn sources(&self) -> Vec<std::net::IpAddr> {
        (0..self.source_addresses)
            .filter_map(|k| self.source_for(k))
            .collect()
    }
}

/// The HTTP version a cell's subscribers speak (`http = ["1.1", "2"]`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum HttpVersion {
    /// HTTP/1.1: a connection per subscriber (what every run before the key measured).
    #[default]
    #[serde(rename = "1.1")]
    H1,
    /// HTTP/2 with prior knowledge (h2c); WebSocket by extended CONNECT (RFC 8441).
    #[serde(rename = "2")]
    H2,
}

impl HttpVersion {
    /// "1.1" or "2", as in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            HttpVersion::H1 => "1.1",
            HttpVersion::H2 => "2",
        }
    }

    /// "HTTP/1.1", "HTTP/2".
    pub fn label(self) -> &'static str {
        match self {
            HttpVersion::H1 => "HTTP/1.1",
            HttpVersion::H2 => "HTTP/2",
        }
    }

    /// A number for axes and sorting: 1.1 or 2.
    pub fn code(self) -> f64 {
        match self {
            HttpVersion::H1 => 1.1,
            HttpVersion::H2 => 2.0,
        }
    }

    pub fn is_default(&self) -> bool {
        *self == HttpVersion::H1
    }

    /// The default list: HTTP/1.1 only.
    pub fn only_h1() -> Vec<HttpVersion> {
        vec![HttpVersion::H1]
    }

    /// True for the default list, which results files leave out (as runs before it did).
    pub fn is_only_h1(versions: &[HttpVersion]) -> bool {
        versions == [HttpVersion::H1]
    }
}

/// The streams one HTTP/2 connection may carry at once: the server's
/// SETTINGS_MAX_CONCURRENT_STREAMS, hyper's default (`server/conn.rs` does not change it).
/// A shared connection with more subscribers would leave the rest waiting for a stream.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 200;

/// How HTTP/2 subscribers map onto connections (`h2_connections`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum H2Connections {
    /// One connection per server instance carries every subscriber's stream, as a browser
    /// multiplexes the streams of one origin.
    #[default]
    Shared,
    /// A connection per subscriber.
    PerClient,
}

impl H2Connections {
    pub fn name(self) -> &'static str {
        match self {
            H2Connections::Shared => "shared",
            H2Connections::PerClient => "per-client",
        }
    }
}

/// Where the server keeps its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedKind {
    /// In the server process: history dies with it, and only one process can serve it.
    Memory,
    /// In a Redis the load generator starts: instances share it and a restart loses nothing.
    Redis,
}

impl FeedKind {
    pub fn name(self) -> &'static str {
        match self {
            FeedKind::Memory => "memory",
            FeedKind::Redis => "redis",
        }
    }
}

/// How a cell's server is deployed: its feed, and how many instances serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Deployment {
    pub feed: FeedKind,
    pub instances: u32,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment {
            feed: FeedKind::Memory,
            instances: 1,
        }
    }
}

impl Deployment {
    /// The default list: one in-memory server, what every run before deployments used.
    pub fn single() -> Vec<Deployment> {
        vec![Deployment::default()]
    }

    pub fn is_default(&self) -> bool {
        *self == Deployment::default()
    }

    /// True for the default list, which results files leave out (as runs before it did).
    pub fn are_single(deployments: &[Deployment]) -> bool {
        deployments == Deployment::single().as_slice()
    }

    /// "memory", "redis x3": short enough for chart ticks and file names.
    pub fn label(&self) -> String {
        if self.instances == 1 {
            self.feed.name().to_string()
        } else {
            format!("{} x{}", self.feed.name(), self.instances)
        }
    }

    /// A number that orders deployments and tells them apart: 0 for the in-memory feed, the
    /// instance count over Redis (the in-memory feed runs on one instance only).
    pub fn code(&self) -> u32 {
        match self.feed {
            FeedKind::Memory => 0,
            FeedKind::Redis => self.instances,
        }
    }
}

/// Which instances get the publishes when there are several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishTo {
    /// Every comment to the first instance.
    #[default]
    One,
    /// Comments to the instances in turn.
    All,
}

/// Whether the Redis the load generator starts keeps its data across its own restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisPersistence {
    /// `--save "" --appendonly no`.
    #[default]
    None,
    /// `--appendonly yes --appendfsync always`.
    AppendOnly,
}

/// One cell of a scenario: a technique at one point of every sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CellSpec {
    pub technique: Technique,
    pub clients: u32,
    pub rate: f64,
    pub payload_bytes: u32,
    pub deployment: Deployment,
    pub http: HttpVersion,
    /// The subscribers' link for this cell; `None` without a `[network]` table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
}

impl Scenario {
    /// The cells in run order: the link's sweeps outermost, techniques innermost, so cells that are
    /// compared with each other run close together in time.
    pub fn cells(&self) -> Vec<CellSpec> {
        let mut cells = Vec::new();
        let links = match &self.network {
            Some(network) => network.links().into_iter().map(Some).collect(),
            None => vec![None],
        };
        for link in links {
            for &payload_bytes in &self.payload_bytes {
                for &rate in &self.rates {
                    for &clients in &self.clients {
                        for &deployment in &self.deployments {
                            for &http in &self.http {
                                for &technique in &self.techniques {
                                    cells.push(CellSpec {
                                        technique,
                                        clients,
                                        rate,
                                        payload_bytes,
                                        deployment,
                                        link,
                                        http,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        cells
    }

    /// Every run of every cell, in run order, each with its repetition (from 0): the whole
    /// `cells()` list once, then again, `repeat` times.
    pub fn runs(&self) -> Vec<(u32, CellSpec)> {
        let cells = self.cells();
        (0..self.repeat.max(1))
            .flat_map(|r| cells.iter().map(move |c| (r, *c)))
            .collect()
    }

    /// Wall time of one cell, before connection set-up and tear-down.
    pub fn cell_time(&self) -> Duration {
        self.warmup + self.duration
    }
}

fn one() -> u32 {
    1
}

fn is_one(value: &u32) -> bool {
    *value == 1
}

/// Keys at their default are left out of results files, which then read as before they existed.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
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
