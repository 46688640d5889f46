//! Fault injection through a cell's window (the scenario's `[faults]`): drops from either
//! side, server restarts on the same address, clients that close for good; and what is
//! measured of them beyond the recorder's loss and duplicate counts: each subscriber's time
//! from a drop to its first delivery over a new connection, and the server's
//! `connections_open` sampled through the window, from which the time it took to notice
//! clients that closed is read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use tokio_util::sync::CancellationToken;

use super::target::{ServerProcess, StatsReader};
use crate::http::client::{HttpConnection, encode_component};
use crate::model::Target;
use crate::model::faults::{FaultEvent, FaultKind, Faults, OpenSample, Side, TimeSummary};
use crate::model::technique::Technique;
use crate::net::{ByteMeter, CutSwitch};

/// Time between two reads of `/stats` for the connections-open series: fine enough to time
/// a close the server notices at once, cheap enough (50 small requests a second, booked
/// to `other`) not to weigh on the technique measured.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// The entry a restart books its subscribers' recoveries under, apart from the `drop`
/// entries (which are numbered from 0).
pub const RESTART_ENTRY: usize = usize::MAX;

/// One subscriber's fault state, shared by the injector (which marks drops) and the
/// subscriber's record (which sees its connections and deliveries).
#[derive(Debug, Default)]
pub struct FaultSlot {
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    /// The last drop not yet recovered from, and the `drop` entry that made it.
    dropped_at: Option<(Instant, usize)>,
    /// A new connection came up after `dropped_at`.
    reconnected: bool,
    /// Per drop entry, microseconds from each drop to the first delivery over a connection
    /// made after it.
    recoveries: Vec<(usize, u64)>,
    /// Per drop entry, drops followed by another drop (or the cell's end) before any such
    /// delivery.
    unrecovered: Vec<usize>,
    /// Per drop entry.
    drops: Vec<usize>,
    /// The subscriber closed for good (`close_page`): it expects nothing after.
    left: bool,
    /// Connections (or streams) that came up, the first included.
    connections: u64,
}

/// What a subscriber's slot holds at the cell's end, each figure tagged with the index of
/// the `drop` entry it belongs to.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SlotTotals {
    pub recoveries: Vec<(usize, u64)>,
    pub unrecovered: Vec<usize>,
    pub drops: Vec<usize>,
    /// Connections that came up, the first included.
    pub connections: u64,
}

impl FaultSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The injector is about to drop this subscriber's connection, for `drop` entry `entry`.
    pub fn dropped(&self, at: Instant, entry: usize) {
        let mut state = self.lock();
        if let Some((_, pending)) = state.dropped_at {
            state.unrecovered.push(pending);
        }
        state.dropped_at = Some((at, entry));
        state.reconnected = false;
        state.drops.push(entry);
    }

    /// The injector closed this subscriber for good.
    pub fn leave(&self) {
        self.lock().left = true;
    }

    pub fn has_left(&self) -> bool {
        self.lock().left
    }

    /// A connection of the subscriber came up.
    pub fn connected(&self) {
        let mut state = self.lock();
        state.connections += 1;
        if state.dropped_at.is_some() {
            state.reconnected = true;
        }
    }

    /// A comment arrived at `at`: the first over a connection made after a drop ends it.
    pub fn delivered(&self, at: Instant) {
        let mut state = self.lock();
        if let (Some((dropped, entry)), true) = (state.dropped_at, state.reconnected) {
            let us = at.saturating_duration_since(dropped).as_micros() as u64;
            state.recoveries.push((entry, us.max(1)));
            state.dropped_at = None;
        }
    }

    /// The totals, a pending drop counted as unrecovered.
    pub fn totals(&self) -> SlotTotals {
        let state = self.lock();
        let mut unrecovered = state.unrecovered.clone();
        unrecovered.extend(state.dropped_at.map(|(_, entry)| entry));
        SlotTotals {
            recoveries: state.recoveries.clone(),
            unrecovered,
            drops: state.drops.clone(),
            connections: state.connections,
        }
    }
}

/// What the injector needs of one subscriber.
pub struct FaultHandle {
    pub user: String,
    pub cut: Arc<CutSwitch>,
    /// Cancelling it ends the subscriber (its client closes as a page would).
    pub stop: CancellationToken,
    pub slot: Arc<FaultSlot>,
}

