//! From what a cell saw to what it reports: every figure of a `CellResult` (window deltas,
//! per-delivery costs, the generator's own use, byte agreement, kernel totals) and the
//! warning rules, as pure functions of `CellObservations`. No sockets, no clocks, no I/O:
//! the phases that do those are in `cell`.

use hdrhistogram::Histogram;

use super::observations::{CellObservations, ClientDelta, Settled, Window};
use super::warning::Warning;
use crate::model::results::{
    ByteAgreement, CellResult, ClientTotals, Connecting, Deliveries, IdleMemory, InstanceTotals,
    KernelTotals, LatencySummary, LoadgenUse, PerDelivery, PercentilePoint, RedisUse, ServerTotals,
    WholeCell,
};
use crate::model::scenario::FeedKind;
use crate::report::fmt::format_rate;

/// A core share above which the load generator may have limited what it measured.
const GENERATOR_BOUND_SHARE: f64 = 0.5;

/// TCP/IP headers per segment on loopback: IPv4 20 B + TCP 32 B with timestamps.
const HEADER_BYTES_PER_SEGMENT: u64 = 52;

/// The cell's result: its figures, then its warnings rendered once, in rule order.
pub fn assemble(observations: CellObservations) -> CellResult {
    let o = &observations;
    let spec = o.spec;
    let window = o.window.client_end - o.window.client_start;
    let client = client_totals(&window, o.merged.payload_bytes);
    let server = server_totals(&o.window, &o.settled);
    let loadgen = loadgen_use(&window, &o.window);
    let stem = format!(
        "cell-{:03}-{}-c{}-r{}-p{}",
        o.index,
        spec.technique.name(),
        spec.clients,
        format_rate(spec.rate),
        spec.payload_bytes
    );
    let mut cell = CellResult {
        technique: spec.technique,
        clients: spec.clients,
        rate: spec.rate,
        payload_bytes: spec.payload_bytes,
        audience: o.audience,
        window_seconds: window.seconds,
        histogram_text_file: format!("{stem}.hgrm"),
        histogram_file: format!("{stem}.hist"),
        latency: latency_summary(&o.merged.histogram),
        deliveries: o.merged.deliveries,
        client,
        server,
        agreement: agreement(&o.settled),
        kernel: kernel_totals(&o.settled),
        loadgen,
        per_delivery: per_delivery(&client, &server, &loadgen, &o.merged.deliveries),
        timeline: o.merged.timeline.clone(),
        warnings: Vec::new(),
        deployment: spec.deployment,
        http: spec.http,
        instances: instance_totals(o),
        redis: redis_use(&o.window),
        idle_memory: idle_memory(o),
        connecting: Some(Connecting {
            ready: o.ready,
            seconds: o.connect_seconds,
        }),
        server_unavailable: !o.server_figures,
        link: spec.link,
        faults: o.faults.clone(),
        whole_cell: whole_cell_counts(o),
        // The runner numbers the repetitions; the cell itself does not know its own.
        repeat: 0,
        floor: None,
        // Filled by the cell runner from its recording subscriber.
        wire: None,
    };
    cell.warnings = warnings(&cell, o).iter().map(ToString::to_string).collect();
    cell
}

fn client_totals(window: &ClientDelta, payload_bytes_delivered: u64) -> ClientTotals {
    let counts = &window.counts;
    ClientTotals {
        requests: counts.requests,
        empty_responses: counts.empty_responses,
        connections_opened: counts.connections_opened,
        reconnects: counts.reconnects,
        errors: counts.errors,
        bytes_up: window.bytes_up,
        bytes_down: window.bytes_down,
        payload_bytes_delivered,
    }
}

/// The server's counts within the window, except slow-subscriber drops, which are counted
/// over the whole cell: a drop in the drain is still a subscriber the server gave up on.
/// Across a server restart nothing is subtracted: the counts stay zero (`ServerRestarted`
/// says why) rather than wrapping.
fn server_totals(window: &Window, settled: &Settled) -> ServerTotals {
    let (start, end) = (&window.server_start, &window.server_end);
    let (counts, cpu_seconds) = end.since(start).unwrap_or_default();
    let whole_cell = whole_cell(settled);
    ServerTotals {
        requests: counts.requests,
        empty_responses: counts.empty_responses,
        connections_opened: counts.connections_opened,
        bytes_in: counts.bytes_in,
        bytes_out: counts.bytes_out,
        comments_delivered: counts.comments_delivered,
        dropped_slow: whole_cell.dropped_slow,
        cpu_seconds,
        peak_rss_bytes: end.process.peak_rss_bytes,
        rss_bytes: end.process.rss_bytes,
    }
}

