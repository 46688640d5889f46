//! Exporters: pure functions from a `RunSummary` to bytes (JSON, CSV, Markdown, PNG charts),
//! so `pushlab-loadgen report RUN_DIR` can redraw everything without rerunning.
//!
//! # Layout
//! - [`plan`]: what a report holds, derived from the summary alone: sweep points, which charts
//!   exist and their file names.
//! - [`figures`]: what is computed from one cell: its flags (warnings) and plotted rates.
//! - [`models`]: what each technique's mechanism predicts, beside what the run measured.
//! - [`fmt`]: every number and unit format, and the unit convention (decimal bytes on the
//!   wire, MiB for memory).
//! - [`charts`]: the PNG charts (plotters, with an embedded font).
//! - [`markdown`]: `report.md`, which embeds every chart and says what each one shows in the
//!   run's own numbers.
//! - [`json`], [`csv`], [`hgrm`]: `summary.json`, `summary.csv`, and the histograms in
//!   HdrHistogram's percentile-distribution text and V2 serialisation.
//! - [`table`]: the table printed in the terminal at the end of a run.
//! - [`handout`]: the study handout, the study note's ten claims judged from several runs'
//!   summaries and the study's probes.
//!
//! Output is byte-identical for the same summary: no clocks, stable ordering, fixed number
//! formats, and a deterministic PNG encoder.

pub mod charts;
pub mod csv;
pub mod figures;
pub mod fmt;
pub mod handout;
pub mod hgrm;
pub mod json;
pub mod markdown;
pub mod models;
pub mod plan;
pub mod table;

use std::path::{Path, PathBuf};

use crate::model::results::{RunSummary, SCHEMA_VERSION};

/// The file, inside a run folder, that every exporter reads.
pub const SUMMARY_FILE: &str = "summary.json";
/// The Markdown report written beside the charts.
pub const REPORT_FILE: &str = "report.md";

/// Why a report could not be read or written, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a pushlab run summary: {source}", file.display())]
    Parse {
        file: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{}: written with results schema version {found}, this pushlab reads version {expected}",
        file.display()
    )]
    Schema {
        file: PathBuf,
        found: u64,
        expected: u32,
    },
    #[error("{}: cannot write: {source}", file.display())]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot draw the chart: {message}", file.display())]
    Chart { file: PathBuf, message: String },
}

/// Reads `run_dir/summary.json`.
pub fn load_summary(run_dir: &Path) -> Result<RunSummary, ReportError> {
    let file = run_dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&file).map_err(|source| ReportError::Read {
        file: file.clone(),
        source,
    })?;
    let schema_error = |found: u64| ReportError::Schema {
        file: file.clone(),
        found,
        expected: SCHEMA_VERSION,
    };
    match serde_json::from_str::<RunSummary>(&text) {
        Ok(summary) if summary.schema_version == SCHEMA_VERSION => Ok(summary),
        Ok(summary) => Err(schema_error(u64::from(summary.schema_version))),
        Err(source) => {
            // A summary from another schema version fails to parse for a reason the parse
            // error would hide; say which version it is instead.
            let found = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("schema_version")?.as_u64());
            match found {
                Some(found) if found != u64::from(SCHEMA_VERSION) => Err(schema_error(found)),
                _ => Err(ReportError::Parse { file, source }),
            }
        }
    }
}

/// Draws every chart and `report.md` into `run_dir`, and returns the files written (charts
/// in report order, then the report).
pub fn write_report(run_dir: &Path, summary: &RunSummary) -> Result<Vec<PathBuf>, ReportError> {
    let view = plan::View::new(summary);
    let charts = view.charts();
    let mut written = Vec::with_capacity(charts.len() + 1);
    for chart in &charts {
        let file = run_dir.join(&chart.file_name);
        let png = charts::render(&view, chart).map_err(|message| ReportError::Chart {
            file: file.clone(),
            message,
        })?;
        write(&file, &png)?;
        written.push(file);
    }
    let file = run_dir.join(REPORT_FILE);
    write(&file, markdown::render(&view, &charts).as_bytes())?;
    written.push(file);
    Ok(written)
}

