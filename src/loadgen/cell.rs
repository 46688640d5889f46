//! One cell, in phases that each return plain data: start the target, connect the
//! subscribers, publish and observe the window, drain, settle and compare. What they gather
//! is `CellObservations`, which `assemble` (pure) turns into the cell's result.
//!
//! A cell: start a fresh server (or use `--target`), connect N subscribers of one technique
//! from a known cursor, publish on an open-loop schedule, take both ends' counters at the
//! start and end of the measured window, wait for late deliveries, end every subscriber with
//! an end-of-cell comment so each stops after a complete exchange, then compare the whole
//! cell's bytes as counted at both ends.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::assemble::assemble;
use super::deploy::{DeployPlan, Deployed, deploy, publish_targets, read_all, redis_figures};
use super::faults::{self, Arena, FaultHandle, Injection};
use super::link::CellLinks;
use super::observations::{
    CellObservations, CutOff, Ending, InstanceSettled, Published, ServerMoment, Settled, Window,
};
use super::publisher::{PublishCounts, Publisher};
use super::recorder::{self, Schedule, SeqSet, SubscriberRecord};
use super::runner::{RunError, RunOptions};
use super::subscribers::{
    MeterTotals, Share, Subscribers, client_moment, connect_subscribers, join_subscribers,
    spawn_lag_probe, spawn_reconnect_monitor,
};
use super::worker::{self, Job, Workers};
use crate::model::ServerConfig;
use crate::model::faults::{
    DropRecovery, FaultResults, Faults, Slow, SlowComparison, TimeSummary, VanishRun,
};
use crate::model::results::CellResult;
use crate::model::scenario::{Audience, CellSpec, Scenario};
use crate::model::stats::AccountStats;
use crate::model::stats::StatsSnapshot;
use crate::techniques::{Target, Technique};

/// Runs one cell; returns its result and its latency histogram. A cell with slow
/// subscribers runs a second time without them, as its control (its server log goes to
/// `control/logs/`), and the comparison joins the cell's fault results.
pub async fn run_cell(
    scenario: &Scenario,
    spec: &CellSpec,
    index: usize,
    run_dir: &Path,
    options: &RunOptions,
) -> Result<(CellResult, Histogram<u64>), RunError> {
    let (mut cell, histogram, slow) = run_once(scenario, spec, index, run_dir, options).await?;
    if let (Some(figures), Some(setting)) = (slow, scenario.faults.slow) {
        let mut control = scenario.clone();
        control.faults.slow = None;
        let control_dir = run_dir.join("control");
        let logs = control_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|source| RunError::Write { path: logs, source })?;
        let (control_cell, _, _) = run_once(&control, spec, index, &control_dir, options).await?;
        let comparison = slow_comparison(&cell, &control_cell, &figures, setting);
        cell.faults.get_or_insert_with(Default::default).slow = Some(comparison);
    }
    // One more run per further liveness setting, each on a fresh server with those flags; only
    // their vanish figures are kept (the cell's own figures are the first setting's run).
    if let Some(vanish) = &scenario.faults.vanish {
        for (n, setting) in vanish.settings.iter().enumerate().skip(1) {
            let mut run = scenario.clone();
            run.faults = Faults {
                vanish: Some(crate::model::faults::Vanish {
                    settings: vec![*setting],
                    ..vanish.clone()
                }),
                ..Faults::default()
            };
            let dir = run_dir.join(format!("vanish-{n}"));
            let logs = dir.join("logs");
            std::fs::create_dir_all(&logs)
                .map_err(|source| RunError::Write { path: logs, source })?;
            let (other, _, _) = run_once(&run, spec, index, &dir, options).await?;
            let runs = other.faults.map(|f| f.vanish).unwrap_or_default();
            cell.faults
                .get_or_insert_with(Default::default)
                .vanish
                .extend(runs);
        }
    }
    Ok((cell, histogram))
}

/// What the slow subscribers' cell measured of its two groups.
struct SlowFigures {
    slow_subscribers: u32,
    fast_p50_us: u64,
    fast_p99_us: u64,
    fast_missing: u64,
    slow_missing: u64,
    slow_delivered: u64,
    slow_resumed: u64,
    /// Dropped as too slow, stalled, unresponsive or for the user timeout, whole cell (zero
    /// across a restart).
    dropped: u64,
}

