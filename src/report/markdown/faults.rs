//! The report's fault section, for runs with a `[faults]` section only: per cell what the
//! faults did (drops, recovery, loss, duplicates, restarts, the server's notice of closed
//! pages), and the study note's claims 2 (the client reconnects by itself, resuming with
//! Last-Event-ID) and 6 (the server has a hard time noticing a closed page) judged on those
//! figures. Also the captions of the fault charts.

use std::fmt::Write as _;

use crate::model::scenario::FeedKind;

use crate::model::faults::{FaultResults, TimeSummary, drop_label};
use crate::model::results::CellResult;
use crate::model::technique::Technique;
use crate::report::fmt::{int, ms};
use crate::report::plan::{Point, View};

/// "p50 / p99 / max" in milliseconds, with incomplete ones named.
fn times(t: &TimeSummary) -> String {
    if t.count == 0 {
        return if t.incomplete > 0 {
            format!("none of {} completed", int(t.incomplete))
        } else {
            "–".into()
        };
    }
    let mut text = format!(
        "{} / {} / {}",
        ms(t.p50_us as f64),
        ms(t.p99_us as f64),
        ms(t.max_us as f64)
    );
    if t.incomplete > 0 {
        let _ = write!(text, " ({} never)", int(t.incomplete));
    }
    text
}

fn with_faults<'a>(view: &View<'a>) -> Vec<(&'a CellResult, &'a FaultResults)> {
    view.cells
        .iter()
        .filter_map(|c| c.faults.as_ref().map(|f| (*c, f)))
        .collect()
}

/// The section, or nothing for a run without faults.
pub(super) fn section(out: &mut String, view: &View) {
    let cells = with_faults(view);
    if cells.is_empty() {
        return;
    }
    out.push_str("## Faults\n\n");
    let s = &view.summary.scenario.faults;
    let mut what = Vec::new();
    for d in &s.drop {
        what.push(format!(
            "a {} of {}% of the subscribers every {}",
            drop_label(d.side, d.how),
            d.share * 100.0,
            humantime::format_duration(d.every)
        ));
    }
    for at in &s.restart {
        what.push(format!(
            "a server restart on the same address at {}",
            humantime::format_duration(*at)
        ));
    }
    if let Some(c) = &s.close_page {
        what.push(format!(
            "{}% of the subscribers closing for good at {}",
            c.share * 100.0,
            humantime::format_duration(c.at)
        ));
    }
    if what.is_empty() {
        what.push("as the cells record below".into());
    }
    let _ = writeln!(
        out,
        "Injected in every cell, counted from the start of the measured window: {}. Recovery \
         is the time from a drop to the subscriber's first comment over a new connection; \
         the server's notice of a closed page is read from its `connections_open`, polled \
         every 20 ms and timed when each answer arrived (so an upper bound, to within about 20 ms).\n",
        what.join("; ")
    );
    out.push_str(
        "| cell | drops | recovery p50 / p99 / max | reconnects | missing | duplicated | lost to restart | restarts (recovery p50 / p99 / max) | closed page noticed p50 / p99 / max |\n",
    );
    out.push_str("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for (cell, f) in &cells {
        let d = &cell.deliveries;
        let mut recovery = times(&f.recovery);
        if f.recovery_by_drop.len() > 1 {
            let parts: Vec<String> = f
                .recovery_by_drop
                .iter()
                .map(|r| format!("{}: {}", drop_label(r.side, r.how), times(&r.recovery)))
                .collect();
            recovery = parts.join("<br>");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell_label(cell),
            int(f.drops),
            recovery,
            int(cell.client.reconnects),
            int(d.missing),
            int(d.duplicated),
            int(d.lost_to_restart),
            match &f.restart_recovery {
                Some(r) if f.restarts > 0 => format!("{} ({})", int(f.restarts), times(r)),
                _ => int(f.restarts),
            },
            f.close_detection.as_ref().map_or("–".into(), times),
        );
    }
    out.push('\n');
    for (cell, f) in &cells {
        for error in &f.errors {
            let _ = writeln!(out, "- ⚠ {}: {error}", cell.technique.name());
        }
    }
    slow_section(out, &cells);
    claim_2(out, &cells);
    restarts(out, &cells);
    claim_6(out, view, &cells);
    vanish_section(out, &cells);
}

