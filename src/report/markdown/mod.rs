//! `report.md`: a handout a study group can read on a projector. The scenario, the machine,
//! every warning (loss first and loudly), the summary table, the simple models next to the
//! measurements, and every chart with one or two sentences that state what it shows in this
//! run's own numbers (`captions`). Every sentence is computed from the summary; none is
//! canned.

use std::fmt::Write as _;

mod captions;
mod deployments;
mod faults;
mod floor;
mod glossary;
mod ranking;
mod scale;
pub mod wire;

use super::figures::{has_warnings, server_restarted, share};
use super::fmt::{int, num, pct};
use super::models::{self, Model};
use super::plan::{ChartPlan, Point, View};
use crate::model::results::CellResult;
use crate::model::scenario::{
    Audience, Deployment, H2Connections, HttpVersion, PublishTo, RedisPersistence,
};

/// The whole report, given the charts `charts::render` drew for the same view.
pub fn render(view: &View, charts: &[ChartPlan]) -> String {
    let mut out = String::new();
    heading(&mut out, view);
    scenario(&mut out, view);
    machine(&mut out, view);
    warnings(&mut out, view);
    out.push_str(&super::table::projector(view));
    deployments::sections(&mut out, view);
    link_share(&mut out, view);
    models(&mut out, view);
    ranking::wire_with_headers(&mut out, view);
    ranking::rankings(&mut out, view);
    faults::section(&mut out, view);
    scale::section(&mut out, view);
    floor::sections(&mut out, view);
    wire::section(&mut out, view);
    captions::chart_sections(&mut out, view, charts);
    let glossary = glossary::section(&out);
    out.push_str(&glossary);
    out
}