fn slow_comparison(
    cell: &CellResult,
    control: &CellResult,
    figures: &SlowFigures,
    setting: Slow,
) -> SlowComparison {
    let control_p99 = control.latency.p99_us;
    SlowComparison {
        slow_subscribers: figures.slow_subscribers,
        read_bytes_per_s: setting.read_bytes_per_s,
        fast_p50_us: figures.fast_p50_us,
        fast_p99_us: figures.fast_p99_us,
        control_p50_us: control.latency.p50_us,
        control_p99_us: control_p99,
        p99_ratio: if control_p99 > 0 {
            figures.fast_p99_us as f64 / control_p99 as f64
        } else {
            0.0
        },
        fast_missing: figures.fast_missing,
        slow_missing: figures.slow_missing,
        slow_delivered: figures.slow_delivered,
        peak_rss_bytes: cell.server.peak_rss_bytes,
        control_peak_rss_bytes: control.server.peak_rss_bytes,
        dropped: figures.dropped,
        control_dropped: control.server.dropped_slow,
        slow_resumed: figures.slow_resumed,
    }
}

/// One run of a cell; with slow subscribers, also the figures of its two groups.
async fn run_once(
    scenario: &Scenario,
    spec: &CellSpec,
    index: usize,
    run_dir: &Path,
    options: &RunOptions,
) -> Result<(CellResult, Histogram<u64>, Option<SlowFigures>), RunError> {
    let plan = CellPlan::new(scenario, spec);
    let mut target = start_target(scenario, spec, &plan, index, run_dir, options).await?;
    let start_cursor = target
        .newest_id
        .unwrap_or_else(|| start_cursor(&target.instances[0].before));
    // Over an emulated link, everyone reaches each instance through that instance's relay.
    let publisher_link = scenario.network.as_ref().and_then(|n| n.publisher);
    let links = CellLinks::start(spec.link, publisher_link, &target.addrs())
        .await
        .map_err(RunError::Link)?;
    let subscriber_addrs = links.subscribers_addrs();
    let connect_started = Instant::now();
    let load = scenario.load;
    crate::http::client::bind_connections_to(load.sources());
    // This run's share of the subscribers (all, or its shard's); with worker processes, they
    // hold it and this process none.
    let base_share = Share::of_shard(options.shard);
    let share = if load.workers > 0 {
        Share::NONE
    } else {
        base_share
    };
    let mut subscribers = connect_subscribers(
        scenario,
        spec,
        plan.measured(),
        &subscriber_addrs,
        start_cursor,
        share,
    )
    .await;
    let mut workers = match load.workers {
        0 => None,
        count => {
            let log_stem = run_dir.join("logs").join(format!("cell-{index:03}"));
            let mut workers = Workers::start(&options.loadgen_binary, count, &log_stem, |w| Job {
                scenario: scenario.clone(),
                spec: *spec,
                first: base_share.part(w, count).first,
                step: base_share.part(w, count).step,
                measured: plan.measured(),
                addrs: subscriber_addrs.clone(),
                start_cursor,
            })
            .await?;
            subscribers.ready += workers.ready().await?;
            Some(workers)
        }
    };
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    // Every subscriber connected and nothing published yet: what idle connections hold.
    let rss_connected = rss(&target.read_all().await?);
    let rss_before = target
        .instances
        .iter()
        .map(|i| i.before.process.rss_bytes)
        .sum();
    let publish_targets = publish_targets(&links.publisher_addrs(), scenario.publish_to);
    let observed = publish_and_observe(
        scenario,
        spec,
        &plan,
        &subscribers,
        workers.as_mut(),
        &mut target,
        publish_targets,
    )
    .await?;
    let expected = expected_deliveries(
        scenario.audience,
        &observed.accepted,
        plan.first_measured,
        spec.clients,
        scenario.tabs,
        base_share,
    );
    let (records, mut ending) = drain(
        scenario,
        &mut subscribers,
        workers.as_ref(),
        &observed.publisher,
        expected,
    )
    .await;
    let per_user =
        (scenario.audience == Audience::PerUser).then_some(u64::from(spec.clients / scenario.tabs));
    let shares = match workers {
        None => Vec::new(),
        Some(workers) => {
            workers
                .finish(
                    &observed.accepted,
                    per_user,
                    observed.window.published.errors,
                    stop_after(scenario, spec.clients),
                )
                .await?
        }
    };
    let mut observed = observed;
    let mut reconnects_by_second = observed.reconnects_by_second.clone();
    let mut client_bytes: Vec<MeterTotals> = Vec::new();
    for share in &shares {
        add_share_moments(&mut observed.window, share);
        observed.window.runtime_lag.add(share.lag()?).ok();
        for (second, n) in share.reconnects_by_second.iter().enumerate() {
            if reconnects_by_second.len() <= second {
                reconnects_by_second.push(0);
            }
            reconnects_by_second[second] += n;
        }
        ending.failed_tasks += share.failed_tasks;
        if client_bytes.is_empty() {
            client_bytes = share.meters.clone();
        } else {
            for (total, meter) in client_bytes.iter_mut().zip(&share.meters) {
                total.add(meter);
            }
        }
    }
    if let Some(cut) = worker::cut_off(&shares, stop_after(scenario, spec.clients)) {
        let still_running = cut.still_running + ending.cut_off.map_or(0, |c| c.still_running);
        ending.cut_off = Some(CutOff {
            still_running,
            ..cut
        });
    }
    let server_figures = target.has_server_figures();
    let settled = settle(
        target,
        spec.technique,
        &subscribers,
        &client_bytes,
        base_share,
    )
    .await?;
    drop(links);
    let faults = observed.injection.as_ref().map(|injection| {
        fault_results(
            &scenario.faults,
            injection,
            &subscribers.faults,
            observed.schedule.window_start(),
            observed.schedule.window_end(),
        )
    });

    let expectation = recorder::Expectation {
        schedule: &observed.schedule,
        accepted: &observed.accepted,
        per_user,
        tabs: u64::from(scenario.tabs),
        publish_errors: observed.window.published.errors,
    };
    let mut partial = recorder::merge_share(
        records
            .iter()
            .enumerate()
            .map(|(p, r)| (subscribers.share.index(p), r)),
        &expectation,
    );
    for share in &shares {
        partial.add(&share.partial()?);
    }
    let merged = partial.finish(&reconnects_by_second);
    let seconds_bytes = crate::report::hgrm::serialize_all(&merged.per_second);
    let histogram = merged.histogram.clone();
    let slow_count = scenario.faults.slow_count(spec.clients) as usize;
    let slow = (scenario.faults.slow.is_some()).then(|| {
        let whole = if settled.server_restarted {
            Default::default()
        } else {
            settled.server_after - settled.server_before
        };
        let slow_resumed = subscribers.faults[..slow_count]
            .iter()
            .map(|h| h.slot.totals().connections.saturating_sub(1))
            .sum();
        // Broadcast only (the scenario checks it), so each group is merged on its own.
        let (slow_records, fast_records): (Vec<_>, Vec<_>) = records
            .into_iter()
            .enumerate()
            .partition(|(i, _)| *i < slow_count);
        let strip = |group: Vec<(usize, Option<SubscriberRecord>)>| -> Vec<_> {
            group.into_iter().map(|(_, r)| r).collect()
        };
        let fast = recorder::merge(&strip(fast_records), &expectation, &[]);
        let slow = recorder::merge(&strip(slow_records), &expectation, &[]);
        SlowFigures {
            slow_subscribers: slow_count as u32,
            fast_p50_us: fast.histogram.value_at_quantile(0.5),
            fast_p99_us: fast.histogram.value_at_quantile(0.99),
            fast_missing: fast.deliveries.missing,
            slow_missing: slow.deliveries.missing,
            slow_delivered: slow.deliveries.delivered,
            slow_resumed,
            dropped: whole.dropped_slow
                + whole.dropped_stalled
                + whole.dropped_unresponsive
                + settled.user_timeouts,
        }
    });
    let mut cell = assemble(CellObservations {
        index,
        spec: *spec,
        audience: scenario.audience,
        external_target: !options.targets.is_empty(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ready: subscribers.ready,
        connect_seconds,
        server_figures,
        rss_before,
        rss_connected,
        window: observed.window,
        ending,
        settled,
        merged,
        faults,
    });
    // The cell's latencies second by second, so shard runs can be merged exactly.
    let seconds = run_dir.join(crate::report::hgrm::seconds_file(&cell.histogram_file));
    std::fs::write(&seconds, seconds_bytes).map_err(|source| RunError::Write {
        path: seconds,
        source,
    })?;
    cell.wire = subscribers.tape.as_ref().and_then(|tape| tape.capture());
    Ok((cell, histogram, slow))
}

/// The cursor every subscriber starts after: the feed's newest id before publishing (ids
/// start at the feed incarnation's base, so the count of comments is not one). A server
/// that predates `/stats`' `feed` block numbered its ids from 1, so its count is.
fn start_cursor(before: &StatsSnapshot) -> u64 {
    if before.feed.first_id > 0 {
        before.feed.last_id
    } else {
        before.comments_published
    }
}

/// A cell's shape in comments, from the scenario's timing and the cell's rate.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CellPlan {
    /// Time between two scheduled comments.
    period: Duration,
    /// The first comment of the measured window: the warm-up's are before it.
    first_measured: u64,
    /// Comments published in all, warm-up included.
    total: u64,
}

