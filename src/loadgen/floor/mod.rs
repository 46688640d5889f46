//! The floor: what the same cell costs on a bare tokio server writing the same bytes
//! (`server`, started as the `pushlab-floor` binary), run right after each of pushlab's SSE
//! and WebSocket cells when a scenario says `floor = true`, so the report can hold pushlab's
//! latency and CPU per delivery against it, measured minutes apart on the same machine; and
//! `bench`, the load generator's pollers against wrk on the same `/poll`.

pub mod bench;
pub mod server;

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use super::cell::run_cell;
use super::runner::{RunError, RunOptions};
use crate::model::Technique;
use crate::model::results::{CellResult, FloorFigures};
use crate::model::scenario::{CellSpec, FeedKind, HttpVersion, Scenario};

/// The floor server's binary, beside `pushlab-server`.
pub fn floor_binary(server_binary: &Path) -> PathBuf {
    server_binary.with_file_name("pushlab-floor")
}

/// Whether `spec` gets a floor run: SSE and WebSocket over HTTP/1.1 on one in-memory
/// server that the load generator starts (the floor is one process with no feed to share).
pub fn has_floor(scenario: &Scenario, spec: &CellSpec, options: &RunOptions) -> bool {
    scenario.floor
        && options.targets.is_empty()
        && matches!(spec.technique, Technique::Sse | Technique::WebSocket)
        && spec.http == HttpVersion::H1
        && spec.deployment.instances == 1
        && spec.deployment.feed == FeedKind::Memory
}

/// Runs the cell, then, when it has one, its floor run (its logs and histograms under
/// `floor/` in the run folder), whose figures join the cell's result.
pub async fn run_cell_with_floor(
    scenario: &Scenario,
    spec: &CellSpec,
    index: usize,
    run_dir: &Path,
    options: &RunOptions,
) -> Result<(CellResult, Histogram<u64>), RunError> {
    let (mut cell, histogram) = run_cell(scenario, spec, index, run_dir, options).await?;
    if has_floor(scenario, spec, options) {
        let dir = run_dir.join("floor");
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|source| RunError::Write { path: logs, source })?;
        let floor_options = RunOptions {
            server_binary: floor_binary(&options.server_binary),
            ..options.clone()
        };
        let (floor_cell, _) = run_cell(scenario, spec, index, &dir, &floor_options).await?;
        cell.floor = Some(figures(&floor_cell));
    }
    Ok((cell, histogram))
}

/// What the report needs of the floor's cell.
pub fn figures(floor: &CellResult) -> FloorFigures {
    FloorFigures {
        p50_us: floor.latency.p50_us,
        p99_us: floor.latency.p99_us,
        server_cpu_us: floor.per_delivery.server_cpu_us,
        loadgen_cpu_us: floor.per_delivery.loadgen_cpu_us,
        delivered: floor.deliveries.delivered,
        expected: floor.deliveries.expected,
        warnings: floor.warnings.clone(),
    }
}
