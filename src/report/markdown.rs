//! `report.md`: a handout a study group can read on a projector. The scenario, the machine,
//! every warning (loss first and loudly), the summary table, the simple models next to the
//! measurements, and every chart with one or two sentences that state what it shows in this
//! run's own numbers. Every sentence is computed from the summary; none is canned.

use std::fmt::Write as _;

use super::figures::{self, has_warnings, share};
use super::fmt::{bytes, int, mib, ms, num, pct};
use super::models::{self, Model};
use super::plan::{ChartKind, ChartPlan, Dim, Point, Sweep, View};
use crate::loadgen::results::CellResult;
use crate::loadgen::scenario::Audience;
use crate::techniques::Technique;

/// The whole report, given the charts `charts::render` drew for the same view.
pub fn render(view: &View, charts: &[ChartPlan]) -> String {
    let mut out = String::new();
    heading(&mut out, view);
    scenario(&mut out, view);
    machine(&mut out, view);
    warnings(&mut out, view);
    summary_table(&mut out, view);
    models(&mut out, view);
    chart_sections(&mut out, view, charts);
    out
}

fn heading(out: &mut String, view: &View) {
    let s = view.summary;
    let _ = writeln!(out, "# {}: pushlab report\n", s.scenario.name);
    let _ = writeln!(out, "{}\n", s.scenario.description);
    let expected = s.scenario.cells().len();
    if s.interrupted && view.cells.len() >= expected {
        out.push_str(
            "> **⚠ INTERRUPTED RUN:** every cell has a result, but the run was stopped before \
             it finished, so the last cell may be cut short.\n\n",
        );
    } else if s.interrupted || view.cells.len() < expected {
        let _ = writeln!(
            out,
            "> **⚠ INCOMPLETE RUN: only {} of the scenario's {} cells ran{}.** Comparisons \
             below cover only the cells that ran.\n",
            view.cells.len(),
            expected,
            if s.interrupted {
                " (the run was interrupted)"
            } else {
                ""
            }
        );
    }
}

fn scenario(out: &mut String, view: &View) {
    let s = &view.summary.scenario;
    let list = |values: Vec<String>| values.join(", ");
    let duration = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let audience = match s.audience {
        Audience::Broadcast => "broadcast: every comment goes to every subscriber",
        Audience::PerUser => "per-user: each comment goes to one subscriber, in turn",
    };
    let server = match &view.summary.target {
        Some(target) => format!("`{target}` (one server for every cell)"),
        None => "a fresh server per cell, started by the load generator".into(),
    };
    let rows = [
        (
            "techniques",
            list(s.techniques.iter().map(|t| t.name().to_string()).collect()),
        ),
        (
            "clients",
            list(s.clients.iter().map(|&c| int(u64::from(c))).collect()),
        ),
        (
            "publish rate",
            format!(
                "{} comments/s, open loop",
                list(s.rates.iter().map(|&r| num(r)).collect())
            ),
        ),
        (
            "comment size",
            format!(
                "{} bytes",
                list(s.payload_bytes.iter().map(|&p| int(u64::from(p))).collect())
            ),
        ),
        ("audience", audience.into()),
        (
            "measured window",
            format!(
                "{} per cell, after a {} warm-up; up to {} drain for late deliveries",
                duration(s.duration),
                duration(s.warmup),
                duration(s.drain)
            ),
        ),
        ("short-polling interval", duration(s.poll_interval)),
        ("long-polling timeout", duration(s.long_poll_timeout)),
        ("SSE heartbeat", duration(s.sse_heartbeat)),
        (
            "per-subscriber queue",
            format!("{} comments", int(u64::from(s.subscriber_queue))),
        ),
        ("server", server),
        (
            "cells",
            format!(
                "{} of {} ran",
                view.cells.len(),
                view.summary.scenario.cells().len()
            ),
        ),
        (
            "run",
            format!(
                "pushlab {}, started {}",
                view.summary.pushlab_version, view.summary.started_at
            ),
        ),
    ];
    out.push_str("## Scenario\n\n| parameter | value |\n| --- | --- |\n");
    for (key, value) in rows {
        let _ = writeln!(out, "| {key} | {} |", cell_text(&value));
    }
    out.push('\n');
}