impl CellPlan {
    fn new(scenario: &Scenario, spec: &CellSpec) -> Self {
        let total = (scenario.warmup + scenario.duration).as_secs_f64() * spec.rate;
        Self {
            period: Duration::from_secs_f64(1.0 / spec.rate),
            first_measured: (scenario.warmup.as_secs_f64() * spec.rate).ceil() as u64,
            total: total.ceil() as u64,
        }
    }

    /// How many comments are measured.
    fn measured(&self) -> usize {
        self.total.saturating_sub(self.first_measured) as usize
    }
}

/// The server's flags for a cell: the scenario's settings, and a history long enough that
/// no comment of the cell is evicted before every subscriber has read it.
fn server_config(scenario: &Scenario, plan: &CellPlan) -> ServerConfig {
    let defaults = ServerConfig::default();
    ServerConfig {
        subscriber_queue: scenario.subscriber_queue as usize,
        history_capacity: (plan.total * 2 + 1_000_000) as usize,
        // A vanish run's liveness settings (the first listed: `run_cell` runs the others).
        sse_heartbeat: vanish_setting(scenario)
            .and_then(|s| s.sse_heartbeat)
            .unwrap_or(scenario.sse_heartbeat),
        ws_ping_interval: vanish_setting(scenario)
            .and_then(|s| s.ws_ping_interval)
            .unwrap_or(defaults.ws_ping_interval),
        ws_pong_timeout: vanish_setting(scenario)
            .and_then(|s| s.ws_pong_timeout)
            .unwrap_or(defaults.ws_pong_timeout),
        user_timeout: vanish_setting(scenario)
            .and_then(|s| s.user_timeout)
            .unwrap_or(defaults.user_timeout),
        // Server-side drops go through the admin endpoint.
        admin: scenario
            .faults
            .drop
            .iter()
            .any(|d| d.side == crate::model::faults::Side::Server),
        ..defaults
    }
}

