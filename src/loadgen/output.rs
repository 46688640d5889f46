//! Writes a run folder: `summary.json`, `summary.csv`, and per cell the `.hgrm` text and the
//! serialised `.hist` histogram. Called after every cell, so an interrupted run keeps every
//! finished cell.

use std::path::Path;

use hdrhistogram::Histogram;

use super::runner::RunError;
use crate::model::results::RunSummary;
use crate::report;

/// Writes (or rewrites) the run's data files.
pub fn write_run_files(
    run_dir: &Path,
    summary: &RunSummary,
    histograms: &[Histogram<u64>],
) -> Result<(), RunError> {
    write(
        run_dir,
        "summary.json",
        report::json::render(summary).as_bytes(),
    )?;
    write(
        run_dir,
        "summary.csv",
        report::csv::render(summary).as_bytes(),
    )?;
    for (cell, histogram) in summary.cells.iter().zip(histograms) {
        write(
            run_dir,
            &cell.histogram_text_file,
            report::hgrm::percentile_distribution(histogram).as_bytes(),
        )?;
        write(
            run_dir,
            &cell.histogram_file,
            &report::hgrm::serialize(histogram),
        )?;
    }
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RunError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|source| RunError::Write { path, source })
}