/// What the injector did and saw through the window.
#[derive(Debug, Default)]
pub struct Injection {
    pub events: Vec<FaultEvent>,
    pub restarts: u64,
    /// The server's connections open for the technique, with the moment each answer arrived.
    pub samples: Vec<(Instant, u64)>,
    /// When the close_page fault fired, and how many subscribers it closed.
    pub closed: Option<(Instant, u32)>,
    /// When the vanished subscribers' packets began to be black-holed, and how many.
    pub vanished: Option<(Instant, u32)>,
    /// Faults that could not be injected, in words.
    pub errors: Vec<String>,
}

/// One fault at one moment of the window.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// A drop of `drop` entry `entry`.
    Drop {
        entry: usize,
    },
    Restart,
    ClosePage,
    Vanish,
}

/// The moments of the window's faults, in order.
fn plan(faults: &Faults, window: Duration) -> Vec<(Duration, Action)> {
    let mut actions = Vec::new();
    for (entry, drop) in faults.drop.iter().enumerate() {
        let mut round = 1;
        while drop.every * round < window {
            actions.push((drop.every * round, Action::Drop { entry }));
            round += 1;
        }
    }
    actions.extend(faults.restart.iter().map(|at| (*at, Action::Restart)));
    if let Some(close) = &faults.close_page {
        actions.push((close.at, Action::ClosePage));
    }
    if let Some(vanish) = &faults.vanish {
        actions.push((vanish.at, Action::Vanish));
    }
    actions.sort_by_key(|(at, _)| *at);
    actions
}

/// How many of `n` subscribers a share picks: at least one.
fn share_of(share: f64, n: usize) -> usize {
    ((share * n as f64).ceil() as usize)
        .clamp(1, n.max(1))
        .min(n)
}

/// The next `count` of `n` subscribers after `next`, which moves past them: consecutive
/// blocks, so every subscriber is dropped in turn before any is dropped twice, and two drop
/// entries firing at once take different subscribers.
fn next_block(next: &mut usize, count: usize, n: usize) -> Vec<usize> {
    let block = (0..count).map(|j| (*next + j) % n.max(1)).collect();
    *next = (*next + count) % n.max(1);
    block
}

/// Where the injector acts.
pub struct Arena<'a> {
    pub technique: Technique,
    /// The server instances, directly (not through a link's relays); subscriber `i` is
    /// connected to `addrs[i % len]`.
    pub addrs: Vec<SocketAddr>,
    pub handles: &'a [FaultHandle],
    /// The instance `restart` stops and starts, if the load generator started it (`None`
    /// with `--target`: no restarts).
    pub server: Option<&'a mut ServerProcess>,
    /// Which instance that is, to time its subscribers' recovery.
    pub restart_instance: usize,
    pub window_start: Instant,
    pub window_end: Instant,
}

