//! A group of subscribers in one process: the load generator's own, or a worker process's
//! share of a cell. Connecting them, watching them through the window (reconnects, the
//! runtime's lag, counter snapshots) and collecting their records are the same in both.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::faults::{FaultHandle, FaultSlot};
use super::observations::{ClientMoment, CutOff};
use super::publisher::user_name;
use super::recorder::{self, CellProgress, Schedule, ScheduleStart, SubscriberRecord};
use crate::http::link::{HttpLink, SharedH2};
use crate::model::scenario::{CellSpec, H2Connections, HttpVersion, Scenario};
use crate::net::{ByteMeter, Tape};
use crate::techniques::{ClientCounters, ClientSettings, Subscriber, TapedSink, Target};

/// The subscribers of a cell held by one process (the load generator's own, or a worker's
/// share), running, and what they share.
pub struct Subscribers {
    pub tasks: JoinSet<(u32, SubscriberRecord)>,
    /// Every subscriber stops on a child of it; the publisher on it.
    pub stop: CancellationToken,
    /// One per server instance: subscriber `i` counts its bytes in `meters[i % instances]`,
    /// so each instance's bytes can be held against its own count.
    pub meters: Vec<Arc<ByteMeter>>,
    pub counters: Arc<ClientCounters>,
    pub progress: Arc<CellProgress>,
    /// How the subscribers learn the schedule once publishing starts.
    pub started: ScheduleStart,
    /// How many the whole cell has, and how many were connected when publishing began.
    pub clients: u32,
    pub ready: u64,
    /// What the fault injector acts on, by subscriber; empty in cells without faults.
    pub faults: Vec<FaultHandle>,
    /// Which of the cell's subscribers this process holds.
    pub share: Share,
    /// The share's first subscriber's first connection, recorded for the report's "on the
    /// wire"; none in a process holding no subscribers.
    pub tape: Option<Arc<Tape>>,
}

/// A share of a cell's subscribers: indices `first`, `first + step`, ... below the cell's
/// count. The load generator's own process holds all of them (0, step 1); worker `w` of `n`
/// holds (w, step n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub first: u32,
    pub step: u32,
}

impl Share {
    pub const ALL: Share = Share { first: 0, step: 1 };
    /// None of them: the parent process when worker processes hold them all.
    pub const NONE: Share = Share {
        first: u32::MAX,
        step: 1,
    };

    pub fn indices(self, clients: u32) -> impl Iterator<Item = u32> {
        (self.first..clients).step_by(self.step.max(1) as usize)
    }

    pub fn len(self, clients: u32) -> u32 {
        clients
            .saturating_sub(self.first)
            .div_ceil(self.step.max(1))
    }

    pub fn is_empty(self, clients: u32) -> bool {
        self.len(clients) == 0
    }

    /// The share of a run's shard (`--shard i/n`), or all of them.
    pub fn of_shard(shard: Option<crate::model::results::Shard>) -> Share {
        shard.map_or(Share::ALL, |s| Share {
            first: s.index,
            step: s.count,
        })
    }

    /// Worker `w`'s part of this share, of `workers`.
    pub fn part(self, w: u32, workers: u32) -> Share {
        Share {
            first: self.first + w * self.step,
            step: self.step * workers,
        }
    }

    /// Whether subscriber `i` is in this share.
    pub fn holds(self, i: u32) -> bool {
        i >= self.first && (i - self.first) % self.step.max(1) == 0
    }

    /// Position of subscriber `i` among this share's.
    fn position(self, i: u32) -> usize {
        ((i - self.first) / self.step.max(1)) as usize
    }

    /// Subscriber index of the share's `position`-th.
    pub fn index(self, position: usize) -> usize {
        self.first as usize + position * self.step.max(1) as usize
    }
}

