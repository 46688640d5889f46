//! `summary.csv`: one row per cell, every figure flattened, for spreadsheets.

use crate::model::results::{CellResult, RunSummary};

type Column = (&'static str, fn(&CellResult) -> String);

const COLUMNS: &[Column] = &[
    ("technique", |c| c.technique.name().into()),
    ("clients", |c| c.clients.to_string()),
    ("rate_per_s", |c| c.rate.to_string()),
    ("payload_bytes", |c| c.payload_bytes.to_string()),
    ("audience", |c| c.audience.name().into()),
    ("window_s", |c| format!("{:.3}", c.window_seconds)),
    ("latency_count", |c| c.latency.count.to_string()),
    ("latency_min_us", |c| c.latency.min_us.to_string()),
    ("latency_mean_us", |c| format!("{:.1}", c.latency.mean_us)),
    ("latency_p50_us", |c| c.latency.p50_us.to_string()),
    ("latency_p90_us", |c| c.latency.p90_us.to_string()),
    ("latency_p99_us", |c| c.latency.p99_us.to_string()),
    ("latency_p999_us", |c| c.latency.p999_us.to_string()),
    ("latency_p9999_us", |c| c.latency.p9999_us.to_string()),
    ("latency_max_us", |c| c.latency.max_us.to_string()),
    ("comments_published", |c| {
        c.deliveries.comments_published.to_string()
    }),
    ("expected", |c| c.deliveries.expected.to_string()),
    ("delivered", |c| c.deliveries.delivered.to_string()),
    ("missing", |c| c.deliveries.missing.to_string()),
    ("duplicated", |c| c.deliveries.duplicated.to_string()),
    ("out_of_order", |c| c.deliveries.out_of_order.to_string()),
    ("publish_errors", |c| {
        c.deliveries.publish_errors.to_string()
    }),
    ("client_requests", |c| c.client.requests.to_string()),
    ("client_empty_responses", |c| {
        c.client.empty_responses.to_string()
    }),
    ("client_connections_opened", |c| {
        c.client.connections_opened.to_string()
    }),
    ("client_reconnects", |c| c.client.reconnects.to_string()),
    ("client_errors", |c| c.client.errors.to_string()),
    ("client_bytes_up", |c| c.client.bytes_up.to_string()),
    ("client_bytes_down", |c| c.client.bytes_down.to_string()),
    ("payload_bytes_delivered", |c| {
        c.client.payload_bytes_delivered.to_string()
    }),
    ("server_requests", |c| c.server.requests.to_string()),
    ("server_empty_responses", |c| {
        c.server.empty_responses.to_string()
    }),
    ("server_connections_opened", |c| {
        c.server.connections_opened.to_string()
    }),
    ("server_bytes_in", |c| c.server.bytes_in.to_string()),
    ("server_bytes_out", |c| c.server.bytes_out.to_string()),
    ("server_comments_delivered", |c| {
        c.server.comments_delivered.to_string()
    }),
    ("server_dropped_slow", |c| c.server.dropped_slow.to_string()),
    ("server_cpu_s", |c| format!("{:.6}", c.server.cpu_seconds)),
    ("server_peak_rss_bytes", |c| {
        c.server.peak_rss_bytes.to_string()
    }),
    ("server_rss_bytes", |c| c.server.rss_bytes.to_string()),
    ("cell_client_bytes_up", |c| {
        c.agreement.client_up.to_string()
    }),
    ("cell_client_bytes_down", |c| {
        c.agreement.client_down.to_string()
    }),
    ("cell_server_bytes_in", |c| {
        c.agreement.server_in.to_string()
    }),
    ("cell_server_bytes_out", |c| {
        c.agreement.server_out.to_string()
    }),
    ("bytes_agree", |c| c.agreement.equal.to_string()),
    ("loadgen_cpu_s", |c| format!("{:.6}", c.loadgen.cpu_seconds)),
    ("loadgen_core_share", |c| {
        format!("{:.4}", c.loadgen.core_share)
    }),
    ("generator_bound", |c| c.loadgen.generator_bound.to_string()),
    ("requests_per_delivery", |c| {
        format!("{:.4}", c.per_delivery.requests)
    }),
    ("bytes_per_delivery", |c| {
        format!("{:.2}", c.per_delivery.bytes)
    }),
    ("payload_bytes_per_delivery", |c| {
        format!("{:.2}", c.per_delivery.payload_bytes)
    }),
    ("server_cpu_us_per_delivery", |c| {
        format!("{:.3}", c.per_delivery.server_cpu_us)
    }),
    ("warnings", |c| c.warnings.join("; ")),
    // Added after `warnings` so spreadsheets built on the earlier columns keep working.
    ("repeat", |c| c.repeat.to_string()),
    ("tcpip_header_bytes_per_delivery", |c| {
        super::figures::header_bytes_per_delivery(c).map_or(String::new(), |h| format!("{h:.2}"))
    }),
    ("whole_cell_requests", |c| {
        c.whole_cell
            .map_or(String::new(), |w| w.requests.to_string())
    }),
    ("whole_cell_connections_opened", |c| {
        c.whole_cell
            .map_or(String::new(), |w| w.connections_opened.to_string())
    }),
];

pub fn render(summary: &RunSummary) -> String {
    let mut out = COLUMNS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for cell in &summary.cells {
        let row: Vec<String> = COLUMNS
            .iter()
            .map(|(_, value)| escape(&value(cell)))
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// RFC 4180 quoting for fields holding commas, quotes or line breaks.
fn escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_every_column_and_names_its_repetition() {
        let mut summary = crate::report::fixture::one_point();
        summary.cells[1].repeat = 2;
        let text = render(&summary);
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let repeat = header.iter().position(|h| *h == "repeat").unwrap();
        let rows: Vec<Vec<String>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(String::from).collect())
            .collect();
        assert_eq!(rows.len(), summary.cells.len());
        // Warnings may hold commas (quoted), so count from the end.
        for row in &rows {
            assert!(row.len() >= header.len(), "{row:?}");
        }
        let from_end = header.len() - repeat;
        assert_eq!(rows[1][rows[1].len() - from_end], "2");
        assert_eq!(rows[0][rows[0].len() - from_end], "0");
    }
}
