//! The report's floor sections: pushlab's SSE and WebSocket cells held against the same cells
//! on the floor server (`floor = true`), as ratios; and the load generator's own CPU per
//! delivery against the server's. Each is present only when the run measured it, so runs
//! made before them redraw unchanged.

use std::fmt::Write as _;

use super::super::fmt::{format_us, num};
use super::super::plan::{Point, View};
use crate::model::results::CellResult;

/// The ratio pushlab aims to stay within on p99 and on CPU per delivery.
pub const GOAL: f64 = 1.3;

/// Both sections, or nothing.
pub(super) fn sections(out: &mut String, view: &View) {
    against_floor(out, view);
    generator_cpu(out, view);
}

/// `pushlab / floor`, or a dash when the floor measured nothing.
fn ratio(pushlab: f64, floor: f64) -> String {
    if floor > 0.0 {
        let ratio = pushlab / floor;
        let mark = if ratio > GOAL { " ⚠" } else { "" };
        format!("{}x{mark}", num(ratio))
    } else {
        "–".into()
    }
}

fn name(cell: &CellResult) -> String {
    format!("{} · {}", cell.technique.name(), Point::of(cell).describe())
}

fn against_floor(out: &mut String, view: &View) {
    let cells: Vec<&CellResult> = view
        .cells
        .iter()
        .copied()
        .filter(|c| c.floor.is_some())
        .collect();
    if cells.is_empty() {
        return;
    }
    out.push_str("## pushlab against the floor\n\n");
    let _ = writeln!(
        out,
        "Each SSE and WebSocket cell ran a second time, right after, against `pushlab-floor`: \
         a bare tokio server (no axum, no hyper) that writes the same response heads and the \
         same event and frame bytes, fanning each comment out from one broadcast with a plain \
         write per connection. Same subscribers, same schedule, same measurement, on the same \
         machine seconds later. Ratios are pushlab over the floor; ⚠ marks one above the \
         {}x goal (p99 and server CPU per delivery).\n",
        num(GOAL)
    );
    out.push_str(
        "| cell | p50 | floor p50 | ratio | p99 | floor p99 | ratio | server CPU / delivery | floor | ratio |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let mut notes = Vec::new();
    for cell in &cells {
        let floor = cell.floor.as_ref().expect("filtered above");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} µs | {} µs | {} |",
            name(cell),
            format_us(cell.latency.p50_us),
            format_us(floor.p50_us),
            ratio(cell.latency.p50_us as f64, floor.p50_us as f64),
            format_us(cell.latency.p99_us),
            format_us(floor.p99_us),
            ratio(cell.latency.p99_us as f64, floor.p99_us as f64),
            num(cell.per_delivery.server_cpu_us),
            num(floor.server_cpu_us),
            ratio(cell.per_delivery.server_cpu_us, floor.server_cpu_us),
        );
        if floor.delivered < floor.expected {
            notes.push(format!(
                "- {}: the floor delivered {} of {}: its figures are not a floor.",
                name(cell),
                floor.delivered,
                floor.expected
            ));
        }
        for warning in &floor.warnings {
            notes.push(format!("- {} on the floor: {warning}", name(cell)));
        }
    }
    out.push('\n');
    if !notes.is_empty() {
        out.push_str("The floor cells' own warnings:\n\n");
        for note in notes {
            let _ = writeln!(out, "{note}");
        }
        out.push('\n');
    }
}

fn generator_cpu(out: &mut String, view: &View) {
    let cells: Vec<&CellResult> = view
        .cells
        .iter()
        .copied()
        .filter(|c| c.per_delivery.loadgen_cpu_us > 0.0)
        .collect();
    if cells.is_empty() {
        return;
    }
    out.push_str("## The load generator's CPU per delivery\n\n");
    out.push_str(
        "The load generator's whole process (subscribers, publisher, recorder) per delivery in \
         the window, beside the server's: where the generator spends more than the server, it, \
         not the server, may be what the cell measures.\n\n\
         | cell | generator CPU / delivery | server CPU / delivery | generator / server |\n\
         | --- | ---: | ---: | ---: |\n",
    );
    for cell in cells {
        let server = cell.per_delivery.server_cpu_us;
        let share = if server > 0.0 {
            let ratio = cell.per_delivery.loadgen_cpu_us / server;
            let mark = if ratio >= 1.0 { " ⚠" } else { "" };
            format!("{}x{mark}", num(ratio))
        } else {
            "–".into()
        };
        let _ = writeln!(
            out,
            "| {} | {} µs | {} µs | {share} |",
            name(cell),
            num(cell.per_delivery.loadgen_cpu_us),
            num(server),
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::results::FloorFigures;

    #[test]
    fn ratios_are_pushlab_over_the_floor_and_marked_past_the_goal() {
        assert_eq!(ratio(120.0, 100.0), "1.2x");
        assert!(ratio(200.0, 100.0).ends_with('⚠'));
        assert_eq!(ratio(1.0, 0.0), "–");
        let _ = FloorFigures::default();
    }
}