/// The liveness settings of a vanish run.
fn vanish_setting(scenario: &Scenario) -> Option<&crate::model::faults::LivenessSettings> {
    scenario.faults.vanish.as_ref()?.settings.first()
}

/// The (comment, subscriber) pairs the accepted comments should make among the `share` of
/// the subscribers this run holds.
fn expected_deliveries(
    audience: Audience,
    accepted: &SeqSet,
    first_measured: u64,
    clients: u32,
    tabs: u32,
    share: Share,
) -> u64 {
    match audience {
        Audience::Broadcast => accepted.len() * u64::from(share.len(clients)),
        // Each comment to one user, whose every tab (those in the share) should have it.
        Audience::PerUser => {
            let users = u64::from((clients / tabs).max(1));
            accepted
                .iter()
                .map(|index| {
                    let user = ((first_measured + index as u64) % users) as u32;
                    (user * tabs..(user + 1) * tabs)
                        .filter(|&i| share.holds(i))
                        .count() as u64
                })
                .sum()
        }
    }
}

/// Phase 1: the servers a cell drives (its deployment, or `--target`), and each one's
/// `/stats` before any subscriber connected.
async fn start_target(
    scenario: &Scenario,
    spec: &CellSpec,
    plan: &CellPlan,
    index: usize,
    run_dir: &Path,
    options: &RunOptions,
) -> Result<Deployed, RunError> {
    let log_stem = run_dir.join("logs").join(format!("cell-{index:03}"));
    let deployed = deploy(&DeployPlan {
        deployment: spec.deployment,
        persistence: scenario.redis_persistence,
        config: server_config(scenario, plan),
        targets: &options.targets,
        server_binary: &options.server_binary,
        log_stem: &log_stem,
    })
    .await?;
    Ok(deployed)
}

