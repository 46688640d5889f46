//! The report's scale-out sections, present only when a cell ran several server instances or a
//! Redis feed: what the broker hop costs each technique against the same cell on one in-memory
//! server, and each instance's share with Redis's own figures.

use std::fmt::Write as _;

use super::super::figures::has_warnings;
use super::super::fmt::{int, mib, num};
use super::super::plan::{Point, View};
use crate::model::results::CellResult;
use crate::model::scenario::Deployment;

/// Both sections, or nothing for a run of one in-memory server per cell.
pub(super) fn sections(out: &mut String, view: &View) {
    if view.cells.iter().all(|c| c.instances.is_empty()) {
        return;
    }
    hop_cost(out, view);
    instances(out, view);
}

/// Redis's CPU per delivery in the window, microseconds.
pub(crate) fn redis_cpu_us_per_delivery(cell: &CellResult) -> f64 {
    let deliveries = cell.deliveries.delivered_in_window;
    match cell.redis {
        Some(redis) if deliveries > 0 => redis.cpu_seconds * 1e6 / deliveries as f64,
        _ => 0.0,
    }
}

/// The same technique at the same point on one in-memory server.
fn baseline<'a>(view: &View<'a>, cell: &CellResult) -> Option<&'a CellResult> {
    let point = Point {
        deployment: Deployment::default(),
        ..Point::of(cell)
    };
    view.cell(&point, cell.technique)
}

fn hop_cost(out: &mut String, view: &View) {
    let rows: Vec<(&CellResult, &CellResult)> = view
        .cells
        .iter()
        .filter(|c| !c.deployment.is_default())
        .filter_map(|c| baseline(view, c).map(|b| (b, *c)))
        .collect();
    out.push_str("## What the broker hop costs\n\n");
    if rows.is_empty() {
        out.push_str(
            "No cell ran on one in-memory server at the same point, so the hop's cost is not \
             compared here.\n\n",
        );
        return;
    }
    out.push_str(
        "Each cell over Redis beside the same technique at the same load on one in-memory \
         server. The hop is the publish going through Redis (a Lua script: INCR and XADD) and \
         each instance's single XREAD BLOCK reader handing it to its subscribers. CPU per \
         delivered comment is split between the server instances (summed) and Redis; the \
         in-memory server has only the first. ⚠ marks a cell with warnings.\n\n",
    );
    out.push_str(
        "| technique | deployment | p50 (ms) | Δ p50 (ms) | p99 (ms) | Δ p99 (ms) \
         | server CPU µs / delivery | Redis CPU µs / delivery | total CPU µs / delivery \
         | Δ CPU µs / delivery |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let ms = |us: u64| us as f64 / 1000.0;
    let signed = |value: f64| {
        if value >= 0.0 {
            format!("+{}", num(value))
        } else {
            format!("−{}", num(-value))
        }
    };
    for (base, cell) in rows {
        let total = cell.per_delivery.server_cpu_us + redis_cpu_us_per_delivery(cell);
        let _ = writeln!(
            out,
            "| {}{} | {} (vs {}) | {} (vs {}) | {} | {} (vs {}) | {} | {} | {} | {} | {} |",
            cell.technique.name(),
            if has_warnings(cell) || has_warnings(base) {
                " ⚠"
            } else {
                ""
            },
            cell.deployment.label(),
            base.deployment.label(),
            num(ms(cell.latency.p50_us)),
            num(ms(base.latency.p50_us)),
            signed(ms(cell.latency.p50_us) - ms(base.latency.p50_us)),
            num(ms(cell.latency.p99_us)),
            num(ms(base.latency.p99_us)),
            signed(ms(cell.latency.p99_us) - ms(base.latency.p99_us)),
            num(cell.per_delivery.server_cpu_us),
            num(redis_cpu_us_per_delivery(cell)),
            num(total),
            signed(total - base.per_delivery.server_cpu_us),
        );
    }
    out.push('\n');
}

fn instances(out: &mut String, view: &View) {
    out.push_str("## Server instances and Redis\n\n");
    out.push_str(
        "Subscribers were spread over the instances round-robin. Connections and deliveries \
         are each instance's own over the whole cell (reconnections included); its bytes are \
         counted at both ends of its subscribers' connections and must agree. Redis's figures \
         are its own `INFO`: CPU within the window, commands per delivered comment, and its \
         allocator's peak.\n\n",
    );
    out.push_str(
        "| technique | deployment | instance | subscribers | connections | comments delivered \
         | CPU s in window | peak RSS | bytes agree |\n",
    );
    out.push_str("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for cell in view.cells.iter().filter(|c| !c.instances.is_empty()) {
        for instance in &cell.instances {
            let _ = writeln!(
                out,
                "| {} | {} | {}{} | {} | {} | {} | {} | {} | {} |",
                cell.technique.name(),
                cell.deployment.label(),
                instance.url,
                if instance.restarted {
                    " (restarted)"
                } else {
                    ""
                },
                int(instance.subscribers),
                int(instance.connections_opened),
                int(instance.comments_delivered),
                num(instance.cpu_seconds),
                mib(instance.peak_rss_bytes),
                if instance.agreement.equal {
                    "yes"
                } else {
                    "**no**"
                },
            );
        }
        if let Some(redis) = cell.redis {
            let deliveries = cell.deliveries.delivered_in_window.max(1);
            let _ = writeln!(
                out,
                "| {} | {} | Redis | | | {} commands ({} / delivery) | {} | {} (peak) | |",
                cell.technique.name(),
                cell.deployment.label(),
                int(redis.commands),
                num(redis.commands as f64 / deliveries as f64),
                num(redis.cpu_seconds),
                mib(redis.peak_memory_bytes),
            );
        }
    }
    out.push('\n');
}
