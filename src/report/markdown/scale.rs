//! The report's scale section, present only for runs with load-generator worker processes
//! or cells of 10,000 subscribers or more: how many each technique held and over how many
//! server instances, how long connecting them took, what an idle connection cost the servers,
//! how fast one comment reached them all, and whether the generator stayed cheaper than the
//! server it measured.

use std::fmt::Write as _;

use super::super::fmt::{format_us, int, num};
use super::super::plan::View;
use crate::model::results::CellResult;

/// Cells this large get the section even without worker processes.
const LARGE_CELL: u32 = 10_000;

pub(super) fn section(out: &mut String, view: &View) {
    let load = view.summary.scenario.load;
    if load.workers == 0 && view.cells.iter().all(|c| c.clients < LARGE_CELL) {
        return;
    }
    out.push_str("## Holding many subscribers\n\n");
    let _ = write!(
        out,
        "Subscribers were held by {}, {}. Memory per idle connection is the servers' resident \
         memory once every subscriber was connected, before the first comment, less what they \
         held before, over the connections (the kernel's socket buffers are not in it). Fan-out \
         is each (comment, subscriber) pair's time from the comment's scheduled publish to its \
         arrival. The generator's CPU per delivery is every load-generator process's (workers \
         included) over the deliveries of the window, beside the servers'.\n\n",
        match load.workers {
            0 => "the load generator's own process".to_string(),
            n => format!("{n} load-generator worker processes (subscriber i in worker i mod {n})"),
        },
        match load.source_addresses {
            0 => "connecting from 127.0.0.1".to_string(),
            n => format!("bound in turn to {n} source addresses from 127.0.0.2"),
        }
    );
    out.push_str(
        "| technique | subscribers ready | per instance | time to connect | server memory per idle connection | fan-out p50 | fan-out p99 | delivered / expected | server CPU per delivery | generator CPU per delivery |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for cell in &view.cells {
        out.push_str(&row(cell));
    }
    out.push('\n');
    let over: Vec<String> = view
        .cells
        .iter()
        .filter(|c| generator_share(c).is_some_and(|share| share >= 1.0))
        .map(|c| c.technique.descriptor().title.to_string())
        .collect();
    if !over.is_empty() {
        let _ = writeln!(
            out,
            "⚠ The generator spent at least as much CPU per delivery as the servers in: {}. Its \
             share of two cores may have limited what was measured.\n",
            over.join(", ")
        );
    }
}

fn row(cell: &CellResult) -> String {
    let instances = cell.instances.len().max(1) as u64;
    let clients = u64::from(cell.clients);
    let connect = cell.connecting.map_or("n/a".to_string(), |c| {
        let per_second = (c.ready as f64 / c.seconds.max(1e-9)) as u64;
        format!("{} s ({}/s)", num(c.seconds), int(per_second))
    });
    let ready = cell.connecting.map_or("n/a".to_string(), |c| int(c.ready));
    let memory = cell.idle_memory.map_or("n/a".to_string(), |m| {
        format!("{} KiB", num(m.bytes_per_connection / 1024.0))
    });
    let generator =
        generator_us(cell).map_or("n/a".to_string(), |us| match generator_share(cell) {
            Some(share) => format!("{} µs ({}×)", num(us), num(share)),
            None => format!("{} µs", num(us)),
        });
    format!(
        "| {} | {} of {} | {} × {} | {} | {} | {} | {} | {} / {} | {} | {} |\n",
        cell.technique.descriptor().title,
        ready,
        int(clients),
        instances,
        int(clients.div_ceil(instances)),
        connect,
        memory,
        format_us(cell.latency.p50_us),
        format_us(cell.latency.p99_us),
        int(cell.deliveries.delivered),
        int(cell.deliveries.expected),
        if cell.server_unavailable {
            "n/a".to_string()
        } else {
            format!("{} µs", num(cell.per_delivery.server_cpu_us))
        },
        generator,
    )
}

/// The load generator's CPU per delivery in the window, microseconds.
fn generator_us(cell: &CellResult) -> Option<f64> {
    let deliveries = cell.deliveries.delivered_in_window;
    (deliveries > 0).then(|| cell.loadgen.cpu_seconds * 1e6 / deliveries as f64)
}

/// The generator's CPU per delivery as a multiple of the servers'.
fn generator_share(cell: &CellResult) -> Option<f64> {
    let server = cell.per_delivery.server_cpu_us;
    (!cell.server_unavailable && server > 0.0)
        .then(|| generator_us(cell).map(|g| g / server))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn small_runs_without_workers_have_no_scale_section() {
        let summary = fixture::client_sweep();
        let mut out = String::new();
        section(&mut out, &View::new(&summary));
        assert!(out.is_empty(), "{out}");
    }

    #[test]
    fn workers_bring_the_section_with_the_generators_share() {
        let mut summary = fixture::client_sweep();
        summary.scenario.load.workers = 4;
        summary.scenario.load.source_addresses = 2;
        for cell in &mut summary.cells {
            cell.connecting = Some(crate::model::results::Connecting {
                ready: u64::from(cell.clients),
                seconds: 2.0,
            });
            cell.per_delivery.server_cpu_us = 10.0;
            cell.loadgen.cpu_seconds = 1.0;
            cell.deliveries.delivered_in_window = 50_000;
        }
        let mut out = String::new();
        section(&mut out, &View::new(&summary));
        assert!(out.contains("## Holding many subscribers"), "{out}");
        assert!(out.contains("4 load-generator worker processes"), "{out}");
        assert!(out.contains("2 source addresses"), "{out}");
        // 1 s of CPU over 50,000 deliveries: 20 µs, twice the server's 10 µs, flagged.
        assert!(out.contains("20 µs (2×)"), "{out}");
        assert!(out.contains("⚠ The generator spent"), "{out}");
    }
}