/// Starts every subscriber from the same known cursor, so none can miss a measured comment
/// however long its connection takes to come up, then waits for them to connect: publishing
/// starts once they have, so the warm-up and the window measure a steady state, not a crowd
/// of handshakes.
pub async fn connect_subscribers(
    scenario: &Scenario,
    spec: &CellSpec,
    measured: usize,
    addrs: &[SocketAddr],
    start_cursor: u64,
    share: Share,
) -> Subscribers {
    let mut subscribers = Subscribers {
        tasks: JoinSet::new(),
        stop: CancellationToken::new(),
        meters: addrs.iter().map(|_| ByteMeter::new()).collect(),
        counters: Arc::new(ClientCounters::default()),
        progress: Arc::new(CellProgress::default()),
        started: Arc::default(),
        clients: spec.clients,
        ready: 0,
        faults: Vec::new(),
        share,
        tape: (!share.is_empty(spec.clients)).then(Tape::new),
    };
    // HTTP/2: one connection per instance for all its subscribers, or one each.
    let shared: Vec<Arc<SharedH2>> = (0..subscribers.meters.len() as u32)
        .map(|i| {
            SharedH2::new(
                Target {
                    addr: addrs[i as usize],
                },
                subscribers.meters[i as usize].clone(),
            )
        })
        .collect();
    let deadline = ready_deadline(share.len(spec.clients));
    for (spawned, i) in share.indices(spec.clients).enumerate() {
        // At most CONNECTING_AT_ONCE subscribers of this process are connecting at a time: a
        // crowd of tens of thousands of simultaneous SYNs overflows the servers' accept
        // backlogs (SYN retried after 1 s, 3 s, 7 s...) and their subscribe-time feed reads.
        while spawned as u64
            >= subscribers.counters.ready.load(Ordering::Relaxed) + CONNECTING_AT_ONCE
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let http = match (spec.http, scenario.h2_connections) {
            (HttpVersion::H1, _) => HttpLink::H1,
            (HttpVersion::H2, H2Connections::PerClient) => HttpLink::H2PerClient,
            (HttpVersion::H2, H2Connections::Shared) => {
                HttpLink::H2Shared(shared[i as usize % shared.len()].clone())
            }
        };
        let subscriber = Subscriber {
            http,
            // Round-robin over the instances, so each gets an equal share.
            target: Target {
                addr: addrs[i as usize % addrs.len()],
            },
            user: Some(user_name(i / scenario.tabs)),
            after: Some(start_cursor),
            settings: ClientSettings {
                poll_interval: scenario.poll_interval,
                poll_phase: scenario.poll_interval.mul_f64(poll_phase_fraction(i)),
                long_poll_timeout: scenario.long_poll_timeout,
                ..ClientSettings::default()
            },
            meter: subscribers.meters[i as usize % subscribers.meters.len()].clone(),
            counters: subscribers.counters.clone(),
            stop: subscribers.stop.child_token(),
            cut: Arc::default(),
            read_bytes_per_s: scenario
                .faults
                .slow
                .filter(|_| i < scenario.faults.slow_count(spec.clients))
                .map(|s| s.read_bytes_per_s),
            tape: (i == share.first)
                .then(|| subscribers.tape.clone())
                .flatten(),
        };
        let mut record = SubscriberRecord::new(
            subscribers.started.clone(),
            measured,
            subscribers.progress.clone(),
            subscriber.stop.clone(),
            user_name(i / scenario.tabs),
        );
        if !scenario.faults.is_empty() {
            let slot = Arc::new(FaultSlot::default());
            record = record.with_fault(slot.clone());
            subscribers.faults.push(FaultHandle {
                user: user_name(i / scenario.tabs),
                cut: subscriber.cut.clone(),
                stop: subscriber.stop.clone(),
                slot,
            });
        }
        let technique = spec.technique;
        subscribers.tasks.spawn(async move {
            match subscriber.tape.clone() {
                Some(tape) => {
                    let mut taped = TapedSink {
                        inner: &mut record,
                        tape,
                    };
                    technique.run_client(&subscriber, &mut taped).await;
                }
                None => technique.run_client(&subscriber, &mut record).await,
            }
            (i, record)
        });
    }
    subscribers.ready =
        wait_until_ready(&subscribers.counters, share.len(spec.clients), deadline).await;
    subscribers
}

/// Subscribers of one process that may be connecting (not yet ready) at once.
const CONNECTING_AT_ONCE: u64 = 500;

/// When connecting `clients` subscribers gives up: 10 s and 5 ms per subscriber.
fn ready_deadline(clients: u32) -> Instant {
    Instant::now() + Duration::from_secs(10) + Duration::from_millis(u64::from(clients) * 5)
}

/// Waits for `clients` subscribers to be ready, or a deadline that grows with their number;
/// returns how many are.
async fn wait_until_ready(counters: &ClientCounters, clients: u32, deadline: Instant) -> u64 {
    while counters.ready.load(Ordering::Relaxed) < u64::from(clients) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    counters.ready.load(Ordering::Relaxed)
}

/// Where in the polling interval subscriber `i` first polls, as a fraction: the golden-ratio
/// sequence spreads any number of clients evenly over the interval, as clients that started
/// at unrelated times would be, without lining them up on a grid that could resonate with
/// the publish schedule (10 clients at 0, 100, 200 ms... polling a feed published every
/// 100 ms would all see each comment at the same phase and skew the latency).
fn poll_phase_fraction(i: u32) -> f64 {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    (f64::from(i) * GOLDEN).fract()
}

/// Counts reconnects second by second from the window's start until aborted.
pub fn spawn_reconnect_monitor(
    counters: Arc<ClientCounters>,
    schedule: Schedule,
) -> (JoinHandle<()>, Arc<Mutex<Vec<u64>>>) {
    let seconds = Arc::new(Mutex::new(Vec::new()));
    let monitor = tokio::spawn({
        let seconds = seconds.clone();
        async move {
            tokio::time::sleep_until(schedule.window_start().into()).await;
            let mut last = counters.reconnects.load(Ordering::Relaxed);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = counters.reconnects.load(Ordering::Relaxed);
                seconds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(now.saturating_sub(last));
                last = now;
            }
        }
    });
    (monitor, seconds)
}