fn machine(out: &mut String, view: &View) {
    let m = &view.summary.machine;
    out.push_str("## Machine\n\n| OS | kernel | CPU | cores | memory | open files limit |\n");
    out.push_str("| --- | --- | --- | ---: | ---: | ---: |\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} |\n",
        cell_text(&m.os),
        cell_text(&m.kernel),
        cell_text(&m.cpu_model),
        m.cpus,
        if m.memory_bytes > 0 {
            format!("{} GiB", num(m.memory_bytes as f64 / 1_073_741_824.0))
        } else {
            "unknown".into()
        },
        int(m.open_files_limit)
    );
    match &view.summary.target {
        None => {
            let _ = writeln!(
                out,
                "The load generator started each cell's server on this machine, so the two \
                 shared its {} cores: the generator's own CPU use is in the warnings where it \
                 came close to a whole core.\n",
                m.cpus
            );
        }
        Some(target) => {
            let _ = writeln!(
                out,
                "This is the load generator's machine; the server ran at `{target}`.\n"
            );
        }
    }
}

/// A cell's name for lists and sentences: technique and every parameter.
fn cell_name(cell: &CellResult) -> String {
    format!("{} · {}", cell.technique.name(), Point::of(cell).describe())
}

fn warnings(out: &mut String, view: &View) {
    let warned: Vec<&CellResult> = view
        .cells
        .iter()
        .copied()
        .filter(|c| has_warnings(c) || !c.warnings.is_empty() || c.server.dropped_slow > 0)
        .collect();
    out.push_str("## ⚠ Warnings\n\n");
    if view.cells.is_empty() {
        out.push_str("**No cell ran, so this run measured nothing.**\n\n");
        return;
    }
    if warned.is_empty() {
        out.push_str(
            "No cell raised a warning: every expected delivery arrived exactly once and in \
             order, no publish failed, the load generator had headroom, and both ends counted \
             the same bytes.\n\n",
        );
        return;
    }
    let lost: u64 = view.cells.iter().map(|c| c.deliveries.missing).sum();
    let _ = writeln!(
        out,
        "**{} of {} cells raised warnings. Read them before trusting those cells' numbers.**{}\n",
        warned.len(),
        view.cells.len(),
        if lost > 0 {
            format!(" **{} deliveries were lost in total.**", int(lost))
        } else {
            String::new()
        }
    );
    for cell in warned {
        let _ = writeln!(out, "- **{}**", cell_name(cell));
        for fact in cell_facts(cell) {
            let _ = writeln!(out, "  - {fact}");
        }
        for warning in &cell.warnings {
            let _ = writeln!(out, "  - load generator: {}", warning.trim());
        }
    }
    out.push('\n');
}

/// What the report itself checks in a cell, stated with the numbers.
fn cell_facts(cell: &CellResult) -> Vec<String> {
    let d = &cell.deliveries;
    let mut facts = Vec::new();
    if d.missing > 0 {
        facts.push(format!(
            "**LOSS: {} of {} expected deliveries never arrived ({}).**",
            int(d.missing),
            int(d.expected),
            pct(share(d.missing, d.expected))
        ));
    }
    if d.duplicated > 0 {
        facts.push(format!(
            "**{} duplicate deliveries** (a comment a subscriber already had).",
            int(d.duplicated)
        ));
    }
    if d.out_of_order > 0 {
        facts.push(format!(
            "**{} comments arrived out of order.**",
            int(d.out_of_order)
        ));
    }
    if d.publish_errors > 0 {
        facts.push(format!(
            "**{} publishes failed**: those comments never entered the feed.",
            int(d.publish_errors)
        ));
    }
    if cell.server.dropped_slow > 0 {
        facts.push(format!(
            "**The server dropped {} comments for subscribers too slow to keep up.**",
            int(cell.server.dropped_slow)
        ));
    }
    if cell.loadgen.generator_bound {
        facts.push(format!(
            "**Generator-bound:** the load generator used {} of a core, so its latency and \
             throughput may show its own limits rather than the server's.",
            pct(cell.loadgen.core_share)
        ));
    }
    if !cell.agreement.equal {
        let a = &cell.agreement;
        facts.push(format!(
            "**Byte counts disagree:** subscribers sent {} and received {}; the server received \
             {} and sent {}.",
            int(a.client_up),
            int(a.client_down),
            int(a.server_in),
            int(a.server_out)
        ));
    }
    facts
}

