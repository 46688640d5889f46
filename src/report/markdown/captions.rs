//! The "Charts" section of `report.md`: each chart with one or two sentences that state what
//! it shows in this run's own numbers, one function per chart kind.

use std::fmt::Write as _;

use crate::model::results::CellResult;
use crate::model::technique::Technique;
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
    }
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
    if let (Some((fast50, slow50)), Some((fast999, slow999))) =
        (by(|c| c.latency.p50_us), by(|c| c.latency.p999_us))
    {
        if delivered.len() == 1 {
            text.push(capitalise(format!(
                "{}{} delivered half its comments within {} and 99.9% within {}.",
                at_point(view, point),
                fast50.technique.name(),
                ms(fast50.latency.p50_us as f64),
                ms(fast50.latency.p999_us as f64)
            )));
        } else {
            text.push(capitalise(format!(
                "{}median latency ran from {} ({}) to {} ({}); at 99.9% from {} ({}) to {} ({}).",
                at_point(view, point),
                ms(fast50.latency.p50_us as f64),
                fast50.technique.name(),
                ms(slow50.latency.p50_us as f64),
                slow50.technique.name(),
                ms(fast999.latency.p999_us as f64),
                fast999.technique.name(),
                ms(slow999.latency.p999_us as f64),
                slow999.technique.name()
            )));
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
    // The biggest spike relative to the technique's own typical second: comparing
    // techniques' raw latencies would always name short polling.
    let spikes = cells.iter().filter_map(|c| {
        let mut p99s: Vec<u64> = c
            .timeline
            .iter()
            .filter(|t| t.deliveries > 0)
            .map(|t| t.p99_us)
            .collect();
        p99s.sort_unstable();
        let median = *p99s.get(p99s.len() / 2)?;
        let worst = c
            .timeline
            .iter()
            .filter(|t| t.deliveries > 0)
            .max_by_key(|t| (t.p99_us, std::cmp::Reverse(t.second)))?;
        Some((
            worst.p99_us as f64 / median.max(1) as f64,
            *c,
            worst,
            median,
        ))
    });
    let spike = spikes.max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.technique.cmp(&a.1.technique)));
    if let Some((ratio, cell, second, median)) = spike {
        text.push(capitalise(format!(
            "{}the biggest spike was {}'s second {}: p99 {}, {}× its median second ({}).",
            at_point(view, point),
            cell.technique.name(),
            second.second,
            ms(second.p99_us as f64),
            num(ratio),
            ms(median as f64)
        )));
    }
    let events = |pick: fn(&crate::model::results::TimelinePoint) -> bool,
                  count: fn(&crate::model::results::TimelinePoint) -> u64| {
        cells
            .iter()
            .filter_map(|c| {
                let seconds: Vec<String> = c
                    .timeline
                    .iter()
                    .filter(|t| pick(t))
                    .map(|t| t.second.to_string())
                    .collect();
                let total: u64 = c.timeline.iter().filter(|t| pick(t)).map(count).sum();
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