/// A cell in the faults tables: its technique, deployment when not one in-memory server,
/// client count and rate (a scenario may sweep either).
fn cell_label(cell: &CellResult) -> String {
    let deployment = if cell.deployment.is_default() {
        String::new()
    } else {
        format!(" · {}", cell.deployment.label())
    };
    format!(
        "{}{deployment} ({} clients, {}/s)",
        cell.technique.name(),
        int(u64::from(cell.clients)),
        crate::report::fmt::num(cell.rate)
    )
}

/// Milliseconds as seconds: "10 s".
fn seconds(ms: u64) -> String {
    format!("{} s", crate::report::fmt::num(ms as f64 / 1000.0))
}

/// Subscribers whose network vanished: how long each server setting took to close them.
fn vanish_section(out: &mut String, cells: &[(&CellResult, &FaultResults)]) {
    let runs: Vec<_> = cells
        .iter()
        .flat_map(|(c, f)| f.vanish.iter().map(move |v| (*c, v)))
        .collect();
    if runs.is_empty() {
        return;
    }
    out.push_str("\n### Claim 6 for a client whose network vanished (no FIN, no RST)\n\n");
    out.push_str(
        "The subscribers' packets, both ways, were redirected into a veth that leads nowhere \
         (tc `mirred`, inside the run's own network namespace), and the server's \
         `connections_open` watched until the window ended. One run per server setting.\n\n",
    );
    out.push_str("| cell | server setting | vanished | closed by the server p50 / p99 / max | still open when the window ended (watched) |\n");
    out.push_str("| --- | --- | ---: | --- | --- |\n");
    for (cell, v) in &runs {
        let d = &v.detection;
        let closed = if d.count > 0 {
            format!(
                "{} / {} / {}",
                ms(d.p50_us as f64),
                ms(d.p99_us as f64),
                ms(d.max_us as f64)
            )
        } else {
            "–".into()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} ({}) |",
            cell_label(cell),
            v.settings.label(),
            int(u64::from(v.vanished)),
            closed,
            int(d.incomplete),
            seconds(v.watched_ms),
        );
    }
    let never: Vec<String> = runs
        .iter()
        .filter(|(_, v)| v.detection.incomplete > 0)
        .map(|(c, v)| {
            format!(
                "{} with {} ({} of {} still open after {})",
                c.technique.name(),
                v.settings.label(),
                int(v.detection.incomplete),
                int(u64::from(v.vanished)),
                seconds(v.watched_ms)
            )
        })
        .collect();
    let verdict = if never.is_empty() {
        "**does not hold with these settings**: every vanished connection was closed within the \
         window"
            .to_string()
    } else {
        format!(
            "**holds** where the server has nothing that notices: {}",
            never.join("; ")
        )
    };
    let _ = writeln!(
        out,
        "\nVerdict: {verdict}. A vanished peer is noticed only by a write that is never \
         acknowledged (caught by TCP_USER_TIMEOUT, or after about 15 minutes of kernel \
         retransmissions without it) or by a ping that gets no pong: a heartbeat or a ping is \
         what makes the server write; a connection it never writes to stays open (an idle \
         keep-alive until the server's idle timeout).\n"
    );
}

