//! `/metrics`: the `/stats` snapshot in the Prometheus text exposition format.

use std::fmt::Write as _;

use crate::model::stats::{Account, AccountStats, StatsSnapshot};

/// Renders a snapshot in the Prometheus text exposition format.
pub fn prometheus(snapshot: &StatsSnapshot) -> String {
    let mut out = String::new();
    // Every account lists the same fields in the same order; the first one names them.
    let zero = AccountStats::default();
    for (i, (field, kind, help, _)) in zero.fields().into_iter().enumerate() {
        let name = match kind {
            "counter" => format!("{field}_total"),
            _ => field.to_string(),
        };
        let _ = writeln!(out, "# HELP pushlab_{name} {help}, by account");
        let _ = writeln!(out, "# TYPE pushlab_{name} {kind}");
        for account in Account::ALL {
            let value = snapshot.account(account).fields()[i].3;
            let _ = writeln!(
                out,
                "pushlab_{name}{{account=\"{}\"}} {value}",
                account.name()
            );
        }
    }
    let singles: [(&str, &str, &str, String); 6] = [
        (
            "feed_comments_published_total",
            "counter",
            "comments the feed accepted",
            { snapshot.comments_published.to_string() },
        ),
        (
            "connections_refused_total",
            "counter",
            "connections refused over the cap",
            { snapshot.connections_refused.to_string() },
        ),
        (
            "connections_live",
            "gauge",
            "connections open now",
            snapshot.connections_live.to_string(),
        ),
        (
            "process_cpu_seconds_total",
            "counter",
            "user and system CPU time",
            { format!("{:.6}", snapshot.process.cpu_seconds) },
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "resident memory",
            { snapshot.process.rss_bytes.to_string() },
        ),
        (
            "process_peak_resident_memory_bytes",
            "gauge",
            "peak resident memory",
            { snapshot.process.peak_rss_bytes.to_string() },
        ),
    ];
    for (name, kind, help, value) in singles {
        let _ = writeln!(out, "# HELP pushlab_{name} {help}");
        let _ = writeln!(out, "# TYPE pushlab_{name} {kind}");
        let _ = writeln!(out, "pushlab_{name} {value}");
    }
    // HTTP/2's figures outside the accounts, one metric each: `pushlab_h2_...`.
    for (field, kind, help, value) in snapshot.h2.fields() {
        let name = match kind {
            "counter" => format!("h2_{field}_total"),
            _ => format!("h2_{field}"),
        };
        let _ = writeln!(out, "# HELP pushlab_{name} {help}");
        let _ = writeln!(out, "# TYPE pushlab_{name} {kind}");
        let _ = writeln!(out, "pushlab_{name} {value}");
    }
    let _ = writeln!(
        out,
        "# HELP pushlab_timeouts_total connections and requests ended by a timeout, by cause"
    );
    let _ = writeln!(out, "# TYPE pushlab_timeouts_total counter");
    for (cause, value) in snapshot.timeouts.causes() {
        let _ = writeln!(out, "pushlab_timeouts_total{{cause=\"{cause}\"}} {value}");
    }
    out
}
