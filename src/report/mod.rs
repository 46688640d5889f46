//! Exporters: pure functions from a `RunSummary` to bytes (JSON, CSV, Markdown, PNG charts),
//! so `pushlab-loadgen report RUN_DIR` can redraw everything without rerunning.
