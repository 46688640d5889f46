//! The "Charts" section of `report.md`: each chart with one or two sentences that state what
//! it shows in this run's own numbers, one function per chart kind, and a one-line takeaway
//! computed from the chart's own figures (`takeaway`), never written by hand.

use std::fmt::Write as _;

use crate::model::results::CellResult;
use crate::model::technique::Technique;
use crate::report::charts::timeline::kept;
use crate::report::charts::{highest_supported, supports};
use crate::report::figures::{self, share};
use crate::report::fmt::{bytes, int, mib, ms, num, pct};
use crate::report::models;
use crate::report::plan::{ChartKind, ChartPlan, Dim, Point, Sweep, View};

pub(super) fn chart_sections(out: &mut String, view: &View, charts: &[ChartPlan]) {
    out.push_str("## Charts\n\n");
    for chart in charts {
        let _ = writeln!(out, "### {}\n", chart.title);
        let _ = writeln!(out, "![{}]({})\n", chart.title, chart.file_name);
        let text = match &chart.kind {
            ChartKind::Percentiles(point) => percentiles_text(view, point),
            ChartKind::SweepLatency(sweep) => sweep_latency_text(view, sweep),
            ChartKind::SweepWire(sweep) => sweep_wire_text(view, sweep),
            ChartKind::SweepServer(sweep) => sweep_server_text(view, sweep),
            ChartKind::SweepHttp(sweep) => sweep_http_text(view, sweep),
            ChartKind::Cost => cost_text(view),
            ChartKind::Timeline(point) => timeline_text(view, point),
            ChartKind::FaultConnections(point) => super::faults::connections_text(view, point),
            ChartKind::FaultTimes(point) => super::faults::times_text(view, point),
            ChartKind::IdleMemory => idle_memory_text(view),
        };
        let _ = writeln!(out, "{}\n", text.join(" "));
        if let Some(line) = takeaway(view, &chart.kind) {
            let _ = writeln!(out, "**Takeaway:** {line}\n");
        }
    }
}

/// A technique's name in a sentence: "short polling", "WebSocket".
fn title(technique: Technique) -> &'static str {
    technique.descriptor().title
}

/// The one-line takeaway of a chart: the largest and smallest of the figure it plots, as a
/// ratio, at the point where the chart's techniques differ most (the last of a sweep).
fn takeaway(view: &View, kind: &ChartKind) -> Option<String> {
    let last = |sweep: &Sweep| sweep.points[sweep.points.len() - 1];
    let at = |point: &Point| {
        if view.swept.is_empty() {
            String::new()
        } else {
            view.point_label(point)
        }
    };
    type Pick = fn(&CellResult) -> Option<f64>;
    let values = |point: &Point, pick: Pick| -> Vec<(&'static str, f64)> {
        view.cells_at(point)
            .into_iter()
            .filter_map(|c| Some((title(c.technique), pick(c)?)))
            .collect()
    };
    let bytes_per_second: Pick = |c| Some(figures::wire_bytes_per_second(c));
    let cpu: Pick = |c| (!c.server_unavailable).then(|| figures::server_cpu_percent(c));
    let per_comment: Pick =
        |c| (c.deliveries.delivered_in_window > 0).then_some(c.per_delivery.bytes);
    let pct_of_core = |v: f64| format!("{}% of a core", num(v));
    let bytes_each = |v: f64| format!("{} B", num(v));
    let per_second = |v: f64| format!("{}/s", bytes(v));
    let sentence = match kind {
        ChartKind::Percentiles(point) => latency_takeaway(&view.cells_at(point), &at(point)),
        ChartKind::SweepLatency(sweep) => {
            latency_takeaway(&view.cells_at(&last(sweep)), &at(&last(sweep)))
        }
        ChartKind::SweepWire(sweep) => compare(
            "bytes on the wire",
            &values(&last(sweep), bytes_per_second),
            &at(&last(sweep)),
            &per_second,
        ),
        ChartKind::SweepServer(sweep) => compare(
            "server CPU",
            &values(&last(sweep), cpu),
            &at(&last(sweep)),
            &pct_of_core,
        ),
        ChartKind::SweepHttp(sweep) => compare(
            "bytes per delivered comment",
            &values(&last(sweep), per_comment),
            &at(&last(sweep)),
            &bytes_each,
        ),
        ChartKind::Cost => {
            let point = view.points.last()?;
            compare(
                "bytes per delivery",
                &values(point, per_comment),
                &at(point),
                &bytes_each,
            )
        }
        ChartKind::Timeline(point) => timeline_takeaway(&view.cells_at(point)),
        ChartKind::IdleMemory => {
            let point = view.points.last()?;
            let kib: Pick = |c| c.idle_memory.map(|m| m.bytes_per_connection / 1024.0);
            compare(
                "server memory per idle connection",
                &values(point, kib),
                &at(point),
                &|v| format!("{} KiB", num(v)),
            )
        }
        ChartKind::FaultConnections(point) => {
            let recovery: Pick = |c| {
                let r = &c.faults.as_ref()?.recovery;
                (r.count > 0).then_some(r.p50_us as f64)
            };
            compare(
                "median recovery after a drop",
                &values(point, recovery),
                &at(point),
                &|us| ms(us),
            )
        }
        ChartKind::FaultTimes(point) => {
            let noticed: Pick = |c| {
                let d = c.faults.as_ref()?.close_detection?;
                (d.count > 0).then_some(d.p50_us as f64)
            };
            let longest: Pick = |c| {
                let r = &c.faults.as_ref()?.recovery;
                (r.count > 0).then_some(r.max_us as f64)
            };
            let closed = values(point, noticed);
            if closed.len() >= 2 {
                compare(
                    "median time to notice a closed page",
                    &closed,
                    &at(point),
                    &|us| ms(us),
                )
            } else {
                compare(
                    "longest recovery after a drop",
                    &values(point, longest),
                    &at(point),
                    &|us| ms(us),
                )
            }
        }
    }?;
    Some(capitalise(sentence))
}

