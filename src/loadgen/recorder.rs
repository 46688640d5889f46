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

use super::faults::FaultSlot;
use crate::feed::Comment;
use crate::model::results::{Deliveries, TimelinePoint};
use crate::techniques::{DeliverySink, Gone, GoneCause};

/// Prefix of every comment text the publisher sends, followed by a zero-padded sequence.
pub const SEQ_TAG: &str = "pushlab seq=";
/// Text of the comment that tells every subscriber the cell is over.
pub const END_TEXT: &str = "pushlab end";
/// Highest latency the histograms hold: one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The publisher's open-loop schedule: comment `seq` is due at `start + seq / rate`. The
/// start is fixed only once every subscriber is connected, so the subscribers are made with
/// the schedule's shape and learn its start through `ScheduleStart`.
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

/// The schedule, set once the cell starts publishing.
pub type ScheduleStart = Arc<std::sync::OnceLock<Schedule>>;

impl Schedule {
    pub fn due(&self, seq: u64) -> Instant {
        self.start + self.period.mul_f64(seq as f64)
    }

    /// When the measured window begins: half a period before the first measured comment is
    /// due, so the counters' snapshot at the boundary, taken a little late, cannot miss that
    /// comment's bytes while its deliveries count as the window's.
    pub fn window_start(&self) -> Instant {
        self.half_period_before(self.first_measured)
    }

    /// When the measured window ends: half a period after the last measured comment was due.
    pub fn window_end(&self) -> Instant {
        self.half_period_before(self.end)
    }

    fn half_period_before(&self, seq: u64) -> Instant {
        let due = self.due(seq);
        due.checked_sub(self.period / 2).unwrap_or(due)
    }

    pub fn is_measured(&self, seq: u64) -> bool {
        (self.first_measured..self.end).contains(&seq)
    }

    /// How many comments are measured.
    pub fn measured(&self) -> usize {
        self.end.saturating_sub(self.first_measured) as usize
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
    /// When the comment was received, microseconds after the window began.
    received_us: u64,
}

/// A set of measured sequence numbers, a bit each.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    pub fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// Adds `index`; returns whether it was already there.
    pub fn insert(&mut self, index: usize) -> bool {
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        let Some(slot) = self.words.get_mut(word) else {
            return false;
        };
        let was = *slot & bit != 0;
        *slot |= bit;
        was
    }

    /// How many are in the set.
    pub fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members, in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.words.len() * 64).filter(|i| self.contains(*i))
    }

    pub fn contains(&self, index: usize) -> bool {
        self.words
            .get(index / 64)
            .is_some_and(|w| w & (1u64 << (index % 64)) != 0)
    }
}

/// Everything one subscriber saw. Samples are kept raw (a few bytes each) rather than in a
/// histogram per subscriber, which would cost hundreds of KiB per subscriber at three
/// significant digits.
pub struct SubscriberRecord {
    schedule: ScheduleStart,
    progress: Arc<CellProgress>,
    /// Ended when the end-of-cell comment arrives, so the client stops after a complete
    /// exchange and both ends count the same bytes.
    stop: CancellationToken,
    /// Which measured comments arrived (by `seq - first_measured`).
    seen: SeqSet,
    samples: Vec<Sample>,
    duplicated: u64,
    out_of_order: u64,
    /// Comments that arrived but were addressed to another subscriber: not counted as
    /// deliveries, so a misrouted comment cannot hide the loss of the right one.
    misdelivered: u64,
    /// The user this subscriber is, to check targeting.
    user: String,
    /// Times this subscriber learned that the server had restarted.
    restarts: u64,
    last_id: u64,
    /// Bytes of comment JSON received (the payload every technique must carry).
    pub payload_bytes: u64,
    /// First deliveries received within the window, of any comment (see `deliver`).
    in_window: u64,
    /// The highest sequence number delivered so far.
    last_seq: Option<u64>,
    /// Spans of sequence numbers lost to a server restart: from the last one delivered
    /// before the subscriber learned of it (exclusive) to the first one after (exclusive;
    /// `None` until it arrives).
    restart_gaps: Vec<(Option<u64>, Option<u64>)>,
    /// This subscriber's fault state, in cells with faults.
    fault: Option<Arc<FaultSlot>>,
}

