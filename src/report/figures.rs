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

/// TCP/IP header bytes under each delivery in the window: the kernel's whole-cell header
/// bytes of the subscribers' sockets (52 B a segment), in proportion to the window's share of
/// the cell's bytes, over the deliveries in the window. `None` without the kernel's counts.
pub fn header_bytes_per_delivery(cell: &CellResult) -> Option<f64> {
    let whole = cell.agreement.client_up + cell.agreement.client_down;
    let window = cell.client.bytes_up + cell.client.bytes_down;
    let deliveries = cell.deliveries.delivered_in_window;
    if cell.kernel.header_bytes == 0 || whole == 0 || deliveries == 0 {
        return None;
    }
    Some(cell.kernel.header_bytes as f64 * share(window, whole) / deliveries as f64)
}

/// Server CPU as a percentage of one core.
pub fn server_cpu_percent(cell: &CellResult) -> f64 {
    if cell.window_seconds > 0.0 {
        cell.server.cpu_seconds / cell.window_seconds * 100.0
    } else {
        0.0
    }
}

/// Fewest deliveries a second must hold for its p99 to count: with fewer, its p99 is one or
/// two samples, the second's worst delivery rather than a percentile.
pub const SPIKE_MIN_DELIVERIES: u64 = 100;

/// How far above the window's p99 a second's p99 must be to be called a spike: less is the
/// wobble of any two seconds.
pub const SPIKE_RATIO: f64 = 1.5;

/// A second whose p99 stood well above its cell's p99 over the whole window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    pub second: u32,
    pub deliveries: u64,
    pub p99_us: u64,
    /// The cell's p99 over the whole window: the baseline, robust to any one second.
    pub window_p99_us: u64,
    pub ratio: f64,
}

/// The cell's worst second by p99 against the window's p99, among the seconds with at least
/// `SPIKE_MIN_DELIVERIES`, when it is at least `SPIKE_RATIO` times it; `None` otherwise.
pub fn biggest_spike(cell: &CellResult) -> Option<Spike> {
    let baseline = cell.latency.p99_us;
    if baseline == 0 {
        return None;
    }
    cell.timeline
        .iter()
        .filter(|t| t.deliveries >= SPIKE_MIN_DELIVERIES)
        .max_by_key(|t| (t.p99_us, std::cmp::Reverse(t.second)))
        .map(|t| Spike {
            second: t.second,
            deliveries: t.deliveries,
            p99_us: t.p99_us,
            window_p99_us: baseline,
            ratio: t.p99_us as f64 / baseline as f64,
        })
        .filter(|s| s.ratio >= SPIKE_RATIO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::results::TimelinePoint;

    fn cell(p99_us: u64, seconds: &[(u64, u64)]) -> CellResult {
        let mut cell = crate::report::fixture::one_point().cells[0].clone();
        cell.latency.p99_us = p99_us;
        cell.timeline = seconds
            .iter()
            .enumerate()
            .map(|(i, &(deliveries, p99_us))| TimelinePoint {
                second: i as u32,
                deliveries,
                p99_us,
                ..Default::default()
            })
            .collect();
        cell
    }

    #[test]
    fn headers_per_delivery_are_the_windows_share_of_the_kernels_count() {
        // baseline, WebSocket at 1,000 clients: 19.5 MB of headers over 32.4 MB of the
        // cell's bytes, 26.6 MB of them in the window's 150,000 deliveries: about 2 segments
        // (104 B) each.
        let mut c = cell(1, &[]);
        c.kernel.header_bytes = 19_511_752;
        c.agreement.client_up = 183_890;
        c.agreement.client_down = 32_231_890;
        c.client.bytes_up = 0;
        c.client.bytes_down = 26_631_000;
        c.deliveries.delivered_in_window = 150_000;
        let h = header_bytes_per_delivery(&c).unwrap();
        assert!((h - 106.9).abs() < 0.1, "{h}");
        c.kernel.header_bytes = 0;
        assert_eq!(header_bytes_per_delivery(&c), None);
    }

    #[test]
    fn a_spike_is_a_well_sampled_second_far_above_the_windows_p99() {
        // Second 2 is 3× the window's p99 over 500 deliveries: a spike.
        let spike = biggest_spike(&cell(1000, &[(500, 900), (500, 1000), (500, 3000)])).unwrap();
        assert_eq!((spike.second, spike.p99_us, spike.ratio), (2, 3000, 3.0));
    }

    #[test]
    fn a_wobble_or_a_thin_second_is_no_spike() {
        // 1.09×: the wobble the issue saw called "the biggest spike".
        assert_eq!(
            biggest_spike(&cell(1000, &[(500, 1000), (500, 1090)])),
            None
        );
        // 20 deliveries in a second: its p99 is a single sample.
        assert_eq!(biggest_spike(&cell(1000, &[(500, 1000), (20, 9000)])), None);
    }
}