/// Slow subscribers against the control run of each cell.
fn slow_section(out: &mut String, cells: &[(&CellResult, &FaultResults)]) {
    let slow: Vec<_> = cells
        .iter()
        .filter_map(|(c, f)| f.slow.map(|s| (*c, s)))
        .collect();
    if slow.is_empty() {
        return;
    }
    out.push_str("\n### Slow subscribers against the same cell without them\n\n");
    out.push_str(
        "Each cell ran twice: with its slow subscribers (a 4 KiB receive buffer, reads paced \
         to the rate below) and, as its control, without them. Goal: the other subscribers' p99 \
         within 1.2× the control's.\n\n",
    );
    out.push_str("| cell | slow | read rate | others' p50 / p99 | control p50 / p99 | p99 ratio | others missing | slow delivered / missing | server dropped (control) | slow resumed | server peak RSS (control) |\n");
    out.push_str("| --- | ---: | ---: | --- | --- | ---: | ---: | --- | --- | ---: | --- |\n");
    for (cell, s) in slow {
        let verdict = if s.p99_ratio <= 1.2 { "✓" } else { "✗" };
        let _ = writeln!(
            out,
            "| {} | {} | {} B/s | {} / {} | {} / {} | {:.2} {verdict} | {} | {} / {} | {} ({}) | {} | {} ({}) |",
            cell_label(cell),
            int(u64::from(s.slow_subscribers)),
            int(s.read_bytes_per_s),
            ms(s.fast_p50_us as f64),
            ms(s.fast_p99_us as f64),
            ms(s.control_p50_us as f64),
            ms(s.control_p99_us as f64),
            s.p99_ratio,
            int(s.fast_missing),
            int(s.slow_delivered),
            int(s.slow_missing),
            int(s.dropped),
            int(s.control_dropped),
            int(s.slow_resumed),
            crate::report::fmt::mib(s.peak_rss_bytes),
            crate::report::fmt::mib(s.control_peak_rss_bytes),
        );
    }
    out.push_str(
        "\nA slow subscriber's missing comments are those still behind when the cell ended (it \
         cannot read faster than its rate), so the cell's LOSS warning counts them too; the \
         other subscribers' column is the one that must be zero.\n",
    );
}

/// Claim 2: "the browser reconnects by itself when the network drops (EventSource;
/// Last-Event-ID)".
fn claim_2(out: &mut String, cells: &[(&CellResult, &FaultResults)]) {
    let dropped: Vec<_> = cells.iter().filter(|(_, f)| f.drops > 0).collect();
    if dropped.is_empty() {
        return;
    }
    out.push_str("\n### Claim 2: the client reconnects by itself and resumes (Last-Event-ID)\n\n");
    let sse: Vec<_> = dropped
        .iter()
        .filter(|(c, _)| c.technique == Technique::Sse)
        .collect();
    let verdict = match sse.as_slice() {
        [] => "not tested: no SSE cell had drops".to_string(),
        cells => {
            let lossless = cells
                .iter()
                .all(|(c, _)| c.deliveries.missing == 0 && c.deliveries.duplicated == 0);
            let recovered = cells.iter().all(|(_, f)| f.recovery.incomplete == 0);
            let figures: Vec<String> = cells
                .iter()
                .map(|(c, f)| {
                    format!(
                        "{} drops at {} clients, recovered in {} (p50 / p99 / max), {} missing, {} duplicated",
                        int(f.drops),
                        int(u64::from(c.clients)),
                        times(&f.recovery),
                        int(c.deliveries.missing),
                        int(c.deliveries.duplicated)
                    )
                })
                .collect();
            let word = if lossless && recovered {
                "**holds**"
            } else {
                "**does not hold here**"
            };
            format!(
                "{word} for SSE: {}. Measured with the lab's SSE client, which reconnects as \
                 EventSource does: it waits the server's `retry:` hint (half of it fixed, half \
                 random, so a crowd does not return at once), then resumes with Last-Event-ID; \
                 the wait, not the network, is most of the recovery time",
                figures.join("; ")
            )
        }
    };
    let _ = writeln!(out, "Verdict: {verdict}.\n");
    let others: Vec<String> = dropped
        .iter()
        .filter(|(c, _)| c.technique != Technique::Sse)
        .map(|(c, f)| {
            format!(
                "{} recovered in {} with {} missing and {} duplicated",
                c.technique.name(),
                times(&f.recovery),
                int(c.deliveries.missing),
                int(c.deliveries.duplicated)
            )
        })
        .collect();
    if !others.is_empty() {
        let _ = writeln!(
            out,
            "For comparison, {}. A browser's WebSocket does not reconnect by itself: this lab's \
             WebSocket and polling clients reconnect and resume with `after=` because the lab \
             wrote them to; a page must do the same by hand.\n",
            others.join("; ")
        );
    }
}