impl SubscriberRecord {
    /// A record for `measured` comments, learning the schedule's start from `schedule`.
    pub fn new(
        schedule: ScheduleStart,
        measured: usize,
        progress: Arc<CellProgress>,
        stop: CancellationToken,
        user: String,
    ) -> Self {
        Self {
            schedule,
            progress,
            stop,
            seen: SeqSet::new(measured),
            samples: Vec::new(),
            duplicated: 0,
            out_of_order: 0,
            misdelivered: 0,
            user,
            restarts: 0,
            last_id: 0,
            payload_bytes: 0,
            in_window: 0,
            last_seq: None,
            restart_gaps: Vec::new(),
            fault: None,
        }
    }

    /// Shares this subscriber's fault state with the injector.
    pub fn with_fault(mut self, slot: Arc<FaultSlot>) -> Self {
        self.fault = Some(slot);
        self
    }

    /// The last sequence number this subscriber may be expected to have: the last it had
    /// before it closed for good (`close_page`); `None` when it stayed.
    fn horizon(&self) -> Option<u64> {
        self.fault
            .as_ref()
            .filter(|slot| slot.has_left())
            .map(|_| self.last_seq.unwrap_or(0))
    }

    /// Whether sequence number `seq` falls in a span lost to a restart.
    fn lost_to_restart(&self, seq: u64) -> bool {
        self.restart_gaps.iter().any(|(after, before)| {
            after.is_none_or(|after| seq > after) && before.is_none_or(|before| seq < before)
        })
    }
}

impl DeliverySink for SubscriberRecord {
    fn deliver(&mut self, comment: Comment, received_at: Instant) {
        if comment.text == END_TEXT {
            self.stop.cancel();
            return;
        }
        let (Some(seq), Some(schedule)) = (Schedule::parse_seq(&comment.text), self.schedule.get())
        else {
            return;
        };
        if let Some(slot) = &self.fault {
            slot.delivered(received_at);
        }
        if comment.to.as_deref().is_some_and(|to| to != self.user) {
            self.misdelivered += 1;
            return;
        }
        let duplicate =
            schedule.is_measured(seq) && self.seen.insert((seq - schedule.first_measured) as usize);
        if duplicate {
            self.duplicated += 1;
            return;
        }
        if comment.id <= self.last_id {
            self.out_of_order += 1;
        }
        // The first comment after a restart closes the span lost to it.
        if let Some(gap) = self.restart_gaps.last_mut().filter(|gap| gap.1.is_none()) {
            gap.1 = Some(seq);
        }
        self.last_seq = self.last_seq.max(Some(seq));
        self.last_id = self.last_id.max(comment.id);
        // Every delivery received within the window, warm-up comments included: the window's
        // bytes, requests and CPU carried them all.
        if (schedule.window_start()..schedule.window_end()).contains(&received_at) {
            self.in_window += 1;
        }
        if !schedule.is_measured(seq) {
            return;
        }
        // Comment JSON as the server renders it; every technique carries these bytes.
        self.payload_bytes += serde_json::to_string(&comment).map_or(0, |json| json.len() as u64);
        let latency = received_at.saturating_duration_since(schedule.due(seq));
        let received = received_at.saturating_duration_since(schedule.window_start());
        self.samples.push(Sample {
            latency_us: (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US),
            received_us: received.as_micros() as u64,
        });
        self.progress.delivered.fetch_add(1, Ordering::Relaxed);
    }

    fn connected(&mut self) {
        if let Some(slot) = &self.fault {
            slot.connected();
        }
    }

    /// A restart opens a span of lost sequence numbers; an eviction is plain loss (the
    /// server kept running and dropped what the subscriber had not read).
    fn cursor_gone(&mut self, gone: &Gone) {
        if gone.cause == GoneCause::Restart {
            self.restarts += 1;
            if self.restart_gaps.last().is_none_or(|gap| gap.1.is_some()) {
                self.restart_gaps.push((self.last_seq, None));
            }
            // A new incarnation's ids are its own: order checks start afresh.
            self.last_id = 0;
        }
    }
}

/// The merged view of every subscriber of a cell.
pub struct CellRecord {
    pub histogram: Histogram<u64>,
    /// Latencies by the second of the window they arrived in, behind `timeline`: kept so
    /// shards can be merged exactly (`<stem>.seconds.hist`).
    pub per_second: Vec<Histogram<u64>>,
    pub deliveries: Deliveries,
    pub timeline: Vec<TimelinePoint>,
    pub misdelivered: u64,
    /// Pairs that arrived although the publisher never saw their comment accepted (a POST
    /// that failed after the server stored the comment).
    pub unexpected: u64,
    pub payload_bytes: u64,
    /// Restarts the subscribers learned of (one per subscriber per restart).
    pub restarts_seen: u64,
}

