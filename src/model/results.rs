//! The results of a run as plain data: what `summary.json` holds (schema
//! `SCHEMA_VERSION`, documented in `results/README.md`) and what every exporter (CSV,
//! Markdown, charts) is a pure function of, so `report` can redraw without rerunning.

use serde::{Deserialize, Serialize};

use super::faults::FaultResults;
use super::network::Link;
use super::scenario::{Audience, Deployment, HttpVersion, Scenario};
use super::technique::Technique;

/// Bumped whenever a field changes meaning or is removed.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run: the scenario, the machine, and one result per cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub schema_version: u32,
    /// The pushlab version that produced the run.
    pub pushlab_version: String,
    /// UTC start time, RFC 3339.
    pub started_at: String,
    /// `http://...` of the server when driven with `--target` (several separated by spaces);
    /// `None` when the load
    /// generator started a fresh server per cell.
    pub target: Option<String>,
    pub scenario: Scenario,
    pub machine: Machine,
    pub cells: Vec<CellResult>,
    /// True when the run was stopped (Ctrl-C) before every cell ran.
    pub interrupted: bool,
    /// The share of every cell's subscribers this run held (`run --shard i/n`); `None` for a
    /// whole run, or shards merged back into one (`merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// Share `index` of `count`: subscribers `index`, `index + count`, ... of every cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// What the run ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// The load generator's open-files limit (soft, after raising it to the hard limit).
    pub open_files_limit: u64,
}

/// The measured result of one cell: one technique at one point of the scenario's sweeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub technique: Technique,
    pub clients: u32,
    /// Publish rate, comments per second.
    pub rate: f64,
    /// Comment text size in bytes.
    pub payload_bytes: u32,
    pub audience: Audience,
    /// Length of the measured window (warm-up excluded), seconds.
    pub window_seconds: f64,
    /// File names (inside the run folder) of this cell's histogram in HdrHistogram's
    /// percentile-distribution text and in its V2 serialised form.
    pub histogram_text_file: String,
    pub histogram_file: String,
    pub latency: LatencySummary,
    pub deliveries: Deliveries,
    /// The load generator's own view, within the window.
    pub client: ClientTotals,
    /// The server's view from `/stats`, within the window.
    pub server: ServerTotals,
    /// Whole-cell byte counts of both ends, which must be equal.
    pub agreement: ByteAgreement,
    /// The kernel's own count (`TCP_INFO`) for the subscribers' sockets, whole cell.
    #[serde(default)]
    pub kernel: KernelTotals,
    pub loadgen: LoadgenUse,
    pub per_delivery: PerDelivery,
    /// Latency and events second by second through the window.
    pub timeline: Vec<TimelinePoint>,
    /// Anything a reader must know before trusting the cell (loss, generator-bound, ...).
    pub warnings: Vec<String>,
    /// What the scenario's faults did; absent from cells without faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultResults>,
    /// The emulated link the subscribers were on; `None` on plain loopback (every run
    /// before `[network]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// How the server was deployed; left out for one in-memory server, as before the key.
    #[serde(default, skip_serializing_if = "Deployment::is_default")]
    pub deployment: Deployment,
    /// The HTTP version the subscribers spoke; left out for HTTP/1.1, as before the key.
    #[serde(default, skip_serializing_if = "HttpVersion::is_default")]
    pub http: HttpVersion,
    /// Each server instance's share, when the cell ran several or a Redis feed; `server`
    /// and `agreement` are their sums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceTotals>,
    /// The Redis the load generator started for the cell, from its own `INFO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisUse>,
    /// The servers' resident memory before the subscribers connected and once all were
    /// connected, before anything was published: what an idle connection costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_memory: Option<IdleMemory>,
    /// How connecting the subscribers went, before publishing began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connecting: Option<Connecting>,
    /// True when the server had no `/stats` (a `--target` of another implementation): the
    /// `server` figures, `agreement`'s server side and server CPU per delivery are
    /// unavailable and left at zero; the subscribers' own figures stand.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub server_unavailable: bool,
    /// The technique's HTTP requests and connections as the server counted them over the
    /// whole cell, from before the subscribers connected to after they closed: WebSocket's
    /// and SSE's handshakes come before the window, so the window's counts miss them.
    /// Absent from runs before the field, across a server restart and without `/stats`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_cell: Option<WholeCell>,
    /// Which run of its cell this is under `repeat = N`, from 0 (cells run all once, then
    /// all again); left out for the first, so single runs read as before the key.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub repeat: u32,
    /// The same cell run against the floor server (`floor = true`), minutes apart on the
    /// same machine; absent from other runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<FloorFigures>,
    /// One subscriber's first connection as its counting client recorded it, up to the first
    /// comment it parsed: the report's "on the wire". Absent from runs before it, and where no
    /// subscriber connection of its own was recorded (a shared HTTP/2 connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<super::wire::WireCapture>,
}

