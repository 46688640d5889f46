//! What each subscriber saw: latency samples, which comments arrived, duplicates and
//! reorderings; merged at the end of a cell into one histogram, the delivery counts and the
//! second-by-second timeline.
//!
//! Latency is measured from the moment a comment was *scheduled* to be published (open-loop
//! schedule, so a stalled server shows up as latency, never as fewer samples) to the moment
//! the subscriber had parsed it. The schedule is known from the comment's sequence tag, not
//! from the publisher's POST returning, so a subscriber that sees a comment before its POST
//! returns is measured right too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::results::{Deliveries, TimelinePoint};
use crate::feed::Comment;
use crate::techniques::DeliverySink;

/// Prefix of every comment text the publisher sends, followed by a zero-padded sequence.
pub const SEQ_TAG: &str = "pushlab seq=";
/// Text of the comment that tells every subscriber the cell is over.
pub const END_TEXT: &str = "pushlab end";
/// Highest latency the histograms hold: one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The publisher's open-loop schedule: comment `seq` is due at `start + seq / rate`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    /// Time between two scheduled comments.
    pub period: Duration,
    /// The first sequence number of the measured window (warm-up ones are excluded).
    pub first_measured: u64,
    /// One past the last sequence number published.
    pub end: u64,
}

impl Schedule {
    pub fn due(&self, seq: u64) -> Instant {
        self.start + self.period.mul_f64(seq as f64)
    }

    /// When the measured window begins.
    pub fn window_start(&self) -> Instant {
        self.due(self.first_measured)
    }

    pub fn is_measured(&self, seq: u64) -> bool {
        (self.first_measured..self.end).contains(&seq)
    }

    /// The comment text for `seq`, padded with `x` to `payload_bytes`.
    pub fn text(seq: u64, payload_bytes: usize) -> String {
        let mut text = format!("{SEQ_TAG}{seq:010} ");
        while text.len() < payload_bytes {
            text.push('x');
        }
        text
    }

    /// The sequence number in a comment text, if it is one of the publisher's.
    pub fn parse_seq(text: &str) -> Option<u64> {
        let rest = text.strip_prefix(SEQ_TAG)?;
        rest.get(..10)?.parse().ok()
    }
}

/// Shared by the subscribers of a cell: live progress for the runner.
#[derive(Debug, Default)]
pub struct CellProgress {
    /// First deliveries of measured comments, over all subscribers.
    pub delivered: AtomicU64,
}

/// One latency sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    latency_us: u64,
    /// Second of the window in which the comment was received.
    second: u32,
}

/// Everything one subscriber saw. Samples are kept raw (a few bytes each) rather than in a
/// histogram per subscriber, which would cost hundreds of KiB per subscriber at three
/// significant digits.
pub struct SubscriberRecord {
    schedule: Arc<Schedule>,
    progress: Arc<CellProgress>,
    /// Ended when the end-of-cell comment arrives, so the client stops after a complete
    /// exchange and both ends count the same bytes.
    stop: CancellationToken,
    /// Which measured sequence numbers arrived, a bit each.
    seen: Vec<u64>,
    samples: Vec<Sample>,
    duplicated: u64,
    out_of_order: u64,
    /// Comments that arrived but were addressed to another subscriber.
    misdelivered: u64,
    /// The user this subscriber is, to check targeting.
    user: String,
    last_id: u64,
    /// Bytes of comment JSON received (the payload every technique must carry).
    pub payload_bytes: u64,
}

impl SubscriberRecord {
    pub fn new(
        schedule: Arc<Schedule>,
        progress: Arc<CellProgress>,
        stop: CancellationToken,
        user: String,
    ) -> Self {
        let measured = schedule.end.saturating_sub(schedule.first_measured) as usize;
        Self {
            schedule,
            progress,
            stop,
            seen: vec![0; measured.div_ceil(64)],
            samples: Vec::new(),
            duplicated: 0,
            out_of_order: 0,
            misdelivered: 0,
            user,
            last_id: 0,
            payload_bytes: 0,
        }
    }
}

