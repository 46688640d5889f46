//! The tables of a run: the terminal table printed at the end of a run (one row per cell,
//! the figures a reader checks first: latency, loss, cost per delivery, whether the ends
//! agree), and the summary table of `report.md`, cut to what fits a projector.

use std::fmt::Write as _;

use super::figures::{has_warnings, share};
use super::fmt::{format_rate, format_us, int, mib, num, pct};
use super::plan::{Dim, View};
use crate::model::results::{CellResult, RunSummary};

/// The summary table of `report.md`: a few columns that fit a projector (technique, the
/// swept values, deliveries, loss, p50, p99, bytes and server CPU per delivery); the wide
/// table with every figure stays in `summary.csv`.
pub fn projector(view: &View) -> String {
    let mut out = String::from("## Summary\n\n");
    out.push_str(
        "Latency runs from the moment a comment was scheduled to be published to the moment a \
         subscriber had parsed it, over every (comment, subscriber) pair. Bytes are the \
         subscribers' own, counted at their sockets within the measured window; CPU is the \
         server's. ⚠ marks a cell with warnings. Every other figure (p99.9, max, duplicates, \
         requests, empty responses, memory, the generator's load, whether both ends counted \
         the same bytes) is in `summary.csv`.\n\n",
    );
    let dims = columns(view);
    let mut header = vec!["technique".to_string()];
    header.extend(dims.iter().map(|d| dim_header(*d).to_string()));
    header.extend(
        [
            "delivered / expected",
            "lost",
            "p50 (ms)",
            "p99 (ms)",
            "bytes / delivery",
            "server CPU µs / delivery",
        ]
        .map(String::from),
    );
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let align: Vec<&str> = (0..header.len())
        .map(|i| if i == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "| {} |", align.join(" | "));
    for cell in &view.cells {
        let point = super::plan::Point::of(cell);
        let mut row = vec![format!(
            "{}{}",
            label(cell),
            if has_warnings(cell) { " ⚠" } else { "" }
        )];
        row.extend(dims.iter().map(|d| d.tick(d.of(&point))));
        row.extend(figures(cell));
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
    out
}

/// The columns naming a cell's point: clients always, and whatever else is swept (the
/// deployment and HTTP version go in the technique's label).
fn columns(view: &View) -> Vec<Dim> {
    let mut dims = vec![Dim::Clients];
    dims.extend(
        view.swept
            .iter()
            .copied()
            .filter(|d| !matches!(d, Dim::Clients | Dim::Deployment | Dim::Http)),
    );
    dims
}

fn dim_header(dim: Dim) -> &'static str {
    match dim {
        Dim::Clients => "clients",
        Dim::Rate => "rate (/s)",
        Dim::Payload => "payload (B)",
        Dim::Rtt => "rtt (ms)",
        Dim::Bandwidth => "kbit/s each",
        Dim::SharedBandwidth => "kbit/s shared",
        Dim::Deployment => "deployment",
        Dim::Http => "HTTP",
    }
}

/// The technique, and its deployment and HTTP version when not the default.
fn label(cell: &CellResult) -> String {
    let mut label = cell.technique.name().to_string();
    if !cell.deployment.is_default() {
        label.push_str(&format!(" · {}", cell.deployment.label()));
    }
    if !cell.http.is_default() {
        label.push_str(&format!(" · {}", cell.http.label()));
    }
    label
}

/// A cell's figures, from "delivered / expected" on.
fn figures(cell: &CellResult) -> Vec<String> {
    let l = &cell.latency;
    let d = &cell.deliveries;
    // A percentile needs one sample above it: p99 of fewer than 100 deliveries is a max.
    let latency = |us: u64, percentile: f64| {
        if super::charts::supports(l.count, percentile) {
            num(us as f64 / 1000.0)
        } else {
            "—".to_string()
        }
    };
    let lost = if d.missing > 0 {
        format!(
            "**{} ({})**",
            int(d.missing),
            pct(share(d.missing, d.expected))
        )
    } else {
        "0".into()
    };
    vec![
        format!("{} / {}", int(d.delivered), int(d.expected)),
        lost,
        latency(l.p50_us, 50.0),
        latency(l.p99_us, 99.0),
        num(cell.per_delivery.bytes),
        if cell.server_unavailable {
            "n/a".into()
        } else {
            num(cell.per_delivery.server_cpu_us)
        },
    ]
}