fn write(file: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(file, bytes).map_err(|source| ReportError::Write {
        file: file.to_path_buf(),
        source,
    })
}

#[cfg(test)]
pub(crate) mod fixture;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every technique of the list reaches every output: a chart style of its own, its rows
    /// in the report's table, the CSV and the terminal table, and its name in the text.
    #[test]
    fn every_technique_reaches_every_output() {
        use crate::model::technique::Technique;
        let summary = fixture::client_sweep();
        let view = plan::View::new(&summary);
        let report = markdown::render(&view, &view.charts());
        let (csv, table) = (csv::render(&summary), table::render(&summary));
        let styles: Vec<_> = Technique::ALL
            .iter()
            .map(|t| format!("{:?}", charts::style::style(*t)))
            .collect();
        for (i, technique) in Technique::ALL.into_iter().enumerate() {
            let name = technique.name();
            let cells = summary
                .cells
                .iter()
                .filter(|c| c.technique == technique)
                .count();
            assert!(cells > 0, "the fixture has no {name} cell");
            assert!(!styles[..i].contains(&styles[i]), "{name} shares a style");
            let rows = |text: &str| text.lines().filter(|l| l.contains(name)).count();
            assert!(rows(&csv) >= cells, "CSV rows for {name}");
            assert!(rows(&table) >= cells, "table rows for {name}");
            assert!(rows(&report) >= cells, "report rows for {name}");
        }
    }

    /// Decodes a PNG and checks what a reader would notice first: the size, that it is not
    /// blank, and that the plot area (below the header) holds drawing, not just white.
    fn check_png(file: &Path) {
        let decoder = png::Decoder::new(std::fs::File::open(file).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        let name = file.display();
        assert_eq!(
            (info.width, info.height),
            (charts::WIDTH, charts::HEIGHT),
            "{name}"
        );
        assert_eq!(info.color_type, png::ColorType::Rgb, "{name}");
        // Counted with early exits: the test binary is unoptimised, and hashing all 1.4
        // million pixels of every chart took seconds.
        let rgb = &pixels[..info.buffer_size()];
        let mut colours: HashSet<&[u8]> = HashSet::new();
        for pixel in rgb.chunks_exact(3) {
            colours.insert(pixel);
            if colours.len() > 40 {
                break;
            }
        }
        assert!(colours.len() > 40, "{name}: only {} colours", colours.len());
        let width = info.width as usize;
        let mut plot_area = 0;
        'rows: for y in 250..850 {
            let row = &rgb[(y * width + 150) * 3..(y * width + 1500) * 3];
            for pixel in row.chunks_exact(3) {
                if pixel != [255, 255, 255] {
                    plot_area += 1;
                    if plot_area > 20_000 {
                        break 'rows;
                    }
                }
            }
        }
        assert!(
            plot_area > 20_000,
            "{name}: only {plot_area} drawn pixels in the plot area"
        );
    }

    fn names(files: &[PathBuf]) -> Vec<String> {
        files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_client_sweep_writes_every_chart_and_repeats_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let summary = fixture::client_sweep();
        let written = write_report(dir.path(), &summary).unwrap();
        assert_eq!(
            names(&written),
            [
                "latency-percentiles-10-clients.png",
                "latency-percentiles-100-clients.png",
                "latency-percentiles-1000-clients.png",
                "sweep-clients-latency.png",
                "sweep-clients-wire.png",
                "sweep-clients-server.png",
                "cost-per-delivery.png",
                "timeline-10-clients.png",
                "timeline-100-clients.png",
                "timeline-1000-clients.png",
                "report.md",
            ]
        );
        let report = std::fs::read_to_string(dir.path().join(REPORT_FILE)).unwrap();
        for file in &written[..written.len() - 1] {
            check_png(file);
            let name = file.file_name().unwrap().to_string_lossy();
            assert!(
                report.contains(&format!("]({name})")),
                "report links {name}"
            );
        }
        // Every image the report links was written.
        for link in report.split("](").skip(1) {
            let target = &link[..link.find(')').unwrap()];
            assert!(dir.path().join(target).is_file(), "{target} exists");
        }
        let first: Vec<Vec<u8>> = written.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let again = write_report(dir.path(), &summary).unwrap();
        assert_eq!(again, written);
        for (file, bytes) in written.iter().zip(&first) {
            assert_eq!(&std::fs::read(file).unwrap(), bytes, "{}", file.display());
        }
    }

    #[test]
    fn a_rate_sweep_writes_its_own_charts() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_report(dir.path(), &fixture::rate_sweep()).unwrap();
        let names = names(&written);
        for name in [
            "latency-percentiles-1-per-s.png",
            "latency-percentiles-200-per-s.png",
            "sweep-rate-latency.png",
            "sweep-rate-wire.png",
            "sweep-rate-server.png",
            "cost-per-delivery.png",
            "timeline-20-per-s.png",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        for file in written.iter().filter(|f| f.extension().unwrap() == "png") {
            check_png(file);
        }
    }

    #[test]
    fn load_summary_reads_summary_json_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let summary = fixture::client_sweep();
        let file = dir.path().join(SUMMARY_FILE);
        let error = load_summary(dir.path()).unwrap_err().to_string();
        assert!(error.starts_with(&file.display().to_string()), "{error}");
        std::fs::write(&file, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
        // Compared by parts: serde_json's default float parser may differ from the writer in
        // the last bit, and a failed comparison would print the whole summary.
        let loaded = load_summary(dir.path()).unwrap();
        assert_eq!(loaded.scenario, summary.scenario);
        assert_eq!(loaded.cells.len(), summary.cells.len());
        assert_eq!(loaded.cells[0].deliveries, summary.cells[0].deliveries);
        let mut old = serde_json::to_value(&summary).unwrap();
        old["schema_version"] = 0.into();
        old["cells"] = "renamed".into();
        std::fs::write(&file, old.to_string()).unwrap();
        let error = load_summary(dir.path()).unwrap_err().to_string();
        assert!(error.contains("schema version 0"), "{error}");
        std::fs::write(&file, "{").unwrap();
        let error = load_summary(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not a pushlab run summary"), "{error}");
    }

    /// Every published run redraws byte for byte: its charts and `report.md` are a pure
    /// function of its `summary.json`, so a refactor that moves a pixel or a word shows here.
    #[test]
    fn every_published_run_redraws_byte_identically() {
        let published = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/published");
        // Run folders at any depth: the study's sit under results/published/study/<scenario>/.
        let mut runs: Vec<PathBuf> = Vec::new();
        let mut folders = vec![published.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.join(SUMMARY_FILE).is_file() {
                    runs.push(path);
                } else if path.is_dir() {
                    folders.push(path);
                }
            }
        }
        runs.sort();
        assert!(!runs.is_empty(), "no runs under {}", published.display());
        for run in &runs {
            let summary = load_summary(run).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let written = write_report(dir.path(), &summary).unwrap();
            let mut committed: Vec<String> = std::fs::read_dir(run)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".png") || name == REPORT_FILE)
                .collect();
            committed.sort();
            let mut drawn = names(&written);
            drawn.sort();
            assert_eq!(drawn, committed, "{}: files drawn", run.display());
            for file in &written {
                let name = file.file_name().unwrap();
                let expected = std::fs::read(run.join(name)).unwrap();
                // Compared as booleans: a failed byte comparison would print both files.
                let same = std::fs::read(file).unwrap() == expected;
                assert!(
                    same,
                    "{}: {} differs from the committed file",
                    run.display(),
                    name.to_string_lossy()
                );
            }
        }
    }

    /// Writes the fixtures' reports to `target/report-demo/` to look at by eye:
    /// `cargo test --lib report::tests::demo -- --ignored`.
    #[test]
    #[ignore]
    fn demo() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-demo");
        for (name, summary) in [
            ("clients", fixture::client_sweep()),
            ("rates", fixture::rate_sweep()),
            ("one-point", fixture::one_point()),
            ("two-sweeps", fixture::two_sweeps()),
            ("seven-points", fixture::seven_points()),
        ] {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            write_report(&dir, &summary).unwrap();
        }
    }
}