/// The server's whole-cell counts for the cell's technique (every instance summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WholeCell {
    /// HTTP requests served (WebSocket: upgrade requests; SSE: the GET of each stream).
    pub requests: u64,
    pub connections_opened: u64,
}

/// What the same cell measured against the floor server (`pushlab-floor`: a bare tokio
/// server writing the same bytes from one broadcast), to hold pushlab's figures against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloorFigures {
    pub p50_us: u64,
    pub p99_us: u64,
    /// The floor server's CPU per delivery, microseconds, as `per_delivery.server_cpu_us`.
    pub server_cpu_us: f64,
    /// The load generator's CPU per delivery in the floor's cell.
    pub loadgen_cpu_us: f64,
    pub delivered: u64,
    pub expected: u64,
    /// The floor cell's own warnings (a floor cell that lost comments is no floor).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Server memory held by idle subscriber connections (all instances summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IdleMemory {
    /// Subscribers connected when `rss_connected_bytes` was read.
    pub connections: u64,
    /// `VmRSS` before the first subscriber connected.
    pub rss_before_bytes: u64,
    /// `VmRSS` once they were all connected, before the first publish.
    pub rss_connected_bytes: u64,
    /// `(rss_connected_bytes - rss_before_bytes) / connections`.
    pub bytes_per_connection: f64,
}

/// Connecting a cell's subscribers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Connecting {
    /// Subscribers ready (subscribed and first answered) when publishing began.
    pub ready: u64,
    /// Seconds from the first subscriber's connect to the last one's being ready, or to the
    /// deadline when some never were.
    pub seconds: f64,
}

/// One server instance of a cell: whom it served and what it counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceTotals {
    /// `http://...` of the instance.
    pub url: String,
    /// Subscribers the load generator spread to it (round-robin).
    pub subscribers: u64,
    /// Connections of the cell's technique it served over the whole cell, reconnections
    /// included.
    pub connections_opened: u64,
    /// Comments it handed to subscribers over the whole cell.
    pub comments_delivered: u64,
    /// Whole-cell bytes of its subscribers' connections, counted at both ends.
    pub agreement: ByteAgreement,
    /// CPU seconds it used within the window.
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    /// True when it restarted during the cell (its counts then do not subtract).
    pub restarted: bool,
}

/// A Redis's own figures over a cell's window, from `INFO`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RedisUse {
    /// `used_cpu_sys + used_cpu_user` within the window.
    pub cpu_seconds: f64,
    /// `total_commands_processed` within the window.
    pub commands: u64,
    /// `used_memory_peak`: the allocator's peak over the Redis's life (the cell's own, as
    /// each cell starts a fresh Redis).
    pub peak_memory_bytes: u64,
    /// `used_memory_rss` at the end of the window.
    pub rss_bytes: u64,
}

/// Delivery latency: from the moment a comment was scheduled to be published to the moment
/// a subscriber had parsed it, over every (comment, subscriber) pair, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
    /// (percentile, latency) points from 0% to 100% at HdrHistogram's usual ticks, for the
    /// percentile-distribution chart.
    pub percentiles: Vec<PercentilePoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PercentilePoint {
    /// 0 to 100.
    pub percentile: f64,
    pub latency_us: u64,
}

/// What was expected to arrive and what did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliveries {
    /// Comments published within the window.
    pub comments_published: u64,
    /// (comment, subscriber) pairs that should have arrived.
    pub expected: u64,
    /// Pairs that arrived (first copies).
    pub delivered: u64,
    /// Deliveries received within the measured window, of any comment (warm-up comments
    /// arriving early in the window included): the denominator of the per-delivery costs,
    /// whose bytes, requests and CPU are the window's too.
    #[serde(default)]
    pub delivered_in_window: u64,
    /// Expected pairs that never arrived, checked pair by pair, except those lost to a
    /// server restart.
    pub missing: u64,
    /// Expected pairs that never arrived because the server restarted: comments the earlier
    /// incarnation held that the subscriber had not read, or published while it was down.
    /// Each subscriber learns of a restart from a 410 naming it; the pairs between its last
    /// comment before and its first after count here, not in `missing`.
    // Skipped when zero, so runs without a restart serialise as they always did.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_to_restart: u64,
    /// Extra copies of pairs already delivered.
    pub duplicated: u64,
    /// Comments that arrived with a lower id than one the subscriber already had.
    pub out_of_order: u64,
    /// Publishes that failed (the comment never entered the feed).
    pub publish_errors: u64,
}