fn summary_table(out: &mut String, view: &View) {
    out.push_str("## Summary\n\n");
    out.push_str(
        "Latency runs from the moment a comment was scheduled to be published to the moment a \
         subscriber had parsed it, over every (comment, subscriber) pair. Requests, empty \
         responses and bytes are the subscribers' own, counted at their sockets within the \
         measured window; CPU and memory are the server's. ⚠ marks a cell with warnings.\n\n",
    );
    out.push_str(
        "| technique | clients | rate (/s) | payload (B) | p50 (ms) | p99 (ms) | p99.9 (ms) \
         | max (ms) | delivered / expected | missing | duplicated | requests | empty responses \
         | bytes / delivery | server CPU µs / delivery | server peak RSS | generator-bound \
         | bytes agree |\n",
    );
    out.push_str(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
         | ---: | ---: | ---: | ---: | --- | --- |\n",
    );
    for cell in &view.cells {
        let l = &cell.latency;
        let d = &cell.deliveries;
        let latency = |us: u64| {
            if l.count == 0 {
                "—".to_string()
            } else {
                num(us as f64 / 1000.0)
            }
        };
        let missing = if d.missing > 0 {
            format!(
                "**{} ({})**",
                int(d.missing),
                pct(share(d.missing, d.expected))
            )
        } else {
            "0".into()
        };
        let duplicated = if d.duplicated > 0 {
            format!("**{}**", int(d.duplicated))
        } else {
            "0".into()
        };
        let empty = if cell.client.requests > 0 {
            format!(
                "{} ({})",
                int(cell.client.empty_responses),
                pct(share(cell.client.empty_responses, cell.client.requests))
            )
        } else {
            int(cell.client.empty_responses)
        };
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell.technique.name(),
            if has_warnings(cell) { " ⚠" } else { "" },
            int(u64::from(cell.clients)),
            num(cell.rate),
            int(u64::from(cell.payload_bytes)),
            latency(l.p50_us),
            latency(l.p99_us),
            latency(l.p999_us),
            latency(l.max_us),
            int(d.delivered),
            int(d.expected),
            missing,
            duplicated,
            int(cell.client.requests),
            empty,
            num(cell.per_delivery.bytes),
            num(cell.per_delivery.server_cpu_us),
            mib(cell.server.peak_rss_bytes),
            if cell.loadgen.generator_bound {
                "**yes**"
            } else {
                "no"
            },
            if cell.agreement.equal {
                "yes"
            } else {
                "**no**"
            },
        );
    }
    out.push('\n');
}

fn models(out: &mut String, view: &View) {
    let rows: Vec<(&CellResult, Model)> = view
        .cells
        .iter()
        .flat_map(|c| models::for_cell(view, c).into_iter().map(move |m| (*c, m)))
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("## Simple models next to the measurements\n\n");
    out.push_str(
        "Back-of-the-envelope predictions, to see whether each technique behaves as its \
         mechanism says it should:\n\n\
         - Short polling: a comment waits on average half an interval for the next poll, then \
         a round trip, so **mean latency ≈ interval/2 + round trip**; every client polls once \
         per interval, so **requests ≈ clients × window / interval**; with comments evenly \
         spaced, **the share of empty polls ≈ max(0, 1 − comments per client per interval)**.\n\
         - Long polling: each request is answered when the client's next comment exists (or \
         at the timeout), and the client asks again at once, so one request lasts about a \
         round trip plus the wait for that comment: **requests ≈ clients × window / (round \
         trip + min(1 / comments per client per second, timeout))**. At low rates that is \
         about one request per delivery; at high rates it tends to clients × window / round \
         trip, short polling with the interval set to a round trip.\n\
         - WebSocket and SSE: **requests ≈ connections opened**, one handshake each, whatever \
         the rate.\n\n\
         The round trip is taken from the run: the median latency of the faster of WebSocket \
         and SSE at the same point (publish → server → subscriber), or, without either, the \
         fastest delivery seen.\n\n",
    );
    out.push_str("| cell | figure | model | predicted | measured | measured ÷ predicted |\n");
    out.push_str("| --- | --- | --- | ---: | ---: | ---: |\n");
    for (cell, m) in rows {
        let ratio = if m.predicted > 0.0 {
            format!("{}×", num(m.measured / m.predicted))
        } else {
            "—".into()
        };
        let _ = writeln!(
            out,
            "| {} · {} | {} | {} | {} | {} | {} |",
            cell.technique.name(),
            view.point_label(&Point::of(cell)),
            m.figure,
            cell_text(&m.model),
            num(m.predicted),
            num(m.measured),
            ratio
        );
    }
    out.push('\n');
}

