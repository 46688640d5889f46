//! Runs a scenario cell by cell. A cell: start a fresh server (or use `--target`), connect N
//! subscribers of one technique from a known cursor, publish on an open-loop schedule, take
//! both ends' counters at the start and end of the measured window, wait for late
//! deliveries, end every subscriber with an end-of-cell comment so each stops after a
//! complete exchange, then compare the whole cell's bytes as counted at both ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::preflight::{self, Preflight, PreflightError};
use super::publisher::{Publisher, user_name};
use super::recorder::{self, CellProgress, Schedule, ScheduleStart, SubscriberRecord};
use super::scenario::{Audience, CellSpec, Scenario};
use super::target::{ServerLaunch, ServerProcess, StatsReader, TargetError};
use crate::model::ServerConfig;
use crate::model::results::{
    ByteAgreement, CellResult, ClientTotals, KernelTotals, LatencySummary, LoadgenUse, Machine,
    PerDelivery, PercentilePoint, RunSummary, SCHEMA_VERSION, ServerTotals,
};
use crate::model::stats::Account;
use crate::model::stats::AccountStats;
use crate::model::stats::StatsSnapshot;
use crate::techniques::{ClientCounters, ClientSettings, Subscriber, Target, Technique};

/// A core share above which the load generator may have limited what it measured.
const GENERATOR_BOUND_SHARE: f64 = 0.5;

/// How a run is carried out.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `<scenario>/<timestamp>/` folders go.
    pub results_root: PathBuf,
    /// Drive this server instead of starting one per cell.
    pub target: Option<std::net::SocketAddr>,
    /// The `pushlab-server` binary to start per cell.
    pub server_binary: PathBuf,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Cancelled by Ctrl-C: the current cell is abandoned, finished ones are kept.
    pub interrupt: CancellationToken,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("writing results to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

/// What a run produced.
pub struct RunOutput {
    pub run_dir: PathBuf,
    pub summary: RunSummary,
    /// Each cell's latency histogram, in `summary.cells` order.
    pub histograms: Vec<Histogram<u64>>,
    pub preflight: Preflight,
}

/// Called after each cell with the run folder and the run so far, to write results
/// incrementally.
pub type CellDone<'a> =
    dyn FnMut(&Path, &RunSummary, &[Histogram<u64>]) -> Result<(), RunError> + 'a;

/// Runs every cell of `scenario`, calling `on_cell` after each.
pub async fn run(
    scenario: &Scenario,
    options: &RunOptions,
    on_cell: &mut CellDone<'_>,
) -> Result<RunOutput, RunError> {
    let preflight = preflight::check(scenario, options.target.is_none())?;
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let run_dir = options
        .results_root
        .join(&scenario.name)
        .join(started_at.replace(':', "-"));
    std::fs::create_dir_all(run_dir.join("logs")).map_err(|source| RunError::Write {
        path: run_dir.clone(),
        source,
    })?;
    let mut summary = RunSummary {
        schema_version: SCHEMA_VERSION,
        pushlab_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        target: options.target.map(|addr| format!("http://{addr}")),
        scenario: scenario.clone(),
        machine: describe_machine(preflight.fd_limit),
        cells: Vec::new(),
        interrupted: false,
    };
    let cells = scenario.cells();
    let progress = Progress::new(options.progress, &cells, scenario);
    let mut histograms = Vec::new();
    for (index, spec) in cells.iter().enumerate() {
        progress.start_cell(index, spec);
        let outcome = tokio::select! {
            outcome = run_cell(scenario, spec, index, &run_dir, options) => outcome,
            _ = options.interrupt.cancelled() => Err(RunError::Interrupted),
        };
        match outcome {
            Ok((cell, histogram)) => {
                progress.finish_cell(&cell);
                summary.cells.push(cell);
                histograms.push(histogram);
                on_cell(&run_dir, &summary, &histograms)?;
            }
            Err(RunError::Interrupted) => {
                summary.interrupted = true;
                progress.abandon(index);
                break;
            }
            Err(error) => {
                progress.abandon(index);
                return Err(error);
            }
        }
    }
    progress.done();
    Ok(RunOutput {
        run_dir,
        summary,
        histograms,
        preflight,
    })
}

/// Counters of one side taken at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct ClientMoment {
    requests: u64,
    empty_responses: u64,
    connections_opened: u64,
    reconnects: u64,
    errors: u64,
    bytes_up: u64,
    bytes_down: u64,
    cpu_seconds: f64,
    at: Option<Instant>,
}