/// Latency: p99 where every cell has the 100 deliveries a p99 needs, else the highest
/// percentile they all support.
fn latency_takeaway(cells: &[&CellResult], at: &str) -> Option<String> {
    let delivered: Vec<&CellResult> = cells
        .iter()
        .copied()
        .filter(|c| c.latency.count > 0)
        .collect();
    let fewest = delivered.iter().map(|c| c.latency.count).min()?;
    let (label, pick): (&str, fn(&CellResult) -> u64) = if supports(fewest, 99.0) {
        ("p99", |c| c.latency.p99_us)
    } else if supports(fewest, 90.0) {
        ("p90", |c| c.latency.p90_us)
    } else {
        ("median", |c| c.latency.p50_us)
    };
    let values: Vec<(&str, f64)> = delivered
        .iter()
        .map(|c| (title(c.technique), pick(c) as f64))
        .collect();
    compare(label, &values, at, &|us| ms(us))
}

/// The least steady technique's worst second, by the same rule as everywhere in the report
/// (`figures::biggest_spike`: a second's p99 against the technique's p99 over the window, among
/// seconds with enough deliveries for a p99), or that there was none.
fn timeline_takeaway(cells: &[&CellResult]) -> Option<String> {
    let spike = cells
        .iter()
        .filter_map(|c| figures::biggest_spike(c).map(|s| (s, *c)))
        .max_by(|a, b| {
            a.0.ratio
                .total_cmp(&b.0.ratio)
                .then(b.1.technique.cmp(&a.1.technique))
        });
    Some(match spike {
        Some((spike, cell)) => format!(
            "{}'s worst second ({}) had a p99 of {} over {} deliveries, {}× its p99 over the \
             whole window ({}).",
            title(cell.technique),
            spike.second,
            ms(spike.p99_us as f64),
            int(spike.deliveries),
            num(spike.ratio),
            ms(spike.window_p99_us as f64)
        ),
        None => format!(
            "steady: no second with at least {} deliveries had a p99 of {}× its technique's \
             whole-window p99 or more.",
            int(figures::SPIKE_MIN_DELIVERIES),
            num(figures::SPIKE_RATIO)
        ),
    })
}

