//! Runs a scenario cell by cell (each cell is `cell::run_cell`), keeping the finished cells
//! when interrupted and showing progress; describes the machine the run ran on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::deploy::DeployError;
use super::floor::run_cell_with_floor;
use super::preflight::{self, Preflight, PreflightError};
use super::target::TargetError;
use crate::model::results::{CellResult, Machine, RunSummary, SCHEMA_VERSION};
use crate::model::scenario::{CellSpec, Scenario};
use crate::report::fmt::{format_rate, format_us};

/// How a run is carried out.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `<scenario>/<timestamp>/` folders go.
    pub results_root: PathBuf,
    /// Drive these servers instead of starting them per cell (subscribers spread over them).
    pub targets: Vec<std::net::SocketAddr>,
    /// The `pushlab-server` binary to start per cell.
    pub server_binary: PathBuf,
    /// The `pushlab-loadgen` binary that worker processes run (`[load] workers`).
    pub loadgen_binary: PathBuf,
    /// Hold only this share of every cell's subscribers (`--shard i/n`).
    pub shard: Option<crate::model::results::Shard>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Cancelled by Ctrl-C: the current cell is abandoned, finished ones are kept.
    pub interrupt: CancellationToken,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error("writing results to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("starting the link emulator: {0}")]
    Link(std::io::Error),
    #[error(transparent)]
    Worker(#[from] super::worker::WorkerError),
}

/// What a run produced.
pub struct RunOutput {
    pub run_dir: PathBuf,
    pub summary: RunSummary,
    /// Each cell's latency histogram, in `summary.cells` order.
    pub histograms: Vec<Histogram<u64>>,
    pub preflight: Preflight,
}

/// Called after each cell with the run folder and the run so far, to write results
/// incrementally.
pub type CellDone<'a> =
    dyn FnMut(&Path, &RunSummary, &[Histogram<u64>]) -> Result<(), RunError> + 'a;

/// Runs every cell of `scenario`, calling `on_cell` after each.
pub async fn run(
    scenario: &Scenario,
    options: &RunOptions,
    on_cell: &mut CellDone<'_>,
) -> Result<RunOutput, RunError> {
    let preflight = preflight::check(scenario, options.targets.is_empty())?;
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let run_dir = options
        .results_root
        .join(&scenario.name)
        .join(started_at.replace(':', "-"));
    std::fs::create_dir_all(run_dir.join("logs")).map_err(|source| RunError::Write {
        path: run_dir.clone(),
        source,
    })?;
    let mut summary = RunSummary {
        schema_version: SCHEMA_VERSION,
        pushlab_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        target: (!options.targets.is_empty()).then(|| {
            let urls: Vec<String> = options
                .targets
                .iter()
                .map(|a| format!("http://{a}"))
                .collect();
            urls.join(" ")
        }),
        scenario: scenario.clone(),
        machine: describe_machine(preflight.fd_limit),
        cells: Vec::new(),
        interrupted: false,
        shard: options.shard,
    };
    // Each repetition is a run of its own with its own index, so its histogram files
    // (named by index) are kept beside the others'.
    let runs = scenario.runs();
    let cells: Vec<CellSpec> = runs.iter().map(|(_, spec)| *spec).collect();
    let progress = Progress::new(options.progress, &cells, scenario);
    let mut histograms = Vec::new();
    for (index, (repeat, spec)) in runs.iter().enumerate() {
        progress.start_cell(index, spec);
        let outcome = tokio::select! {
            outcome = run_cell_with_floor(scenario, spec, index, &run_dir, options) => outcome,
            _ = options.interrupt.cancelled() => Err(RunError::Interrupted),
        };
        match outcome {
            Ok((mut cell, histogram)) => {
                cell.repeat = *repeat;
                progress.finish_cell(&cell);
                summary.cells.push(cell);
                histograms.push(histogram);
                on_cell(&run_dir, &summary, &histograms)?;
            }
            Err(RunError::Interrupted) => {
                summary.interrupted = true;
                progress.abandon(index);
                break;
            }
            Err(error) => {
                progress.abandon(index);
                return Err(error);
            }
        }
    }
    progress.done();
    Ok(RunOutput {
        run_dir,
        summary,
        histograms,
        preflight,
    })
}

fn describe_machine(open_files_limit: u64) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_bytes = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Machine {
        os: std::env::consts::OS.to_string(),
        kernel,
        cpu_model,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_bytes,
        open_files_limit,
    }
}

/// The progress bar: the current cell and an ETA from the scenario's timing.
struct Progress {
    bar: indicatif::ProgressBar,
    cell_estimate: Duration,
    cells: usize,
}

impl Progress {
    fn new(visible: bool, cells: &[CellSpec], scenario: &Scenario) -> Self {
        // Set-up, drain and tear-down add a couple of seconds to each cell.
        let cell_estimate = scenario.cell_time() + Duration::from_secs(2);
        let total = cell_estimate.as_secs() * cells.len() as u64;
        let bar = if visible {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} ETA {eta} {msg}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Self {
            bar,
            cell_estimate,
            cells: cells.len(),
        }
    }

    fn start_cell(&self, index: usize, spec: &CellSpec) {
        self.bar.set_message(format!(
            "cell {}/{}: {} x {} clients, {}/s, {} B",
            index + 1,
            self.cells,
            spec.technique,
            spec.clients,
            format_rate(spec.rate),
            spec.payload_bytes
        ));
        self.bar
            .set_position(self.cell_estimate.as_secs() * index as u64);
    }

    fn finish_cell(&self, cell: &CellResult) {
        let loss = if cell.deliveries.missing > 0 {
            format!("  LOSS: {} missing", cell.deliveries.missing)
        } else {
            String::new()
        };
        let line = format!(
            "{:>13} x {:>5} clients: p50 {:>9} p99 {:>9}  {}/{} delivered{loss}",
            cell.technique.name(),
            cell.clients,
            format_us(cell.latency.p50_us),
            format_us(cell.latency.p99_us),
            cell.deliveries.delivered,
            cell.deliveries.expected,
        );
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
        self.bar.inc(0);
    }

    fn abandon(&self, index: usize) {
        self.bar
            .abandon_with_message(format!("stopped during cell {}", index + 1));
    }

    fn done(&self) {
        self.bar.finish_and_clear();
    }
}
