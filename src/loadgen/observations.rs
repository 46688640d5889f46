//! What one cell saw, as plain data: the phases in `cell` fill it in from sockets, clocks and
//! the server's `/stats`; `assemble` turns it into a `CellResult` with no I/O at all, so every
//! figure and warning rule can be tested with observations built by hand.

use std::ops::Sub;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::deploy::RedisInfo;
use super::recorder::CellRecord;
use super::scenario::{Audience, CellSpec};
use crate::model::stats::{AccountStats, ClientCounts, ProcessStats};
use crate::net::KernelCount;

/// Everything `assemble` needs to produce a cell's result.
pub struct CellObservations {
    /// The cell's place in the run, which names its files.
    pub index: usize,
    pub spec: CellSpec,
    pub audience: Audience,
    /// True when the cell drove a `--target` server rather than one of its own.
    pub external_target: bool,
    /// CPUs the machine offers, to judge whether server and generator saturated it.
    pub cores: usize,
    /// Subscribers connected when publishing began, and how long connecting them all took.
    pub ready: u64,
    pub connect_seconds: f64,
    /// False when the server has no `/stats` (a `--target` of another implementation): its
    /// side's figures are unavailable, not zero.
    pub server_figures: bool,
    /// The servers' summed `VmRSS` before the subscribers connected and once they were.
    pub rss_before: u64,
    pub rss_connected: u64,
    pub window: Window,
    pub ending: Ending,
    pub settled: Settled,
    /// Every subscriber's record, merged against what was expected.
    pub merged: CellRecord,
    /// What the scenario's faults did, in cells with faults.
    pub faults: Option<crate::model::faults::FaultResults>,
}

/// The subscribers' counters, summed over all of them, at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ClientMoment {
    /// The techniques' clients' counts (requests, empty answers, connections, ...).
    pub counts: ClientCounts,
    /// Bytes sent and received at the subscribers' sockets.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// The load generator's own CPU time so far (all its threads).
    pub cpu_seconds: f64,
    pub at: Instant,
}

/// The subscribers' counters over an interval, and its length.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientDelta {
    pub counts: ClientCounts,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub cpu_seconds: f64,
    pub seconds: f64,
}

/// `later - earlier`: what happened between two moments.
impl Sub for ClientMoment {
    type Output = ClientDelta;

    fn sub(self, earlier: ClientMoment) -> ClientDelta {
        ClientDelta {
            // Saturating: counters taken out of order must not wrap into 18 quintillion.
            counts: self.counts - earlier.counts,
            bytes_up: self.bytes_up.saturating_sub(earlier.bytes_up),
            bytes_down: self.bytes_down.saturating_sub(earlier.bytes_down),
            cpu_seconds: (self.cpu_seconds - earlier.cpu_seconds).max(0.0),
            seconds: self.at.duration_since(earlier.at).as_secs_f64(),
        }
    }
}

/// The server's view at one moment: the cell's technique's account and the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerMoment {
    pub account: AccountStats,
    pub process: ProcessStats,
    /// The server process's start time (`/stats` `started_at_us`): two moments with
    /// different ones straddle a restart and must not be subtracted.
    pub started_at_us: u64,
}

impl ServerMoment {
    /// Several instances' moments as one: counts, CPU and memory added up. Its start time is
    /// the sum of theirs, which changes whenever any of them restarts, so `since` refuses to
    /// subtract across any instance's restart.
    pub fn sum(moments: &[ServerMoment]) -> ServerMoment {
        moments
            .iter()
            .fold(ServerMoment::default(), |total, moment| ServerMoment {
                account: total.account + moment.account,
                process: ProcessStats {
                    cpu_seconds: total.process.cpu_seconds + moment.process.cpu_seconds,
                    rss_bytes: total.process.rss_bytes + moment.process.rss_bytes,
                    peak_rss_bytes: total.process.peak_rss_bytes + moment.process.peak_rss_bytes,
                },
                started_at_us: total.started_at_us.wrapping_add(moment.started_at_us),
            })
    }