/// A percentile to two decimals at most, never rounded up past what it is: "99.75", "99".
fn percentile_text(p: f64) -> String {
    let text = format!("{:.2}", (p * 100.0).floor() / 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The largest and smallest of a figure across techniques, as a sentence: "short polling's
/// p99 (991 ms) is 1,400× WebSocket's (0.7 ms) at 100 clients". Values within 10% of each
/// other are said to be alike rather than ranked.
fn compare(
    figure: &str,
    values: &[(&str, f64)],
    at: &str,
    show: &dyn Fn(f64) -> String,
) -> Option<String> {
    let finite: Vec<(&str, f64)> = values
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite() && *v >= 0.0)
        .collect();
    if finite.len() < 2 {
        return None;
    }
    let hi = finite.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let lo = finite.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1))?;
    // "at 100 clients", but ", in-memory feed" for a point named by words.
    let at = match at.chars().next() {
        None => String::new(),
        Some(c) if c.is_ascii_digit() => format!(" at {at}"),
        Some(_) => format!(", {at}"),
    };
    Some(if lo.1 == 0.0 && hi.1 == 0.0 {
        format!("every technique's {figure} came to 0{at}.")
    } else if lo.1 == 0.0 {
        format!(
            "{}'s {figure} came to {}{at}; {}'s to 0.",
            hi.0,
            show(hi.1),
            lo.0
        )
    } else if hi.1 / lo.1 < 1.1 {
        format!(
            "every technique's {figure} came within 10% of the others'{at} ({} to {}).",
            show(lo.1),
            show(hi.1)
        )
    } else {
        format!(
            "{}'s {figure} came to {}, {}× {}'s {}{at}.",
            hi.0,
            show(hi.1),
            num(hi.1 / lo.1),
            lo.0,
            show(lo.1)
        )
    })
}

/// "At 100 clients, " when the point is one of several, "" otherwise.
fn at_point(view: &View, point: &Point) -> String {
    if view.swept.is_empty() {
        String::new()
    } else {
        format!("At {}, ", view.point_label(point))
    }
}

fn capitalise(text: String) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

fn loss_sentences(cells: &[&CellResult]) -> Vec<String> {
    cells
        .iter()
        .filter(|c| c.deliveries.missing > 0)
        .map(|c| {
            format!(
                "⚠ {} lost {} of {} deliveries ({}); its figures describe only the comments that \
                 arrived.",
                c.technique.name(),
                int(c.deliveries.missing),
                int(c.deliveries.expected),
                pct(share(c.deliveries.missing, c.deliveries.expected))
            )
        })
        .collect()
}

fn percentiles_text(view: &View, point: &Point) -> Vec<String> {
    let cells = view.cells_at(point);
    let delivered: Vec<&CellResult> = cells
        .iter()
        .copied()
        .filter(|c| c.latency.count > 0)
        .collect();
    let mut text = Vec::new();
    let by = |f: fn(&CellResult) -> u64| {
        let min = delivered.iter().min_by_key(|c| (f(c), c.technique));
        let max = delivered.iter().max_by_key(|c| (f(c), c.technique));
        min.zip(max)
    };
    // The tail quoted is the highest percentile every cell's count supports: the 99.9th of
    // 400 deliveries would be just their largest.
    let fewest = delivered.iter().map(|c| c.latency.count).min().unwrap_or(0);
    let (tail, tail_of): (&str, fn(&CellResult) -> u64) = if supports(fewest, 99.9) {
        ("99.9%", |c| c.latency.p999_us)
    } else if supports(fewest, 99.0) {
        ("99%", |c| c.latency.p99_us)
    } else {
        ("90%", |c| c.latency.p90_us)
    };
    if let (Some((fast50, slow50)), Some((fast_tail, slow_tail))) =
        (by(|c| c.latency.p50_us), by(tail_of))
    {
        if delivered.len() == 1 {
            text.push(capitalise(format!(
                "{}{} delivered half its comments within {} and {tail} within {}.",
                at_point(view, point),
                fast50.technique.name(),
                ms(fast50.latency.p50_us as f64),
                ms(tail_of(fast50) as f64)
            )));
        } else {
            text.push(capitalise(format!(
                "{}median latency ran from {} ({}) to {} ({}); at {tail} from {} ({}) to {} ({}).",
                at_point(view, point),
                ms(fast50.latency.p50_us as f64),
                fast50.technique.name(),
                ms(slow50.latency.p50_us as f64),
                slow50.technique.name(),
                ms(tail_of(fast_tail) as f64),
                fast_tail.technique.name(),
                ms(tail_of(slow_tail) as f64),
                slow_tail.technique.name()
            )));
        }
        if !supports(fewest, 99.9) {
            text.push(format!(
                "With {} deliveries in the smallest cell, no percentile above {} is quoted or \
                 drawn.",
                int(fewest),
                percentile_text(highest_supported(fewest))
            ));
        }
    }
    if let Some(short) = view.cell(point, Technique::ShortPolling)
        && let Some(model) = models::for_cell(view, short)
            .into_iter()
            .find(|m| m.figure.starts_with("mean latency"))
        && short.latency.count > 0
    {
        text.push(format!(
            "Short polling's mean was {} ms; the model interval/2 + round trip predicts {} ms.",
            num(model.measured),
            num(model.predicted)
        ));
    }
    for cell in cells.iter().filter(|c| c.latency.count == 0) {
        text.push(format!(
            "⚠ {} delivered nothing, so it has no curve.",
            cell.technique.name()
        ));
    }
    text.extend(loss_sentences(&cells));
    text
}