fn loadgen_use(client: &ClientDelta, window: &Window) -> LoadgenUse {
    let core_share = if client.seconds > 0.0 {
        client.cpu_seconds / client.seconds
    } else {
        0.0
    };
    LoadgenUse {
        cpu_seconds: client.cpu_seconds,
        core_share,
        generator_bound: core_share >= GENERATOR_BOUND_SHARE,
        publish_lateness_mean_us: window.published.lateness_mean_us,
        publish_lateness_max_us: window.published.lateness_max_us,
        runtime_lag_p99_us: window.runtime_lag.value_at_quantile(0.99),
        runtime_lag_max_us: window.runtime_lag.max(),
    }
}

/// Window costs over deliveries received in the window: a stall that pushes deliveries into
/// the drain moves their bytes and CPU there too. The payload share is over the measured
/// comments' deliveries, whose JSON is what `payload_bytes_delivered` counts.
pub(crate) fn per_delivery(
    client: &ClientTotals,
    server: &ServerTotals,
    loadgen: &LoadgenUse,
    d: &Deliveries,
) -> PerDelivery {
    let ratio = |value: f64, count: u64| if count > 0 { value / count as f64 } else { 0.0 };
    let in_window = d.delivered_in_window;
    PerDelivery {
        requests: ratio(client.requests as f64, in_window),
        bytes: ratio((client.bytes_up + client.bytes_down) as f64, in_window),
        payload_bytes: ratio(client.payload_bytes_delivered as f64, d.delivered),
        server_cpu_us: ratio(server.cpu_seconds * 1e6, in_window),
        loadgen_cpu_us: ratio(loadgen.cpu_seconds * 1e6, in_window),
    }
}

/// The technique's requests and connections over the whole cell, when the server's counts
/// are there and continuous.
fn whole_cell_counts(o: &CellObservations) -> Option<WholeCell> {
    (o.server_figures && !o.settled.server_restarted).then(|| {
        let whole = whole_cell(&o.settled);
        WholeCell {
            requests: whole.requests,
            connections_opened: whole.connections_opened,
        }
    })
}

/// The server's counts over the whole cell; zero across a restart.
fn whole_cell(settled: &Settled) -> crate::model::stats::AccountStats {
    if settled.server_restarted {
        Default::default()
    } else {
        settled.server_after - settled.server_before
    }
}

fn agreement(settled: &Settled) -> ByteAgreement {
    let server = whole_cell(settled);
    let (client_up, client_down) = (settled.client_up, settled.client_down);
    let (h2_in, h2_out) = settled.h2_overhead;
    ByteAgreement {
        client_up,
        client_down,
        server_in: server.bytes_in,
        server_out: server.bytes_out,
        equal: client_up == server.bytes_in + h2_in && client_down == server.bytes_out + h2_out,
        server_h2_overhead_in: h2_in,
        server_h2_overhead_out: h2_out,
    }
}

/// Each instance's share, when there is more than one or they share a Redis feed (one
/// in-memory server's figures are the cell's own, and runs before instances had none).
fn instance_totals(o: &CellObservations) -> Vec<InstanceTotals> {
    let instances = &o.settled.instances;
    if !o.server_figures || (instances.len() < 2 && o.spec.deployment.feed == FeedKind::Memory) {
        return Vec::new();
    }
    let w = &o.window;
    instances
        .iter()
        .enumerate()
        .map(|(i, instance)| {
            let whole = if instance.restarted {
                Default::default()
            } else {
                instance.after - instance.before
            };
            let cpu_seconds = match (
                w.server_instances_start.get(i),
                w.server_instances_end.get(i),
            ) {
                (Some(start), Some(end)) => end.since(start).map_or(0.0, |(_, cpu)| cpu),
                _ => 0.0,
            };
            InstanceTotals {
                url: instance.url.clone(),
                subscribers: instance.subscribers,
                connections_opened: whole.connections_opened,
                comments_delivered: whole.comments_delivered,
                agreement: ByteAgreement {
                    client_up: instance.client_up,
                    client_down: instance.client_down,
                    server_in: whole.bytes_in,
                    server_out: whole.bytes_out,
                    equal: instance.client_up == whole.bytes_in + instance.h2_overhead.0
                        && instance.client_down == whole.bytes_out + instance.h2_overhead.1,
                    server_h2_overhead_in: instance.h2_overhead.0,
                    server_h2_overhead_out: instance.h2_overhead.1,
                },
                cpu_seconds,
                peak_rss_bytes: instance.peak_rss_bytes,
                restarted: instance.restarted,
            }
        })
        .collect()
}

