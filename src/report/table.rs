//! The terminal table printed at the end of a run: one row per cell, the figures a reader
//! checks first (latency, loss, cost per delivery, whether the ends agree).

use std::fmt::Write as _;

use super::fmt::{format_rate, format_us, mib};
use crate::model::results::RunSummary;

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
