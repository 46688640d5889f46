//! The report's test summaries, loaded from `tests/fixtures/*.summary.json`: synthetic but
//! plausible runs in the same format as a published `summary.json`. Each technique's numbers
//! follow its mechanism (short polling waits half an interval, push techniques a round trip),
//! so charts and sentences look like a real run's. In the client sweep one cell loses
//! deliveries, one is generator-bound, one stalls for a second and one reconnects, so every
//! warning path is drawn. Cells are stored in reverse order, so the tests also check that the
//! report sorts them itself.

use crate::model::results::RunSummary;

/// Broadcast at 10 comments/s, 10 → 100 → 1,000 clients, all four techniques. Long polling
/// at 1,000 clients loses 1.2% and stalls in second 9; WebSocket at 1,000 clients is
/// generator-bound; SSE at 1,000 clients reconnects.
pub fn client_sweep() -> RunSummary {
    parse(include_str!(
        "../../tests/fixtures/client-sweep.summary.json"
    ))
}

/// Per-user notifications to 50 clients at 1, 20 and 200 comments/s: most short polls come
/// back empty at low rates, and long polling converges on short polling at high ones.
pub fn rate_sweep() -> RunSummary {
    parse(include_str!("../../tests/fixtures/rate-sweep.summary.json"))
}

/// All four techniques at one point (20 clients, 5 comments/s, 200 B): nothing is swept.
pub fn one_point() -> RunSummary {
    parse(include_str!("../../tests/fixtures/one-point.summary.json"))
}

/// The one point's scenario with two keys swept: clients 10 and 100 by rate 1 and 10.
pub fn two_sweeps() -> RunSummary {
    parse(include_str!("../../tests/fixtures/two-sweeps.summary.json"))
}

/// The one point's scenario swept over seven client counts: more bars than fit side by side.
pub fn seven_points() -> RunSummary {
    parse(include_str!(
        "../../tests/fixtures/seven-points.summary.json"
    ))
}

fn parse(json: &str) -> RunSummary {
    serde_json::from_str(json).expect("a fixture is a valid summary")
}