/// What the idle connections cost the servers, when every subscriber connected and the
/// servers report their memory (a `--target` without it reports zero).
fn idle_memory(o: &CellObservations) -> Option<IdleMemory> {
    (o.server_figures && o.ready > 0 && o.rss_before > 0 && o.rss_connected > 0).then(|| {
        IdleMemory {
            connections: o.ready,
            rss_before_bytes: o.rss_before,
            rss_connected_bytes: o.rss_connected,
            bytes_per_connection: o.rss_connected.saturating_sub(o.rss_before) as f64
                / o.ready as f64,
        }
    })
}

/// Redis's share of the work within the window, when the cell started one.
fn redis_use(window: &Window) -> Option<RedisUse> {
    let (start, end) = (window.redis_start?, window.redis_end?);
    Some(RedisUse {
        cpu_seconds: (end.cpu_seconds - start.cpu_seconds).max(0.0),
        commands: end.commands.saturating_sub(start.commands),
        peak_memory_bytes: end.peak_memory_bytes,
        rss_bytes: end.rss_bytes,
    })
}

fn kernel_totals(settled: &Settled) -> KernelTotals {
    let k = &settled.kernel;
    KernelTotals {
        sockets: settled.kernel_sockets,
        bytes_acked: k.bytes_acked,
        bytes_received: k.bytes_received,
        segments_out: k.segs_out,
        segments_in: k.segs_in,
        header_bytes: (k.segs_out + k.segs_in) * HEADER_BYTES_PER_SEGMENT,
    }
}

/// A warning rule: the cell's figures and what they do not keep, to a finding or none.
type Rule = fn(&CellResult, &CellObservations) -> Option<Warning>;

/// Every rule, in the order their warnings are listed (the order published runs have):
/// loss first, then what happened around the window, then what the window's figures show.
const RULES: [Rule; 23] = [
    loss,
    lost_to_restart,
    not_all_ready,
    end_comment_failed,
    subscribers_cut_off,
    failed_tasks,
    kernel_mismatch,
    bytes_disagree,
    duplicates,
    out_of_order,
    unexpected_deliveries,
    runtime_lag,
    machine_saturated,
    misdelivered,
    publish_errors,
    dropped_slow,
    generator_bound,
    publisher_late,
    client_errors,
    external_target,
    redis_unread,
    server_restarted,
    server_unavailable,
];

/// What a reader must know before trusting the cell.
pub fn warnings(cell: &CellResult, observations: &CellObservations) -> Vec<Warning> {
    RULES
        .iter()
        .filter_map(|rule| rule(cell, observations))
        .collect()
}

/// `Some(warning)` when `count` is not zero.
fn counted(count: u64, warning: impl FnOnce(u64) -> Warning) -> Option<Warning> {
    (count > 0).then(|| warning(count))
}

fn loss(cell: &CellResult, _: &CellObservations) -> Option<Warning> {
    let d = &cell.deliveries;
    (d.missing > 0).then_some(Warning::Loss {
        missing: d.missing,
        expected: d.expected,
    })
}

fn lost_to_restart(cell: &CellResult, o: &CellObservations) -> Option<Warning> {
    let d = &cell.deliveries;
    (d.lost_to_restart > 0 || o.merged.restarts_seen > 0).then_some(Warning::LostToRestart {
        lost: d.lost_to_restart,
        expected: d.expected,
        restarts_seen: o.merged.restarts_seen,
    })
}

fn server_restarted(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    let w = &o.window;
    let restarted =
        o.settled.server_restarted || w.server_start.started_at_us != w.server_end.started_at_us;
    restarted.then_some(Warning::ServerRestarted)
}

fn not_all_ready(cell: &CellResult, o: &CellObservations) -> Option<Warning> {
    (o.ready < u64::from(cell.clients)).then_some(Warning::NotAllReady {
        ready: o.ready,
        clients: cell.clients,
    })
}

fn end_comment_failed(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    let error = o.ending.end_comment_error.clone()?;
    Some(Warning::EndCommentFailed { error })
}

fn subscribers_cut_off(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    let cut_off = o.ending.cut_off?;
    Some(Warning::SubscribersCutOff {
        still_running: cut_off.still_running,
        after: cut_off.after,
    })
}

fn failed_tasks(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    let failed = o.ending.failed_tasks;
    (failed > 0).then_some(Warning::FailedTasks { failed })
}