/// A fresh latency histogram: 1 µs to one hour at three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant, valid bounds")
}

/// What each subscriber should have received: the measured comments the server accepted,
/// and whether each went to everyone or to one subscriber in turn.
pub struct Expectation<'a> {
    pub schedule: &'a Schedule,
    /// Accepted measured comments, by `seq - first_measured`.
    pub accepted: &'a SeqSet,
    /// `Some(n)`: comment `seq` went to user `seq % n` only.
    pub per_user: Option<u64>,
    /// Subscribers per user: subscriber `i` is user `i / tabs`'s.
    pub tabs: u64,
    pub publish_errors: u64,
}

impl Expectation<'_> {
    fn expects(&self, subscriber: usize, index: usize) -> bool {
        self.accepted.contains(index)
            && self.per_user.is_none_or(|n| {
                (self.schedule.first_measured + index as u64) % n
                    == subscriber as u64 / self.tabs.max(1)
            })
    }
}

/// Merges the records (in subscriber order), checking every (comment, subscriber) pair
/// against what was expected.
pub fn merge(
    records: &[Option<SubscriberRecord>],
    expect: &Expectation<'_>,
    reconnects_by_second: &[u64],
) -> CellRecord {
    merge_share(records.iter().enumerate(), expect).finish(reconnects_by_second)
}

/// A share of a cell's subscribers merged, to be added to the other shares' (worker
/// processes, shards): histograms rather than percentiles, so adding them is exact.
#[derive(Debug, Clone)]
pub struct PartialRecord {
    pub histogram: Histogram<u64>,
    /// Latencies by the second of the window they were received in.
    pub per_second: Vec<Histogram<u64>>,
    pub deliveries: Deliveries,
    pub misdelivered: u64,
    pub unexpected: u64,
    pub payload_bytes: u64,
    pub restarts_seen: u64,
}

impl PartialRecord {
    /// Adds another share's record. The cell-wide figures (comments published, publish
    /// errors) are the same in every share and are kept, not added.
    pub fn add(&mut self, other: &PartialRecord) {
        self.histogram.add(&other.histogram).expect("same bounds");
        for (second, h) in other.per_second.iter().enumerate() {
            if self.per_second.len() <= second {
                self.per_second.push(new_histogram());
            }
            self.per_second[second].add(h).expect("same bounds");
        }
        self.deliveries.add_pairs(&other.deliveries);
        self.misdelivered += other.misdelivered;
        self.unexpected += other.unexpected;
        self.payload_bytes += other.payload_bytes;
        self.restarts_seen += other.restarts_seen;
    }

    /// The cell's record, with its second-by-second timeline.
    pub fn finish(self, reconnects_by_second: &[u64]) -> CellRecord {
        let per_second = &self.per_second;
        let seconds = per_second.len().max(reconnects_by_second.len());
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
            histogram: self.histogram,
            per_second: self.per_second,
            deliveries: self.deliveries,
            timeline,
            misdelivered: self.misdelivered,
            unexpected: self.unexpected,
            payload_bytes: self.payload_bytes,
            restarts_seen: self.restarts_seen,
        }
    }
}