/// What restarts cost: the in-memory feed's loss, booked with its cause, and a durable
/// feed's none, with the restarted instance's recovery.
fn restarts(out: &mut String, cells: &[(&CellResult, &FaultResults)]) {
    let restarted: Vec<String> = cells
        .iter()
        .filter(|(c, f)| f.restarts > 0 && c.deployment.feed == FeedKind::Memory)
        .map(|(c, _)| {
            format!(
                "{} lost {} of {} deliveries to the restart",
                c.technique.name(),
                int(c.deliveries.lost_to_restart),
                int(c.deliveries.expected)
            )
        })
        .collect();
    if !restarted.is_empty() {
        let _ = writeln!(
            out,
            "Resuming needs a server that still has the comments: after a restart of the \
             in-memory feed, {} (booked with its cause, `lost_to_restart`, not as loss: each \
             client was told by a 410 naming the restart).\n",
            restarted.join("; ")
        );
    }
    let durable: Vec<String> = cells
        .iter()
        .filter(|(c, f)| f.restarts > 0 && c.deployment.feed == FeedKind::Redis)
        .map(|(c, f)| {
            format!(
                "{} on {} lost {} and duplicated {} of {} deliveries, its restarted instance's \
                 subscribers back at their first comment after {}",
                c.technique.name(),
                c.deployment.label(),
                int(c.deliveries.missing + c.deliveries.lost_to_restart),
                int(c.deliveries.duplicated),
                int(c.deliveries.expected),
                f.restart_recovery.as_ref().map_or("–".into(), times),
            )
        })
        .collect();
    if !durable.is_empty() {
        let _ = writeln!(
            out,
            "With the feed in Redis, a restarted instance loses nothing: its subscribers \
             reconnect to the same address and resume from their cursors, which Redis still \
             holds. {}.\n",
            durable.join("; ")
        );
    }
}

/// Claim 6: "the server has a hard time noticing that a client closed the page".
fn claim_6(out: &mut String, view: &View, cells: &[(&CellResult, &FaultResults)]) {
    let closed: Vec<_> = cells
        .iter()
        .filter_map(|(c, f)| f.close_detection.map(|d| (*c, d)))
        .collect();
    if closed.is_empty() {
        return;
    }
    out.push_str("\n### Claim 6: the server has a hard time noticing a closed page\n\n");
    let figures: Vec<String> = closed
        .iter()
        .map(|(c, d)| {
            format!(
                "{} at {}/s: {}",
                c.technique.name(),
                crate::report::fmt::num(c.rate),
                times(d)
            )
        })
        .collect();
    let never = closed.iter().any(|(_, d)| d.incomplete > 0);
    let slowest = closed.iter().map(|(_, d)| d.max_us).max().unwrap_or(0);
    let verdict = if never {
        "**holds**: some closed pages were still counted open when the window ended"
    } else if slowest >= 1_000_000 {
        "**holds in part**: some closed pages took a second or more to be noticed"
    } else {
        "**does not hold for a page that closes cleanly**: every closed page was noticed \
         within a second"
    };
    let heartbeat = humantime::format_duration(view.summary.scenario.sse_heartbeat);
    let why = if never || slowest >= 1_000_000 {
        format!(
            "A page that closes sends a FIN, but a server that does not read a socket it only \
             writes to (a streaming response) learns of it at its next write: a comment or \
             the heartbeat (every {heartbeat} here)."
        )
    } else {
        format!(
            "A page that closes sends a FIN, and this server keeps reading every socket, also \
             under a streaming SSE response and an idle WebSocket, so it saw the FIN without \
             writing anything, whatever the comment rate and the heartbeat (every {heartbeat} \
             here)."
        )
    };
    let vanished = cells.iter().any(|(_, f)| !f.vanish.is_empty());
    let hard_case = if vanished {
        "The hard case, a client that vanishes without a FIN or RST, follows."
    } else {
        "The hard case is a client that vanishes without a FIN or RST (a lost network), which \
         this run does not measure."
    };
    let _ = writeln!(
        out,
        "Verdict: {verdict} (p50 / p99 / max from the close to the server's count falling: {}). \
         {why} {hard_case}\n",
        figures.join("; ")
    );
}