/// The kernel counts TCP sequence space, in which a SYN and a FIN each take one number: our
/// SYN is always acknowledged (+1 per socket to `bytes_acked`), our FIN when the socket was
/// shut down before it closed (+1 more), and the server's FIN when it came first (+1 to
/// `bytes_received`). Anything beyond is a byte never acknowledged, or one that arrived and
/// was never read.
fn kernel_mismatch(cell: &CellResult, _: &CellObservations) -> Option<Warning> {
    let (k, a) = (&cell.kernel, &cell.agreement);
    let within = |kernel: u64, stream: u64, per_socket: u64| {
        (stream..=stream + per_socket * k.sockets).contains(&kernel)
    };
    let agrees =
        within(k.bytes_acked, a.client_up, 2) && within(k.bytes_received, a.client_down, 1);
    (k.sockets > 0 && !agrees).then_some(Warning::KernelMismatch {
        acked: k.bytes_acked,
        sent: a.client_up,
        received: k.bytes_received,
        read: a.client_down,
        sockets: k.sockets,
    })
}

fn bytes_disagree(cell: &CellResult, o: &CellObservations) -> Option<Warning> {
    let a = &cell.agreement;
    // Across a restart the server's side is unknown, not different: `ServerRestarted` says
    // so; without `/stats` it was never known, and `ServerUnavailable` says that.
    if o.settled.server_restarted || !o.server_figures {
        return None;
    }
    if !a.equal {
        return Some(Warning::BytesDisagree {
            client_up: a.client_up,
            server_in: a.server_in,
            server_out: a.server_out,
            client_down: a.client_down,
        });
    }
    // Equal sums could hide two instances' errors that cancel out.
    cell.instances
        .iter()
        .find(|i| !i.agreement.equal)
        .map(|i| Warning::InstanceBytesDisagree {
            url: i.url.clone(),
            client_up: i.agreement.client_up,
            server_in: i.agreement.server_in,
            server_out: i.agreement.server_out,
            client_down: i.agreement.client_down,
        })
}

fn duplicates(cell: &CellResult, _: &CellObservations) -> Option<Warning> {
    counted(cell.deliveries.duplicated, |count| Warning::Duplicates {
        count,
    })
}

fn out_of_order(cell: &CellResult, _: &CellObservations) -> Option<Warning> {
    counted(cell.deliveries.out_of_order, |count| Warning::OutOfOrder {
        count,
    })
}

fn unexpected_deliveries(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    counted(o.merged.unexpected, |count| Warning::UnexpectedDeliveries {
        count,
    })
}

/// Past 2 ms a delivery may have waited in the generator for longer than loopback takes.
fn runtime_lag(cell: &CellResult, _: &CellObservations) -> Option<Warning> {
    let l = &cell.loadgen;
    (l.runtime_lag_p99_us > 2_000).then_some(Warning::RuntimeLag {
        p99_us: l.runtime_lag_p99_us,
        max_us: l.runtime_lag_max_us,
    })
}

/// Nine tenths of the machine: past that, server and generator wait for each other's CPU.
fn machine_saturated(cell: &CellResult, o: &CellObservations) -> Option<Warning> {
    if cell.window_seconds <= 0.0 {
        return None;
    }
    let used_cores = cell.server.cpu_seconds / cell.window_seconds + cell.loadgen.core_share;
    (used_cores >= 0.9 * o.cores as f64).then_some(Warning::MachineSaturated {
        used_cores,
        cores: o.cores,
    })
}

fn misdelivered(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    counted(o.merged.misdelivered, |count| Warning::Misdelivered {
        count,
    })
}

fn publish_errors(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    let published = &o.window.published;
    counted(published.errors, |count| Warning::PublishErrors {
        count,
        first: published.first_error.clone().unwrap_or_default(),
    })
}

fn dropped_slow(cell: &CellResult, _: &CellObservations) -> Option<Warning> {
    counted(cell.server.dropped_slow, |count| Warning::DroppedSlow {
        count,
    })
}

fn generator_bound(cell: &CellResult, _: &CellObservations) -> Option<Warning> {
    let l = &cell.loadgen;
    l.generator_bound.then_some(Warning::GeneratorBound {
        core_share: l.core_share,
    })
}

/// Past 5 ms the publisher's own lateness is a visible part of every latency.
fn publisher_late(cell: &CellResult, _: &CellObservations) -> Option<Warning> {
    let l = &cell.loadgen;
    (l.publish_lateness_max_us > 5_000).then_some(Warning::PublisherLate {
        max_us: l.publish_lateness_max_us,
        mean_us: l.publish_lateness_mean_us,
    })
}

fn client_errors(cell: &CellResult, _: &CellObservations) -> Option<Warning> {
    counted(cell.client.errors, |count| Warning::ClientErrors { count })
}

fn external_target(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    // Without `/stats` there are no server figures to qualify: `ServerUnavailable` says so.
    (o.external_target && o.server_figures).then_some(Warning::ExternalTarget)
}

fn redis_unread(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    let error = o.window.redis_unread.clone()?;
    Some(Warning::RedisUnread { error })
}