/// Merges a share of the subscribers' records, each with its index among all of the cell's
/// subscribers (per-user expectations depend on it), checking every (comment, subscriber)
/// pair against what was expected.
pub fn merge_share<'a>(
    records: impl IntoIterator<Item = (usize, &'a Option<SubscriberRecord>)>,
    expect: &Expectation<'_>,
) -> PartialRecord {
    let mut histogram = new_histogram();
    let mut per_second: Vec<Histogram<u64>> = Vec::new();
    let measured = expect.schedule.measured();
    let mut deliveries = Deliveries {
        comments_published: expect.accepted.len(),
        publish_errors: expect.publish_errors,
        ..Default::default()
    };
    let (mut misdelivered, mut unexpected, mut payload_bytes) = (0, 0, 0);
    let mut restarts_seen = 0;
    for (subscriber, record) in records {
        let Some(record) = record else {
            // A subscriber whose task failed: everything it should have had is missing.
            let expected = (0..measured)
                .filter(|i| expect.expects(subscriber, *i))
                .count() as u64;
            deliveries.expected += expected;
            deliveries.missing += expected;
            continue;
        };
        for sample in &record.samples {
            histogram.saturating_record(sample.latency_us);
            let second = (sample.received_us / 1_000_000) as usize;
            while per_second.len() <= second {
                per_second.push(new_histogram());
            }
            per_second[second].saturating_record(sample.latency_us);
        }
        deliveries.delivered_in_window += record.in_window;
        let horizon = record.horizon();
        for index in 0..measured {
            let seq = expect.schedule.first_measured + index as u64;
            let (expected, seen) = (
                expect.expects(subscriber, index) && horizon.is_none_or(|last| seq <= last),
                record.seen.contains(index),
            );
            deliveries.expected += u64::from(expected);
            if expected && !seen {
                if record.lost_to_restart(seq) {
                    deliveries.lost_to_restart += 1;
                } else {
                    deliveries.missing += 1;
                }
            }
            unexpected += u64::from(seen && !expected);
        }
        deliveries.delivered += record.samples.len() as u64;
        deliveries.duplicated += record.duplicated;
        deliveries.out_of_order += record.out_of_order;
        misdelivered += record.misdelivered;
        payload_bytes += record.payload_bytes;
        restarts_seen += record.restarts;
    }
    PartialRecord {
        histogram,
        per_second,
        deliveries,
        misdelivered,
        unexpected,
        payload_bytes,
        restarts_seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule already started, as the runner sets it.
    fn started(schedule: Schedule) -> ScheduleStart {
        let started: ScheduleStart = Arc::default();
        started.set(schedule).unwrap();
        started
    }

    /// Every one of `n` measured comments accepted.
    fn all_accepted(n: usize) -> SeqSet {
        let mut accepted = SeqSet::new(n);
        for i in 0..n {
            accepted.insert(i);
        }
        assert_eq!(accepted.len(), n as u64);
        accepted
    }

    fn comment(id: u64, seq: u64, to: Option<&str>) -> Comment {
        Comment {
            id,
            from: "p".into(),
            to: to.map(Into::into),
            text: Schedule::text(seq, 40),
            published_at_us: 0,
        }
    }

    #[test]
    fn counts_loss_duplicates_reordering_and_misrouting_per_pair() {
        let start = Instant::now();
        let schedule = Schedule {
            start,
            period: Duration::from_millis(10),
            first_measured: 2,
            end: 6,
        };
        let started = started(schedule);
        let progress = Arc::new(CellProgress::default());
        let new_record = |user: &str| {
            SubscriberRecord::new(
                started.clone(),
                4,
                progress.clone(),
                CancellationToken::new(),
                user.into(),
            )
        };
        let mut record = new_record("u");
        record.deliver(comment(1, 1, None), start); // warm-up: not measured
        record.deliver(comment(3, 2, None), start + Duration::from_millis(25)); // 5 ms late
        record.deliver(comment(3, 2, None), start + Duration::from_millis(26)); // duplicate
        record.deliver(comment(5, 4, None), start + Duration::from_millis(45));
        record.deliver(comment(4, 3, None), start + Duration::from_millis(46)); // out of order
        record.deliver(comment(6, 5, Some("v")), start + Duration::from_millis(56)); // misrouted
        let accepted = all_accepted(4);
        let expect = Expectation {
            schedule: &schedule,
            accepted: &accepted,
            per_user: None,
            tabs: 1,
            publish_errors: 0,
        };
        let merged = merge(&[Some(record)], &expect, &[]);
        let d = merged.deliveries;
        assert_eq!((d.expected, d.delivered, d.missing), (4, 3, 1), "{d:?}");
        assert_eq!((d.duplicated, d.out_of_order), (1, 1), "{d:?}");
        // The window runs from seq 2's due time (20 ms) to seq 6's (60 ms): the deliveries at
        // 25, 45 and 46 ms fall in it, the warm-up one at 0 ms does not.
        assert_eq!(d.delivered_in_window, 3, "{d:?}");
        assert_eq!(merged.misdelivered, 1);
        assert_eq!(progress.delivered.load(Ordering::Relaxed), 3);
        let p0 = merged.histogram.min();
        assert!((4_990..=5_010).contains(&p0), "{p0}");
        assert_eq!(Schedule::parse_seq(&Schedule::text(123, 100)), Some(123));
        assert_eq!(Schedule::text(1, 100).len(), 100);
    }

    /// Four comments, 1 ms apart, all measured, and one record per listed user.
    fn per_user_records(users: &[&str]) -> (Schedule, Vec<SubscriberRecord>) {
        let schedule = Schedule {
            start: Instant::now(),
            period: Duration::from_millis(1),
            first_measured: 0,
            end: 4,
        };
        let started = started(schedule);
        let progress = Arc::new(CellProgress::default());
        let records = users
            .iter()
            .map(|u| {
                SubscriberRecord::new(
                    started.clone(),
                    4,
                    progress.clone(),
                    CancellationToken::new(),
                    (*u).into(),
                )
            })
            .collect();
        (schedule, records)
    }

    #[test]
    fn every_tab_of_a_user_expects_that_users_comments() {
        // Two users with two tabs each: subscribers 0 and 1 are user-0's, 2 and 3 user-1's.
        let (schedule, mut records) = per_user_records(&["user-0", "user-0", "user-1", "user-1"]);
        // user-0's second tab replaced its first, which then got nothing.
        records[1].deliver(comment(1, 0, Some("user-0")), schedule.start);
        records[1].deliver(comment(3, 2, Some("user-0")), schedule.start);
        for tab in [2, 3] {
            records[tab].deliver(comment(2, 1, Some("user-1")), schedule.start);
            records[tab].deliver(comment(4, 3, Some("user-1")), schedule.start);
        }
        let accepted = all_accepted(4);
        let expect = Expectation {
            schedule: &schedule,
            accepted: &accepted,
            per_user: Some(2),
            tabs: 2,
            publish_errors: 0,
        };
        let records: Vec<_> = records.into_iter().map(Some).collect();
        let d = merge(&records, &expect, &[]).deliveries;
        assert_eq!((d.expected, d.delivered, d.missing), (8, 6, 2), "{d:?}");
    }

    #[test]
    fn per_user_expectations_follow_the_round_robin() {
        let (schedule, mut records) = per_user_records(&["user-0", "user-1"]);
        // user-0 gets 0 and 2; user-1 gets only 1 (3 is lost).
        records[0].deliver(comment(1, 0, Some("user-0")), schedule.start);
        records[0].deliver(comment(3, 2, Some("user-0")), schedule.start);
        records[1].deliver(comment(2, 1, Some("user-1")), schedule.start);
        let accepted = all_accepted(4);
        let expect = Expectation {
            schedule: &schedule,
            accepted: &accepted,
            per_user: Some(2),
            tabs: 1,
            publish_errors: 0,
        };
        let records: Vec<_> = records.into_iter().map(Some).collect();
        let d = merge(&records, &expect, &[]).deliveries;
        assert_eq!((d.expected, d.delivered, d.missing), (4, 3, 1), "{d:?}");
    }

    /// A subscriber told of a restart after seq 1 that resumes at seq 4: 2 and 3 are lost to
    /// the restart, not missing; 5, never delivered later, is plain loss.
    #[test]
    fn a_restart_gap_counts_as_lost_to_restart_not_loss() {
        use crate::techniques::{Gone, GoneCause};
        let schedule = Schedule {
            start: Instant::now(),
            period: Duration::from_millis(1),
            first_measured: 0,
            end: 7,
        };
        let started = started(schedule);
        let mut record = SubscriberRecord::new(
            started,
            7,
            Arc::new(CellProgress::default()),
            CancellationToken::new(),
            "u".into(),
        );
        record.deliver(comment(100, 0, None), schedule.start);
        record.deliver(comment(101, 1, None), schedule.start);
        record.cursor_gone(&Gone {
            cause: GoneCause::Restart,
            cursor: 101,
            resume_after: 5_000,
        });
        record.deliver(comment(5_001, 4, None), schedule.start);
        record.deliver(comment(5_003, 6, None), schedule.start);
        let accepted = all_accepted(7);
        let expect = Expectation {
            schedule: &schedule,
            accepted: &accepted,
            per_user: None,
            tabs: 1,
            publish_errors: 0,
        };
        let merged = merge(&[Some(record)], &expect, &[]);
        let d = merged.deliveries;
        assert_eq!((d.expected, d.delivered), (7, 4), "{d:?}");
        assert_eq!((d.lost_to_restart, d.missing), (2, 1), "{d:?}");
        assert_eq!(
            d.out_of_order, 0,
            "the new incarnation's ids are not out of order"
        );
        assert_eq!(merged.restarts_seen, 1);
    }
}
