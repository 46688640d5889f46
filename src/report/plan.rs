//! What a report holds, derived from a `RunSummary` alone: its sweep points and sweeps, which
//! charts exist and what their files are called. Charts and Markdown both read from here, so
//! they name the same files and show the same cells.

use std::cmp::Ordering;

use super::fmt::num;
use crate::model::results::{CellResult, RunSummary};
use crate::model::scenario::{Deployment, FeedKind, HttpVersion};
use crate::model::technique::Technique;

/// A scenario key that a sweep can vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dim {
    Clients,
    Rate,
    Payload,
    /// The emulated link's round trip, ms (runs with a `[network]` table only).
    Rtt,
    /// The link's bandwidth per connection, kbit/s.
    Bandwidth,
    /// The link's bandwidth shared by all connections, kbit/s.
    SharedBandwidth,
    /// The server's deployment, by `Deployment::code`: 0 for one in-memory server, n for n
    /// instances over Redis.
    Deployment,
    /// The subscribers' HTTP version, by `HttpVersion::code`: 1.1 or 2.
    Http,
}

impl Dim {
    pub const ALL: [Dim; 8] = [
        Dim::Clients,
        Dim::Rate,
        Dim::Payload,
        Dim::Rtt,
        Dim::Bandwidth,
        Dim::SharedBandwidth,
        Dim::Deployment,
        Dim::Http,
    ];

    pub fn of(self, point: &Point) -> f64 {
        match self {
            Dim::Clients => f64::from(point.clients),
            Dim::Rate => point.rate,
            Dim::Payload => f64::from(point.payload_bytes),
            Dim::Rtt => point.rtt_us.map_or(0.0, |us| us as f64 / 1000.0),
            Dim::Bandwidth => point.bandwidth_bps.map_or(0.0, |b| b as f64 / 1000.0),
            Dim::SharedBandwidth => point.aggregate_bps.map_or(0.0, |b| b as f64 / 1000.0),
            Dim::Deployment => f64::from(point.deployment.code()),
            Dim::Http => point.http.code(),
        }
    }

    /// The HTTP version a `Dim::Http` value stands for.
    fn http(value: f64) -> HttpVersion {
        if value >= 2.0 {
            HttpVersion::H2
        } else {
            HttpVersion::H1
        }
    }

    /// Whether the point has this key at all: the link's keys only over an emulated link,
    /// the deployment only when it is not one in-memory server, the HTTP version only when
    /// it is not HTTP/1.1, so runs on plain loopback with one server over HTTP/1.1 describe
    /// their points as they always did.
    pub fn applies(self, point: &Point) -> bool {
        match self {
            Dim::Clients | Dim::Rate | Dim::Payload => true,
            Dim::Rtt => point.rtt_us.is_some(),
            Dim::Bandwidth => point.bandwidth_bps.is_some(),
            Dim::SharedBandwidth => point.aggregate_bps.is_some(),
            Dim::Deployment => !point.deployment.is_default(),
            Dim::Http => !point.http.is_default(),
        }
    }

    /// The deployment a `Dim::Deployment` value stands for.
    fn deployment(value: f64) -> Deployment {
        match value as u32 {
            0 => Deployment::default(),
            instances => Deployment {
                feed: FeedKind::Redis,
                instances,
            },
        }
    }

