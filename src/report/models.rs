//! The simple models the report sets beside the measurements: what each technique's mechanism
//! predicts for requests, empty responses and latency, with this cell's numbers filled in.

use super::figures::share;
use super::fmt::{int, num};
use super::plan::{Point, View};
use crate::model::network::Link;
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
    if let Some(link) = cell.link {
        return over_link(view, cell, &link);
    }
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

fn ms(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The models of a cell over an emulated link: the configured delays take the place of a
/// measured round trip (the server's own time is left out, so measured ÷ predicted shows it).
fn over_link(view: &View, cell: &CellResult, link: &Link) -> Vec<Model> {
    let (publisher, one_way) = link_delays_ms(view, cell).unwrap_or_default();
    let rtt = ms(link.rtt);
    let window = cell.window_seconds;
    let clients = f64::from(cell.clients);
    let per_client = per_client_rate(cell);
    let latency = |model: String, predicted: f64| Model {
        figure: "mean latency (ms)",
        model,
        predicted,
        measured: cell.latency.mean_us / 1000.0,
    };
    let publisher_part = if publisher > 0.0 {
        format!(" + publisher's one-way {}", num(publisher))
    } else {
        String::new()
    };
    match cell.technique.descriptor().delivery {
        Delivery::Answers => {
            let interval = ms(view.summary.scenario.poll_interval);
            // A poll cannot start before the previous one is answered.
            let cycle = interval.max(rtt);
            vec![
                latency(
                    format!(
                        "max(interval, rtt)/2 + one-way{publisher_part} = {} + {} ms",
                        num(cycle / 2.0),
                        num(one_way)
                    ),
                    cycle / 2.0 + one_way + publisher,
                ),
                Model {
                    figure: "requests",
                    model: format!(
                        "clients × window / max(interval, rtt) = {} × {} s / {} ms",
                        int(u64::from(cell.clients)),
                        num(window),
                        num(cycle)
                    ),
                    predicted: clients * window / (cycle / 1000.0),
                    measured: cell.client.requests as f64,
                },
                Model {
                    figure: "empty responses (%)",
                    model: format!(
                        "max(0, 1 − comments per client per poll) = max(0, 1 − {})",
                        num(per_client * cycle / 1000.0)
                    ),
                    predicted: (1.0 - per_client * cycle / 1000.0).max(0.0) * 100.0,
                    measured: share(cell.client.empty_responses, cell.client.requests) * 100.0,
                },
            ]
        }
        Delivery::Holds => {
            let timeout = ms(view.summary.scenario.long_poll_timeout);
            let period = if per_client > 0.0 {
                1000.0 / per_client
            } else {
                f64::INFINITY
            };
            let gap = period.min(timeout);
            // Answered at a comment, a poll is asked again one round trip later; comments
            // that come in that round trip wait for it (R/2 on average when it always
            // holds one, which it does once a round trip is at least the gap between
            // comments; with evenly spaced comments, never before).
            let waits = rtt >= gap;
            let cycle = rtt.max(gap);
            let wait = if waits { rtt / 2.0 } else { 0.0 };
            let comments = clients * window * per_client;
            vec![
                latency(
                    format!(
                        "one-way{publisher_part} + (rtt ≥ 1/comments per client per s ? rtt/2 : 0) = {} + {} ms (rtt {} ms, gap {} ms)",
                        num(one_way),
                        num(wait),
                        num(rtt),
                        num(gap)
                    ),
                    one_way + publisher + wait,
                ),
                Model {
                    figure: "requests",
                    model: format!(
                        "clients × window / max(rtt, min(1/comments per client per s, timeout)) = {} × {} s / {} ms",
                        int(u64::from(cell.clients)),
                        num(window),
                        num(cycle)
                    ),
                    predicted: clients * window / (cycle / 1000.0),
                    measured: cell.client.requests as f64,
                },
                Model {
                    figure: "requests per comment",
                    model: format!(
                        "(1/comments per client per s) / max(rtt, min(that, timeout)) = {} / {} ms",
                        num(period),
                        num(cycle)
                    ),
                    predicted: if comments > 0.0 { period / cycle } else { 0.0 },
                    measured: cell.per_delivery.requests,
                },
            ]
        }
        Delivery::Streams => vec![
            latency(
                format!("one-way{publisher_part} = {} ms", num(one_way)),
                one_way + publisher,
            ),
            Model {
                figure: "requests",
                model: "one handshake per connection opened".into(),
                predicted: cell.client.connections_opened as f64,
                measured: cell.client.requests as f64,
            },
        ],
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
            (m.predicted, per_client_rate(cell))
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
}