/// Caption of the connections chart.
pub(super) fn connections_text(view: &View, point: &Point) -> Vec<String> {
    let cells: Vec<_> = view
        .cells_at(point)
        .into_iter()
        .filter_map(|c| c.faults.as_ref().map(|f| (c, f)))
        .collect();
    let mut text = vec![
        "The server's connections open for each technique through the window, read from its \
         `/stats` every 20 ms; dashed lines mark each fault (drops orange, restarts red, \
         closed pages purple)."
            .to_string(),
    ];
    let dips: Vec<String> = cells
        .iter()
        .filter(|(_, f)| f.drops > 0)
        .map(|(c, f)| {
            format!(
                "{} {} drops, back in {} at the median",
                c.technique.name(),
                int(f.drops),
                ms(f.recovery.p50_us as f64)
            )
        })
        .collect();
    if !dips.is_empty() {
        text.push(format!("Each drop shows as a dip: {}.", dips.join("; ")));
    }
    text
}

/// Caption of the times chart.
pub(super) fn times_text(view: &View, point: &Point) -> Vec<String> {
    let cells: Vec<_> = view
        .cells_at(point)
        .into_iter()
        .filter_map(|c| c.faults.as_ref().map(|f| (c, f)))
        .collect();
    let mut text = vec![
        "Bars are the median, ticks the p99, lines reach the maximum; `n/a` where a technique \
         had no such fault (the server holds nothing of a short poller between its polls to \
         drop)."
            .to_string(),
    ];
    if let Some((c, f)) = cells
        .iter()
        .filter(|(_, f)| f.recovery.count > 0)
        .max_by_key(|(_, f)| f.recovery.p50_us)
    {
        text.push(format!(
            "Slowest to recover: {} (median {}).",
            c.technique.name(),
            ms(f.recovery.p50_us as f64)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::model::faults::{
        DropRecovery, FaultEvent, FaultKind, FaultResults, How, OpenSample, Side, TimeSummary,
    };
    use crate::report::fixture;
    use crate::report::plan::View;

    /// The fixture with faults on every cell: drops recovered in 150 ms to 1 s, closed pages
    /// noticed in 2 ms.
    fn with_faults() -> crate::model::results::RunSummary {
        let mut summary = fixture::one_point();
        for cell in &mut summary.cells {
            cell.deliveries.missing = 0;
            cell.deliveries.duplicated = 0;
            let recovery = TimeSummary::of(vec![150_000, 700_000, 1_000_000], 0);
            cell.faults = Some(FaultResults {
                events: vec![
                    FaultEvent {
                        kind: FaultKind::Drop,
                        at_ms: 1_000,
                        subscribers: 3,
                    },
                    FaultEvent {
                        kind: FaultKind::ClosePage,
                        at_ms: 2_000,
                        subscribers: 2,
                    },
                ],
                drops: 3,
                recovery,
                recovery_by_drop: vec![DropRecovery {
                    side: Side::Client,
                    how: How::Reset,
                    drops: 3,
                    recovery,
                }],
                restarts: 0,
                restart_recovery: None,
                close_detection: Some(TimeSummary::of(vec![2_000, 2_500], 0)),
                connections_open: (0..100)
                    .map(|i| OpenSample {
                        at_ms: i * 50,
                        open: if i < 20 { 10 } else { 8 },
                    })
                    .collect(),
                errors: Vec::new(),
                slow: None,
                vanish: Vec::new(),
            });
        }
        summary
    }

    #[test]
    fn a_run_with_faults_gets_its_section_verdicts_and_charts() {
        let summary = with_faults();
        let view = View::new(&summary);
        let charts = view.charts();
        let report = crate::report::markdown::render(&view, &charts);
        assert!(report.contains("## Faults"), "{report}");
        assert!(
            report.contains("Claim 2") && report.contains("**holds**"),
            "{report}"
        );
        assert!(
            report.contains("Claim 6") && report.contains("does not hold"),
            "{report}"
        );
        assert!(report.contains("700 ms / 1,000 ms / 1,000 ms"), "{report}");
        let names: Vec<&str> = charts.iter().map(|c| c.file_name.as_str()).collect();
        for name in ["faults-connections.png", "faults-times.png"] {
            assert!(names.contains(&name), "{names:?}");
        }
        for chart in &charts {
            let png = crate::report::charts::render(&view, chart).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{}", chart.file_name);
        }
        // A run without faults has no such section.
        let plain = fixture::one_point();
        let view = View::new(&plain);
        assert!(!crate::report::markdown::render(&view, &view.charts()).contains("## Faults"));
    }
}
