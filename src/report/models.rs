//! The simple models the report sets beside the measurements: what each technique's mechanism
//! predicts for requests, empty responses and latency, with this cell's numbers filled in.

use super::figures::share;
use super::fmt::{int, num};
use super::plan::{Point, View};
use crate::model::results::CellResult;
use crate::model::scenario::Audience;
use crate::model::technique::Delivery;

/// A figure that a simple model predicts, next to what the run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub figure: &'static str,
    /// The model with this cell's numbers filled in.
    pub model: String,
    pub predicted: f64,
    pub measured: f64,
}

/// The models that apply to one cell, given the rest of the run for its round trip.
pub fn for_cell(view: &View, cell: &CellResult) -> Vec<Model> {
    let rtt_us = round_trip_us(view, &Point::of(cell));
    match cell.technique.descriptor().delivery {
        Delivery::Answers => short_polling(view, cell, rtt_us),
        Delivery::Holds => vec![long_polling(view, cell, rtt_us)],
        Delivery::Streams => vec![Model {
            figure: "requests",
            model: "one handshake per connection opened".into(),
            predicted: cell.client.connections_opened as f64,
            measured: cell.client.requests as f64,
        }],
    }
}

/// Comments per second that each subscriber should receive.
pub fn per_client_rate(cell: &CellResult) -> f64 {
    match cell.audience {
        Audience::Broadcast => cell.rate,
        Audience::PerUser => cell.rate / f64::from(cell.clients.max(1)),
    }
}

/// A round trip as the run measured it: the median delivery latency of the fastest push
/// technique (one that streams: WebSocket, SSE) at the same point, whose path is publish → server →
/// subscriber; failing those, the fastest delivery short or long polling ever made, which
/// is a poll that went out just after a publish. Microseconds.
pub fn round_trip_us(view: &View, point: &Point) -> Option<f64> {
    let cells = view.cells_at(point);
    let push = cells
        .iter()
        .filter(|c| c.technique.streams())
        .filter(|c| c.latency.count > 0)
        .map(|c| c.latency.p50_us as f64)
        .min_by(f64::total_cmp);
    push.or_else(|| {
        cells
            .iter()
            .filter(|c| c.latency.count > 0)
            .map(|c| c.latency.min_us as f64)
            .min_by(f64::total_cmp)
    })
}

/// A poll every interval: latency half an interval plus a round trip, one request per
/// interval, and empty answers whenever no comment came in between.
fn short_polling(view: &View, cell: &CellResult, rtt_us: Option<f64>) -> Vec<Model> {
    let window = cell.window_seconds;
    let interval = view.summary.scenario.poll_interval.as_secs_f64();
    let per_client = per_client_rate(cell);
    let mut models = Vec::new();
    if let Some(rtt) = rtt_us {
        models.push(Model {
            figure: "mean latency (ms)",
            model: format!(
                "interval/2 + round trip = {} + {} ms",
                num(interval * 500.0),
                num(rtt / 1000.0)
            ),
            predicted: interval * 500.0 + rtt / 1000.0,
            measured: cell.latency.mean_us / 1000.0,
        });
    }
    models.push(Model {
        figure: "requests",
        model: format!(
            "clients × window / interval = {} × {} s / {} s",
            int(u64::from(cell.clients)),
            num(window),
            num(interval)
        ),
        predicted: f64::from(cell.clients) * window / interval,
        measured: cell.client.requests as f64,
    });
    models.push(Model {
        figure: "empty responses (%)",
        model: format!(
            "max(0, 1 − comments per client per interval) = max(0, 1 − {})",
            num(per_client * interval)
        ),
        predicted: (1.0 - per_client * interval).max(0.0) * 100.0,
        measured: share(cell.client.empty_responses, cell.client.requests) * 100.0,
    });
    models
}

/// A poll held until a comment or the timeout: one request per comment (or per timeout) plus
/// the round trip to ask again.
fn long_polling(view: &View, cell: &CellResult, rtt_us: Option<f64>) -> Model {
    let window = cell.window_seconds;
    let timeout = view.summary.scenario.long_poll_timeout.as_secs_f64();
    let per_client = per_client_rate(cell);
    let wait = if per_client > 0.0 {
        (1.0 / per_client).min(timeout)
    } else {
        timeout
    };
    let rtt = rtt_us.unwrap_or(0.0) / 1e6;
    Model {
        figure: "requests",
        model: format!(
            "clients × window / (round trip + min(1/comments per client per s, timeout)) = {} × {} s / ({} + {} s)",
            int(u64::from(cell.clients)),
            num(window),
            num(rtt),
            num(wait)
        ),
        predicted: f64::from(cell.clients) * window / (rtt + wait),
        measured: cell.client.requests as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::technique::Technique;
    use crate::report::fixture;

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
        let latency = &models[0];
        let rtt = round_trip_us(&view, &Point::of(short)).unwrap();
        assert_eq!(latency.predicted, 500.0 + rtt / 1000.0);
    }
}
