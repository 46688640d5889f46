//! The simple models the report sets beside the measurements: what each technique's mechanism
//! predicts for requests, empty responses and latency, with this cell's numbers filled in, and
//! whether the measurement fits (within 0.9-1.1 of the prediction), is explained by something
//! the cell itself shows (faults, loss, a window too short for a timeout), or is a model miss.

use super::figures::share;
use super::fmt::{int, num};
use super::plan::View;
use crate::model::results::CellResult;
use crate::model::scenario::{Audience, HttpVersion};
use crate::model::technique::Delivery;

/// The 1-byte TCP round trip on loopback on this machine kind, microseconds: floors.md's
/// p50 across the two cores (a C client and server, nothing else). The models' round trip on
/// plain loopback; a delivery's latency is more than this, as it also crosses the
/// publisher's POST and the server's fan-out.
pub const LOOPBACK_RTT_US: f64 = 55.0;

/// A measured ÷ predicted ratio inside this band counts as a fit.
pub const FIT_BAND: (f64, f64) = (0.9, 1.1);

/// A figure that a simple model predicts, next to what the run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub figure: &'static str,
    /// The model with this cell's numbers filled in.
    pub model: String,
    pub predicted: f64,
    pub measured: f64,
    /// Why the measurement may be off the prediction, from what the cell itself shows (its
    /// faults, its loss, a round trip close to the gap between comments); `None` when the
    /// cell shows no such reason, so a ratio outside the band is a model miss.
    pub note: Option<String>,
}

/// How a measurement stands against its model.
#[derive(Debug, Clone, PartialEq)]
pub enum Fit {
    /// Measured ÷ predicted within `FIT_BAND` (or both zero).
    Close,
    /// Outside the band, for the reason given.
    Explained(String),
    /// Outside the band with no reason the cell shows: the model is wrong here.
    Miss,
}

impl Model {
    /// measured ÷ predicted, `None` when nothing was predicted.
    pub fn ratio(&self) -> Option<f64> {
        (self.predicted > 0.0).then(|| self.measured / self.predicted)
    }

    pub fn fit(&self) -> Fit {
        let close = match self.ratio() {
            Some(r) => (FIT_BAND.0..=FIT_BAND.1).contains(&r),
            None => self.measured == 0.0,
        };
        match (&self.note, close) {
            (_, true) => Fit::Close,
            (Some(note), false) => Fit::Explained(note.clone()),
            (None, false) => Fit::Miss,
        }
    }
}

/// What the models call a round trip: not a delivery latency (which includes the
/// publisher's POST and the server's fan-out), but the network's own time to answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RoundTrip {
    /// The emulated link's configured rtt, ms.
    Configured(f64),
    /// Plain loopback: `LOOPBACK_RTT_US`, measured on this machine kind.
    LoopbackFloor,
}

impl RoundTrip {
    pub fn of(cell: &CellResult) -> RoundTrip {
        match cell.link {
            Some(link) if !link.rtt.is_zero() => RoundTrip::Configured(ms(link.rtt)),
            _ => RoundTrip::LoopbackFloor,
        }
    }

    pub fn ms(self) -> f64 {
        match self {
            RoundTrip::Configured(ms) => ms,
            RoundTrip::LoopbackFloor => LOOPBACK_RTT_US / 1000.0,
        }
    }

    /// Where the figure comes from, for the report.
    pub fn describe(self) -> String {
        match self {
            RoundTrip::Configured(ms) => format!("the link's configured rtt, {} ms", num(ms)),
            RoundTrip::LoopbackFloor => format!(
                "loopback's 1-byte TCP round trip, {} ms (floors.md, p50 across the two cores)",
                num(LOOPBACK_RTT_US / 1000.0)
            ),
        }
    }
}

/// The numbers a cell's models are made of, apart from the cell so the models are plain
/// functions of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    pub clients: f64,
    /// Measured window, s.
    pub window_s: f64,
    /// Warm-up before the window, s: a poll held from the start times out only once warm-up
    /// plus window reach the timeout.
    pub warmup_s: f64,
    /// Comments per second each subscriber should receive.
    pub per_client: f64,
    pub interval_ms: f64,
    pub timeout_ms: f64,
    pub rtt_ms: f64,
    /// Reconnects in the window (faults): each is one more request.
    pub reconnects: f64,
}