/// The load generator's counts for the subscribers of a cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTotals {
    pub requests: u64,
    pub empty_responses: u64,
    pub connections_opened: u64,
    pub reconnects: u64,
    pub errors: u64,
    /// Bytes sent by the subscribers, counted at their sockets.
    pub bytes_up: u64,
    /// Bytes received by the subscribers, counted at their sockets.
    pub bytes_down: u64,
    /// Bytes of comment JSON delivered (the payload every technique must carry), the rest
    /// of `bytes_up + bytes_down` being protocol overhead.
    pub payload_bytes_delivered: u64,
}

/// The server's counts for the technique of a cell, and its resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerTotals {
    pub requests: u64,
    pub empty_responses: u64,
    pub connections_opened: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub comments_delivered: u64,
    pub dropped_slow: u64,
    /// CPU seconds the server used within the window.
    pub cpu_seconds: f64,
    /// Peak resident memory of the server process (a fresh server per cell makes it the
    /// cell's own peak).
    pub peak_rss_bytes: u64,
    /// Resident memory at the end of the window.
    pub rss_bytes: u64,
}

/// Whole-cell bytes counted at both ends of the subscribers' connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteAgreement {
    pub client_up: u64,
    pub client_down: u64,
    pub server_in: u64,
    pub server_out: u64,
    /// `client_up == server_in && client_down == server_out` (over HTTP/2, with the
    /// overhead below added to the server's side).
    pub equal: bool,
    /// Over HTTP/2: what the server counted on the subscribers' connections outside any
    /// stream (the preface, SETTINGS, PING, connection WINDOW_UPDATE: `/stats` `h2.overhead_*`),
    /// which is no technique's. The subscribers' sockets carry it too, so `equal` holds
    /// `client_up` against `server_in + server_h2_overhead_in` (and down against out). Zero
    /// over HTTP/1.1, and then left out of results files.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub server_h2_overhead_in: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub server_h2_overhead_out: u64,
}

/// What the kernel counted on the subscribers' sockets over the whole cell (Linux
/// `TCP_INFO`, read as each socket closed): a check on the stream-level counts that does not
/// depend on pushlab's own code, and the TCP segments behind the TCP/IP header overhead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelTotals {
    /// Sockets whose counts are included.
    pub sockets: u64,
    /// Sequence space the server acknowledged (`tcpi_bytes_acked`): `agreement.client_up`
    /// plus one per socket for its SYN and one more where its FIN was acknowledged.
    pub bytes_acked: u64,
    /// Sequence space the kernel received (`tcpi_bytes_received`): `agreement.client_down`
    /// plus one for each FIN received; more would be bytes that arrived and were never read.
    pub bytes_received: u64,
    pub segments_out: u64,
    pub segments_in: u64,
    /// TCP/IP headers those segments carried, at 52 B each (IPv4 20 B + TCP 32 B with
    /// timestamps). Loopback's 64 KiB MTU means fewer, larger segments than Ethernet.
    pub header_bytes: u64,
}

/// The load generator's own CPU use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadgenUse {
    /// CPU seconds within the window.
    pub cpu_seconds: f64,
    /// `cpu_seconds / window_seconds`: 1.0 is one whole core.
    pub core_share: f64,
    /// True when the generator used most of a core: its figures may show its own limits.
    pub generator_bound: bool,
    /// Mean and worst time the publisher fired behind schedule, microseconds: part of every
    /// latency that is the generator's, not the technique's.
    #[serde(default)]
    pub publish_lateness_mean_us: f64,
    #[serde(default)]
    pub publish_lateness_max_us: u64,
    /// How late the subscribers' runtime woke a 1 ms timer, p99 and worst, microseconds:
    /// time a delivery can wait in the generator before it is timestamped.
    #[serde(default)]
    pub runtime_lag_p99_us: u64,
    #[serde(default)]
    pub runtime_lag_max_us: u64,
}

/// Costs per delivered comment (per (comment, subscriber) pair), within the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PerDelivery {
    pub requests: f64,
    /// Bytes both ways at the subscribers' sockets.
    pub bytes: f64,
    /// Of `bytes`, the comment JSON itself.
    pub payload_bytes: f64,
    pub server_cpu_us: f64,
    /// The load generator's CPU per delivery (its whole process: subscribers, publisher and
    /// recorder), to hold against the server's; 0 in runs made before the field.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub loadgen_cpu_us: f64,
}

/// One second of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the window began (start of the second).
    pub second: u32,
    /// Deliveries received in that second.
    pub deliveries: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Reconnects started in that second.
    pub reconnects: u64,
}

impl Deliveries {
    /// Adds another share's (comment, subscriber) pair counts: those of other subscribers of
    /// the same cell (a worker process's, a shard's). What was published is the publisher's,
    /// not the subscribers': left to the caller.
    pub fn add_pairs(&mut self, other: &Deliveries) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.delivered_in_window += other.delivered_in_window;
        self.missing += other.missing;
        self.lost_to_restart += other.lost_to_restart;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
    }
}

fn is_zero_f64(value: &f64) -> bool {
    *value == 0.0
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}