fn chart_sections(out: &mut String, view: &View, charts: &[ChartPlan]) {
    out.push_str("## Charts\n\n");
    for chart in charts {
        let _ = writeln!(out, "### {}\n", chart.title);
        let _ = writeln!(out, "![{}]({})\n", chart.title, chart.file_name);
        let text = match &chart.kind {
            ChartKind::Percentiles(point) => percentiles_text(view, point),
            ChartKind::SweepLatency(sweep) => sweep_latency_text(view, sweep),
            ChartKind::SweepWire(sweep) => sweep_wire_text(view, sweep),
            ChartKind::SweepServer(sweep) => sweep_server_text(view, sweep),
            ChartKind::Cost => cost_text(view),
            ChartKind::Timeline(point) => timeline_text(view, point),
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
            &|c| Some(figures::server_cpu_percent(c)),
            &|v| format!("{}%", num(v)),
            &|v| format!("{}%", num(v))
        )
        .join("; ")
    )];
    let low = cells
        .iter()
        .min_by_key(|c| (c.server.peak_rss_bytes, c.technique));
    let high = cells
        .iter()
        .max_by_key(|c| (c.server.peak_rss_bytes, c.technique));
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
            format!(
                "{} {} requests, {} bytes ({} protocol overhead), {} µs of server CPU",
                c.technique.name(),
                num(p.requests),
                num(p.bytes),
                pct(overhead),
                num(p.server_cpu_us)
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
    let events = |pick: fn(&crate::loadgen::results::TimelinePoint) -> bool,
                  count: fn(&crate::loadgen::results::TimelinePoint) -> u64| {
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

/// Text safe inside a Markdown table cell.
fn cell_text(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;
    use crate::report::plan::View;

    fn report(summary: &crate::loadgen::results::RunSummary) -> String {
        let view = View::new(summary);
        render(&view, &view.charts())
    }

    #[test]
    fn loss_is_stated_loudly_with_its_numbers() {
        let text = report(&fixture::client_sweep());
        let warnings = &text[text.find("## ⚠ Warnings").unwrap()..text.find("## Summary").unwrap()];
        assert!(
            warnings.contains("**2 of 12 cells raised warnings."),
            "{warnings}"
        );
        assert!(
            warnings
                .contains("- **long-polling · 1,000 clients · 10 comments/s · 100 B comments**"),
            "{warnings}"
        );
        assert!(
            warnings
                .contains("**LOSS: 2,400 of 200,000 expected deliveries never arrived (1.2%).**"),
            "{warnings}"
        );
        assert!(warnings.contains("**Generator-bound:**"), "{warnings}");
        assert!(
            text.contains("| long-polling ⚠ | 1,000 |"),
            "summary row marked"
        );
        assert!(text.contains("| **2,400 (1.2%)** |"), "missing column");
        assert!(text.contains("⚠ long-polling lost 2,400 of 200,000 deliveries (1.2%)"));
    }

    #[test]
    fn the_summary_table_has_a_row_per_cell() {
        let text = report(&fixture::client_sweep());
        let table = &text[text.find("| technique | clients |").unwrap()..];
        let rows = table.lines().take_while(|l| l.starts_with('|')).count();
        assert_eq!(rows, 2 + 12);
    }

    #[test]
    fn captions_state_the_measured_numbers_and_the_models() {
        let text = report(&fixture::client_sweep());
        assert!(
            text.contains(
                "Short-polling made 200 requests at 10 clients, 0% of them empty (model: 200 \
                 requests, 0% empty); 2,000 requests at 100 clients"
            ),
            "{text}"
        );
        assert!(text.contains(
            "Short polling's mean was 504 ms; the model interval/2 + round trip predicts 504 ms."
        ));
        assert!(text.contains("Reconnects: sse 7 (seconds 7, 13)."));
        assert!(text.contains("Seconds with no delivery: long-polling 1 (second 9)."));
        assert!(text.contains("the biggest spike was long-polling's second 10"));
        // The notification case: most polls come back empty at a low rate.
        let text = report(&fixture::rate_sweep());
        assert!(
            text.contains("Short-polling made 1,000 requests at 1 comment/s, 99% of them empty (model: 1,000 requests, 99% empty)"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_or_interrupted_run_still_reports() {
        let mut summary = fixture::client_sweep();
        summary.cells.truncate(5);
        summary.interrupted = true;
        let text = report(&summary);
        assert!(text.contains(
            "**⚠ INCOMPLETE RUN: only 5 of the scenario's 12 cells ran (the run was interrupted).**"
        ));
        summary.cells.clear();
        let text = report(&summary);
        assert!(text.contains("**No cell ran, so this run measured nothing.**"));
        assert!(!text.contains("]("), "no chart links without cells");
    }
}