    /// The chart axis title, with its unit.
    pub fn axis_label(self) -> &'static str {
        match self {
            Dim::Clients => "clients (concurrent subscribers)",
            Dim::Rate => "publish rate (comments per second)",
            Dim::Payload => "comment size (bytes)",
            Dim::Rtt => "round-trip time of the link (ms)",
            Dim::Bandwidth => "bandwidth per connection (kbit/s)",
            Dim::SharedBandwidth => "bandwidth shared by all subscribers (kbit/s)",
            Dim::Deployment => "server deployment (feed x instances)",
            Dim::Http => "HTTP version of the subscribers",
        }
    }

    /// The word used in file names and sentences ("vs clients").
    pub fn word(self) -> &'static str {
        match self {
            Dim::Clients => "clients",
            Dim::Rate => "rate",
            Dim::Payload => "payload",
            Dim::Rtt => "rtt",
            Dim::Bandwidth => "bandwidth",
            Dim::SharedBandwidth => "shared-bandwidth",
            Dim::Deployment => "deployment",
            Dim::Http => "http",
        }
    }

    pub fn phrase(self) -> &'static str {
        match self {
            Dim::Clients => "client count",
            Dim::Rate => "publish rate",
            Dim::Payload => "comment size",
            Dim::Rtt => "round-trip time",
            Dim::Bandwidth => "bandwidth per connection",
            Dim::SharedBandwidth => "shared bandwidth",
            Dim::Deployment => "deployment",
            Dim::Http => "HTTP version",
        }
    }

    /// A value with its unit, for sentences and titles: "100 clients", "10 comments/s".
    pub fn describe(self, value: f64) -> String {
        match self {
            Dim::Clients if value == 1.0 => "1 client".into(),
            Dim::Clients => format!("{} clients", num(value)),
            Dim::Rate if value == 1.0 => "1 comment/s".into(),
            Dim::Rate => format!("{} comments/s", num(value)),
            Dim::Payload => format!("{} B comments", num(value)),
            Dim::Rtt => format!("rtt {} ms", num(value)),
            Dim::Bandwidth => format!("{} kbit/s per connection", num(value)),
            Dim::SharedBandwidth => format!("{} kbit/s shared", num(value)),
            Dim::Deployment => match Dim::deployment(value) {
                d if d.feed == FeedKind::Memory => "in-memory feed".into(),
                d if d.instances == 1 => "Redis feed, 1 instance".into(),
                d => format!("Redis feed, {} instances", d.instances),
            },
            Dim::Http => Dim::http(value).label().to_string(),
        }
    }

    /// A tick label: the bare number, or the deployment's short label.
    pub fn tick(self, value: f64) -> String {
        match self {
            Dim::Deployment => Dim::deployment(value).label(),
            Dim::Http => Dim::http(value).label().to_string(),
            _ => num(value),
        }
    }

    fn slug(self, value: f64) -> String {
        // `Display` for f64 is the shortest exact form ("10", "0.5"), stable across runs.
        match self {
            Dim::Clients => format!("{value}-clients"),
            Dim::Rate => format!("{value}-per-s"),
            Dim::Payload => format!("{value}-bytes"),
            Dim::Rtt => format!("{value}-ms-rtt"),
            Dim::Bandwidth => format!("{value}-kbit"),
            Dim::SharedBandwidth => format!("{value}-kbit-shared"),
            Dim::Deployment => format!(
                "{}-x{}",
                Dim::deployment(value).feed.name(),
                Dim::deployment(value).instances
            ),
            Dim::Http => format!("http-{}", Dim::http(value).name()),
        }
    }
}

/// One point of the scenario's sweeps: the cells of every technique that share clients, rate,
/// payload size and link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub clients: u32,
    pub rate: f64,
    pub payload_bytes: u32,
    /// The link's round trip and bandwidths; `None` on plain loopback (or unlimited).
    pub rtt_us: Option<u64>,
    pub bandwidth_bps: Option<u64>,
    pub aggregate_bps: Option<u64>,
    pub deployment: Deployment,
    pub http: HttpVersion,
}

impl Point {
    pub fn of(cell: &CellResult) -> Point {
        Point {
            clients: cell.clients,
            rate: cell.rate,
            payload_bytes: cell.payload_bytes,
            rtt_us: cell.link.map(|l| l.rtt.as_micros() as u64),
            bandwidth_bps: cell.link.and_then(|l| l.bandwidth_bps),
            aggregate_bps: cell.link.and_then(|l| l.aggregate_bps),
            deployment: cell.deployment,
            http: cell.http,
        }
    }

    /// The order of `Scenario::cells`: the link, then payload, then rate, then clients,
    /// then deployment.
    fn order(&self, other: &Point) -> Ordering {
        self.rtt_us
            .cmp(&other.rtt_us)
            .then(self.bandwidth_bps.cmp(&other.bandwidth_bps))
            .then(self.aggregate_bps.cmp(&other.aggregate_bps))
            .then(self.payload_bytes.cmp(&other.payload_bytes))
            .then(self.rate.total_cmp(&other.rate))
            .then(self.clients.cmp(&other.clients))
            .then(self.deployment.code().cmp(&other.deployment.code()))
            .then(self.http.cmp(&other.http))
    }

    fn same_except(&self, other: &Point, dim: Dim) -> bool {
        Dim::ALL
            .iter()
            .filter(|&&d| d != dim)
            .all(|&d| d.of(self) == d.of(other))
    }