    /// `self - start` when both are of the same server process; `None` across a restart.
    pub fn since(&self, start: &ServerMoment) -> Option<(AccountStats, f64)> {
        (self.started_at_us == start.started_at_us).then(|| {
            (
                self.account - start.account,
                (self.process.cpu_seconds - start.process.cpu_seconds).max(0.0),
            )
        })
    }
}

/// How the publisher fared, final once publishing is over.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Measured publishes that failed.
    pub errors: u64,
    /// The first failure's text, warm-up publishes included.
    pub first_error: Option<String>,
    /// Mean and worst time a measured publish fired behind schedule, microseconds.
    pub lateness_mean_us: f64,
    pub lateness_max_us: u64,
}

/// The measured window: both ends' counters at its start and end, and the generator's own
/// timeliness through it.
pub struct Window {
    pub client_start: ClientMoment,
    pub client_end: ClientMoment,
    /// Every instance's moments summed: `ServerMoment::sum` of the two lists below.
    pub server_start: ServerMoment,
    pub server_end: ServerMoment,
    /// Each instance's, in instance order.
    pub server_instances_start: Vec<ServerMoment>,
    pub server_instances_end: Vec<ServerMoment>,
    /// The cell's Redis's `INFO`, when it started one.
    pub redis_start: Option<RedisInfo>,
    pub redis_end: Option<RedisInfo>,
    /// Why Redis's `INFO` could not be read at the window's start or end, when it could not:
    /// its figures are then missing, and the cell's other figures stand.
    pub redis_unread: Option<String>,
    /// How late the subscribers' runtime woke a 1 ms timer, microseconds.
    pub runtime_lag: Histogram<u64>,
    pub published: Published,
}

/// How the subscribers were ended after the drain.
#[derive(Debug, Clone, Default)]
pub struct Ending {
    /// Why the end-of-cell comment could not be published, if it could not.
    pub end_comment_error: Option<String>,
    /// Set when some subscribers ignored the end-of-cell comment and had to be cancelled.
    pub cut_off: Option<CutOff>,
    /// Subscriber tasks that never handed back their record.
    pub failed_tasks: usize,
}

/// Subscribers still running when the stop deadline passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutOff {
    pub still_running: usize,
    /// The deadline, counted from the end-of-cell comment.
    pub after: Duration,
}

/// Whole-cell counts, taken once the server saw every subscriber connection closed.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// The technique's account before the subscribers connected, and after they closed.
    pub server_before: AccountStats,
    pub server_after: AccountStats,
    /// True when the server restarted between those two (its start time changed): they
    /// are not subtracted.
    pub server_restarted: bool,
    /// Bytes the subscribers sent and received, counted at their sockets.
    pub client_up: u64,
    pub client_down: u64,
    /// The kernel's totals over the subscribers' closed sockets, and how many sockets.
    pub kernel_sockets: u64,
    pub kernel: KernelCount,
    /// Connections the server closed for `--user-timeout` over the cell (zero across a
    /// restart): the kernel gave up on a peer that acknowledged nothing.
    pub user_timeouts: u64,
    /// Each instance's own, whose sums are the fields above.
    pub instances: Vec<InstanceSettled>,
    /// Over HTTP/2: the servers' `h2.overhead_in` / `overhead_out` over the cell, summed:
    /// the subscribers' connection-level bytes (the cell's only HTTP/2 connections).
    pub h2_overhead: (u64, u64),
}

/// One instance's whole-cell counts.
#[derive(Debug, Clone, Default)]
pub struct InstanceSettled {
    pub url: String,
    /// Subscribers the load generator spread to it.
    pub subscribers: u64,
    pub before: AccountStats,
    pub after: AccountStats,
    /// Its start time changed between `before` and `after`.
    pub restarted: bool,
    /// Bytes its subscribers sent and received, counted at their sockets.
    pub client_up: u64,
    pub client_down: u64,
    pub peak_rss_bytes: u64,
    /// Its `h2.overhead_in` / `overhead_out` over the cell.
    pub h2_overhead: (u64, u64),
}