/// Phase 3: what publishing left behind, and the window's observations.
struct Observed {
    schedule: Schedule,
    /// Kept for the end-of-cell comment and to close its connections.
    publisher: Arc<Publisher>,
    /// Measured comments the server accepted: final, as publishing is over.
    accepted: SeqSet,
    /// Reconnects second by second through the window, for the timeline.
    reconnects_by_second: Vec<u64>,
    window: Window,
    /// What the fault injector did, in cells with faults.
    injection: Option<Injection>,
}

/// Publishes on the open-loop schedule and observes the measured window: from half a
/// period before the first measured comment is due to half a period after the last.
async fn publish_and_observe(
    scenario: &Scenario,
    spec: &CellSpec,
    plan: &CellPlan,
    subscribers: &Subscribers,
    workers: Option<&mut Workers>,
    target: &mut Deployed,
    publish_targets: Vec<Target>,
) -> Result<Observed, RunError> {
    let schedule = Schedule {
        start: Instant::now() + Duration::from_millis(50),
        period: plan.period,
        first_measured: plan.first_measured,
        end: plan.total,
    };
    subscribers.started.set(schedule).expect("set once");
    if let Some(workers) = workers {
        workers.start_schedule(&schedule).await?;
    }
    let (monitor, reconnects) = spawn_reconnect_monitor(subscribers.counters.clone(), schedule);
    let lag = spawn_lag_probe(schedule);
    let publisher = Arc::new(Publisher::new(
        publish_targets,
        spec.payload_bytes as usize,
        scenario.audience,
        spec.clients / scenario.tabs,
        plan.measured(),
    ));
    let publishing = publisher
        .clone()
        .run_on_own_thread(schedule, subscribers.stop.clone());

    let technique = spec.technique;
    let addrs = target.addrs();
    // Disjoint borrows: the window's reads need every instance's `/stats` reader, a restart
    // needs one instance's process.
    let restart_instance = scenario.faults.restart_instance as usize;
    let mut server = None;
    let mut readers = Vec::with_capacity(target.instances.len());
    for (k, instance) in target.instances.iter_mut().enumerate() {
        if k == restart_instance {
            server = instance.server.as_mut();
        }
        readers.push(&mut instance.stats);
    }
    let redis = target.redis.as_ref();
    let observe = async {
        tokio::time::sleep_until(schedule.window_start().into()).await;
        let client_start = client_moment(&subscribers.counters, &subscribers.meters);
        let server_instances_start = server_moments(&read_all(&mut readers).await?, technique);
        let (redis_start, start_unread) = redis_figures(redis).await;
        tokio::time::sleep_until(schedule.window_end().into()).await;
        let client_end = client_moment(&subscribers.counters, &subscribers.meters);
        let server_instances_end = server_moments(&read_all(&mut readers).await?, technique);
        let (redis_end, end_unread) = redis_figures(redis).await;
        let redis_unread = start_unread.or(end_unread);
        Ok::<_, RunError>((
            client_start,
            server_instances_start,
            redis_start,
            client_end,
            server_instances_end,
            redis_end,
            redis_unread,
        ))
    };
    let inject = async {
        if scenario.faults.is_empty() {
            return None;
        }
        let arena = Arena {
            technique,
            addrs,
            handles: &subscribers.faults,
            server,
            restart_instance,
            window_start: schedule.window_start(),
            window_end: schedule.window_end(),
        };
        Some(faults::inject(&scenario.faults, arena).await)
    };
    let (observed, injection) = tokio::join!(observe, inject);
    let (
        client_start,
        server_instances_start,
        redis_start,
        client_end,
        server_instances_end,
        redis_end,
        redis_unread,
    ) = observed?;
    monitor.abort();
    let runtime_lag = lag.await.unwrap_or_else(|_| recorder::new_histogram());
    let _ = publishing.await;
    // An aborted task may be mid-tick: wait until it has stopped before reading its seconds.
    let _ = monitor.await;

    let counts = &publisher.counts;
    let accepted = counts
        .accepted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Observed {
        schedule,
        accepted,
        reconnects_by_second: reconnects.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        window: Window {
            client_start,
            client_end,
            server_start: ServerMoment::sum(&server_instances_start),
            server_end: ServerMoment::sum(&server_instances_end),
            server_instances_start,
            server_instances_end,
            redis_start,
            redis_end,
            redis_unread,
            runtime_lag,
            published: published(counts),
        },
        publisher,
        injection,
    })
}