    /// Every parameter: "100 clients · 10 comments/s · 100 B comments".
    pub fn describe(&self) -> String {
        Dim::ALL
            .iter()
            .filter(|d| d.applies(self))
            .map(|d| d.describe(d.of(self)))
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

/// A sweep along one key with the other keys held fixed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub dim: Dim,
    /// The points, in increasing order of the swept value.
    pub points: Vec<Point>,
}

impl Sweep {
    pub fn values(&self) -> Vec<f64> {
        self.points.iter().map(|p| self.dim.of(p)).collect()
    }
}

/// What a chart shows.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartKind {
    /// Latency percentile distribution of every technique at one point.
    Percentiles(Point),
    /// p50 and p99 latency along a sweep.
    SweepLatency(Sweep),
    /// Bytes per second on the wire along a sweep.
    SweepWire(Sweep),
    /// Server CPU and peak resident memory along a sweep.
    SweepServer(Sweep),
    /// Along an HTTP-version sweep only: bytes per delivered comment, the subscribers'
    /// connections, and server memory per idle subscriber.
    SweepHttp(Sweep),
    /// Requests, bytes and server CPU per delivered comment, every cell.
    Cost,
    /// Latency second by second of every technique at one point.
    Timeline(Point),
    /// Connections open through the window with each fault marked (runs with faults).
    FaultConnections(Point),
    /// Recovery after drops and the server's notice of closed pages (runs with faults).
    FaultTimes(Point),
    /// Server memory per idle connection, every cell (scenarios with `memory_chart = true`).
    IdleMemory,
}

/// One chart file of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPlan {
    /// File name inside the run folder.
    pub file_name: String,
    /// The chart's title, also the heading and alt text in `report.md`.
    pub title: String,
    pub kind: ChartKind,
}

/// A `RunSummary` arranged for reporting: cells in a stable order, the sweep points, the keys
/// that vary.
pub struct View<'a> {
    pub summary: &'a RunSummary,
    /// Every cell, ordered by point (payload, rate, clients) then technique, whatever order
    /// the runner wrote them in, so the output never depends on it. Under `repeat = N` only
    /// each cell's first run: charts and tables draw that one, and `runs_of` gives the rest.
    pub cells: Vec<&'a CellResult>,
    /// Distinct points, in the same order.
    pub points: Vec<Point>,
    /// The keys with more than one value among the cells.
    pub swept: Vec<Dim>,
    /// Techniques with at least one cell, in `Technique::ALL` order.
    pub techniques: Vec<Technique>,
}

impl<'a> View<'a> {
    pub fn new(summary: &'a RunSummary) -> View<'a> {
        let mut cells: Vec<&CellResult> = summary.cells.iter().filter(|c| c.repeat == 0).collect();
        cells.sort_by(|a, b| {
            Point::of(a)
                .order(&Point::of(b))
                .then(a.technique.cmp(&b.technique))
        });
        let mut points: Vec<Point> = Vec::new();
        for cell in &cells {
            let point = Point::of(cell);
            if points.last() != Some(&point) {
                points.push(point);
            }
        }
        let swept = Dim::ALL
            .into_iter()
            .filter(|&d| points.iter().any(|p| d.of(p) != d.of(&points[0])))
            .collect();
        let techniques = Technique::ALL
            .into_iter()
            .filter(|t| cells.iter().any(|c| c.technique == *t))
            .collect();
        View {
            summary,
            cells,
            points,
            swept,
            techniques,
        }
    }

    pub fn name(&self) -> &str {
        &self.summary.scenario.name
    }

    /// The cells at a point, in technique order.
    pub fn cells_at(&self, point: &Point) -> Vec<&'a CellResult> {
        self.cells
            .iter()
            .copied()
            .filter(|c| Point::of(c) == *point)
            .collect()
    }