/// `first → last` of a value along a sweep, per technique: "short-polling 510 → 530 ms",
/// the first value formatted by `first`, the last by `last` (which may add the unit).
fn along(
    view: &View,
    sweep: &Sweep,
    pick: &dyn Fn(&CellResult) -> Option<f64>,
    first: &dyn Fn(f64) -> String,
    last: &dyn Fn(f64) -> String,
) -> Vec<String> {
    view.techniques
        .iter()
        .filter_map(|&t| {
            let values: Vec<f64> = sweep
                .points
                .iter()
                .filter_map(|p| view.cell(p, t).and_then(pick))
                .collect();
            let (a, b) = (values.first()?, values.last()?);
            Some(format!("{} {} → {}", t.name(), first(*a), last(*b)))
        })
        .collect()
}

/// The HTTP comparison: bytes per delivered comment, connections, memory per subscriber.
fn sweep_http_text(view: &View, sweep: &Sweep) -> Vec<String> {
    let (first, last) = span(sweep);
    let bytes_each = along(
        view,
        sweep,
        &|c| (c.deliveries.delivered_in_window > 0).then_some(c.per_delivery.bytes),
        &|v| num(v.round()),
        &|v| format!("{} B", num(v.round())),
    );
    let connections = along(
        view,
        sweep,
        &|c| Some(c.kernel.sockets as f64),
        &|v| num(v),
        &|v| num(v),
    );
    let memory = along(
        view,
        sweep,
        &|c| c.idle_memory.map(|m| m.bytes_per_connection),
        &|v| bytes(v),
        &|v| bytes(v),
    );
    let mut text = vec![
        format!(
            "From {first} to {last}, bytes per delivered comment (both ways, at the \
             subscribers' sockets, HTTP/2's own frames included) went: {}.",
            bytes_each.join("; ")
        ),
        format!(
            "TCP connections the subscribers opened over the whole cell (the kernel's count of \
             their sockets): {}.",
            connections.join("; ")
        ),
    ];
    let overhead: Vec<String> = sweep
        .points
        .iter()
        .flat_map(|p| view.cells_at(p))
        .filter(|c| c.agreement.server_h2_overhead_in + c.agreement.server_h2_overhead_out > 0)
        .map(|c| {
            format!(
                "{} at {}: {} in, {} out",
                c.technique.name(),
                view.point_label(&Point::of(c)),
                bytes(c.agreement.server_h2_overhead_in as f64),
                bytes(c.agreement.server_h2_overhead_out as f64)
            )
        })
        .collect();
    if !overhead.is_empty() {
        text.push(format!(
            "HTTP/2's connection-level frames (preface, SETTINGS, PING, connection \
             WINDOW_UPDATE, GOAWAY), which the server books to no technique, over each whole \
             cell: {}.",
            overhead.join("; ")
        ));
    }
    if !memory.is_empty() {
        text.push(format!(
            "Server memory per idle subscriber (resident memory once all were connected, less \
             before, over their number): {}.",
            memory.join("; ")
        ));
    }
    text
}