/// Fires the faults at their moments and samples `connections_open` until the window ends.
pub async fn inject(faults: &Faults, mut arena: Arena<'_>) -> Injection {
    let window = arena
        .window_end
        .saturating_duration_since(arena.window_start);
    let stop_sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample_open(
        arena.addrs.clone(),
        arena.technique,
        arena.window_start,
        stop_sampling.clone(),
    ));
    let mut injection = Injection::default();
    let n = arena.handles.len();
    let mut next = 0;
    for (at, action) in plan(faults, window) {
        tokio::time::sleep_until((arena.window_start + at).into()).await;
        let now = Instant::now();
        let at_ms = now
            .saturating_duration_since(arena.window_start)
            .as_millis() as u64;
        let (kind, subscribers) = match action {
            Action::Drop { entry } => {
                let drop = faults.drop[entry];
                let block = next_block(&mut next, share_of(drop.share, n), n);
                let picked: Vec<&FaultHandle> = block.iter().map(|&i| &arena.handles[i]).collect();
                let dropped = match drop.side {
                    Side::Client => {
                        for handle in &picked {
                            handle.slot.dropped(now, entry);
                            handle.cut.fire(drop.how);
                        }
                        picked
                    }
                    // Only users the server had a live connection (or request) for are
                    // dropped: a short poller holds none between its polls. They are marked
                    // once the server names them, a millisecond before any can reconnect
                    // (the clients' first retry waits at least 100 ms).
                    // Each instance drops the users connected to it.
                    Side::Server => {
                        let mut named = Vec::new();
                        for (k, &addr) in arena.addrs.iter().enumerate() {
                            let users: Vec<&str> = block
                                .iter()
                                .filter(|&&i| i % arena.addrs.len() == k)
                                .map(|&i| arena.handles[i].user.as_str())
                                .collect();
                            if users.is_empty() {
                                continue;
                            }
                            match admin_drop(addr, arena.technique, &users).await {
                                Ok(names) => named.extend(names),
                                Err(error) => injection
                                    .errors
                                    .push(format!("admin drop at {addr}: {error}")),
                            }
                        }
                        picked
                            .into_iter()
                            .filter(|h| named.contains(&h.user))
                            .inspect(|h| h.slot.dropped(now, entry))
                            .collect()
                    }
                };
                let picked = dropped;
                (FaultKind::Drop, picked.len() as u32)
            }
            Action::Restart => {
                // The restarted instance's subscribers lose their connections: each one's
                // recovery runs to its first comment over a new connection.
                let instances = arena.addrs.len().max(1);
                for (i, handle) in arena.handles.iter().enumerate() {
                    if i % instances == arena.restart_instance && !handle.slot.has_left() {
                        handle.slot.dropped(now, RESTART_ENTRY);
                    }
                }
                match arena.server.as_deref_mut() {
                    Some(server) => match server.restart().await {
                        Ok(()) => injection.restarts += 1,
                        Err(error) => injection.errors.push(format!("restart: {error}")),
                    },
                    None => injection.errors.push(
                        "restart: needs a server the load generator started (not --target)".into(),
                    ),
                }
                (FaultKind::Restart, 0)
            }
            Action::ClosePage => {
                let close = faults.close_page.expect("planned from it");
                // From the end of the list, so a scenario with drops too closes others first.
                let count = share_of(close.share, n);
                for handle in arena.handles.iter().rev().take(count) {
                    handle.slot.leave();
                    handle.stop.cancel();
                }
                injection.closed = Some((now, count as u32));
                (FaultKind::ClosePage, count as u32)
            }
            Action::Vanish => {
                let vanish = faults.vanish.as_ref().expect("planned from it");
                let count = share_of(vanish.share, n);
                // Before the ones a close_page takes (from the end), so both can be in a cell.
                let closing = faults.close_page.map_or(0, |c| share_of(c.share, n));
                let picked: Vec<&FaultHandle> = arena
                    .handles
                    .iter()
                    .rev()
                    .skip(closing)
                    .take(count)
                    .collect();
                let ports: Vec<u16> = picked.iter().filter_map(|h| h.cut.port()).collect();
                // They expect nothing after their last comment: nothing can reach them.
                for handle in &picked {
                    handle.slot.leave();
                }
                match super::netns::vanish(&ports) {
                    // Timed once every filter is in place.
                    Ok(()) => injection.vanished = Some((Instant::now(), ports.len() as u32)),
                    Err(error) => injection.errors.push(format!("vanish: {error}")),
                }
                // Their clients stop now: whatever they send goes nowhere, and they need not
                // hold up the end of the cell.
                for handle in &picked {
                    handle.stop.cancel();
                }
                (FaultKind::Vanish, ports.len() as u32)
            }
        };
        injection.events.push(FaultEvent {
            kind,
            at_ms,
            subscribers,
        });
    }
    tokio::time::sleep_until(arena.window_end.into()).await;
    stop_sampling.cancel();
    injection.samples = sampler.await.unwrap_or_default();
    injection
}

/// `POST /admin/drop?technique=T&users=...` on a connection of its own (booked to `other`).
async fn admin_drop(
    addr: SocketAddr,
    technique: Technique,
    users: &[&str],
) -> Result<Vec<String>, crate::http::client::ClientError> {
    let list: Vec<String> = users.iter().map(|u| encode_component(u)).collect();
    let path = format!(
        "/admin/drop?technique={}&users={}",
        technique.name(),
        list.join(",")
    );
    let mut connection = HttpConnection::open(&Target { addr }, ByteMeter::new()).await?;
    let body = connection.fetch(Method::POST, &path, &[], None).await?;
    #[derive(serde::Deserialize)]
    struct Dropped {
        users_dropped: Vec<String>,
    }
    serde_json::from_slice::<Dropped>(&body)
        .map(|d| d.users_dropped)
        .map_err(|e| crate::http::client::ClientError::Parse(e.to_string()))
}

