//! What the report computes from one cell: its flags (the problems every chart and the
//! report mark), and the rates it plots. Pure functions of a `CellResult`.

use super::fmt::{int, num};
use crate::model::results::CellResult;

/// A cell's problems, each a short phrase: the runner's warnings plus what the report checks
/// itself (loss, duplicates, drops, generator-bound, bytes disagreement, failed publishes), so no
/// loss goes unmentioned even if the runner forgot to warn.
pub fn cell_flags(cell: &CellResult) -> Vec<String> {
    let d = &cell.deliveries;
    let mut flags = Vec::new();
    if d.missing > 0 {
        flags.push(format!(
            "{}% missing",
            num(share(d.missing, d.expected) * 100.0)
        ));
    }
    if d.duplicated > 0 {
        flags.push(format!("{} duplicated", int(d.duplicated)));
    }
    if d.out_of_order > 0 {
        flags.push(format!("{} out of order", int(d.out_of_order)));
    }
    if d.publish_errors > 0 {
        flags.push(format!("{} failed publishes", int(d.publish_errors)));
    }
    if cell.server.dropped_slow > 0 {
        flags.push(format!("{} dropped as slow", int(cell.server.dropped_slow)));
    }
    if cell.loadgen.generator_bound {
        flags.push("generator-bound".into());
    }
    if !cell.agreement.equal && !server_restarted(cell) && !cell.server_unavailable {
        flags.push("byte counts disagree".into());
    }
    if flags.is_empty() && !cell.warnings.is_empty() {
        flags.push("see warnings".into());
    }
    flags
}

/// The first two flags, for chart labels where space is short.
pub fn short_flags(cell: &CellResult) -> Option<String> {
    let flags = cell_flags(cell);
    if flags.is_empty() {
        None
    } else {
        Some(flags.into_iter().take(2).collect::<Vec<_>>().join(", "))
    }
}

/// True when a server of the cell restarted in it: its whole-cell counts start again, so the
/// ends' bytes are not compared (the restart warning says why).
pub fn server_restarted(cell: &CellResult) -> bool {
    cell.faults.as_ref().is_some_and(|f| f.restarts > 0)
        || cell.instances.iter().any(|i| i.restarted)
}

pub fn has_warnings(cell: &CellResult) -> bool {
    !cell_flags(cell).is_empty()
}

/// `part / whole`, 0 when `whole` is 0.
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Bytes per second on the subscribers' sockets, both directions.
pub fn wire_bytes_per_second(cell: &CellResult) -> f64 {
    per_second(cell.client.bytes_up + cell.client.bytes_down, cell)
}

/// Comment payload bytes per second delivered to subscribers.
pub fn payload_bytes_per_second(cell: &CellResult) -> f64 {
    per_second(cell.client.payload_bytes_delivered, cell)
}

fn per_second(bytes: u64, cell: &CellResult) -> f64 {
    if cell.window_seconds > 0.0 {
        bytes as f64 / cell.window_seconds
    } else {
        0.0
    }
}

/// Server CPU as a percentage of one core.
pub fn server_cpu_percent(cell: &CellResult) -> f64 {
    if cell.window_seconds > 0.0 {
        cell.server.cpu_seconds / cell.window_seconds * 100.0
    } else {
        0.0
    }
}
