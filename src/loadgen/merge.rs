//! Shard runs merged into one run folder (`pushlab-loadgen merge DIR...`). Each shard
//! (`run --shard i/n`, on this machine or another) held share i of every cell's subscribers
//! against its own servers and publisher; merged, the latency histograms are added (from the
//! V2-serialised `.hist` and `.seconds.hist` files, so every percentile is exact), the counts
//! summed, and the per-delivery figures recomputed from the sums, as if one load generator had
//! held every subscriber.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use super::assemble::{latency_summary, per_delivery};
use super::recorder::{PartialRecord, new_histogram};
use crate::model::results::{
    ByteAgreement, CellResult, ClientTotals, Connecting, IdleMemory, KernelTotals, LoadgenUse,
    RedisUse, RunSummary, ServerTotals, WholeCell,
};
use crate::report::{self, hgrm};

/// Why shard runs could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{}: {message}", dir.display())]
    Read { dir: PathBuf, message: String },
    #[error("cannot merge: {0}")]
    Mismatch(String),
}

/// One shard's run folder, read.
pub struct ShardRun {
    pub dir: PathBuf,
    pub summary: RunSummary,
    /// Each cell's latency histogram, and its latencies second by second.
    pub histograms: Vec<Histogram<u64>>,
    pub seconds: Vec<Vec<Histogram<u64>>>,
}

/// The merged run: its summary and histograms, for the run files and report.
pub struct Merged {
    pub summary: RunSummary,
    pub histograms: Vec<Histogram<u64>>,
    pub seconds: Vec<Vec<Histogram<u64>>>,
}

/// Reads a shard's run folder: `summary.json` and every cell's histogram files.
pub fn load(dir: &Path) -> Result<ShardRun, MergeError> {
    let error = |message: String| MergeError::Read {
        dir: dir.to_path_buf(),
        message,
    };
    let summary = report::load_summary(dir).map_err(|e| error(e.to_string()))?;
    let read =
        |name: &str| std::fs::read(dir.join(name)).map_err(|e| error(format!("{name}: {e}")));
    let mut histograms = Vec::new();
    let mut seconds = Vec::new();
    for cell in &summary.cells {
        let bytes = read(&cell.histogram_file)?;
        histograms.push(
            hgrm::deserialize(&bytes)
                .map_err(|e| error(format!("{}: {e}", cell.histogram_file)))?,
        );
        let name = hgrm::seconds_file(&cell.histogram_file);
        let bytes = read(&name)?;
        seconds.push(hgrm::deserialize_all(&bytes).map_err(|e| error(format!("{name}: {e}")))?);
    }
    Ok(ShardRun {
        dir: dir.to_path_buf(),
        summary,
        histograms,
        seconds,
    })
}

/// Merges shard runs `0/n` to `n-1/n` of one scenario, cell by cell.
pub fn merge(runs: &[ShardRun]) -> Result<Merged, MergeError> {
    check_shards(runs)?;
    let mut runs: Vec<&ShardRun> = runs.iter().collect();
    runs.sort_by_key(|r| r.summary.shard.map(|s| s.index));
    let first = &runs[0].summary;
    let mut merged = Merged {
        summary: RunSummary {
            shard: None,
            interrupted: runs.iter().any(|r| r.summary.interrupted),
            cells: Vec::new(),
            ..first.clone()
        },
        histograms: Vec::new(),
        seconds: Vec::new(),
    };
    for index in 0..first.cells.len() {
        let cells: Vec<&CellResult> = runs.iter().map(|r| &r.summary.cells[index]).collect();
        let mut histogram = new_histogram();
        let mut per_second: Vec<Histogram<u64>> = Vec::new();
        for run in &runs {
            add(&mut histogram, &run.histograms[index])?;
            for (second, h) in run.seconds[index].iter().enumerate() {
                if per_second.len() <= second {
                    per_second.push(new_histogram());
                }
                add(&mut per_second[second], h)?;
            }
        }
        let cell = merge_cell(&cells, &histogram, &per_second);
        merged.summary.cells.push(cell);
        merged.histograms.push(histogram);
        merged.seconds.push(per_second);
    }
    Ok(merged)
}

fn add(total: &mut Histogram<u64>, other: &Histogram<u64>) -> Result<(), MergeError> {
    total
        .add(other)
        .map_err(|e| MergeError::Mismatch(format!("histograms of different bounds: {e:?}")))
}