fn client_moment(counters: &ClientCounters, meter: &crate::net::ByteMeter) -> ClientMoment {
    let (bytes_up, bytes_down) = meter.totals();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    ClientMoment {
        requests: load(&counters.requests),
        empty_responses: load(&counters.empty_responses),
        connections_opened: load(&counters.connections_opened),
        reconnects: load(&counters.reconnects),
        errors: load(&counters.errors),
        bytes_up,
        bytes_down,
        cpu_seconds: crate::sys::cpu_seconds(),
        at: Some(Instant::now()),
    }
}

fn account(snapshot: &StatsSnapshot, technique: Technique) -> AccountStats {
    snapshot.account(Account::Technique(technique))
}

async fn run_cell(
    scenario: &Scenario,
    spec: &CellSpec,
    index: usize,
    run_dir: &Path,
    options: &RunOptions,
) -> Result<(CellResult, Histogram<u64>), RunError> {
    let technique = spec.technique;
    let clients = spec.clients;
    let period = Duration::from_secs_f64(1.0 / spec.rate);
    let measured_start = (scenario.warmup.as_secs_f64() * spec.rate).ceil() as u64;
    let total = ((scenario.warmup + scenario.duration).as_secs_f64() * spec.rate).ceil() as u64;
    let mut warnings = Vec::new();

    let server = match options.target {
        Some(_) => None,
        None => {
            let launch = ServerLaunch {
                binary: options.server_binary.clone(),
                args: ServerConfig {
                    sse_heartbeat: scenario.sse_heartbeat,
                    subscriber_queue: scenario.subscriber_queue as usize,
                    history_capacity: (total * 2 + 1_000_000) as usize,
                    ..ServerConfig::default()
                }
                .to_args(),
                log: run_dir
                    .join("logs")
                    .join(format!("cell-{index:03}-server.log")),
            };
            Some(ServerProcess::start(&launch).await?)
        }
    };
    let addr = server
        .as_ref()
        .map(|s| s.addr)
        .or(options.target)
        .expect("one of them is set");
    let mut stats = StatsReader::new(addr);
    let before = stats.read().await?;
    let start_cursor = before.comments_published;

    // Subscribers, each from the same known cursor, so none can miss a measured comment
    // however long its connection takes to come up.
    let cell_stop = CancellationToken::new();
    let meter = crate::net::ByteMeter::new();
    let counters = Arc::new(ClientCounters::default());
    let progress = Arc::new(CellProgress::default());
    let measured = total.saturating_sub(measured_start) as usize;
    let started: ScheduleStart = Arc::default();
    let mut subscribers = JoinSet::new();
    for i in 0..clients {
        let subscriber = Subscriber {
            target: Target { addr },
            user: Some(user_name(i)),
            after: Some(start_cursor),
            settings: ClientSettings {
                poll_interval: scenario.poll_interval,
                poll_phase: scenario.poll_interval.mul_f64(poll_phase_fraction(i)),
                long_poll_timeout: scenario.long_poll_timeout,
                ..ClientSettings::default()
            },
            meter: meter.clone(),
            counters: counters.clone(),
            stop: cell_stop.child_token(),
        };
        let mut record = SubscriberRecord::new(
            started.clone(),
            measured,
            progress.clone(),
            subscriber.stop.clone(),
            user_name(i),
        );
        subscribers.spawn(async move {
            technique.run_client(&subscriber, &mut record).await;
            (i, record)
        });
    }

    // Publishing starts once every subscriber is connected, so the warm-up and the window
    // measure a steady state, not a crowd of handshakes.
    let ready_deadline =
        Instant::now() + Duration::from_secs(10) + Duration::from_millis(u64::from(clients) * 5);
    while counters.ready.load(Ordering::Relaxed) < u64::from(clients)
        && Instant::now() < ready_deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = counters.ready.load(Ordering::Relaxed);
    if ready < u64::from(clients) {
        warnings.push(format!(
            "only {ready} of {clients} subscribers were connected when publishing began; the others \
             connected during the cell (resuming from the start cursor, so nothing was lost)"
        ));
    }
    let schedule = Arc::new(Schedule {
        start: Instant::now() + Duration::from_millis(50),
        period,
        first_measured: measured_start,
        end: total,
    });
    started.set(*schedule).expect("set once");

    // Reconnects second by second through the window, for the timeline.
    let reconnects_by_second = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let monitor = {
        let (counters, schedule, seconds) = (
            counters.clone(),
            schedule.clone(),
            reconnects_by_second.clone(),
        );
        tokio::spawn(async move {
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
                    .push(now - last);
                last = now;
            }
        })
    };
    // How late the subscribers' runtime wakes a 1 ms timer through the window: time a
    // delivery may wait inside the generator before it is timestamped.
    let lag = {
        let schedule = schedule.clone();
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
    };

    let publisher = Arc::new(Publisher::new(
        Target { addr },
        spec.payload_bytes as usize,
        scenario.audience,
        clients,
        measured,
    ));
    let publishing = publisher
        .clone()
        .run_on_own_thread(*schedule, cell_stop.clone());

    // The measured window: from the first measured comment's scheduled time to the last's.
    tokio::time::sleep_until(schedule.window_start().into()).await;
    let client_start = client_moment(&counters, &meter);
    let server_start = stats.read().await?;
    tokio::time::sleep_until(schedule.window_end().into()).await;
    let client_end = client_moment(&counters, &meter);
    let server_end = stats.read().await?;
    monitor.abort();
    let runtime_lag = lag.await.unwrap_or_else(|_| recorder::new_histogram());
    let _ = publishing.await;

    // Publishing is over: the set of accepted comments is final.
    let accepted = publisher
        .counts
        .accepted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let published_ok = accepted.len();
    let publish_errors = publisher.counts.measured_errors.load(Ordering::Relaxed);
    let expected = match scenario.audience {
        Audience::Broadcast => published_ok * u64::from(clients),
        Audience::PerUser => published_ok,
    };
    // Late deliveries: wait until everything expected has arrived, or the drain time.
    let drain_deadline = Instant::now() + scenario.drain;
    while progress.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // End every subscriber with a last comment, so each stops after a complete exchange
    // and the bytes both ends counted are comparable to the byte.
    if let Err(error) = publisher.publish_end().await {
        warnings.push(format!(
            "could not publish the end-of-cell comment: {error}"
        ));
    }
    let stop_deadline = scenario.poll_interval + Duration::from_secs(5);
    // By subscriber index: per-user expectations depend on it, and a subscriber whose task
    // failed keeps its place so its expected comments count as missing.
    let mut records: Vec<Option<SubscriberRecord>> = (0..clients).map(|_| None).collect();
    let mut collect = |joined: Result<(u32, SubscriberRecord), tokio::task::JoinError>| {
        if let Ok((i, record)) = joined {
            records[i as usize] = Some(record);
        }
    };
    let finished = tokio::time::timeout(stop_deadline, async {
        while let Some(joined) = subscribers.join_next().await {
            collect(joined);
        }
    })
    .await;
    if finished.is_err() {
        warnings.push(format!(
            "{} subscribers had not stopped {stop_deadline:?} after the end-of-cell comment; they were cut off, \
             so the byte comparison may differ by what was in flight",
            subscribers.len()
        ));
        cell_stop.cancel();
        while let Some(joined) = subscribers.join_next().await {
            collect(joined);
        }
    }
    let failed = records.iter().filter(|r| r.is_none()).count();
    if failed > 0 {
        warnings.push(format!(
            "{failed} subscriber tasks failed; their expected comments count as missing"
        ));
    }
    publisher.close().await;

    // Wait for the server to see every subscriber connection closed, then compare.
    let close_deadline = Instant::now() + Duration::from_secs(5);
    let mut server_final = stats.read().await?;
    while account(&server_final, technique).connections_open > 0 && Instant::now() < close_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        server_final = stats.read().await?;
    }
    if let Some(server) = server {
        server.stop().await;
    }

    let reconnects = reconnects_by_second
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let expectation = recorder::Expectation {
        schedule: &schedule,
        accepted: &accepted,
        per_user: (scenario.audience == Audience::PerUser).then_some(u64::from(clients)),
        publish_errors,
    };
    let merged = recorder::merge(&records, &expectation, &reconnects);
    let window_seconds = client_end
        .at
        .zip(client_start.at)
        .map_or(0.0, |(end, start)| end.duration_since(start).as_secs_f64());

    let (first, last) = (
        account(&before, technique),
        account(&server_final, technique),
    );
    let (client_up, client_down) = meter.totals();
    let agreement = ByteAgreement {
        client_up,
        client_down,
        server_in: last.bytes_in - first.bytes_in,
        server_out: last.bytes_out - first.bytes_out,
        equal: client_up == last.bytes_in - first.bytes_in
            && client_down == last.bytes_out - first.bytes_out,
    };
    let (sockets, k) = meter.kernel_totals();
    let kernel = KernelTotals {
        sockets,
        bytes_acked: k.bytes_acked,
        bytes_received: k.bytes_received,
        segments_out: k.segs_out,
        segments_in: k.segs_in,
        header_bytes: (k.segs_out + k.segs_in) * 52,
    };
    // The kernel counts TCP sequence space, in which a SYN and a FIN each take one number:
    // our SYN is always acknowledged (+1 per socket to `bytes_acked`), our FIN when the
    // socket was shut down before it closed (+1 more), and the server's FIN when it came
    // first (+1 to `bytes_received`). Anything beyond is a byte never acknowledged, or one
    // that arrived and was never read.
    let within = |kernel: u64, stream: u64, per_socket: u64| {
        (stream..=stream + per_socket * sockets).contains(&kernel)
    };
    if sockets > 0
        && !(within(kernel.bytes_acked, client_up, 2)
            && within(kernel.bytes_received, client_down, 1))
    {
        warnings.push(format!(
            "the kernel's count differs from the stream count by more than SYN and FIN: \
             acknowledged {} B of {client_up} B sent, received {} B where {client_down} B were read ({sockets} sockets)",
            kernel.bytes_acked, kernel.bytes_received
        ));
    }
    if !agreement.equal {
        warnings.push(format!(
            "bytes differ between the ends: client sent {client_up} B, server received {} B; server sent {} B, client received {client_down} B",
            agreement.server_in, agreement.server_out
        ));
    }
    let (ws, we) = (
        account(&server_start, technique),
        account(&server_end, technique),
    );
    let server_totals = ServerTotals {
        requests: we.requests - ws.requests,
        empty_responses: we.empty_responses - ws.empty_responses,
        connections_opened: we.connections_opened - ws.connections_opened,
        bytes_in: we.bytes_in - ws.bytes_in,
        bytes_out: we.bytes_out - ws.bytes_out,
        comments_delivered: we.comments_delivered - ws.comments_delivered,
        dropped_slow: last.dropped_slow - first.dropped_slow,
        cpu_seconds: server_end.process.cpu_seconds - server_start.process.cpu_seconds,
        peak_rss_bytes: server_end.process.peak_rss_bytes,
        rss_bytes: server_end.process.rss_bytes,
    };
    let client_totals = ClientTotals {
        requests: client_end.requests - client_start.requests,
        empty_responses: client_end.empty_responses - client_start.empty_responses,
        connections_opened: client_end.connections_opened - client_start.connections_opened,
        reconnects: client_end.reconnects - client_start.reconnects,
        errors: client_end.errors - client_start.errors,
        bytes_up: client_end.bytes_up - client_start.bytes_up,
        bytes_down: client_end.bytes_down - client_start.bytes_down,
        payload_bytes_delivered: merged.payload_bytes,
    };
    let loadgen_cpu = client_end.cpu_seconds - client_start.cpu_seconds;
    let core_share = if window_seconds > 0.0 {
        loadgen_cpu / window_seconds
    } else {
        0.0
    };
    let loadgen = LoadgenUse {
        cpu_seconds: loadgen_cpu,
        core_share,
        generator_bound: core_share >= GENERATOR_BOUND_SHARE,
        publish_lateness_mean_us: publisher.counts.mean_lateness_us(),
        publish_lateness_max_us: publisher.counts.max_lateness_us.load(Ordering::Relaxed),
        runtime_lag_p99_us: runtime_lag.value_at_quantile(0.99),
        runtime_lag_max_us: runtime_lag.max(),
    };
    // Window costs over deliveries received in the window: a stall that pushes deliveries
    // into the drain moves their bytes and CPU there too.
    let ratio = |value: f64, count: u64| if count > 0 { value / count as f64 } else { 0.0 };
    let in_window = merged.deliveries.delivered_in_window;
    let per_delivery = PerDelivery {
        requests: ratio(client_totals.requests as f64, in_window),
        bytes: ratio(
            (client_totals.bytes_up + client_totals.bytes_down) as f64,
            in_window,
        ),
        payload_bytes: ratio(
            client_totals.payload_bytes_delivered as f64,
            merged.deliveries.delivered,
        ),
        server_cpu_us: ratio(server_totals.cpu_seconds * 1e6, in_window),
    };

    let d = &merged.deliveries;
    if d.missing > 0 {
        warnings.insert(
            0,
            format!(
                "LOSS: {} of {} expected deliveries never arrived",
                d.missing, d.expected
            ),
        );
    }
    if d.duplicated > 0 {
        warnings.push(format!("{} duplicate deliveries", d.duplicated));
    }
    if d.out_of_order > 0 {
        warnings.push(format!("{} deliveries out of id order", d.out_of_order));
    }
    if merged.unexpected > 0 {
        warnings.push(format!(
            "{} deliveries of comments whose publish the generator saw fail (the server stored them anyway)",
            merged.unexpected
        ));
    }
    if loadgen.runtime_lag_p99_us > 2_000 {
        warnings.push(format!(
            "the generator's runtime woke timers up to {} late (p99 {}): deliveries may have waited that long \
             in the generator before being timestamped",
            crate::report::table::format_us(loadgen.runtime_lag_max_us),
            crate::report::table::format_us(loadgen.runtime_lag_p99_us)
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if window_seconds > 0.0
        && server_totals.cpu_seconds / window_seconds + core_share >= 0.9 * cores
    {
        warnings.push(format!(
            "the machine was saturated: server and generator together used {:.0}% of its {cores} cores",
            (server_totals.cpu_seconds / window_seconds + core_share) * 100.0 / cores
        ));
    }
    if merged.misdelivered > 0 {
        warnings.push(format!(
            "{} comments reached a subscriber they were not addressed to",
            merged.misdelivered
        ));
    }
    if publish_errors > 0 {
        let first = publisher
            .counts
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        warnings.push(format!(
            "{publish_errors} publishes failed (first: {})",
            first.unwrap_or_default()
        ));
    }
    if server_totals.dropped_slow > 0 {
        warnings.push(format!(
            "the server dropped {} slow subscribers",
            server_totals.dropped_slow
        ));
    }
    if loadgen.generator_bound {
        warnings.push(format!(
            "possibly generator-bound: the load generator used {:.0}% of a core",
            core_share * 100.0
        ));
    }
    if loadgen.publish_lateness_max_us > 5_000 {
        warnings.push(format!(
            "the publisher fired up to {} behind schedule (mean {:.0} µs): that much of the latency is the generator's",
            crate::report::table::format_us(loadgen.publish_lateness_max_us),
            loadgen.publish_lateness_mean_us
        ));
    }
    if client_totals.errors > 0 {
        warnings.push(format!(
            "{} client errors in the window (connection or stream failures)",
            client_totals.errors
        ));
    }
    if options.target.is_some() {
        warnings.push(
            "external server: its CPU, memory and counters include anything else it served".into(),
        );
    }

    let stem = format!(
        "cell-{index:03}-{}-c{}-r{}-p{}",
        technique.name(),
        clients,
        format_rate(spec.rate),
        spec.payload_bytes
    );
    let cell = CellResult {
        technique,
        clients,
        rate: spec.rate,
        payload_bytes: spec.payload_bytes,
        audience: scenario.audience,
        window_seconds,
        histogram_text_file: format!("{stem}.hgrm"),
        histogram_file: format!("{stem}.hist"),
        latency: latency_summary(&merged.histogram),
        deliveries: merged.deliveries,
        client: client_totals,
        server: server_totals,
        agreement,
        kernel,
        loadgen,
        per_delivery,
        timeline: merged.timeline,
        warnings,
    };
    Ok((cell, merged.histogram))
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

/// A rate as a short, file-name-safe string: 10, 2.5.
pub fn format_rate(rate: f64) -> String {
    let text = format!("{rate:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The summary figures of a histogram, with HdrHistogram's percentile ticks for charts.
pub fn latency_summary(histogram: &Histogram<u64>) -> LatencySummary {
    if histogram.is_empty() {
        return LatencySummary::default();
    }
    let percentiles = histogram
        .iter_quantiles(5)
        .map(|v| PercentilePoint {
            percentile: v.quantile_iterated_to() * 100.0,
            latency_us: histogram.highest_equivalent(v.value_iterated_to()),
        })
        .collect();
    LatencySummary {
        count: histogram.len(),
        min_us: histogram.min(),
        mean_us: histogram.mean(),
        p50_us: histogram.value_at_quantile(0.5),
        p90_us: histogram.value_at_quantile(0.9),
        p99_us: histogram.value_at_quantile(0.99),
        p999_us: histogram.value_at_quantile(0.999),
        p9999_us: histogram.value_at_quantile(0.9999),
        max_us: histogram.max(),
        percentiles,
    }
}

fn describe_machine(open_files_limit: u64) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_bytes = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Machine {
        os: std::env::consts::OS.to_string(),
        kernel,
        cpu_model,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_bytes,
        open_files_limit,
    }
}

/// The progress bar: the current cell and an ETA from the scenario's timing.
struct Progress {
    bar: indicatif::ProgressBar,
    cell_estimate: Duration,
    cells: usize,
}

impl Progress {
    fn new(visible: bool, cells: &[CellSpec], scenario: &Scenario) -> Self {
        // Set-up, drain and tear-down add a couple of seconds to each cell.
        let cell_estimate = scenario.cell_time() + Duration::from_secs(2);
        let total = cell_estimate.as_secs() * cells.len() as u64;
        let bar = if visible {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} ETA {eta} {msg}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Self {
            bar,
            cell_estimate,
            cells: cells.len(),
        }
    }

    fn start_cell(&self, index: usize, spec: &CellSpec) {
        self.bar.set_message(format!(
            "cell {}/{}: {} x {} clients, {}/s, {} B",
            index + 1,
            self.cells,
            spec.technique,
            spec.clients,
            format_rate(spec.rate),
            spec.payload_bytes
        ));
        self.bar
            .set_position(self.cell_estimate.as_secs() * index as u64);
    }

    fn finish_cell(&self, cell: &CellResult) {
        let loss = if cell.deliveries.missing > 0 {
            format!("  LOSS: {} missing", cell.deliveries.missing)
        } else {
            String::new()
        };
        let line = format!(
            "{:>13} x {:>5} clients: p50 {:>9} p99 {:>9}  {}/{} delivered{loss}",
            cell.technique.name(),
            cell.clients,
            crate::report::table::format_us(cell.latency.p50_us),
            crate::report::table::format_us(cell.latency.p99_us),
            cell.deliveries.delivered,
            cell.deliveries.expected,
        );
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
        self.bar.inc(0);
    }

    fn abandon(&self, index: usize) {
        self.bar
            .abandon_with_message(format!("stopped during cell {}", index + 1));
    }

    fn done(&self) {
        self.bar.finish_and_clear();
    }
}