/// The instances' resident memory, summed.
fn rss(snapshots: &[StatsSnapshot]) -> u64 {
    snapshots.iter().map(|s| s.process.rss_bytes).sum()
}

fn server_moments(snapshots: &[StatsSnapshot], technique: Technique) -> Vec<ServerMoment> {
    snapshots
        .iter()
        .map(|snapshot| ServerMoment {
            account: account(snapshot, technique),
            process: snapshot.process,
            started_at_us: snapshot.started_at_us,
        })
        .collect()
}

fn account(snapshot: &StatsSnapshot, technique: Technique) -> AccountStats {
    snapshot
        .accounts
        .get(technique.name())
        .copied()
        .unwrap_or_default()
}

fn published(counts: &PublishCounts) -> Published {
    Published {
        errors: counts.measured_errors.load(Ordering::Relaxed),
        first_error: counts
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        lateness_mean_us: counts.mean_lateness_us(),
        lateness_max_us: counts.max_lateness_us.load(Ordering::Relaxed),
    }
}

/// Phase 4: waits for late deliveries, then ends every subscriber with a last comment, so
/// each stops after a complete exchange and the bytes both ends counted are comparable to
/// the byte. Returns each subscriber's record, by index: per-user expectations depend on
/// it, and a subscriber whose task failed keeps its place (`None`) so its expected comments
/// count as missing.
async fn drain(
    scenario: &Scenario,
    subscribers: &mut Subscribers,
    workers: Option<&Workers>,
    publisher: &Publisher,
    expected: u64,
) -> (Vec<Option<SubscriberRecord>>, Ending) {
    let deadline = Instant::now() + scenario.drain;
    let delivered = || {
        subscribers.progress.delivered.load(Ordering::Relaxed)
            + workers.map_or(0, Workers::delivered)
    };
    while delivered() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end_comment_error = publisher.publish_end().await.err().map(|e| e.to_string());
    let (records, cut_off) =
        join_subscribers(subscribers, stop_after(scenario, subscribers.clients)).await;
    let failed_tasks = records.iter().filter(|r| r.is_none()).count();
    publisher.close().await;
    let ending = Ending {
        end_comment_error,
        cut_off,
        failed_tasks,
    };
    (records, ending)
}

/// How long subscribers may take to stop after the end-of-cell comment: a short poller may
/// be waiting out its interval, and the comment itself fans out like any other: to 100,000
/// long pollers its p99 was 4.5 s, past a fixed margin (0.1 ms more per subscriber).
fn stop_after(scenario: &Scenario, clients: u32) -> Duration {
    scenario.poll_interval + Duration::from_secs(5) + Duration::from_micros(100) * clients
}

/// Adds a worker's window snapshots to the parent's (whose time they share).
fn add_share_moments(window: &mut Window, share: &worker::Done) {
    for (moment, data) in [
        (&mut window.client_start, &share.window_start),
        (&mut window.client_end, &share.window_end),
    ] {
        moment.counts = moment.counts + data.counts;
        moment.bytes_up += data.bytes_up;
        moment.bytes_down += data.bytes_down;
        moment.cpu_seconds += data.cpu_seconds;
    }
}