/// The runs are shards 0 to n-1 of n of one scenario, each once, with the same cells.
fn check_shards(runs: &[ShardRun]) -> Result<(), MergeError> {
    let Some(first) = runs.first() else {
        return Err(MergeError::Mismatch("no run folders given".into()));
    };
    let mut seen = Vec::new();
    for run in runs {
        let name = run.dir.display();
        let Some(shard) = run.summary.shard else {
            return Err(MergeError::Mismatch(format!(
                "{name} is a whole run, not a shard (`run --shard i/n`)"
            )));
        };
        if run.summary.scenario != first.summary.scenario {
            return Err(MergeError::Mismatch(format!(
                "{name} ran another scenario (or another version of it) than {}",
                first.dir.display()
            )));
        }
        let count = first.summary.shard.map_or(0, |s| s.count);
        if shard.count != count {
            return Err(MergeError::Mismatch(format!(
                "{name} is shard {} of {}, the others of {count}",
                shard.index + 1,
                shard.count
            )));
        }
        if seen.contains(&shard.index) {
            return Err(MergeError::Mismatch(format!(
                "shard {} of {count} is given twice",
                shard.index + 1
            )));
        }
        seen.push(shard.index);
        let specs = |s: &RunSummary| -> Vec<String> {
            s.cells
                .iter()
                .map(|c| {
                    format!(
                        "{:?}",
                        (
                            c.technique,
                            c.clients,
                            c.rate,
                            c.payload_bytes,
                            c.deployment,
                            c.http,
                            c.link
                        )
                    )
                })
                .collect()
        };
        if specs(&run.summary) != specs(&first.summary) {
            return Err(MergeError::Mismatch(format!(
                "{name} has other cells than {} (an interrupted shard?)",
                first.dir.display()
            )));
        }
        if run.summary.cells.iter().any(|c| c.faults.is_some()) {
            return Err(MergeError::Mismatch(format!(
                "{name} has fault results, which are not merged"
            )));
        }
    }
    let count = first.summary.shard.map_or(0, |s| s.count) as usize;
    if seen.len() != count {
        let missing: Vec<String> = (0..count as u32)
            .filter(|i| !seen.contains(i))
            .map(|i| format!("{}", i + 1))
            .collect();
        return Err(MergeError::Mismatch(format!(
            "shard(s) {} of {count} missing",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// One cell from its shards: sums, and the figures derived from them recomputed.
fn merge_cell(
    cells: &[&CellResult],
    histogram: &Histogram<u64>,
    per_second: &[Histogram<u64>],
) -> CellResult {
    let first = cells[0];
    let sum = |f: fn(&CellResult) -> u64| cells.iter().map(|c| f(c)).sum::<u64>();
    let sum_f = |f: fn(&CellResult) -> f64| cells.iter().map(|c| f(c)).sum::<f64>();
    let max = |f: fn(&CellResult) -> u64| cells.iter().map(|c| f(c)).max().unwrap_or(0);
    let mut deliveries = first.deliveries;
    for cell in &cells[1..] {
        deliveries.add_pairs(&cell.deliveries);
    }
    // Each shard had a publisher of its own: the schedule's comments once, every failure.
    deliveries.comments_published = max(|c| c.deliveries.comments_published);
    deliveries.publish_errors = sum(|c| c.deliveries.publish_errors);
    let client = ClientTotals {
        requests: sum(|c| c.client.requests),
        empty_responses: sum(|c| c.client.empty_responses),
        connections_opened: sum(|c| c.client.connections_opened),
        reconnects: sum(|c| c.client.reconnects),
        errors: sum(|c| c.client.errors),
        bytes_up: sum(|c| c.client.bytes_up),
        bytes_down: sum(|c| c.client.bytes_down),
        payload_bytes_delivered: sum(|c| c.client.payload_bytes_delivered),
    };
    let server = ServerTotals {
        requests: sum(|c| c.server.requests),
        empty_responses: sum(|c| c.server.empty_responses),
        connections_opened: sum(|c| c.server.connections_opened),
        bytes_in: sum(|c| c.server.bytes_in),
        bytes_out: sum(|c| c.server.bytes_out),
        comments_delivered: sum(|c| c.server.comments_delivered),
        dropped_slow: sum(|c| c.server.dropped_slow),
        cpu_seconds: sum_f(|c| c.server.cpu_seconds),
        // Each shard drove servers of its own: their memory adds up.
        peak_rss_bytes: sum(|c| c.server.peak_rss_bytes),
        rss_bytes: sum(|c| c.server.rss_bytes),
    };
    let agreement = ByteAgreement {
        client_up: sum(|c| c.agreement.client_up),
        client_down: sum(|c| c.agreement.client_down),
        server_in: sum(|c| c.agreement.server_in),
        server_out: sum(|c| c.agreement.server_out),
        equal: cells.iter().all(|c| c.agreement.equal),
        server_h2_overhead_in: sum(|c| c.agreement.server_h2_overhead_in),
        server_h2_overhead_out: sum(|c| c.agreement.server_h2_overhead_out),
    };
    let kernel = KernelTotals {
        sockets: sum(|c| c.kernel.sockets),
        bytes_acked: sum(|c| c.kernel.bytes_acked),
        bytes_received: sum(|c| c.kernel.bytes_received),
        segments_out: sum(|c| c.kernel.segments_out),
        segments_in: sum(|c| c.kernel.segments_in),
        header_bytes: sum(|c| c.kernel.header_bytes),
    };
    let delivered_in_window = deliveries.delivered_in_window.max(1) as f64;
    let loadgen = LoadgenUse {
        cpu_seconds: sum_f(|c| c.loadgen.cpu_seconds),
        // Shards may run on machines of their own: the busiest one's share of a core.
        core_share: cells
            .iter()
            .map(|c| c.loadgen.core_share)
            .fold(0.0, f64::max),
        generator_bound: cells.iter().any(|c| c.loadgen.generator_bound),
        publish_lateness_mean_us: cells
            .iter()
            .map(|c| c.loadgen.publish_lateness_mean_us * c.deliveries.delivered_in_window as f64)
            .sum::<f64>()
            / delivered_in_window,
        publish_lateness_max_us: max(|c| c.loadgen.publish_lateness_max_us),
        runtime_lag_p99_us: max(|c| c.loadgen.runtime_lag_p99_us),
        runtime_lag_max_us: max(|c| c.loadgen.runtime_lag_max_us),
    };
    let reconnects: Vec<u64> = {
        let mut seconds: Vec<u64> = Vec::new();
        for cell in cells {
            for point in &cell.timeline {
                let s = point.second as usize;
                if seconds.len() <= s {
                    seconds.resize(s + 1, 0);
                }
                seconds[s] += point.reconnects;
            }
        }
        seconds
    };
    let timeline = PartialRecord {
        histogram: histogram.clone(),
        per_second: per_second.to_vec(),
        deliveries,
        misdelivered: 0,
        unexpected: 0,
        payload_bytes: 0,
        restarts_seen: 0,
    }
    .finish(&reconnects)
    .timeline;
    let redis = cells
        .iter()
        .filter_map(|c| c.redis)
        .reduce(|a, b| RedisUse {
            cpu_seconds: a.cpu_seconds + b.cpu_seconds,
            commands: a.commands + b.commands,
            peak_memory_bytes: a.peak_memory_bytes + b.peak_memory_bytes,
            rss_bytes: a.rss_bytes + b.rss_bytes,
        });
    let idle_memory = cells
        .iter()
        .map(|c| c.idle_memory)
        .collect::<Option<Vec<IdleMemory>>>()
        .map(|all| {
            let connections: u64 = all.iter().map(|m| m.connections).sum();
            let before: u64 = all.iter().map(|m| m.rss_before_bytes).sum();
            let connected: u64 = all.iter().map(|m| m.rss_connected_bytes).sum();
            IdleMemory {
                connections,
                rss_before_bytes: before,
                rss_connected_bytes: connected,
                bytes_per_connection: connected.saturating_sub(before) as f64
                    / connections.max(1) as f64,
            }
        });
    let connecting = cells
        .iter()
        .map(|c| c.connecting)
        .collect::<Option<Vec<Connecting>>>()
        .map(|all| Connecting {
            ready: all.iter().map(|c| c.ready).sum(),
            seconds: all.iter().map(|c| c.seconds).fold(0.0, f64::max),
        });
    let warnings = cells
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            c.warnings
                .iter()
                .map(move |w| format!("shard {}: {w}", i + 1))
        })
        .collect();
    CellResult {
        window_seconds: cells.iter().map(|c| c.window_seconds).fold(0.0, f64::max),
        latency: latency_summary(histogram),
        deliveries,
        client,
        server,
        agreement,
        kernel,
        loadgen,
        per_delivery: per_delivery(&client, &server, &loadgen, &deliveries),
        timeline,
        warnings,
        instances: cells.iter().flat_map(|c| c.instances.clone()).collect(),
        redis,
        idle_memory,
        connecting,
        server_unavailable: cells.iter().any(|c| c.server_unavailable),
        whole_cell: cells
            .iter()
            .map(|c| c.whole_cell)
            .collect::<Option<Vec<WholeCell>>>()
            .map(|all| WholeCell {
                requests: all.iter().map(|w| w.requests).sum(),
                connections_opened: all.iter().map(|w| w.connections_opened).sum(),
            }),
        // Each shard's floor cell drove a floor server of its own, at its share: not a floor
        // for the merged cell.
        floor: None,
        ..first.clone()
    }
}