fn span(sweep: &Sweep) -> (String, String) {
    let values = sweep.values();
    let d: Dim = sweep.dim;
    (d.describe(values[0]), d.describe(values[values.len() - 1]))
}

fn latency_of(pick: fn(&CellResult) -> u64) -> impl Fn(&CellResult) -> Option<f64> {
    move |c| (c.latency.count > 0).then(|| pick(c) as f64)
}

fn sweep_latency_text(view: &View, sweep: &Sweep) -> Vec<String> {
    let (first, last) = span(sweep);
    let bare = |us: f64| num(us / 1000.0);
    let unit = |us: f64| ms(us);
    let p99 = along(view, sweep, &latency_of(|c| c.latency.p99_us), &bare, &unit);
    let p50 = along(view, sweep, &latency_of(|c| c.latency.p50_us), &bare, &unit);
    let mut text = vec![
        format!(
            "From {first} to {last}, p99 latency went: {}.",
            p99.join("; ")
        ),
        format!("Median (p50): {}.", p50.join("; ")),
    ];
    text.extend(loss_sentences(&sweep_cells(view, sweep)));
    text
}

fn sweep_cells<'a>(view: &View<'a>, sweep: &Sweep) -> Vec<&'a CellResult> {
    sweep.points.iter().flat_map(|p| view.cells_at(p)).collect()
}

fn sweep_wire_text(view: &View, sweep: &Sweep) -> Vec<String> {
    let (first, last) = span(sweep);
    let last_point = sweep.points[sweep.points.len() - 1];
    let cells = view.cells_at(&last_point);
    let mut text = vec![format!(
        "From {first} to {last}, bytes per second on the subscribers' sockets went: {}.",
        along(
            view,
            sweep,
            &|c| Some(figures::wire_bytes_per_second(c)),
            &|v| format!("{}/s", bytes(v)),
            &|v| format!("{}/s", bytes(v))
        )
        .join("; ")
    )];
    let cheapest = cells.iter().min_by(|a, b| {
        figures::wire_bytes_per_second(a).total_cmp(&figures::wire_bytes_per_second(b))
    });
    let dearest = cells.iter().max_by(|a, b| {
        figures::wire_bytes_per_second(a).total_cmp(&figures::wire_bytes_per_second(b))
    });
    let payload = cells
        .iter()
        .map(|c| figures::payload_bytes_per_second(c))
        .fold(0.0, f64::max);
    if let (Some(lo), Some(hi)) = (cheapest, dearest)
        && lo.technique != hi.technique
        && figures::wire_bytes_per_second(lo) > 0.0
    {
        text.push(format!(
            "At {last}, {} moved {}× the bytes of {}, against {}/s of comment payload.",
            hi.technique.name(),
            num(figures::wire_bytes_per_second(hi) / figures::wire_bytes_per_second(lo)),
            lo.technique.name(),
            bytes(payload)
        ));
    }
    text
}

fn sweep_server_text(view: &View, sweep: &Sweep) -> Vec<String> {
    let (first, last) = span(sweep);
    let last_point = sweep.points[sweep.points.len() - 1];
    let cells = view.cells_at(&last_point);
    let mut text = vec![format!(
        "From {first} to {last}, server CPU (share of one core) went: {}.",
        along(
            view,
            sweep,
            &|c| (!c.server_unavailable).then(|| figures::server_cpu_percent(c)),
            &|v| format!("{}%", num(v)),
            &|v| format!("{}%", num(v))
        )
        .join("; ")
    )];
    let measured = || cells.iter().filter(|c| !c.server_unavailable);
    let low = measured().min_by_key(|c| (c.server.peak_rss_bytes, c.technique));
    let high = measured().max_by_key(|c| (c.server.peak_rss_bytes, c.technique));
    if let (Some(lo), Some(hi)) = (low, high) {
        text.push(format!(
            "At {last}, the server's peak resident memory ran from {} ({}) to {} ({}).",
            mib(lo.server.peak_rss_bytes),
            lo.technique.name(),
            mib(hi.server.peak_rss_bytes),
            hi.technique.name()
        ));
    }
    text
}