// The load generator prints latency with this until its rewrite imports it from `fmt`.

/// The table as plain text, columns aligned.
pub fn render(summary: &RunSummary) -> String {
    let header = [
        "technique",
        "clients",
        "rate/s",
        "payload",
        "p50",
        "p99",
        "max",
        "delivered",
        "missing",
        "dup",
        "requests",
        "empty",
        "B/deliv",
        "srv µs/deliv",
        "srv peak RSS",
        "gen CPU",
        "bytes",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for cell in &summary.cells {
        rows.push(vec![
            {
                let mut label = if cell.deployment.is_default() {
                    cell.technique.name().to_string()
                } else {
                    format!("{} ({})", cell.technique.name(), cell.deployment.label())
                };
                if !cell.http.is_default() {
                    label.push_str(&format!(" [{}]", cell.http.label()));
                }
                label
            },
            cell.clients.to_string(),
            format_rate(cell.rate),
            format!("{} B", cell.payload_bytes),
            format_us(cell.latency.p50_us),
            format_us(cell.latency.p99_us),
            format_us(cell.latency.max_us),
            format!("{}/{}", cell.deliveries.delivered, cell.deliveries.expected),
            if cell.deliveries.missing > 0 {
                format!("{} LOSS", cell.deliveries.missing)
            } else {
                "0".into()
            },
            cell.deliveries.duplicated.to_string(),
            cell.client.requests.to_string(),
            cell.client.empty_responses.to_string(),
            format!("{:.0}", cell.per_delivery.bytes),
            if cell.server_unavailable {
                "n/a".into()
            } else {
                format!("{:.1}", cell.per_delivery.server_cpu_us)
            },
            if cell.server_unavailable {
                "n/a".into()
            } else {
                mib(cell.server.peak_rss_bytes)
            },
            format!(
                "{:.0}%{}",
                cell.loadgen.core_share * 100.0,
                if cell.loadgen.generator_bound {
                    " BOUND"
                } else {
                    ""
                }
            ),
            if cell.server_unavailable {
                "n/a".into()
            } else if crate::report::figures::server_restarted(cell) {
                "n/a (restart)".into()
            } else if cell.agreement.equal {
                "agree".into()
            } else {
                "DIFFER".into()
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (value, width))| {
                if c == 0 {
                    format!("{value:<width$}")
                } else {
                    format!("{value:>width$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            );
        }
    }
    for cell in &summary.cells {
        for warning in &cell.warnings {
            let _ = writeln!(
                out,
                "! {} x {}: {warning}",
                cell.technique.name(),
                cell.clients
            );
        }
    }
    if summary.interrupted {
        let _ = writeln!(
            out,
            "! the run was interrupted; only the cells above finished"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    /// Eight columns at one swept dimension, a row per cell, loss in bold.
    #[test]
    fn the_report_table_fits_a_projector() {
        let summary = fixture::client_sweep();
        let view = View::new(&summary);
        let text = projector(&view);
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(lines.len(), 2 + summary.cells.len());
        assert_eq!(
            lines[0],
            "| technique | clients | delivered / expected | lost | p50 (ms) | p99 (ms) \
             | bytes / delivery | server CPU µs / delivery |"
        );
        assert!(text.contains("| **2,400 (1.2%)** |"), "{text}");
        assert!(text.contains("summary.csv"));
        let rates = fixture::rate_sweep();
        let view = View::new(&rates);
        assert!(projector(&view).contains("| technique | clients | rate (/s) |"));
    }
}