impl Inputs {
    pub fn of(view: &View, cell: &CellResult) -> Inputs {
        let s = &view.summary.scenario;
        Inputs {
            clients: f64::from(cell.clients),
            window_s: cell.window_seconds,
            warmup_s: s.warmup.as_secs_f64(),
            per_client: per_client_rate(view, cell),
            interval_ms: ms(s.poll_interval),
            timeout_ms: ms(s.long_poll_timeout),
            rtt_ms: RoundTrip::of(cell).ms(),
            reconnects: cell.client.reconnects as f64,
        }
    }

    /// The gap between one subscriber's comments, ms (infinite without comments).
    pub fn gap_ms(&self) -> f64 {
        if self.per_client > 0.0 {
            1000.0 / self.per_client
        } else {
            f64::INFINITY
        }
    }

    /// Deliveries the window should hold.
    pub fn deliveries(&self) -> f64 {
        self.clients * self.window_s * self.per_client
    }

    /// True when no poll held from the subscriber's start can time out inside the window.
    pub fn window_shorter_than_timeout(&self) -> bool {
        (self.warmup_s + self.window_s) * 1000.0 < self.timeout_ms
    }
}

/// Long polling's requests in the window, by cause.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongPollRequests {
    /// Polls answered with comments: one per comment while comments come more than a round
    /// trip apart; above 1/rtt a re-ask finds several waiting (batching), one per round trip.
    pub answered: f64,
    /// Polls answered empty at the timeout: the idle gaps' `floor(gap / timeout)`, none when
    /// warm-up plus window are shorter than the timeout.
    pub timeouts: f64,
    /// One more per reconnect.
    pub reconnects: f64,
}

impl LongPollRequests {
    pub fn total(&self) -> f64 {
        self.answered + self.timeouts + self.reconnects
    }
}

pub fn long_poll_requests(i: &Inputs) -> LongPollRequests {
    let gap = i.gap_ms();
    let answered = if i.per_client <= 0.0 {
        0.0
    } else if gap >= i.timeout_ms {
        i.deliveries()
    } else {
        i.clients * i.window_s * 1000.0 / gap.max(i.rtt_ms)
    };
    let timeouts = if i.window_shorter_than_timeout() || i.timeout_ms <= 0.0 {
        0.0
    } else if i.per_client <= 0.0 {
        let t = i.timeout_ms / 1000.0;
        i.clients * (((i.warmup_s + i.window_s) / t).floor() - (i.warmup_s / t).floor())
    } else {
        i.deliveries() * (gap / i.timeout_ms).floor()
    };
    LongPollRequests {
        answered,
        timeouts,
        reconnects: i.reconnects,
    }
}

/// The models that apply to one cell.
pub fn for_cell(view: &View, cell: &CellResult) -> Vec<Model> {
    let inputs = Inputs::of(view, cell);
    let mut models = match cell.technique.descriptor().delivery {
        Delivery::Answers => short_polling(view, cell, &inputs),
        Delivery::Holds => long_polling(view, cell, &inputs),
        Delivery::Streams => streams(view, cell, &inputs),
    };
    // Loss moves every count: say so wherever a ratio is off and nothing else explains it.
    let d = &cell.deliveries;
    if d.missing > 0 {
        for m in models.iter_mut().filter(|m| m.note.is_none()) {
            m.note = Some(format!(
                "{} of {} deliveries were lost, so the cell did not run as the model assumes",
                int(d.missing),
                int(d.expected)
            ));
        }
    }
    models
}

/// Comments per second that each subscriber should receive: per-user comments go to one
/// user in turn, and to every tab of that user.
pub fn per_client_rate(view: &View, cell: &CellResult) -> f64 {
    match cell.audience {
        Audience::Broadcast => cell.rate,
        Audience::PerUser => {
            let tabs = f64::from(view.summary.scenario.tabs.max(1));
            cell.rate * tabs / f64::from(cell.clients.max(1))
        }
    }
}