impl DeliverySink for SubscriberRecord {
    fn deliver(&mut self, comment: Comment, received_at: Instant) {
        if comment.text == END_TEXT {
            self.stop.cancel();
            return;
        }
        let Some(seq) = Schedule::parse_seq(&comment.text) else {
            return;
        };
        if comment.to.as_deref().is_some_and(|to| to != self.user) {
            self.misdelivered += 1;
        }
        let duplicate = self.schedule.is_measured(seq) && {
            let index = (seq - self.schedule.first_measured) as usize;
            let (word, bit) = (index / 64, 1u64 << (index % 64));
            let was_seen = self.seen[word] & bit != 0;
            self.seen[word] |= bit;
            was_seen
        };
        if duplicate {
            self.duplicated += 1;
            return;
        }
        if comment.id <= self.last_id {
            self.out_of_order += 1;
        }
        self.last_id = self.last_id.max(comment.id);
        if !self.schedule.is_measured(seq) {
            return;
        }
        // Comment JSON as the server renders it; every technique carries these bytes.
        self.payload_bytes += serde_json::to_string(&comment).map_or(0, |json| json.len() as u64);
        let latency = received_at.saturating_duration_since(self.schedule.due(seq));
        let second = received_at
            .saturating_duration_since(self.schedule.window_start())
            .as_secs();
        self.samples.push(Sample {
            latency_us: (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US),
            second: second.min(u64::from(u32::MAX)) as u32,
        });
        self.progress.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

/// The merged view of every subscriber of a cell.
pub struct CellRecord {
    pub histogram: Histogram<u64>,
    pub deliveries: Deliveries,
    pub timeline: Vec<TimelinePoint>,
    pub misdelivered: u64,
    pub payload_bytes: u64,
}

/// A fresh latency histogram: 1 µs to one hour at three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant, valid bounds")
}

/// Merges the records; `expected` is the number of (comment, subscriber) pairs that should
/// have arrived, from the publisher's successful publishes and the audience.
pub fn merge(
    records: &[SubscriberRecord],
    expected: u64,
    comments_published: u64,
    publish_errors: u64,
    reconnects_by_second: &[u64],
) -> CellRecord {
    let mut histogram = new_histogram();
    let seconds = records
        .iter()
        .flat_map(|r| r.samples.iter().map(|s| s.second as usize + 1))
        .max()
        .unwrap_or(0)
        .max(reconnects_by_second.len());
    let mut per_second: Vec<Histogram<u64>> = Vec::new();
    let mut deliveries = Deliveries {
        comments_published,
        expected,
        publish_errors,
        ..Default::default()
    };
    let (mut misdelivered, mut payload_bytes) = (0, 0);
    for record in records {
        for sample in &record.samples {
            histogram.saturating_record(sample.latency_us);
            let second = sample.second as usize;
            while per_second.len() <= second {
                per_second.push(new_histogram());
            }
            per_second[second].saturating_record(sample.latency_us);
        }
        deliveries.delivered += record.samples.len() as u64;
        deliveries.duplicated += record.duplicated;
        deliveries.out_of_order += record.out_of_order;
        misdelivered += record.misdelivered;
        payload_bytes += record.payload_bytes;
    }
    deliveries.missing = expected.saturating_sub(deliveries.delivered);
    let timeline = (0..seconds)
        .map(|second| {
            let h = per_second.get(second);
            TimelinePoint {
                second: second as u32,
                deliveries: h.map_or(0, |h| h.len()),
                p50_us: h.map_or(0, |h| h.value_at_quantile(0.5)),
                p99_us: h.map_or(0, |h| h.value_at_quantile(0.99)),
                max_us: h.map_or(0, |h| h.max()),
                reconnects: reconnects_by_second.get(second).copied().unwrap_or(0),
            }
        })
        .collect();
    CellRecord {
        histogram,
        deliveries,
        timeline,
        misdelivered,
        payload_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(id: u64, seq: u64) -> Comment {
        Comment {
            id,
            from: "p".into(),
            to: None,
            text: Schedule::text(seq, 40),
            published_at_us: 0,
        }
    }

    #[test]
    fn counts_loss_duplicates_and_reordering_and_measures_from_the_schedule() {
        let start = Instant::now();
        let schedule = Arc::new(Schedule {
            start,
            period: Duration::from_millis(10),
            first_measured: 2,
            end: 6,
        });
        let progress = Arc::new(CellProgress::default());
        let mut record = SubscriberRecord::new(
            schedule.clone(),
            progress.clone(),
            CancellationToken::new(),
            "u".into(),
        );
        record.deliver(comment(1, 1), start); // warm-up: not measured
        record.deliver(comment(3, 2), start + Duration::from_millis(25)); // 5 ms late
        record.deliver(comment(3, 2), start + Duration::from_millis(26)); // duplicate
        record.deliver(comment(5, 4), start + Duration::from_millis(45));
        record.deliver(comment(4, 3), start + Duration::from_millis(46)); // out of order
        let merged = merge(&[record], 4, 4, 0, &[]);
        assert_eq!(merged.deliveries.delivered, 3);
        assert_eq!(merged.deliveries.missing, 1);
        assert_eq!(merged.deliveries.duplicated, 1);
        assert_eq!(merged.deliveries.out_of_order, 1);
        assert_eq!(progress.delivered.load(Ordering::Relaxed), 3);
        let p0 = merged.histogram.min();
        assert!((4_990..=5_010).contains(&p0), "{p0}");
        assert_eq!(Schedule::parse_seq(&Schedule::text(123, 100)), Some(123));
        assert_eq!(Schedule::text(1, 100).len(), 100);
    }
}