fn heading(out: &mut String, view: &View) {
    let s = view.summary;
    let _ = writeln!(out, "# {}: pushlab report\n", s.scenario.name);
    let _ = writeln!(out, "{}\n", s.scenario.description);
    let expected = s.scenario.runs().len();
    let ran = s.cells.len();
    if s.interrupted && ran >= expected {
        out.push_str(
            "> **⚠ INTERRUPTED RUN:** every cell has a result, but the run was stopped before \
             it finished, so the last cell may be cut short.\n\n",
        );
    } else if s.interrupted || ran < expected {
        let _ = writeln!(
            out,
            "> **⚠ INCOMPLETE RUN: only {} of the scenario's {} cells ran{}.** Comparisons \
             below cover only the cells that ran.\n",
            ran,
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
    let mut rows = vec![
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
    ];
    if !Deployment::are_single(&s.deployments) {
        let labels = s.deployments.iter().map(Deployment::label).collect();
        let publish_to = match s.publish_to {
            PublishTo::One => "the first instance",
            PublishTo::All => "the instances in turn",
        };
        let persistence = match s.redis_persistence {
            RedisPersistence::None => "none (`--save \"\" --appendonly no`)",
            RedisPersistence::AppendOnly => "append-only file, fsync always",
        };
        rows.push(("deployments", list(labels)));
        rows.push(("publishes go to", publish_to.into()));
        rows.push(("Redis persistence", persistence.into()));
    }
    if !HttpVersion::is_only_h1(&s.http) {
        let labels = s.http.iter().map(|v| v.label().to_string()).collect();
        let connections = match s.h2_connections {
            H2Connections::Shared => "one per server instance, shared by its subscribers",
            H2Connections::PerClient => "one per subscriber",
        };
        rows.push(("HTTP versions", list(labels)));
        rows.push(("HTTP/2 connections", connections.into()));
    }
    let network = s.network.as_ref().map(|n| {
        let publisher = n
            .publisher
            .map_or("direct (loopback)".to_string(), |p| p.describe());
        (
            "emulated link",
            format!(
                "subscribers: {}; publisher: {publisher}",
                n.links()
                    .iter()
                    .map(|l| l.describe())
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
        )
    });
    let rest = [
        (
            "cells",
            format!(
                "{} of {} ran{}",
                view.summary.cells.len(),
                view.summary.scenario.runs().len(),
                if view.summary.scenario.repeat > 1 {
                    format!(
                        " ({} cells × {} repetitions, interleaved: every cell once, then again)",
                        view.summary.scenario.cells().len(),
                        view.summary.scenario.repeat
                    )
                } else {
                    String::new()
                }
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
    for (key, value) in rows.into_iter().chain(network).chain(rest) {
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
    if !cell.agreement.equal && !server_restarted(cell) && !cell.server_unavailable {
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

/// Over an emulated link, how much of each latency the link itself accounts for: the
/// configured one-way delays a delivery crosses (publisher → server, server → subscriber).
/// Only runs with a `[network]` table have this section.
fn link_share(out: &mut String, view: &View) {
    let rows: Vec<(&CellResult, (f64, f64))> = view
        .cells
        .iter()
        .filter_map(|c| models::link_delays_ms(view, c).map(|d| (*c, d)))
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "## The link's share of the latency

",
    );
    out.push_str(
        "The subscribers reached the server through the load generator's link emulator (a \
         relay that delays each direction by half the round trip, in order). A delivery crosses \
         the publisher's link to the server and the server's link to the subscriber once each: \
         their configured one-way delays are the link's share, and no technique can beat it. \
         Polling adds its wait for the next request on top; jitter, when set, makes deliveries \
         that follow each other closely wait for the slowest before them.\n\n",
    );
    out.push_str(
        "| cell | link | link's share (ms) | p50 (ms) | mean (ms) | p99 (ms) | mean − link's share (ms) |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (cell, (publisher, one_way)) in rows {
        let l = &cell.latency;
        let share_ms = publisher + one_way;
        let value = |us: f64| {
            if l.count == 0 {
                "—".to_string()
            } else {
                num(us / 1000.0)
            }
        };
        let _ = writeln!(
            out,
            "| {} · {} | {} | {} | {} | {} | {} | {} |",
            cell.technique.name(),
            view.point_label(&Point::of(cell)),
            cell_text(&cell.link.map(|k| k.describe()).unwrap_or_default()),
            num(share_ms),
            value(l.p50_us as f64),
            value(l.mean_us),
            value(l.p99_us as f64),
            if l.count == 0 {
                "—".to_string()
            } else {
                num(l.mean_us / 1000.0 - share_ms)
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
         - Long polling: a request is answered when the client's next comment exists (or at \
         the timeout), and the client asks again at once, so the new request is already \
         waiting through the gap to the next comment. While a client's comments come more \
         than a round trip apart, **requests ≈ deliveries + timeouts**: one per comment, plus \
         floor(gap / timeout) per gap longer than the timeout (none while warm-up plus window \
         are shorter than the timeout, as no poll can be held that long inside it). Above one \
         comment per round trip per client, a re-ask finds several comments waiting: \
         **requests ≈ clients × window / round trip**, fewer than one per delivery \
         (batching).\n\
         - WebSocket and SSE: **one HTTP request per connection** (the upgrade, or the GET \
         that opens the stream), made when the subscriber connects, before the window; the \
         window then holds none unless a subscriber reconnects. Push does not do without HTTP \
         requests: it makes one per connection, whatever the rate. The table counts them over \
         the whole cell, from the server's count (or, in runs made before it was recorded, the \
         subscribers' sockets, one handshake each over HTTP/1.1).\n\n",
    );
    let trips: Vec<models::RoundTrip> = {
        let mut trips: Vec<models::RoundTrip> = Vec::new();
        for cell in &view.cells {
            let trip = models::RoundTrip::of(cell);
            if !trips.contains(&trip) {
                trips.push(trip);
            }
        }
        trips
    };
    let _ = writeln!(
        out,
        "**Round trip** here is the network's own time to answer, not a delivery's latency \
         (which also crosses the publisher's POST and the server's fan-out): {}.\n",
        trips
            .iter()
            .map(|t| t.describe())
            .collect::<Vec<_>>()
            .join("; ")
    );
    if view
        .cells
        .iter()
        .any(|c| c.technique.descriptor().delivery == crate::model::technique::Delivery::Holds)
    {
        let highest = view
            .cells
            .iter()
            .map(|c| models::per_client_rate(view, c))
            .fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "Long polling batches only above one comment per round trip per client: {}. This \
             run's highest rate per client is {} comments/s.\n",
            trips
                .iter()
                .map(|t| {
                    let place = match t {
                        models::RoundTrip::Configured(ms) => format!("over rtt {} ms", num(*ms)),
                        models::RoundTrip::LoopbackFloor => "on loopback".into(),
                    };
                    format!("{} comments/s {place}", num(1000.0 / t.ms()))
                })
                .collect::<Vec<_>>()
                .join(", "),
            num(highest)
        );
    }
    if view.cells.iter().any(|c| c.link.is_some()) {
        out.push_str(
            "Over the emulated link the models predict latency from the configured delays (the \
             server's own time left out, so the measured ÷ predicted ratio shows what it adds): \
             short polling **max(interval, rtt)/2 + one-way**; long polling **one-way, plus \
             rtt/2 on average once a round trip is at least the gap between a client's \
             comments**, since every comment that arrives while the re-ask is in flight waits \
             for it; WebSocket and SSE **one-way**. Each adds the publisher's one-way delay when \
             its link is emulated too, and, on a link with limited bandwidth, the time to put \
             the comment's deliveries on it (from the bytes each took: the whole fan-out's half \
             on a shared link for pushes and held polls, one response for short polls).\n\n",
        );
    }
    timeout_window(out, view);
    out.push_str("| cell | figure | model | predicted | measured | measured ÷ predicted | fit |\n");
    out.push_str("| --- | --- | --- | ---: | ---: | ---: | --- |\n");
    let (mut close, mut explained, mut misses) = (0, 0, 0);
    for (cell, m) in &rows {
        let ratio = match m.ratio() {
            Some(r) => format!("{}×", num(r)),
            None => "—".into(),
        };
        let fit = match m.fit() {
            models::Fit::Close => {
                close += 1;
                "✓".to_string()
            }
            models::Fit::Explained(note) => {
                explained += 1;
                format!("off: {note}")
            }
            models::Fit::Miss => {
                misses += 1;
                "**model miss**".to_string()
            }
        };
        let _ = writeln!(
            out,
            "| {} · {} | {} | {} | {} | {} | {} | {} |",
            cell.technique.name(),
            view.point_label(&Point::of(cell)),
            m.figure,
            cell_text(&m.model),
            num(m.predicted),
            num(m.measured),
            ratio,
            cell_text(&fit)
        );
    }
    let _ = writeln!(
        out,
        "\n{} of {} measurements are within {}-{}× of their model; {} are off for the reason \
         given; {}.\n",
        close,
        rows.len(),
        num(models::FIT_BAND.0),
        num(models::FIT_BAND.1),
        explained,
        match misses {
            0 => "none is a model miss".to_string(),
            1 => "**1 is a model miss**: the model does not describe that cell".to_string(),
            n => format!("**{n} are model misses**: the model does not describe those cells"),
        }
    );
}

/// Where long polling's model needs a poll to time out but warm-up plus window are shorter
/// than the timeout, says so: the timeout term is then untested.
fn timeout_window(out: &mut String, view: &View) {
    let untested = view.cells.iter().any(|c| {
        let i = models::Inputs::of(view, c);
        c.technique.descriptor().delivery == crate::model::technique::Delivery::Holds
            && i.window_shorter_than_timeout()
            && i.gap_ms() >= i.timeout_ms
    });
    if !untested {
        return;
    }
    let s = &view.summary.scenario;
    let _ = writeln!(
        out,
        "⚠ Some long-polling subscribers wait longer than the {} timeout between comments, \
         but warm-up + window ({} + {}) is shorter than the timeout, so no poll could time out \
         inside the window: the model's timeout term is not tested by this run. A window of at \
         least the timeout beyond the warm-up would show it.\n",
        humantime::format_duration(s.long_poll_timeout),
        humantime::format_duration(s.warmup),
        humantime::format_duration(s.duration),
    );
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

    fn report(summary: &crate::model::results::RunSummary) -> String {
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
            "Short polling's mean was 504 ms; the model interval/2 + round trip predicts 500 ms."
        ));
        assert!(text.contains("Reconnects: sse 7 (seconds 7, 13)."));
        assert!(text.contains("Seconds with no delivery: long-polling 1 (second 9)."));
        assert!(text.contains("**Takeaway:** Long polling's worst second (10) had a p99 of"));
        // The notification case: most polls come back empty at a low rate.
        let text = report(&fixture::rate_sweep());
        assert!(
            text.contains("Short-polling made 1,000 requests at 1 comment/s, 99% of them empty (model: 1,000 requests, 99% empty)"),
            "{text}"
        );
    }

    #[test]
    fn repeated_cells_show_median_and_range_and_rank_only_apart_ranges() {
        let mut summary = fixture::one_point();
        summary.scenario.repeat = 3;
        let first = summary.cells.clone();
        for repeat in 1..3 {
            for cell in &first {
                let mut again = cell.clone();
                again.repeat = repeat;
                // Every run of a technique within 10% of its first.
                again.latency.p50_us =
                    cell.latency.p50_us + cell.latency.p50_us / 10 * u64::from(repeat);
                summary.cells.push(again);
            }
        }
        let text = report(&summary);
        assert!(!text.contains("INCOMPLETE"), "12 of 12 runs ran");
        assert!(
            text.contains("| cells | 12 of 12 ran (4 cells × 3 repetitions"),
            "{text}"
        );
        let table = &text[text.find("| technique | clients |").unwrap()..];
        let rows = table.lines().take_while(|l| l.starts_with('|')).count();
        assert_eq!(rows, 2 + 4, "the tables draw each cell's first run");
        let ranking = &text[text.find("## What this run can rank").unwrap()..];
        assert!(
            ranking.contains("Each cell ran 3 times, interleaved"),
            "{ranking}"
        );
        let p50 = ranking
            .lines()
            .find(|l| l.starts_with("- p50 latency"))
            .unwrap();
        // Three runs each: medians with their ranges.
        assert!(p50.contains(") <") || p50.contains(") ≈"), "{p50}");
        assert!(p50.matches('(').count() >= 4, "{p50}");
    }

    #[test]
    fn the_models_section_says_when_a_window_cannot_show_a_timeout() {
        // 1 comment/s to 50 users: 50 s between a user's comments, past the 30 s timeout,
        // but warm-up 2 s + window 10 s never reach it.
        let mut summary = fixture::rate_sweep();
        let text = report(&summary);
        assert!(
            text.contains("so no poll could time out inside the window"),
            "{text}"
        );
        assert!(text.contains("**Round trip** here is the network's own time to answer"));
        assert!(text.contains("measurements are within 0.9-1.1× of their model"));
        // A window past warm-up + timeout tests the term: no warning.
        summary.scenario.duration = std::time::Duration::from_secs(60);
        for cell in &mut summary.cells {
            cell.window_seconds = 60.0;
        }
        let text = report(&summary);
        assert!(!text.contains("so no poll could time out inside the window"));
    }

    #[test]
    fn a_single_run_says_what_it_does_not_rank() {
        let text = report(&fixture::one_point());
        assert!(text.contains(
            "Each cell ran once. Absolute times on this machine vary up to 2× from run to run"
        ));
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