fn server_unavailable(_: &CellResult, o: &CellObservations) -> Option<Warning> {
    (!o.server_figures).then_some(Warning::ServerUnavailable)
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

#[cfg(test)]
mod tests {
    use std::mem::discriminant;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::loadgen::observations::{ClientMoment, CutOff, Ending, Published, ServerMoment};
    use crate::loadgen::recorder::{CellRecord, new_histogram};
    use crate::loadgen::scenario::{Audience, CellSpec};
    use crate::model::stats::ClientCounts;
    use crate::model::stats::{AccountStats, ProcessStats};
    use crate::net::KernelCount;
    use crate::techniques::Technique;

    fn histogram_of(values: &[u64]) -> Histogram<u64> {
        let mut histogram = new_histogram();
        for &value in values {
            histogram.record(value).unwrap();
        }
        histogram
    }

    /// The subscribers' counters 10 s apart: 20 requests, 2 kB up, 100 kB down, 1 s of CPU.
    fn client_moments() -> (ClientMoment, ClientMoment) {
        let t0 = Instant::now();
        let start = ClientMoment {
            counts: ClientCounts {
                requests: 10,
                empty_responses: 1,
                connections_opened: 10,
                reconnects: 2,
                ..ClientCounts::default()
            },
            bytes_up: 1_000,
            bytes_down: 5_000,
            cpu_seconds: 1.0,
            at: t0,
        };
        let end = ClientMoment {
            counts: ClientCounts {
                requests: 30,
                empty_responses: 4,
                connections_opened: 12,
                reconnects: 5,
                ..ClientCounts::default()
            },
            bytes_up: 3_000,
            bytes_down: 105_000,
            cpu_seconds: 2.0,
            at: t0 + Duration::from_secs(10),
        };
        (start, end)
    }

    /// The server's view of the same window, and 1 s of its CPU.
    fn server_moments() -> (ServerMoment, ServerMoment) {
        let moment =
            |requests, empty, opened, bytes_in, bytes_out, delivered, cpu, rss| ServerMoment {
                account: AccountStats {
                    requests,
                    empty_responses: empty,
                    connections_opened: opened,
                    connections_open: 10,
                    bytes_in,
                    bytes_out,
                    comments_delivered: delivered,
                    ..AccountStats::default()
                },
                process: ProcessStats {
                    cpu_seconds: cpu,
                    rss_bytes: rss,
                    peak_rss_bytes: rss + 1_000_000,
                },
                started_at_us: 1_754_000_000_000_000,
            };
        (
            moment(11, 1, 10, 1_100, 5_500, 100, 0.5, 1_000_000),
            moment(31, 4, 12, 3_100, 105_500, 900, 1.5, 3_000_000),
        )
    }

    /// A clean cell with round numbers: 10 SSE subscribers, a 10 s window, 1000 deliveries
    /// (800 of them received within the window), both ends and the kernel agreeing, and
    /// nothing to warn about.
    fn quiet() -> CellObservations {
        let (client_start, client_end) = client_moments();
        let (server_start, server_end) = server_moments();
        CellObservations {
            index: 3,
            spec: CellSpec {
                technique: Technique::Sse,
                clients: 10,
                rate: 2.5,
                payload_bytes: 100,
                deployment: Default::default(),
                http: Default::default(),
                link: None,
            },
            audience: Audience::Broadcast,
            external_target: false,
            cores: 2,
            ready: 10,
            connect_seconds: 0.2,
            server_figures: true,
            rss_before: 10 << 20,
            rss_connected: (10 << 20) + 10 * 8192,
            window: Window {
                client_start,
                client_end,
                server_start,
                server_end,
                server_instances_start: vec![server_start],
                server_instances_end: vec![server_end],
                redis_start: None,
                redis_end: None,
                redis_unread: None,
                runtime_lag: histogram_of(&[100, 200, 1_500]),
                published: Published {
                    errors: 0,
                    first_error: None,
                    lateness_mean_us: 50.0,
                    lateness_max_us: 300,
                },
            },
            ending: Ending::default(),
            settled: Settled {
                server_before: AccountStats::default(),
                server_after: AccountStats {
                    bytes_in: 4_000,
                    bytes_out: 110_000,
                    ..AccountStats::default()
                },
                server_restarted: false,
                client_up: 4_000,
                client_down: 110_000,
                kernel_sockets: 10,
                kernel: KernelCount {
                    bytes_acked: 4_015,
                    bytes_received: 110_005,
                    segs_out: 100,
                    segs_in: 200,
                },
                instances: Vec::new(),
                h2_overhead: (0, 0),
                user_timeouts: 0,
            },
            merged: CellRecord {
                histogram: histogram_of(&[1_000, 2_000, 3_000]),
                per_second: Vec::new(),
                deliveries: Deliveries {
                    comments_published: 100,
                    expected: 1_000,
                    delivered: 1_000,
                    delivered_in_window: 800,
                    ..Deliveries::default()
                },
                timeline: vec![crate::model::results::TimelinePoint {
                    second: 0,
                    deliveries: 100,
                    ..Default::default()
                }],
                misdelivered: 0,
                unexpected: 0,
                payload_bytes: 150_000,
                restarts_seen: 0,
            },
            faults: None,
        }
    }

    #[test]
    fn builds_the_window_deltas_and_per_delivery_costs() {
        let cell = assemble(quiet());
        assert_eq!(cell.warnings, Vec::<String>::new());
        assert_eq!(cell.window_seconds, 10.0);
        assert_eq!(cell.histogram_text_file, "cell-003-sse-c10-r2.5-p100.hgrm");
        assert_eq!(cell.histogram_file, "cell-003-sse-c10-r2.5-p100.hist");
        let idle = cell.idle_memory.expect("every subscriber was connected");
        assert_eq!((idle.connections, idle.bytes_per_connection), (10, 8192.0));
        // One in-memory server: no per-instance or Redis figures.
        assert!(cell.instances.is_empty() && cell.redis.is_none());
        assert_eq!(
            cell.client,
            ClientTotals {
                requests: 20,
                empty_responses: 3,
                connections_opened: 2,
                reconnects: 3,
                errors: 0,
                bytes_up: 2_000,
                bytes_down: 100_000,
                payload_bytes_delivered: 150_000,
            }
        );
        assert_eq!(
            cell.server,
            ServerTotals {
                requests: 20,
                empty_responses: 3,
                connections_opened: 2,
                bytes_in: 2_000,
                bytes_out: 100_000,
                comments_delivered: 800,
                dropped_slow: 0,
                cpu_seconds: 1.0,
                peak_rss_bytes: 4_000_000,
                rss_bytes: 3_000_000,
            }
        );
        assert_eq!(
            cell.per_delivery,
            PerDelivery {
                requests: 20.0 / 800.0,
                bytes: 102_000.0 / 800.0,
                payload_bytes: 150.0,
                server_cpu_us: 1e6 / 800.0,
                loadgen_cpu_us: 1e6 / 800.0,
            }
        );
        assert_eq!(cell.loadgen.cpu_seconds, 1.0);
        assert_eq!(cell.loadgen.core_share, 0.1);
        assert!(!cell.loadgen.generator_bound);
        assert_eq!(cell.loadgen.publish_lateness_max_us, 300);
        assert_eq!(cell.loadgen.runtime_lag_max_us, 1_500);
        assert_eq!(cell.latency.count, 3);
        assert_eq!(cell.latency.min_us, 1_000);
        assert_eq!(cell.deliveries.delivered, 1_000);
        assert_eq!(cell.timeline.len(), 1);
    }

    #[test]
    fn push_handshakes_are_counted_over_the_whole_cell() {
        // Ten SSE subscribers connected before the window: the window's requests miss their
        // GETs, the whole-cell count has them.
        let mut o = quiet();
        o.settled.server_after.requests = 10;
        o.settled.server_after.connections_opened = 10;
        let cell = assemble(o);
        assert_eq!(
            cell.whole_cell,
            Some(WholeCell {
                requests: 10,
                connections_opened: 10
            })
        );
        // Across a restart or without /stats the count is not known.
        let mut o = quiet();
        o.settled.server_restarted = true;
        assert_eq!(assemble(o).whole_cell, None);
        let mut o = quiet();
        o.server_figures = false;
        assert_eq!(assemble(o).whole_cell, None);
    }

    #[test]
    fn agreement_and_kernel_totals_cover_the_whole_cell() {
        let mut o = quiet();
        o.settled.server_before.dropped_slow = 1;
        o.settled.server_after.dropped_slow = 3;
        let cell = assemble(o);
        assert_eq!(
            cell.agreement,
            ByteAgreement {
                client_up: 4_000,
                client_down: 110_000,
                server_in: 4_000,
                server_out: 110_000,
                equal: true,
                server_h2_overhead_in: 0,
                server_h2_overhead_out: 0,
            }
        );
        // Over HTTP/2 the connections' own frames are booked apart: the check adds them.
        let mut o = quiet();
        o.settled.server_after.bytes_in = 3_900;
        o.settled.server_after.bytes_out = 109_950;
        o.settled.h2_overhead = (100, 50);
        let a = assemble(o).agreement;
        assert!(a.equal, "{a:?}");
        assert_eq!((a.server_in, a.server_h2_overhead_in), (3_900, 100));
        let mut o = quiet();
        o.settled.h2_overhead = (100, 50);
        assert!(!assemble(o).agreement.equal, "overhead counted twice");
        assert_eq!(
            cell.kernel,
            KernelTotals {
                sockets: 10,
                bytes_acked: 4_015,
                bytes_received: 110_005,
                segments_out: 100,
                segments_in: 200,
                header_bytes: 300 * 52,
            }
        );
        // Drops are counted over the whole cell, not only the window.
        assert_eq!(cell.server.dropped_slow, 2);
    }

    #[test]
    fn no_window_means_no_rates() {
        let mut o = quiet();
        o.window.client_end.at = o.window.client_start.at;
        o.merged.deliveries.delivered_in_window = 0;
        let cell = assemble(o);
        assert_eq!(cell.window_seconds, 0.0);
        assert_eq!(cell.loadgen.core_share, 0.0);
        assert_eq!(cell.per_delivery.requests, 0.0);
        assert_eq!(cell.per_delivery.server_cpu_us, 0.0);
        assert_eq!(cell.warnings, Vec::<String>::new());
    }

    type Tweak = fn(&mut CellObservations);

    /// One change per rule that trips it and nothing else, with the warning it must raise;
    /// in rule order.
    fn each_rule() -> Vec<(Tweak, Warning)> {
        let mut rules = rules_around_the_window();
        rules.extend(rules_on_the_figures());
        rules
    }

    /// The rules on what happened before and after the window, and on the byte counts.
    fn rules_around_the_window() -> Vec<(Tweak, Warning)> {
        vec![
            (
                |o| o.merged.deliveries.missing = 3,
                Warning::Loss {
                    missing: 3,
                    expected: 1_000,
                },
            ),
            (
                |o| {
                    o.merged.deliveries.lost_to_restart = 12;
                    o.merged.restarts_seen = 10;
                },
                Warning::LostToRestart {
                    lost: 12,
                    expected: 1_000,
                    restarts_seen: 10,
                },
            ),
            (
                |o| o.ready = 7,
                Warning::NotAllReady {
                    ready: 7,
                    clients: 10,
                },
            ),
            (
                |o| o.ending.end_comment_error = Some("refused".into()),
                Warning::EndCommentFailed {
                    error: "refused".into(),
                },
            ),
            (
                |o| {
                    o.ending.cut_off = Some(CutOff {
                        still_running: 2,
                        after: Duration::from_secs(6),
                    })
                },
                Warning::SubscribersCutOff {
                    still_running: 2,
                    after: Duration::from_secs(6),
                },
            ),
            (
                |o| o.ending.failed_tasks = 1,
                Warning::FailedTasks { failed: 1 },
            ),
            (
                // One more than our SYN and FIN on each of the 10 sockets.
                |o| o.settled.kernel.bytes_acked = 4_000 + 2 * 10 + 1,
                Warning::KernelMismatch {
                    acked: 4_021,
                    sent: 4_000,
                    received: 110_005,
                    read: 110_000,
                    sockets: 10,
                },
            ),
            (
                |o| o.settled.server_after.bytes_out = 110_001,
                Warning::BytesDisagree {
                    client_up: 4_000,
                    server_in: 4_000,
                    server_out: 110_001,
                    client_down: 110_000,
                },
            ),
        ]
    }

    /// The rules on the window's figures and the generator's own use.
    fn rules_on_the_figures() -> Vec<(Tweak, Warning)> {
        let lag = histogram_of(&[2_500, 2_900]);
        vec![
            (
                |o| o.merged.deliveries.duplicated = 4,
                Warning::Duplicates { count: 4 },
            ),
            (
                |o| o.merged.deliveries.out_of_order = 5,
                Warning::OutOfOrder { count: 5 },
            ),
            (
                |o| o.merged.unexpected = 6,
                Warning::UnexpectedDeliveries { count: 6 },
            ),
            (
                |o| o.window.runtime_lag = histogram_of(&[2_500, 2_900]),
                Warning::RuntimeLag {
                    p99_us: lag.value_at_quantile(0.99),
                    max_us: lag.max(),
                },
            ),
            (
                // 1.9 cores of server and 0.1 of generator, of 2.
                |o| o.window.server_end.process.cpu_seconds = 19.5,
                Warning::MachineSaturated {
                    used_cores: 19.0 / 10.0 + 0.1,
                    cores: 2,
                },
            ),
            (
                |o| o.merged.misdelivered = 7,
                Warning::Misdelivered { count: 7 },
            ),
            (
                |o| {
                    o.window.published.errors = 8;
                    o.window.published.first_error = Some("timed out".into());
                },
                Warning::PublishErrors {
                    count: 8,
                    first: "timed out".into(),
                },
            ),
            (
                |o| o.settled.server_after.dropped_slow = 9,
                Warning::DroppedSlow { count: 9 },
            ),
            (
                |o| o.window.client_end.cpu_seconds = 7.0,
                Warning::GeneratorBound { core_share: 0.6 },
            ),
            (
                |o| o.window.published.lateness_max_us = 5_001,
                Warning::PublisherLate {
                    max_us: 5_001,
                    mean_us: 50.0,
                },
            ),
            (
                |o| o.window.client_end.counts.errors = 11,
                Warning::ClientErrors { count: 11 },
            ),
            (|o| o.external_target = true, Warning::ExternalTarget),
            (
                |o| o.window.redis_unread = Some("timed out".into()),
                Warning::RedisUnread {
                    error: "timed out".into(),
                },
            ),
            // Last: it leaves the server's figures at zero, which quiets rules above.
            (
                |o| o.window.server_end.started_at_us += 1,
                Warning::ServerRestarted,
            ),
            // Last too: without `/stats` there are no server figures for rules to check.
            (|o| o.server_figures = false, Warning::ServerUnavailable),
        ]
    }

    #[test]
    fn every_rule_fires_alone_on_its_own_condition() {
        let rules = each_rule();
        assert_eq!(rules.len(), RULES.len(), "one case per rule");
        for (tweak, expected) in rules {
            let mut o = quiet();
            tweak(&mut o);
            let cell = assemble(o);
            assert_eq!(cell.warnings, [expected.to_string()], "{expected:?}");
        }
    }

    #[test]
    fn warnings_keep_the_published_order_with_loss_first() {
        let mut rules = each_rule();
        // A restart, or no `/stats`, leaves the server's figures unknown, so rules on them
        // cannot fire with them.
        rules.pop();
        rules.pop();
        let every_tweak = || {
            let mut o = quiet();
            for (tweak, _) in &rules {
                tweak(&mut o);
            }
            o
        };
        let cell = assemble(every_tweak());
        let kinds: Vec<_> = warnings(&cell, &every_tweak())
            .iter()
            .map(discriminant)
            .collect();
        let expected: Vec<_> = rules.iter().map(|(_, w)| discriminant(w)).collect();
        assert_eq!(kinds, expected);
        assert_eq!(cell.warnings.len(), 21);
        assert!(
            cell.warnings[0].starts_with("LOSS: 3 of 1000"),
            "{:?}",
            cell.warnings
        );
    }

    #[test]
    fn rules_stay_quiet_at_their_thresholds() {
        let mut o = quiet();
        // Our SYN and FIN on each socket, and the server's FIN: within the allowance.
        o.settled.kernel.bytes_acked = 4_000 + 2 * 10;
        o.settled.kernel.bytes_received = 110_000 + 10;
        o.window.runtime_lag = histogram_of(&[2_000]);
        o.window.published.lateness_max_us = 5_000;
        // 0.49 of a core.
        o.window.client_end.cpu_seconds = 1.0 + 4.9;
        let cell = assemble(o);
        assert_eq!(cell.warnings, Vec::<String>::new());

        let mut o = quiet();
        o.settled.kernel.bytes_received = 110_000 + 11;
        assert_eq!(assemble(o).warnings.len(), 1, "one byte past the FINs");
        let mut o = quiet();
        o.settled.kernel.bytes_acked = 3_999;
        assert_eq!(
            assemble(o).warnings.len(),
            1,
            "a byte sent and never acknowledged"
        );
        let mut o = quiet();
        o.settled.kernel_sockets = 0;
        o.settled.kernel = KernelCount::default();
        assert_eq!(
            assemble(o).warnings.len(),
            0,
            "no kernel count, nothing to compare"
        );
    }

    /// The wrap: a restarted server's counters are smaller than before. Nothing is
    /// subtracted across the restart, so nothing wraps and no CPU goes negative.
    #[test]
    fn a_restart_between_snapshots_is_reported_not_subtracted() {
        let mut o = quiet();
        o.window.server_end.started_at_us += 5_000_000;
        o.window.server_end.account.bytes_out = 10;
        o.window.server_end.process.cpu_seconds = 0.1;
        o.settled.server_restarted = true;
        o.settled.server_after.bytes_out = 5;
        let cell = assemble(o);
        assert_eq!(cell.server.bytes_out, 0);
        assert_eq!(cell.server.cpu_seconds, 0.0);
        assert_eq!(cell.per_delivery.server_cpu_us, 0.0);
        assert_eq!(cell.agreement.server_out, 0);
        assert_eq!(cell.warnings, [Warning::ServerRestarted.to_string()]);
    }
}
