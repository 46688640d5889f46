//! What a reader must know before trusting a cell, one variant per rule with the numbers that
//! tripped it, and the one place they are rendered to text. The text is what
//! `summary.json`, the report, the CSV and the terminal table carry, and published reports
//! quote it, so each wording is fixed: change a variant's numbers, never its sentence.
//!
//! Plain data on purpose: this file uses nothing of the load generator, so it can sit with
//! the results types below everything else. The rules that raise these live in `assemble`.

use std::fmt;
use std::time::Duration;

use crate::report::fmt::format_us;

/// One rule's finding about a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// Expected (comment, subscriber) pairs that never arrived.
    Loss {
        missing: u64,
        expected: u64,
    },
    /// Subscribers not yet connected when publishing began.
    NotAllReady {
        ready: u64,
        clients: u32,
    },
    /// The end-of-cell comment could not be published.
    EndCommentFailed {
        error: String,
    },
    /// Subscribers still running `after` the end-of-cell comment, then cancelled.
    SubscribersCutOff {
        still_running: usize,
        after: Duration,
    },
    /// Subscriber tasks that ended without handing back their record.
    FailedTasks {
        failed: usize,
    },
    /// The kernel's `TCP_INFO` totals differ from the stream counts by more than SYN and FIN.
    KernelMismatch {
        acked: u64,
        sent: u64,
        received: u64,
        read: u64,
        sockets: u64,
    },
    /// The two ends counted different bytes over the whole cell.
    BytesDisagree {
        client_up: u64,
        server_in: u64,
        server_out: u64,
        client_down: u64,
    },
    /// The sums agree but one instance's bytes do not.
    InstanceBytesDisagree {
        url: String,
        client_up: u64,
        server_in: u64,
        server_out: u64,
        client_down: u64,
    },
    Duplicates {
        count: u64,
    },
    OutOfOrder {
        count: u64,
    },
    /// Deliveries of comments whose publish the generator saw fail.
    UnexpectedDeliveries {
        count: u64,
    },
    /// The subscribers' runtime woke a 1 ms timer this late (p99 and worst), microseconds.
    RuntimeLag {
        p99_us: u64,
        max_us: u64,
    },
    /// Server and generator together used `used_cores` of the machine's `cores`.
    MachineSaturated {
        used_cores: f64,
        cores: usize,
    },
    /// Comments that reached a subscriber they were not addressed to.
    Misdelivered {
        count: u64,
    },
    /// Measured publishes that failed, and the first failure's text.
    PublishErrors {
        count: u64,
        first: String,
    },
    DroppedSlow {
        count: u64,
    },
    /// The generator's CPU use within the window, in cores.
    GeneratorBound {
        core_share: f64,
    },
    /// How far the publisher fired behind its schedule, microseconds.
    PublisherLate {
        max_us: u64,
        mean_us: f64,
    },
    /// Client errors within the window.
    ClientErrors {
        count: u64,
    },
    /// The cell drove a server the load generator did not start.
    ExternalTarget,
    /// Redis's `INFO` could not be read at the window's start or end.
    RedisUnread {
        error: String,
    },
    /// The server has no `/stats`.
    ServerUnavailable,
    /// Expected deliveries lost because the server restarted, and how many times
    /// subscribers were told so (a 410 naming the restart).
    LostToRestart {
        lost: u64,
        expected: u64,
        restarts_seen: u64,
    },
    /// The server's start time in `/stats` changed between two snapshots the cell
    /// subtracts: its counts were not subtracted across the restart.
    ServerRestarted,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Loss { missing, expected } => write!(
                f,
                "LOSS: {missing} of {expected} expected deliveries never arrived"
            ),
            Warning::NotAllReady { ready, clients } => write!(
                f,
                "only {ready} of {clients} subscribers were connected when publishing began; the others \
                 connected during the cell (resuming from the start cursor, so nothing was lost)"
            ),
            Warning::EndCommentFailed { error } => {
                write!(f, "could not publish the end-of-cell comment: {error}")
            }
            Warning::SubscribersCutOff {
                still_running,
                after,
            } => write!(
                f,
                "{still_running} subscribers had not stopped {after:?} after the end-of-cell comment; they were cut off, \
                 so the byte comparison may differ by what was in flight"
            ),
            Warning::FailedTasks { failed } => write!(
                f,
                "{failed} subscriber tasks failed; their expected comments count as missing"
            ),
            Warning::KernelMismatch {
                acked,
                sent,
                received,
                read,
                sockets,
            } => write!(
                f,
                "the kernel's count differs from the stream count by more than SYN and FIN: \
                 acknowledged {acked} B of {sent} B sent, received {received} B where {read} B were read ({sockets} sockets)"
            ),
            Warning::BytesDisagree {
                client_up,
                server_in,
                server_out,
                client_down,
            } => write!(
                f,
                "bytes differ between the ends: client sent {client_up} B, server received {server_in} B; server sent {server_out} B, client received {client_down} B"
            ),
            Warning::InstanceBytesDisagree {
                url,
                client_up,
                server_in,
                server_out,
                client_down,
            } => write!(
                f,
                "bytes differ between the ends at instance {url}: its clients sent {client_up} B, it received {server_in} B; it sent {server_out} B, its clients received {client_down} B"
            ),
            Warning::Duplicates { count } => write!(f, "{count} duplicate deliveries"),
            Warning::OutOfOrder { count } => write!(f, "{count} deliveries out of id order"),
            Warning::UnexpectedDeliveries { count } => write!(
                f,
                "{count} deliveries of comments whose publish the generator saw fail (the server stored them anyway)"
            ),
            Warning::RuntimeLag { p99_us, max_us } => write!(
                f,
                "the generator's runtime woke timers up to {} late (p99 {}): deliveries may have waited that long \
                 in the generator before being timestamped",
                format_us(*max_us),
                format_us(*p99_us)
            ),
            Warning::MachineSaturated { used_cores, cores } => write!(
                f,
                "the machine was saturated: server and generator together used {:.0}% of its {cores} cores",
                used_cores * 100.0 / *cores as f64
            ),
            Warning::Misdelivered { count } => write!(
                f,
                "{count} comments reached a subscriber they were not addressed to"
            ),
            Warning::PublishErrors { count, first } => {
                write!(f, "{count} publishes failed (first: {first})")
            }
            Warning::DroppedSlow { count } => {
                write!(f, "the server dropped {count} slow subscribers")
            }
            Warning::GeneratorBound { core_share } => write!(
                f,
                "possibly generator-bound: the load generator used {:.0}% of a core",
                core_share * 100.0
            ),
            Warning::PublisherLate { max_us, mean_us } => write!(
                f,
                "the publisher fired up to {} behind schedule (mean {mean_us:.0} µs): that much of the latency is the generator's",
                format_us(*max_us)
            ),
            Warning::ClientErrors { count } => write!(
                f,
                "{count} client errors in the window (connection or stream failures)"
            ),
            Warning::ExternalTarget => f.write_str(
                "external server: its CPU, memory and counters include anything else it served",
            ),
            Warning::RedisUnread { error } => write!(
                f,
                "Redis's INFO could not be read ({error}): its CPU, commands and memory in the window are not reported"
            ),
            Warning::ServerUnavailable => f.write_str(
                "the server has no /stats: its figures (requests, bytes, CPU, memory) are unavailable, and bytes were counted at the subscribers only",
            ),
            Warning::LostToRestart {
                lost,
                expected,
                restarts_seen,
            } => write!(
                f,
                "RESTART: {lost} of {expected} expected deliveries were lost to a server restart \
                 (comments the earlier server held that subscribers had not read, or published while it \
                 was down); subscribers were told {restarts_seen} times by a 410 and resumed from the \
                 oldest comment kept, so this is not counted as LOSS"
            ),
            Warning::ServerRestarted => f.write_str(
                "the server restarted during the cell (its start time in /stats changed): its counters \
                 were not subtracted across the restart, so its figures for the cell (bytes, requests, \
                 CPU) are left at zero and the byte comparison is skipped",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant against the sentence the runner wrote before warnings were typed,
    /// spelled out in full: published reports quote these.
    #[test]
    fn renders_the_published_wording() {
        let mut cases = wording_around_the_window();
        cases.extend(wording_of_the_figures());
        assert_eq!(cases.len(), 24, "one case per variant");
        for (warning, text) in cases {
            assert_eq!(warning.to_string(), text, "{warning:?}");
        }
    }

    fn wording_around_the_window() -> Vec<(Warning, &'static str)> {
        vec![
            (
                Warning::Loss {
                    missing: 3,
                    expected: 400,
                },
                "LOSS: 3 of 400 expected deliveries never arrived",
            ),
            (
                Warning::NotAllReady {
                    ready: 7,
                    clients: 10,
                },
                "only 7 of 10 subscribers were connected when publishing began; the others connected during the cell (resuming from the start cursor, so nothing was lost)",
            ),
            (
                Warning::EndCommentFailed {
                    error: "connection refused".into(),
                },
                "could not publish the end-of-cell comment: connection refused",
            ),
            (
                Warning::SubscribersCutOff {
                    still_running: 2,
                    after: Duration::from_secs(6),
                },
                "2 subscribers had not stopped 6s after the end-of-cell comment; they were cut off, so the byte comparison may differ by what was in flight",
            ),
            (
                Warning::FailedTasks { failed: 1 },
                "1 subscriber tasks failed; their expected comments count as missing",
            ),
            (
                Warning::KernelMismatch {
                    acked: 1_000,
                    sent: 900,
                    received: 2_000,
                    read: 1_990,
                    sockets: 5,
                },
                "the kernel's count differs from the stream count by more than SYN and FIN: acknowledged 1000 B of 900 B sent, received 2000 B where 1990 B were read (5 sockets)",
            ),
            (
                Warning::BytesDisagree {
                    client_up: 10,
                    server_in: 11,
                    server_out: 20,
                    client_down: 19,
                },
                "bytes differ between the ends: client sent 10 B, server received 11 B; server sent 20 B, client received 19 B",
            ),
            (
                Warning::InstanceBytesDisagree {
                    url: "http://127.0.0.1:9".into(),
                    client_up: 10,
                    server_in: 11,
                    server_out: 20,
                    client_down: 20,
                },
                "bytes differ between the ends at instance http://127.0.0.1:9: its clients sent 10 B, it received 11 B; it sent 20 B, its clients received 20 B",
            ),
        ]
    }

    fn wording_of_the_figures() -> Vec<(Warning, &'static str)> {
        vec![
            (Warning::Duplicates { count: 4 }, "4 duplicate deliveries"),
            (
                Warning::OutOfOrder { count: 5 },
                "5 deliveries out of id order",
            ),
            (
                Warning::UnexpectedDeliveries { count: 6 },
                "6 deliveries of comments whose publish the generator saw fail (the server stored them anyway)",
            ),
            (
                Warning::RuntimeLag {
                    p99_us: 2_040,
                    max_us: 2_900,
                },
                "the generator's runtime woke timers up to 2.9 ms late (p99 2.0 ms): deliveries may have waited that long in the generator before being timestamped",
            ),
            (
                Warning::MachineSaturated {
                    used_cores: 1.9,
                    cores: 2,
                },
                "the machine was saturated: server and generator together used 95% of its 2 cores",
            ),
            (
                Warning::Misdelivered { count: 7 },
                "7 comments reached a subscriber they were not addressed to",
            ),
            (
                Warning::PublishErrors {
                    count: 8,
                    first: "timed out after 30s".into(),
                },
                "8 publishes failed (first: timed out after 30s)",
            ),
            (
                Warning::DroppedSlow { count: 9 },
                "the server dropped 9 slow subscribers",
            ),
            (
                Warning::GeneratorBound { core_share: 0.56 },
                "possibly generator-bound: the load generator used 56% of a core",
            ),
            (
                Warning::PublisherLate {
                    max_us: 12_300,
                    mean_us: 420.4,
                },
                "the publisher fired up to 12.3 ms behind schedule (mean 420 µs): that much of the latency is the generator's",
            ),
            (
                Warning::ClientErrors { count: 11 },
                "11 client errors in the window (connection or stream failures)",
            ),
            (
                Warning::ExternalTarget,
                "external server: its CPU, memory and counters include anything else it served",
            ),
            (
                Warning::RedisUnread {
                    error: "timed out".into(),
                },
                "Redis's INFO could not be read (timed out): its CPU, commands and memory in the window are not reported",
            ),
            (
                Warning::ServerUnavailable,
                "the server has no /stats: its figures (requests, bytes, CPU, memory) are unavailable, and bytes were counted at the subscribers only",
            ),
            (
                Warning::LostToRestart {
                    lost: 12,
                    expected: 400,
                    restarts_seen: 20,
                },
                "RESTART: 12 of 400 expected deliveries were lost to a server restart (comments the earlier server held that subscribers had not read, or published while it was down); subscribers were told 20 times by a 410 and resumed from the oldest comment kept, so this is not counted as LOSS",
            ),
            (
                Warning::ServerRestarted,
                "the server restarted during the cell (its start time in /stats changed): its counters were not subtracted across the restart, so its figures for the cell (bytes, requests, CPU) are left at zero and the byte comparison is skipped",
            ),
        ]
    }
}