    /// Every run of a cell (same technique and point) under `repeat = N`, in repetition
    /// order; just the cell itself for a single run.
    pub fn runs_of(&self, cell: &CellResult) -> Vec<&'a CellResult> {
        let point = Point::of(cell);
        let mut runs: Vec<&CellResult> = self
            .summary
            .cells
            .iter()
            .filter(|c| c.technique == cell.technique && Point::of(c) == point)
            .collect();
        runs.sort_by_key(|c| c.repeat);
        runs
    }

    /// True when some cell ran more than once.
    pub fn repeated(&self) -> bool {
        self.summary.cells.iter().any(|c| c.repeat > 0)
    }

    pub fn cell(&self, point: &Point, technique: Technique) -> Option<&'a CellResult> {
        self.cells
            .iter()
            .copied()
            .find(|c| c.technique == technique && Point::of(c) == *point)
    }

    /// Only the swept keys of a point ("100 clients"), or every key when nothing is swept.
    pub fn point_label(&self, point: &Point) -> String {
        if self.swept.is_empty() {
            return point.describe();
        }
        self.swept
            .iter()
            .map(|d| d.describe(d.of(point)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The point's part of a file name, empty when nothing is swept.
    fn point_slug(&self, point: &Point, except: Option<Dim>) -> String {
        self.swept
            .iter()
            .filter(|&&d| Some(d) != except)
            .map(|d| d.slug(d.of(point)))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// One sweep per swept key and per combination of the other keys' values, when it
    /// holds at least two points.
    pub fn sweeps(&self) -> Vec<Sweep> {
        let mut sweeps = Vec::new();
        for &dim in &self.swept {
            let mut seen: Vec<Point> = Vec::new();
            for point in &self.points {
                if seen.iter().any(|s| s.same_except(point, dim)) {
                    continue;
                }
                seen.push(*point);
                let mut members: Vec<Point> = self
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.same_except(point, dim))
                    .collect();
                members.sort_by(|a, b| dim.of(a).total_cmp(&dim.of(b)));
                if members.len() >= 2 {
                    sweeps.push(Sweep {
                        dim,
                        points: members,
                    });
                }
            }
        }
        sweeps
    }

    /// The fixed keys of a sweep, for its title ("at 10 comments/s").
    pub fn sweep_fixed(&self, sweep: &Sweep) -> String {
        let point = &sweep.points[0];
        Dim::ALL
            .iter()
            .filter(|&&d| d != sweep.dim && d.applies(point))
            .map(|d| d.describe(d.of(point)))
            .collect::<Vec<_>>()
            .join(" · ")
    }

    /// Every chart of the report, in the order the report shows them.
    pub fn charts(&self) -> Vec<ChartPlan> {
        let name = self.name();
        let mut charts = Vec::new();
        let suffix = |point: &Point| {
            let slug = self.point_slug(point, None);
            if slug.is_empty() {
                String::new()
            } else {
                format!("-{slug}")
            }
        };
        let at = |point: &Point| {
            if self.swept.is_empty() {
                String::new()
            } else {
                format!(" at {}", self.point_label(point))
            }
        };
        for point in &self.points {
            charts.push(ChartPlan {
                file_name: format!("latency-percentiles{}.png", suffix(point)),
                title: format!("{name}: latency by percentile{}", at(point)),
                kind: ChartKind::Percentiles(*point),
            });
        }
        for sweep in self.sweeps() {
            let word = sweep.dim.word();
            let others = self.point_slug(&sweep.points[0], Some(sweep.dim));
            let others = if others.is_empty() {
                String::new()
            } else {
                format!("-at-{others}")
            };
            let kinds = [
                (
                    "latency",
                    "p50 and p99 latency",
                    ChartKind::SweepLatency(sweep.clone()),
                ),
                (
                    "wire",
                    "bytes on the wire",
                    ChartKind::SweepWire(sweep.clone()),
                ),
                (
                    "server",
                    "server CPU and memory",
                    ChartKind::SweepServer(sweep.clone()),
                ),
            ];
            for (slug, what, kind) in kinds {
                charts.push(ChartPlan {
                    file_name: format!("sweep-{word}-{slug}{others}.png"),
                    title: format!("{name}: {what} vs {}", sweep.dim.phrase()),
                    kind,
                });
            }
            if sweep.dim == Dim::Http {
                charts.push(ChartPlan {
                    file_name: format!("sweep-{word}-costs{others}.png"),
                    title: format!(
                        "{name}: bytes per comment, connections and memory per subscriber vs {}",
                        sweep.dim.phrase()
                    ),
                    kind: ChartKind::SweepHttp(sweep.clone()),
                });
            }
        }
        if !self.cells.is_empty() {
            charts.push(ChartPlan {
                file_name: "cost-per-delivery.png".into(),
                title: format!("{name}: cost per delivered comment"),
                kind: ChartKind::Cost,
            });
        }
        if self.summary.scenario.memory_chart && self.cells.iter().any(|c| c.idle_memory.is_some())
        {
            charts.push(ChartPlan {
                file_name: "idle-memory.png".into(),
                title: format!("{name}: server memory per idle connection"),
                kind: ChartKind::IdleMemory,
            });
        }
        for point in &self.points {
            charts.push(ChartPlan {
                file_name: format!("timeline{}.png", suffix(point)),
                title: format!("{name}: latency second by second{}", at(point)),
                kind: ChartKind::Timeline(*point),
            });
        }
        for point in &self.points {
            if !self.cells_at(point).iter().any(|c| c.faults.is_some()) {
                continue;
            }
            charts.push(ChartPlan {
                file_name: format!("faults-connections{}.png", suffix(point)),
                title: format!("{name}: connections open through the faults{}", at(point)),
                kind: ChartKind::FaultConnections(*point),
            });
            let timed = self
                .cells_at(point)
                .iter()
                .filter_map(|c| c.faults.as_ref())
                .any(|f| {
                    !f.recovery_by_drop.is_empty()
                        || f.close_detection.is_some()
                        || !f.vanish.is_empty()
                });
            if !timed {
                continue;
            }
            charts.push(ChartPlan {
                file_name: format!("faults-times{}.png", suffix(point)),
                title: format!("{name}: recovery and detection times{}", at(point)),
                kind: ChartKind::FaultTimes(*point),
            });
        }
        charts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    fn files(summary: &RunSummary) -> Vec<String> {
        View::new(summary)
            .charts()
            .into_iter()
            .map(|c| c.file_name)
            .collect()
    }

    #[test]
    fn one_point_has_no_sweep_charts_and_plain_names() {
        let summary = fixture::one_point();
        assert_eq!(
            files(&summary),
            [
                "latency-percentiles.png",
                "cost-per-delivery.png",
                "timeline.png"
            ]
        );
    }

    #[test]
    fn two_swept_keys_give_one_sweep_per_fixed_value_of_the_other() {
        let files = files(&fixture::two_sweeps());
        for name in [
            "latency-percentiles-10-clients-1-per-s.png",
            "latency-percentiles-100-clients-10-per-s.png",
            "sweep-clients-latency-at-1-per-s.png",
            "sweep-clients-wire-at-10-per-s.png",
            "sweep-rate-server-at-10-clients.png",
            "sweep-rate-server-at-100-clients.png",
            "timeline-100-clients-1-per-s.png",
        ] {
            assert!(files.iter().any(|f| f == name), "{name} in {files:?}");
        }
        assert_eq!(files.len(), 4 + 4 * 3 + 1 + 4);
        let mut unique = files.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), files.len(), "file names are unique");
    }

    fn files_of_one_point() -> Vec<String> {
        files(&fixture::one_point())
    }

    #[test]
    fn an_http_sweep_compares_the_versions_in_a_chart_of_its_own() {
        let mut summary = fixture::one_point();
        let h2: Vec<CellResult> = summary
            .cells
            .iter()
            .cloned()
            .map(|mut c| {
                c.http = HttpVersion::H2;
                c
            })
            .collect();
        summary.cells.extend(h2);
        let view = View::new(&summary);
        assert_eq!(view.swept, [Dim::Http]);
        let files = files(&summary);
        for name in [
            "latency-percentiles-http-1.1.png",
            "latency-percentiles-http-2.png",
            "sweep-http-wire.png",
            "sweep-http-costs.png",
        ] {
            assert!(files.iter().any(|f| f == name), "{name} in {files:?}");
        }
        // Runs without the key show no trace of it.
        assert!(!files_of_one_point().iter().any(|f| f.contains("http")));
    }

    #[test]
    fn repeated_runs_are_kept_apart_from_the_cells_the_charts_draw() {
        let mut summary = fixture::one_point();
        let mut again = summary.cells[0].clone();
        again.repeat = 1;
        summary.cells.insert(0, again);
        let view = View::new(&summary);
        assert_eq!(view.cells.len(), 4, "one cell per technique and point");
        assert!(view.cells.iter().all(|c| c.repeat == 0));
        assert!(view.repeated());
        let runs = view.runs_of(&summary.cells[1]);
        assert_eq!(runs.iter().map(|c| c.repeat).collect::<Vec<_>>(), [0, 1]);
        assert!(!View::new(&fixture::one_point()).repeated());
    }

    #[test]
    fn cells_are_ordered_by_point_then_technique_whatever_the_input_order() {
        let summary = fixture::client_sweep();
        let view = View::new(&summary);
        let order: Vec<(u32, Technique)> = view
            .cells
            .iter()
            .map(|c| (c.clients, c.technique))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(view.swept, [Dim::Clients]);
    }
}