/// Reads `connections_open` every `SAMPLE_EVERY` from the window's start until stopped;
/// reads that fail (the server restarting) are skipped.
async fn sample_open(
    addrs: Vec<SocketAddr>,
    technique: Technique,
    start: Instant,
    stop: CancellationToken,
) -> Vec<(Instant, u64)> {
    tokio::time::sleep_until(start.into()).await;
    let mut readers: Vec<StatsReader> = addrs.into_iter().map(StatsReader::new).collect();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return samples,
            _ = tick.tick() => {}
        }
        // Summed over the instances; a sample with any instance unreadable (restarting) is
        // skipped rather than counted short.
        let mut open = Some(0);
        for stats in &mut readers {
            open = match tokio::time::timeout(Duration::from_secs(1), stats.read()).await {
                Ok(Ok(snapshot)) => open.map(|sum| {
                    sum + snapshot
                        .accounts
                        .get(technique.name())
                        .map_or(0, |a| a.connections_open)
                }),
                _ => None,
            };
        }
        if let Some(open) = open {
            // Timed when the answers are in: the count fell no later than that, so times read
            // from the series are upper bounds (by the sampling period and the reads).
            samples.push((Instant::now(), open));
        }
    }
}

/// Time from the close to each decrement of `connections_open` below the count just before
/// it: the k-th decrement is the k-th connection the server noticed closed. Decrements not
/// seen by the last sample are incomplete.
pub fn close_detection(samples: &[(Instant, u64)], closed_at: Instant, closed: u32) -> TimeSummary {
    let Some(baseline) = samples
        .iter()
        .rev()
        .find(|(at, _)| *at < closed_at)
        .map(|(_, open)| *open)
    else {
        return TimeSummary::of(Vec::new(), u64::from(closed));
    };
    let after: Vec<_> = samples.iter().filter(|(at, _)| *at >= closed_at).collect();
    let mut times = Vec::new();
    for k in 1..=u64::from(closed) {
        let target = baseline.saturating_sub(k);
        if let Some((at, _)) = after.iter().find(|(_, open)| *open <= target) {
            times.push((at.saturating_duration_since(closed_at).as_micros() as u64).max(1));
        }
    }
    let incomplete = u64::from(closed) - times.len() as u64;
    TimeSummary::of(times, incomplete)
}

/// The series for the results, milliseconds after the window began.
pub fn open_series(samples: &[(Instant, u64)], window_start: Instant) -> Vec<OpenSample> {
    samples
        .iter()
        .map(|(at, open)| OpenSample {
            at_ms: at.saturating_duration_since(window_start).as_millis() as u64,
            open: *open,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::faults::{ClosePage, DropFault, How};

    #[test]
    fn the_plan_orders_drops_restarts_and_closes_inside_the_window() {
        let faults = Faults {
            drop: vec![DropFault {
                every: Duration::from_secs(2),
                share: 0.1,
                side: Side::Client,
                how: How::Close,
            }],
            restart: vec![Duration::from_secs(5)],
            restart_instance: 0,
            close_page: Some(ClosePage {
                at: Duration::from_secs(3),
                share: 0.5,
            }),
            slow: None,
            vanish: None,
        };
        let moments: Vec<u64> = plan(&faults, Duration::from_secs(7))
            .iter()
            .map(|(at, _)| at.as_secs())
            .collect();
        assert_eq!(moments, [2, 3, 4, 5, 6]);
    }

    #[test]
    fn drop_rounds_take_every_subscriber_in_turn() {
        assert_eq!(share_of(0.1, 25), 3);
        assert_eq!(share_of(0.001, 5), 1);
        let mut next = 0;
        let rounds: Vec<Vec<usize>> = (0..3).map(|_| next_block(&mut next, 2, 5)).collect();
        assert_eq!(rounds, [vec![0, 1], vec![2, 3], vec![4, 0]]);
    }

    #[test]
    fn a_slot_times_recovery_from_the_drop_to_a_delivery_over_a_new_connection() {
        let slot = FaultSlot::default();
        let t0 = Instant::now();
        slot.dropped(t0, 0);
        // Still on the old connection: not a recovery.
        slot.delivered(t0 + Duration::from_millis(1));
        slot.connected();
        slot.delivered(t0 + Duration::from_millis(250));
        slot.delivered(t0 + Duration::from_millis(300));
        slot.dropped(t0 + Duration::from_secs(1), 1);
        let totals = slot.totals();
        assert_eq!(totals.recoveries, [(0, 250_000)]);
        assert_eq!((totals.drops, totals.unrecovered), (vec![0, 1], vec![1]));
    }

    #[test]
    fn close_detection_reads_each_decrement_after_the_close() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let samples = [
            (ms(0), 10),
            (ms(20), 10),
            (ms(40), 9),
            (ms(60), 9),
            (ms(80), 8),
        ];
        let d = close_detection(&samples, ms(10), 3);
        assert_eq!((d.count, d.incomplete), (2, 1));
        assert_eq!((d.p50_us, d.max_us), (30_000, 70_000));
    }
}