fn cost_text(view: &View) -> Vec<String> {
    // The heaviest point (the last in sweep order) is where costs differ most.
    let Some(point) = view.points.last() else {
        return Vec::new();
    };
    let cells = view.cells_at(point);
    let costs: Vec<String> = cells
        .iter()
        .map(|c| {
            let p = &c.per_delivery;
            let overhead = if p.bytes > 0.0 {
                (p.bytes - p.payload_bytes).max(0.0) / p.bytes
            } else {
                0.0
            };
            let cpu = if c.server_unavailable {
                "server CPU unavailable".to_string()
            } else {
                format!("{} µs of server CPU", num(p.server_cpu_us))
            };
            format!(
                "{} {} requests, {} bytes ({} protocol overhead), {cpu}",
                c.technique.name(),
                num(p.requests),
                num(p.bytes),
                pct(overhead),
            )
        })
        .collect();
    let mut text = vec![capitalise(format!(
        "{}one delivered comment cost: {}.",
        at_point(view, point),
        costs.join("; ")
    ))];
    for technique in [Technique::ShortPolling, Technique::LongPolling] {
        let clauses: Vec<String> = view
            .points
            .iter()
            .filter_map(|p| view.cell(p, technique))
            .map(|c| poll_clause(view, c))
            .collect();
        if !clauses.is_empty() {
            text.push(capitalise(format!(
                "{} made {}.",
                technique.name(),
                clauses.join("; ")
            )));
        }
    }
    text
}

/// "1,000 requests at 1 comment/s, 99% of them empty (model: 1,000 requests, 99% empty)".
fn poll_clause(view: &View, cell: &CellResult) -> String {
    let at = if view.swept.is_empty() {
        String::new()
    } else {
        format!(" at {}", view.point_label(&Point::of(cell)))
    };
    let models = models::for_cell(view, cell);
    let find = |figure: &str| models.iter().find(|m| m.figure == figure);
    let model = match (find("requests"), find("empty responses (%)")) {
        (Some(r), Some(e)) => format!(
            " (model: {} requests, {}% empty)",
            num(r.predicted),
            num(e.predicted)
        ),
        (Some(r), None) => format!(" (model: {} requests)", num(r.predicted)),
        _ => String::new(),
    };
    format!(
        "{} requests{at}, {} of them empty{model}",
        int(cell.client.requests),
        pct(share(cell.client.empty_responses, cell.client.requests))
    )
}

fn timeline_text(view: &View, point: &Point) -> Vec<String> {
    let cells = view.cells_at(point);
    let mut text = Vec::new();
    // Whole seconds only (the chart leaves out the window's edges); the biggest spike is
    // the takeaway's, from seconds with the 100 deliveries a p99 needs.
    if cells.iter().any(|c| kept(c).len() < c.timeline.len()) {
        text.push(capitalise(format!(
            "{}the chart shows whole seconds only: the bucket of arrivals after the window, and \
             the first second where deliveries take 10 ms or more (it lacks the comments \
             published just before the window), are left out.",
            at_point(view, point)
        )));
    }
    let events = |pick: fn(&crate::model::results::TimelinePoint) -> bool,
                  count: fn(&crate::model::results::TimelinePoint) -> u64| {
        cells
            .iter()
            .filter_map(|c| {
                let timeline = kept(c);
                let seconds: Vec<String> = timeline
                    .iter()
                    .filter(|t| pick(t))
                    .map(|t| t.second.to_string())
                    .collect();
                let total: u64 = timeline.iter().filter(|t| pick(t)).map(count).sum();
                (!seconds.is_empty()).then(|| {
                    let shown = seconds
                        .iter()
                        .take(8)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ");
                    let more = if seconds.len() > 8 { ", …" } else { "" };
                    format!(
                        "{} {} (second{} {shown}{more})",
                        c.technique.name(),
                        int(total),
                        if seconds.len() == 1 { "" } else { "s" }
                    )
                })
            })
            .collect::<Vec<_>>()
    };
    let reconnects = events(|t| t.reconnects > 0, |t| t.reconnects);
    if reconnects.is_empty() {
        text.push("No subscriber reconnected during the window.".into());
    } else {
        text.push(format!("Reconnects: {}.", reconnects.join("; ")));
    }
    let silent = events(|t| t.deliveries == 0, |_| 1);
    if !silent.is_empty() {
        text.push(format!("Seconds with no delivery: {}.", silent.join("; ")));
    }
    text
}