/// Phase 5: waits for every instance to see every subscriber connection closed, stops
/// them, and takes the whole cell's counts at both ends, per instance, and the kernel's.
async fn settle(
    mut target: Deployed,
    technique: Technique,
    subscribers: &Subscribers,
    workers_bytes: &[MeterTotals],
    share: Share,
) -> Result<Settled, RunError> {
    let close_deadline = Instant::now() + Duration::from_secs(5);
    let mut last = target.read_all().await?;
    while last
        .iter()
        .any(|snapshot| account(snapshot, technique).connections_open > 0)
        && Instant::now() < close_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        last = target.read_all().await?;
    }
    let clients = u64::from(subscribers.clients);
    let count = target.instances.len() as u64;
    let instances: Vec<InstanceSettled> = target
        .instances
        .iter()
        .zip(&last)
        .zip(client_bytes(subscribers, workers_bytes))
        .enumerate()
        .map(|(i, ((instance, after), bytes))| {
            let (client_up, client_down) = (bytes.up, bytes.down);
            InstanceSettled {
                url: format!("http://{}", instance.addr),
                // Round-robin by subscriber index, over this run's share.
                subscribers: share
                    .indices(clients as u32)
                    .filter(|s| u64::from(*s) % count == i as u64)
                    .count() as u64,
                before: account(&instance.before, technique),
                after: account(after, technique),
                restarted: after.started_at_us != instance.before.started_at_us,
                client_up,
                client_down,
                peak_rss_bytes: after.process.peak_rss_bytes,
                h2_overhead: (
                    after
                        .h2
                        .overhead_in
                        .saturating_sub(instance.before.h2.overhead_in),
                    after
                        .h2
                        .overhead_out
                        .saturating_sub(instance.before.h2.overhead_out),
                ),
            }
        })
        .collect();
    let h2_overhead = instances.iter().fold((0, 0), |(i, o), instance| {
        (i + instance.h2_overhead.0, o + instance.h2_overhead.1)
    });
    // Connections the servers closed for `--user-timeout`, over the instances that did not
    // restart (a restarted one's counters started again).
    let user_timeouts = target
        .instances
        .iter()
        .zip(&last)
        .filter(|(instance, after)| after.started_at_us == instance.before.started_at_us)
        .map(|(instance, after)| {
            after
                .timeouts
                .user_timeout
                .saturating_sub(instance.before.timeouts.user_timeout)
        })
        .sum();
    target.stop().await;
    let mut all = MeterTotals::default();
    for bytes in client_bytes(subscribers, workers_bytes) {
        all.add(&bytes);
    }
    let (client_up, client_down, kernel_sockets, kernel) =
        (all.up, all.down, all.kernel_sockets, all.kernel);
    Ok(Settled {
        server_before: instances
            .iter()
            .map(|i| i.before)
            .fold(Default::default(), |a, b| a + b),
        server_after: instances
            .iter()
            .map(|i| i.after)
            .fold(Default::default(), |a, b| a + b),
        server_restarted: instances.iter().any(|i| i.restarted),
        user_timeouts,
        client_up,
        client_down,
        kernel_sockets,
        kernel,
        instances,
        h2_overhead,
    })
}

/// What the subscribers counted, by server instance: this process's meters plus the
/// worker processes' totals.
fn client_bytes(subscribers: &Subscribers, workers_bytes: &[MeterTotals]) -> Vec<MeterTotals> {
    subscribers
        .meters
        .iter()
        .enumerate()
        .map(|(i, meter)| {
            let mut totals = MeterTotals::of(meter);
            if let Some(other) = workers_bytes.get(i) {
                totals.add(other);
            }
            totals
        })
        .collect()
}

