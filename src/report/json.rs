//! `summary.json`: the run's `RunSummary`, pretty-printed (schema in results/README.md).

use crate::model::results::RunSummary;

pub fn render(summary: &RunSummary) -> String {
    let mut text = serde_json::to_string_pretty(summary).expect("results are plain data");
    text.push('\n');
    text
}
