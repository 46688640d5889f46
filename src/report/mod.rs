//! Exporters: pure functions from a `RunSummary` to bytes (JSON, CSV, Markdown, PNG charts),
//! so `pushlab-loadgen report RUN_DIR` can redraw everything without rerunning.

pub mod csv;
pub mod hgrm;
pub mod json;
pub mod table;

use std::path::{Path, PathBuf};

use crate::loadgen::results::RunSummary;

/// A report that could not be read or written, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a pushlab summary: {message}")]
    Format { path: PathBuf, message: String },
}

/// Reads `run_dir/summary.json`.
pub fn load_summary(run_dir: &Path) -> Result<RunSummary, ReportError> {
    let path = run_dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::Format {
        path,
        message: e.to_string(),
    })
}

/// Placeholder until the charts land: writes nothing.
pub fn write_report(_run_dir: &Path, _summary: &RunSummary) -> Result<Vec<PathBuf>, ReportError> {
    Ok(Vec::new())
}