/// What the faults did, from the injector's log and every subscriber's slot.
fn fault_results(
    faults: &Faults,
    injection: &Injection,
    handles: &[FaultHandle],
    window_start: Instant,
    window_end: Instant,
) -> FaultResults {
    let totals: Vec<_> = handles.iter().map(|h| h.slot.totals()).collect();
    // Over the drops of entry `Some(i)`, or of every `drop` entry (a restart's are apart).
    let summary = |entry: Option<usize>| {
        let of = |e: &usize| entry.map_or(*e != faults::RESTART_ENTRY, |i| i == *e);
        let times = totals
            .iter()
            .flat_map(|t| {
                t.recoveries
                    .iter()
                    .filter(|(e, _)| of(e))
                    .map(|(_, us)| *us)
            })
            .collect();
        let unrecovered = totals
            .iter()
            .flat_map(|t| t.unrecovered.iter().filter(|e| of(e)))
            .count();
        let drops = totals
            .iter()
            .flat_map(|t| t.drops.iter().filter(|e| of(e)))
            .count();
        (drops as u64, TimeSummary::of(times, unrecovered as u64))
    };
    let (drops, recovery) = summary(None);
    FaultResults {
        events: injection.events.clone(),
        drops,
        recovery,
        recovery_by_drop: faults
            .drop
            .iter()
            .enumerate()
            .map(|(i, drop)| {
                let (drops, recovery) = summary(Some(i));
                DropRecovery {
                    side: drop.side,
                    how: drop.how,
                    drops,
                    recovery,
                }
            })
            .collect(),
        restarts: injection.restarts,
        restart_recovery: (injection.restarts > 0).then(|| summary(Some(faults::RESTART_ENTRY)).1),
        close_detection: injection
            .closed
            .map(|(at, closed)| faults::close_detection(&injection.samples, at, closed)),
        connections_open: faults::open_series(&injection.samples, window_start),
        errors: injection.errors.clone(),
        slow: None,
        vanish: match (&faults.vanish, injection.vanished) {
            (Some(vanish), Some((at, vanished))) => vec![VanishRun {
                settings: vanish.settings[0],
                vanished,
                detection: faults::close_detection(&injection.samples, at, vanished),
                watched_ms: window_end.saturating_duration_since(at).as_millis() as u64,
            }],
            _ => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(warmup: &str, duration: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\ndescription = \"d\"\ntechniques = [\"sse\"]\nclients = 10\n\
             duration = \"{duration}\"\nwarmup = \"{warmup}\"\n[publish]\nrate = 10\n\
             [server]\nsse_heartbeat = \"2s\"\nsubscriber_queue = 64\n"
        );
        Scenario::parse(&text, "t.toml").unwrap()
    }

    fn spec(rate: f64) -> CellSpec {
        CellSpec {
            technique: Technique::Sse,
            clients: 10,
            rate,
            payload_bytes: 100,
            deployment: Default::default(),
            http: Default::default(),
            link: None,
        }
    }

    #[test]
    fn the_plan_counts_warm_up_and_measured_comments() {
        let plan = CellPlan::new(&scenario("2s", "5s"), &spec(10.0));
        assert_eq!(plan.period, Duration::from_millis(100));
        assert_eq!((plan.first_measured, plan.total), (20, 70));
        assert_eq!(plan.measured(), 50);
        // A rate that does not divide the times rounds both boundaries up.
        let plan = CellPlan::new(&scenario("1s", "1s"), &spec(2.5));
        assert_eq!(
            (plan.first_measured, plan.total, plan.measured()),
            (3, 5, 2)
        );
    }

    #[test]
    fn the_server_gets_the_scenario_settings_and_room_for_every_comment() {
        let scenario = scenario("2s", "5s");
        let config = server_config(&scenario, &CellPlan::new(&scenario, &spec(10.0)));
        assert_eq!(config.sse_heartbeat, Duration::from_secs(2));
        assert_eq!(config.subscriber_queue, 64);
        assert_eq!(config.history_capacity, 1_000_140);
        assert_eq!(
            config.max_connections,
            ServerConfig::default().max_connections
        );
    }

    #[test]
    fn broadcast_expects_each_comment_at_every_subscriber() {
        let mut accepted = SeqSet::new(50);
        for i in 0..50 {
            accepted.insert(i);
        }
        let all = Share::ALL;
        assert_eq!(
            expected_deliveries(Audience::Broadcast, &accepted, 0, 10, 1, all),
            500
        );
        assert_eq!(
            expected_deliveries(Audience::PerUser, &accepted, 0, 10, 1, all),
            50
        );
        // Shard 1 of 2 holds subscribers 1, 3, 5, ...: half of each broadcast, and with one tab
        // per user the comments to odd users.
        let odd = Share { first: 1, step: 2 };
        assert_eq!(
            expected_deliveries(Audience::Broadcast, &accepted, 0, 10, 1, odd),
            250
        );
        assert_eq!(
            expected_deliveries(Audience::PerUser, &accepted, 0, 10, 1, odd),
            25
        );
        // Two tabs per user, shard 1 of 2: one tab of every user.
        assert_eq!(
            expected_deliveries(Audience::PerUser, &accepted, 0, 10, 2, odd),
            50
        );
        // Two tabs per user: each per-user comment is expected in both.
        assert_eq!(
            expected_deliveries(Audience::PerUser, &accepted, 0, 10, 2, all),
            100
        );
    }
}