/// Server memory per idle connection at the heaviest point, against the goals (8 KiB for SSE
/// and WebSocket, 12 KiB for long polling).
fn idle_memory_text(view: &View) -> Vec<String> {
    let Some(point) = view.points.last() else {
        return Vec::new();
    };
    let figures: Vec<String> = view
        .cells_at(point)
        .iter()
        .filter_map(|c| {
            let m = c.idle_memory?;
            Some(format!(
                "{} {} KiB ({} connections)",
                c.technique.name(),
                num(m.bytes_per_connection / 1024.0),
                int(m.connections)
            ))
        })
        .collect();
    if figures.is_empty() {
        return Vec::new();
    }
    vec![
        capitalise(format!(
            "{}the server's resident memory grew per idle connection by: {}.",
            at_point(view, point),
            figures.join(", ")
        )),
        "Measured before the first publish; the kernel's own socket buffers (about 4.7 KiB per \
         idle TCP connection) are not in the process's RSS. The lines are the goals: 8 KiB for \
         SSE and WebSocket, 12 KiB for long polling."
            .to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: f64) -> String {
        format!("{} ms", num(v))
    }

    #[test]
    fn the_takeaway_states_the_ratio_of_largest_to_smallest() {
        let values = [("WebSocket", 0.5), ("SSE", 0.6), ("short polling", 700.0)];
        assert_eq!(
            compare("p99", &values, "100 clients", &show).unwrap(),
            "short polling's p99 came to 700 ms, 1,400× WebSocket's 0.5 ms at 100 clients."
        );
        let values = [("WebSocket", 0.5), ("SSE", 0.6)];
        assert_eq!(
            compare("p99", &values, "in-memory feed", &show).unwrap(),
            "SSE's p99 came to 0.6 ms, 1.2× WebSocket's 0.5 ms, in-memory feed."
        );
    }

    #[test]
    fn close_values_are_not_ranked_and_zeros_are_named() {
        let values = [("WebSocket", 100.0), ("SSE", 105.0)];
        assert_eq!(
            compare("bytes per delivery", &values, "", &|v| format!(
                "{} B",
                num(v)
            ))
            .unwrap(),
            "every technique's bytes per delivery came within 10% of the others' (100 B to 105 B)."
        );
        let values = [("WebSocket", 0.0), ("long polling", 1.0)];
        assert_eq!(
            compare("requests", &values, "", &|v| num(v)).unwrap(),
            "long polling's requests came to 1; WebSocket's to 0."
        );
        assert!(compare("p99", &[("SSE", 1.0)], "", &show).is_none());
        assert!(compare("p99", &[("SSE", 1.0), ("WebSocket", f64::NAN)], "", &show).is_none());
    }

    /// Every chart of a sweep gets a takeaway, and the latency one quotes the ratio of the
    /// very p99s the chart plots.
    #[test]
    fn every_chart_gets_a_takeaway_from_its_own_numbers() {
        let summary = crate::report::fixture::client_sweep();
        let view = View::new(&summary);
        for chart in view.charts() {
            assert!(
                takeaway(&view, &chart.kind).is_some(),
                "{}",
                chart.file_name
            );
        }
        let point = view.points[0];
        let cells = view.cells_at(&point);
        let slow = cells.iter().max_by_key(|c| c.latency.p99_us).unwrap();
        let fast = cells.iter().min_by_key(|c| c.latency.p99_us).unwrap();
        let line = takeaway(&view, &ChartKind::Percentiles(point)).unwrap();
        let ratio = num(slow.latency.p99_us as f64 / fast.latency.p99_us as f64);
        assert!(
            line.contains(&format!(
                "{}'s p99 came to {}, {ratio}× {}'s",
                capitalise(title(slow.technique).to_string()),
                ms(slow.latency.p99_us as f64),
                title(fast.technique)
            )),
            "{line}"
        );
    }

    #[test]
    fn percentiles_are_never_rounded_up() {
        assert_eq!(percentile_text(highest_supported(400)), "99.75");
        assert_eq!(percentile_text(highest_supported(100)), "99");
        assert_eq!(percentile_text(highest_supported(3)), "66.66");
    }
}