/// How late the subscribers' runtime wakes a 1 ms timer through the window: time a delivery
/// may wait inside the generator before it is timestamped.
pub fn spawn_lag_probe(schedule: Schedule) -> JoinHandle<Histogram<u64>> {
    tokio::spawn(async move {
        tokio::time::sleep_until(schedule.window_start().into()).await;
        let mut lag = recorder::new_histogram();
        while Instant::now() < schedule.window_end() {
            let asked = Instant::now();
            tokio::time::sleep(Duration::from_millis(1)).await;
            let late = asked.elapsed().saturating_sub(Duration::from_millis(1));
            lag.saturating_record((late.as_micros() as u64).max(1));
        }
        lag
    })
}

pub fn client_moment(counters: &ClientCounters, meters: &[Arc<ByteMeter>]) -> ClientMoment {
    let (bytes_up, bytes_down) = byte_totals(meters);
    ClientMoment {
        counts: counters.snapshot(),
        bytes_up,
        bytes_down,
        cpu_seconds: crate::sys::cpu_seconds(),
        at: Instant::now(),
    }
}

/// Bytes up and down over all of the subscribers' meters.
pub fn byte_totals(meters: &[Arc<ByteMeter>]) -> (u64, u64) {
    meters
        .iter()
        .map(|m| m.totals())
        .fold((0, 0), |(up, down), (u, d)| (up + u, down + d))
}

/// What one meter (one server instance's subscribers) counted: bytes at the sockets and the
/// kernel's totals over closed sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MeterTotals {
    pub up: u64,
    pub down: u64,
    pub kernel_sockets: u64,
    pub kernel: crate::net::KernelCount,
}

impl MeterTotals {
    pub fn of(meter: &ByteMeter) -> Self {
        let (up, down) = meter.totals();
        let (kernel_sockets, kernel) = meter.kernel_totals();
        Self {
            up,
            down,
            kernel_sockets,
            kernel,
        }
    }

    pub fn add(&mut self, other: &MeterTotals) {
        self.up += other.up;
        self.down += other.down;
        self.kernel_sockets += other.kernel_sockets;
        self.kernel.bytes_acked += other.kernel.bytes_acked;
        self.kernel.bytes_received += other.kernel.bytes_received;
        self.kernel.segs_out += other.kernel.segs_out;
        self.kernel.segs_in += other.kernel.segs_in;
    }
}

/// Collects every subscriber's record, by its position in the share, cancelling those still
/// running `after` the end-of-cell comment.
pub async fn join_subscribers(
    subscribers: &mut Subscribers,
    after: Duration,
) -> (Vec<Option<SubscriberRecord>>, Option<CutOff>) {
    let tasks = &mut subscribers.tasks;
    let mut records: Vec<Option<SubscriberRecord>> =
        (0..subscribers.share.len(subscribers.clients))
            .map(|_| None)
            .collect();
    let share = subscribers.share;
    let mut collect = |joined: Result<(u32, SubscriberRecord), JoinError>| {
        if let Ok((i, record)) = joined {
            records[share.position(i)] = Some(record);
        }
    };
    let finished = tokio::time::timeout(after, async {
        while let Some(joined) = tasks.join_next().await {
            collect(joined);
        }
    })
    .await;
    let mut cut_off = None;
    if finished.is_err() {
        cut_off = Some(CutOff {
            still_running: tasks.len(),
            after,
        });
        subscribers.stop.cancel();
        while let Some(joined) = tasks.join_next().await {
            collect(joined);
        }
    }
    (records, cut_off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_phases_spread_over_the_interval() {
        let mut phases: Vec<f64> = (0..10).map(poll_phase_fraction).collect();
        assert_eq!(phases[0], 0.0);
        phases.sort_by(f64::total_cmp);
        // Ten golden-ratio points leave no gap wider than a fifth of the interval.
        let widest = phases.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        assert!(widest < 0.2, "{phases:?}");
        assert!(phases.iter().all(|p| (0.0..1.0).contains(p)));
    }

    #[test]
    fn shares_split_the_subscribers_without_overlap() {
        let shares: Vec<Share> = (0..3).map(|w| Share { first: w, step: 3 }).collect();
        let mut all: Vec<u32> = shares.iter().flat_map(|s| s.indices(10)).collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(
            shares.iter().map(|s| s.len(10)).collect::<Vec<_>>(),
            [4, 3, 3]
        );
        assert_eq!(shares[1].position(7), 2);
        assert_eq!(shares[1].index(2), 7);
        assert_eq!(Share::ALL.len(10), 10);
        assert_eq!(Share::NONE.len(10), 0);
        assert_eq!(Share::NONE.indices(10).count(), 0);
    }
}