/// The one-way delays a delivery crosses on an emulated link, in ms: the publisher's link to
/// the server (0 when direct) and the server's to the subscriber. `None` on plain loopback.
pub fn link_delays_ms(view: &View, cell: &CellResult) -> Option<(f64, f64)> {
    let link = cell.link?;
    let publisher = view
        .summary
        .scenario
        .network
        .as_ref()
        .and_then(|n| n.publisher)
        .map_or(0.0, |p| ms(p.one_way()));
    Some((publisher, ms(link.one_way())))
}

/// The models' one-way delays: `link_delays_ms`, with a link of rtt 0 (a relay on
/// loopback) taking loopback's own half round trip.
fn model_delays_ms(view: &View, cell: &CellResult) -> Option<(f64, f64)> {
    link_delays_ms(view, cell).map(|(publisher, _)| (publisher, RoundTrip::of(cell).ms() / 2.0))
}

fn ms(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Below this many ms over a prediction, a latency's excess is the local time the models
/// leave out: the publisher's POST, the server's fan-out, the relay and the load generator's
/// parsing. On plain loopback that time is the whole latency, 1-2 ms here for a push
/// delivery (rtt-sweep's rtt 0 cells: 1.6-1.8 ms).
pub const LOCAL_TIME_MS: f64 = 5.0;

/// A link this busy (a share of its bandwidth) queues what it carries.
pub const BUSY_LINK: f64 = 0.5;

fn latency(cell: &CellResult, model: String, predicted: f64) -> Model {
    let measured = cell.latency.mean_us / 1000.0;
    let note = busy_note(cell).or_else(|| {
        let excess = measured - predicted;
        (excess > 0.0 && excess <= LOCAL_TIME_MS).then(|| {
            format!(
                "the measurement is {} ms above the prediction, less than {} ms: the local time \
                 the model leaves out (the publisher's POST, the server's fan-out, the relay, the \
                 load generator's parsing)",
                num(excess),
                num(LOCAL_TIME_MS)
            )
        })
    });
    Model {
        figure: "mean latency (ms)",
        model,
        predicted,
        measured,
        note,
    }
}

/// The busiest direction's share of a limited link's bandwidth in the window: the shared
/// bandwidth against all subscribers' bytes, or a connection's against one subscriber's.
/// `None` without a bandwidth limit.
pub fn link_busy(cell: &CellResult) -> Option<f64> {
    let link = cell.link?;
    if cell.window_seconds <= 0.0 {
        return None;
    }
    let busiest =
        cell.client.bytes_up.max(cell.client.bytes_down) as f64 * 8.0 / cell.window_seconds;
    match (link.aggregate_bps, link.bandwidth_bps) {
        (Some(shared), _) => Some(busiest / shared as f64),
        (None, Some(each)) => Some(busiest / f64::from(cell.clients.max(1)) / each as f64),
        (None, None) => None,
    }
}

fn busy_note(cell: &CellResult) -> Option<String> {
    link_busy(cell).filter(|&b| b >= BUSY_LINK).map(|busy| {
        format!(
            "the link was {}% busy carrying this cell's bytes, and a link that full queues \
             them, which the model leaves out",
            num((busy * 100.0).round())
        )
    })
}

/// Time to put one comment's deliveries on a limited link, ms, from the bytes each took
/// downstream (as measured). Pushes and held polls answer every subscriber of a comment at
/// once, so on a shared link the mean subscriber waits for half that burst; short polls are
/// spread over the interval, so each waits only for its own response. On a per-connection
/// limit, one delivery's own time. 0 when unlimited.
pub fn transmission_ms(view: &View, cell: &CellResult) -> f64 {
    let Some(link) = cell.link else {
        return 0.0;
    };
    let spread = cell.technique.descriptor().delivery == Delivery::Answers;
    let per = if spread {
        cell.client.requests
    } else {
        cell.deliveries.delivered_in_window
    };
    if per == 0 {
        return 0.0;
    }
    let bits = cell.client.bytes_down as f64 / per as f64 * 8.0;
    let fan_out = match cell.audience {
        _ if spread => 1.0,
        Audience::Broadcast => f64::from(cell.clients),
        Audience::PerUser => f64::from(view.summary.scenario.tabs.max(1)),
    };
    match (link.aggregate_bps, link.bandwidth_bps) {
        (Some(shared), _) => fan_out * bits / shared as f64 * 1000.0 / 2.0,
        (None, Some(each)) => bits / each as f64 * 1000.0,
        (None, None) => 0.0,
    }
}

/// " + transmission N" when the link's bandwidth is limited.
fn transmission_part(tx: f64) -> String {
    if tx > 0.0 {
        format!(" + transmission {}", num(tx))
    } else {
        String::new()
    }
}

/// " + publisher's one-way N" over a link whose publisher is emulated too.
fn publisher_part(publisher: f64) -> String {
    if publisher > 0.0 {
        format!(" + publisher's one-way {}", num(publisher))
    } else {
        String::new()
    }
}

/// A note for faults, when the cell had any.
fn faults_note(cell: &CellResult, what: &str) -> Option<String> {
    cell.faults
        .as_ref()
        .map(|_| format!("the scenario's faults cut, closed or silenced subscribers' connections, which the model leaves out: {what}"))
}

/// A poll every interval (or every round trip, if that is longer): latency half a cycle plus
/// the way back, one request per cycle, and empty answers whenever no comment came in between.
fn short_polling(view: &View, cell: &CellResult, i: &Inputs) -> Vec<Model> {
    let cycle = i.interval_ms.max(i.rtt_ms);
    let mut models = Vec::new();
    if let Some((publisher, one_way)) = model_delays_ms(view, cell) {
        let tx = transmission_ms(view, cell);
        models.push(latency(
            cell,
            format!(
                "max(interval, rtt)/2 + one-way{}{} = {} + {} ms",
                publisher_part(publisher),
                transmission_part(tx),
                num(cycle / 2.0),
                num(one_way)
            ),
            cycle / 2.0 + one_way + publisher + tx,
        ));
    } else {
        models.push(latency(
            cell,
            format!(
                "interval/2 + round trip = {} + {} ms",
                num(i.interval_ms / 2.0),
                num(i.rtt_ms)
            ),
            i.interval_ms / 2.0 + i.rtt_ms,
        ));
    }
    let (formula, unit) = if cycle > i.interval_ms {
        ("max(interval, rtt)", format!("{} ms", num(cycle)))
    } else {
        ("interval", format!("{} s", num(i.interval_ms / 1000.0)))
    };
    models.push(Model {
        figure: "requests",
        model: format!(
            "clients × window / {formula} = {} × {} s / {unit}",
            int(i.clients as u64),
            num(i.window_s)
        ),
        predicted: i.clients * i.window_s / (cycle / 1000.0),
        measured: cell.client.requests as f64,
        note: faults_note(
            cell,
            "a poll cut short is asked again, a closed or vanished subscriber polls no more",
        )
        .or_else(|| busy_note(cell)),
    });
    let per_poll = i.per_client * cycle / 1000.0;
    models.push(Model {
        figure: "empty responses (%)",
        model: format!(
            "max(0, 1 − comments per client per poll) = max(0, 1 − {})",
            num(per_poll)
        ),
        predicted: (1.0 - per_poll).max(0.0) * 100.0,
        measured: share(cell.client.empty_responses, cell.client.requests) * 100.0,
        note: busy_note(cell),
    });
    models
}

/// A poll held until a comment or the timeout, and asked again at once.
fn long_polling(view: &View, cell: &CellResult, i: &Inputs) -> Vec<Model> {
    let gap = i.gap_ms();
    let mut models = Vec::new();
    if let Some((publisher, one_way)) = model_delays_ms(view, cell) {
        let tx = transmission_ms(view, cell);
        // Answered at a comment, a poll is asked again one round trip later; comments
        // that come in that round trip wait for it (R/2 on average when it always holds
        // one, which it does once a round trip is at least the gap between comments; with
        // evenly spaced comments, never before).
        let waits = i.rtt_ms >= gap.min(i.timeout_ms);
        let wait = if waits { i.rtt_ms / 2.0 } else { 0.0 };
        models.push(latency(
            cell,
            format!(
                "one-way{}{} + (rtt ≥ gap between a client's comments ? rtt/2 : 0) = {} + {} ms (rtt {} ms, gap {} ms)",
                publisher_part(publisher),
                transmission_part(tx),
                num(one_way),
                num(wait),
                num(i.rtt_ms),
                num(gap)
            ),
            one_way + publisher + tx + wait,
        ));
    }
    let r = long_poll_requests(i);
    let answered = if gap >= i.timeout_ms {
        "one per comment".to_string()
    } else if gap >= i.rtt_ms {
        format!(
            "one per comment, as comments come {} ms apart, more than a round trip",
            num(gap)
        )
    } else {
        format!(
            "one per round trip, as comments come {} ms apart, less than the {} ms round trip (batching)",
            num(gap),
            num(i.rtt_ms)
        )
    };
    let timeouts = if gap < i.timeout_ms {
        "no timeouts: every poll gets a comment before the timeout".to_string()
    } else if i.window_shorter_than_timeout() {
        format!(
            "no timeouts: warm-up + window ({} s) is shorter than the {} s timeout",
            num(i.warmup_s + i.window_s),
            num(i.timeout_ms / 1000.0)
        )
    } else if i.per_client <= 0.0 {
        format!(
            "timeouts {}: window / timeout per idle subscriber",
            num(r.timeouts)
        )
    } else {
        format!("timeouts {}: floor(gap / timeout) per gap", num(r.timeouts))
    };
    let reconnects = if r.reconnects > 0.0 {
        format!(" + {} reconnects", num(r.reconnects))
    } else {
        String::new()
    };
    let mut note = faults_note(
        cell,
        "each cut ends a held poll early and is asked again, a closed or vanished subscriber asks no more",
    );
    if note.is_none() && gap < 2.0 * i.rtt_ms && gap > i.rtt_ms / 2.0 {
        note = Some(format!(
            "the gap between comments ({} ms) is within a factor 2 of the round trip ({} ms), \
             where whether a re-ask is back before the next comment depends on the server's own \
             time, which the model leaves out",
            num(gap),
            num(i.rtt_ms)
        ));
    }
    models.push(Model {
        figure: "requests",
        model: format!(
            "answered {} ({answered}) + {timeouts}{reconnects}",
            num(r.answered)
        ),
        predicted: r.total(),
        measured: cell.client.requests as f64,
        note: note.clone(),
    });
    if i.deliveries() > 0.0 {
        models.push(Model {
            figure: "requests per delivery",
            model: format!(
                "predicted requests / (clients × window × comments per client per s) = {} / {}",
                num(r.total()),
                num(i.deliveries())
            ),
            predicted: r.total() / i.deliveries(),
            measured: cell.per_delivery.requests,
            note,
        });
    }
    models
}

/// The HTTP requests WebSocket and SSE make over the whole cell as the server counted them
/// (or, for runs before that count, the subscribers' sockets over HTTP/1.1, one handshake
/// each); `None` when neither is known.
pub fn whole_cell_requests(cell: &CellResult) -> Option<(f64, &'static str)> {
    if let Some(whole) = cell.whole_cell {
        return Some((whole.requests as f64, "the server's count"));
    }
    (cell.http == HttpVersion::H1 && cell.kernel.sockets > 0)
        .then_some((cell.kernel.sockets as f64, "the subscribers' sockets"))
}

/// A stream: one HTTP request (the upgrade or the GET that opens it) per connection, made
/// before the window, then nothing but the stream, whatever the rate.
fn streams(view: &View, cell: &CellResult, i: &Inputs) -> Vec<Model> {
    let mut models = Vec::new();
    if let Some((publisher, one_way)) = model_delays_ms(view, cell) {
        let tx = transmission_ms(view, cell);
        models.push(latency(
            cell,
            format!(
                "one-way{}{} = {} ms",
                publisher_part(publisher),
                transmission_part(tx),
                num(one_way)
            ),
            one_way + publisher + tx,
        ));
    }
    if let Some((measured, source)) = whole_cell_requests(cell) {
        models.push(Model {
            figure: "HTTP requests, whole cell",
            model: format!(
                "one handshake per subscriber, before the window, + one per reconnect = {} + {} (measured: {source})",
                int(i.clients as u64),
                num(i.reconnects)
            ),
            predicted: i.clients + i.reconnects,
            measured,
            note: faults_note(
                cell,
                "reconnects in the warm-up and the drain are handshakes outside the window",
            ),
        });
    }
    models.push(Model {
        figure: "HTTP requests in the window",
        model: format!("one per reconnect in the window = {}", num(i.reconnects)),
        predicted: i.reconnects,
        measured: cell.client.requests as f64,
        note: None,
    });
    models
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::Link;
    use crate::model::results::WholeCell;
    use crate::model::technique::Technique;
    use crate::report::fixture;

    fn inputs() -> Inputs {
        Inputs {
            clients: 100.0,
            window_s: 10.0,
            warmup_s: 2.0,
            per_client: 10.0,
            interval_ms: 1000.0,
            timeout_ms: 30_000.0,
            rtt_ms: 0.055,
            reconnects: 0.0,
        }
    }

    #[test]
    fn long_polling_makes_one_request_per_comment_while_the_gap_exceeds_a_round_trip() {
        // high-rate at 500/s: 2 ms apart, far above loopback's 55 µs.
        let i = Inputs {
            per_client: 500.0,
            ..inputs()
        };
        let r = long_poll_requests(&i);
        assert_eq!(r.answered, 500_000.0);
        assert_eq!(r.timeouts, 0.0);
        // Measured 499,409: a fit, where the old model (rtt + wait) said 381,646.
        let model = Model {
            figure: "requests",
            model: String::new(),
            predicted: r.total(),
            measured: 499_409.0,
            note: None,
        };
        assert_eq!(model.fit(), Fit::Close);
    }

    #[test]
    fn above_one_over_rtt_a_poll_returns_several_comments() {
        // 20/s over a 100 ms link: one request per round trip, half a request per comment.
        let i = Inputs {
            per_client: 20.0,
            rtt_ms: 100.0,
            ..inputs()
        };
        let r = long_poll_requests(&i);
        assert_eq!(r.answered, 100.0 * 10.0 / 0.1);
        assert_eq!(r.answered / i.deliveries(), 0.5);
    }

    #[test]
    fn timeouts_count_only_once_the_window_reaches_the_timeout() {
        // notifications: 1,000 users at 20/s is one comment per 50 s each, but warm-up 3 s +
        // window 20 s never reach the 30 s timeout: no poll can time out.
        let i = Inputs {
            clients: 1000.0,
            window_s: 20.0,
            warmup_s: 3.0,
            per_client: 0.02,
            ..inputs()
        };
        assert!(i.window_shorter_than_timeout());
        let r = long_poll_requests(&i);
        assert_eq!((r.answered, r.timeouts), (400.0, 0.0));
        // With a 60 s window each 50 s gap holds one timeout.
        let long = Inputs {
            window_s: 60.0,
            ..i
        };
        let r = long_poll_requests(&long);
        assert_eq!((r.answered, r.timeouts), (1200.0, 1200.0));
        // No comments at all: window / timeout per idle subscriber.
        let idle = Inputs {
            per_client: 0.0,
            window_s: 58.0,
            ..i
        };
        assert_eq!(long_poll_requests(&idle).timeouts, 1000.0 * 2.0);
    }

    #[test]
    fn a_ratio_outside_the_band_is_explained_or_a_miss() {
        let mut m = Model {
            figure: "requests",
            model: String::new(),
            predicted: 100.0,
            measured: 109.0,
            note: None,
        };
        assert_eq!(m.fit(), Fit::Close);
        m.measured = 131.0;
        assert_eq!(m.fit(), Fit::Miss);
        m.note = Some("faults".into());
        assert_eq!(m.fit(), Fit::Explained("faults".into()));
        // Nothing predicted: zero measured fits, anything else does not.
        m.predicted = 0.0;
        m.measured = 0.0;
        m.note = None;
        assert_eq!(m.fit(), Fit::Close);
        m.measured = 3.0;
        assert_eq!(m.fit(), Fit::Miss);
    }

    #[test]
    fn the_round_trip_is_the_links_or_the_loopback_floor_never_a_delivery_latency() {
        let summary = fixture::client_sweep();
        let mut cell = summary.cells[0].clone();
        assert_eq!(RoundTrip::of(&cell), RoundTrip::LoopbackFloor);
        assert_eq!(RoundTrip::of(&cell).ms(), 0.055);
        cell.link = Some(Link {
            rtt: std::time::Duration::from_millis(100),
            ..Link::DIRECT
        });
        assert_eq!(RoundTrip::of(&cell), RoundTrip::Configured(100.0));
        assert!(
            RoundTrip::of(&cell)
                .describe()
                .contains("configured rtt, 100 ms")
        );
    }

    #[test]
    fn models_fill_in_the_cell_numbers() {
        let summary = fixture::client_sweep();
        let view = View::new(&summary);
        let short = view
            .cells
            .iter()
            .find(|c| c.technique == Technique::ShortPolling && c.clients == 1000)
            .unwrap();
        let models = for_cell(&view, short);
        let requests = models.iter().find(|m| m.figure == "requests").unwrap();
        assert_eq!(requests.predicted, 1000.0 * 20.0 / 1.0);
        assert_eq!(
            requests.model,
            "clients × window / interval = 1,000 × 20 s / 1 s"
        );
        assert_eq!(models[0].predicted, 500.0 + 0.055);
    }

    #[test]
    fn push_handshakes_are_counted_over_the_whole_cell() {
        let summary = fixture::client_sweep();
        let view = View::new(&summary);
        let mut sse = (*view
            .cells
            .iter()
            .find(|c| c.technique == Technique::WebSocket && c.clients == 100)
            .unwrap())
        .clone();
        sse.whole_cell = Some(WholeCell {
            requests: 100,
            connections_opened: 100,
        });
        let models = for_cell(&view, &sse);
        let whole = models
            .iter()
            .find(|m| m.figure == "HTTP requests, whole cell")
            .unwrap();
        assert_eq!((whole.predicted, whole.measured), (100.0, 100.0));
        let window = models
            .iter()
            .find(|m| m.figure == "HTTP requests in the window")
            .unwrap();
        assert_eq!(window.predicted, 0.0);
        // A run before the field: the subscribers' sockets stand in over HTTP/1.1.
        sse.whole_cell = None;
        sse.kernel.sockets = 100;
        assert_eq!(
            whole_cell_requests(&sse),
            Some((100.0, "the subscribers' sockets"))
        );
        sse.http = HttpVersion::H2;
        assert_eq!(whole_cell_requests(&sse), None);
    }

    #[test]
    fn a_limited_link_adds_its_transmission_time_and_says_when_it_is_full() {
        // bandwidth-sweep's WebSocket at 256 kbit/s shared: 100 subscribers, 172 B down per
        // delivery, so one comment's fan-out takes 100 × 1,376 bits / 256 kbit/s = 537.5 ms,
        // and the mean subscriber waits half of it.
        let mut summary = fixture::one_point();
        let link = Link {
            rtt: std::time::Duration::from_millis(50),
            aggregate_bps: Some(256_000),
            ..Link::DIRECT
        };
        let mut cell = summary
            .cells
            .iter()
            .find(|c| c.technique == Technique::WebSocket)
            .unwrap()
            .clone();
        cell.link = Some(link);
        cell.clients = 100;
        cell.audience = Audience::Broadcast;
        cell.window_seconds = 15.0;
        cell.deliveries.delivered_in_window = 1500;
        cell.client.bytes_down = 172 * 1500;
        cell.client.bytes_up = 0;
        summary.cells = vec![cell.clone()];
        let view = View::new(&summary);
        assert_eq!(transmission_ms(&view, &cell), 268.75);
        // 258 kB in 15 s is 138 kbit/s: 54% of the link, busy enough to queue.
        let busy = link_busy(&cell).unwrap();
        assert!((busy - 0.5375).abs() < 1e-9, "{busy}");
        assert!(busy_note(&cell).unwrap().contains("54% busy"));
        // A short poll waits only for its own response, not the fan-out.
        cell.technique = Technique::ShortPolling;
        cell.client.requests = 1500;
        assert_eq!(transmission_ms(&view, &cell), 2.6875);
        // Unlimited: nothing to add.
        cell.link = Some(Link {
            rtt: std::time::Duration::from_millis(50),
            ..Link::DIRECT
        });
        assert_eq!(
            (transmission_ms(&view, &cell), link_busy(&cell)),
            (0.0, None)
        );
    }

    #[test]
    fn a_small_excess_over_a_latency_prediction_is_the_local_time() {
        let summary = fixture::one_point();
        let mut cell = summary.cells[0].clone();
        cell.latency.mean_us = 12_700.0;
        let m = latency(&cell, String::new(), 10.0);
        assert!(matches!(m.fit(), Fit::Explained(n) if n.contains("2.7 ms above")));
        cell.latency.mean_us = 30_000.0;
        assert_eq!(latency(&cell, String::new(), 10.0).fit(), Fit::Miss);
    }

    #[test]
    fn per_user_comments_reach_every_tab_of_their_user() {
        let mut summary = fixture::rate_sweep();
        summary.scenario.tabs = 2;
        let view = View::new(&summary);
        let cell = view.cells[0];
        assert_eq!(cell.audience, Audience::PerUser);
        assert_eq!(
            per_client_rate(&view, cell),
            cell.rate * 2.0 / f64::from(cell.clients)
        );
    }

    #[test]
    fn over_a_link_the_models_use_the_configured_round_trip() {
        use crate::model::network::Network;
        use std::time::Duration;
        let mut summary = fixture::client_sweep();
        let link = Link {
            rtt: Duration::from_millis(100),
            ..Link::DIRECT
        };
        summary.scenario.network = Some(Network {
            subscribers: link,
            rtts: vec![link.rtt],
            bandwidths_bps: vec![],
            aggregates_bps: vec![],
            publisher: Some(Link {
                rtt: Duration::from_millis(20),
                ..Link::DIRECT
            }),
        });
        for cell in &mut summary.cells {
            cell.link = Some(link);
        }
        let view = View::new(&summary);
        let latency = |technique: Technique| {
            let cell = view
                .cells
                .iter()
                .find(|c| c.technique == technique)
                .unwrap();
            let models = for_cell(&view, cell);
            let m = models
                .iter()
                .find(|m| m.figure == "mean latency (ms)")
                .unwrap()
                .clone();
            (m.predicted, per_client_rate(&view, cell))
        };
        // Push: the publisher's one-way (10 ms) and the subscriber's (50 ms).
        assert_eq!(latency(Technique::Sse).0, 60.0);
        // Long polling adds half a round trip once comments come at least a round trip apart.
        let (predicted, rate) = latency(Technique::LongPolling);
        let wait = if 0.1 >= 1.0 / rate { 50.0 } else { 0.0 };
        assert_eq!(predicted, 60.0 + wait);
        // Short polling: half the interval (1 s here) on top.
        assert_eq!(latency(Technique::ShortPolling).0, 500.0 + 60.0);
    }

    /// Prints every published run's models, predicted against measured, with how each fits:
    /// `cargo test --lib report::models::tests::published_runs -- --nocapture`. Every model
    /// must yield a finite prediction and measurement; ratios off the band are listed last.
    #[test]
    fn published_runs_print_predicted_against_measured() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/published");
        let mut runs: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("summary.json").is_file())
            .collect();
        runs.sort();
        let mut off = Vec::new();
        for run in runs {
            let summary = crate::report::load_summary(&run).unwrap();
            let view = View::new(&summary);
            for cell in &view.cells {
                for m in for_cell(&view, cell) {
                    assert!(m.predicted.is_finite() && m.measured.is_finite(), "{m:?}");
                    let name = format!(
                        "{} · {} · {}",
                        summary.scenario.name,
                        cell.technique.name(),
                        crate::report::plan::Point::of(cell).describe()
                    );
                    let ratio = m.ratio().map_or("—".into(), |r| format!("{r:.3}"));
                    println!(
                        "{name} | {} | predicted {:.3} | measured {:.3} | {ratio} | {:?}",
                        m.figure,
                        m.predicted,
                        m.measured,
                        m.fit()
                    );
                    if m.fit() != Fit::Close {
                        off.push(format!("{name} | {} | {ratio} | {:?}", m.figure, m.fit()));
                    }
                }
            }
        }
        println!("\noff the band:\n{}", off.join("\n"));
    }
}
