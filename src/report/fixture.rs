//! Synthetic but plausible `RunSummary`s for the report's tests, built from the public data
//! model only (no constructor added to `loadgen`): each technique's numbers follow its
//! mechanism (short polling waits half an interval, push techniques a round trip), so charts
//! and sentences look like a real run's. One cell loses deliveries, one is generator-bound,
//! one stalls for a second and one reconnects, so every warning path is drawn.

use crate::model::results::{
    ByteAgreement, CellResult, ClientTotals, Deliveries, LatencySummary, LoadgenUse, Machine,
    PerDelivery, PercentilePoint, RunSummary, SCHEMA_VERSION, ServerTotals, TimelinePoint,
};
use crate::model::scenario::{Audience, Scenario};
use crate::model::technique::Technique;

/// Broadcast at 10 comments/s, 10 → 100 → 1,000 clients, all four techniques. Long polling
/// at 1,000 clients loses 1.2% and stalls in second 9; WebSocket at 1,000 clients is
/// generator-bound; SSE at 1,000 clients reconnects.
pub fn client_sweep() -> RunSummary {
    summary(
        r#"
name = "baseline"
description = "Broadcast feed, client sweep: the study note's claim 7 (many open connections load the server)."
techniques = ["short-polling", "long-polling", "websocket", "sse"]
clients = [10, 100, 1000]
duration = "20s"
[publish]
rate = 10
payload_bytes = 100
"#,
    )
}

/// Per-user notifications to 50 clients at 1, 20 and 200 comments/s: most short polls come
/// back empty at low rates, and long polling converges on short polling at high ones.
pub fn rate_sweep() -> RunSummary {
    summary(
        r#"
name = "high-rate"
description = "Publish rate sweep: long polling converges on short polling as updates come faster (claim 9)."
techniques = ["short-polling", "long-polling", "websocket", "sse"]
clients = 50
duration = "10s"
[publish]
rate = [1, 20, 200]
payload_bytes = 100
audience = "per-user"
[short_polling]
interval = "500ms"
"#,
    )
}

/// A run of any scenario, every cell filled in by the same model as the two above.
pub fn summary(toml: &str) -> RunSummary {
    let scenario = Scenario::parse(toml, "fixture.toml").expect("fixture scenario is valid");
    // Reversed, so the tests also check that the report sorts cells itself.
    let cells = scenario
        .cells()
        .into_iter()
        .rev()
        .map(|spec| {
            cell(
                &scenario,
                spec.technique,
                spec.clients,
                spec.rate,
                spec.payload_bytes,
            )
        })
        .collect();
    RunSummary {
        schema_version: SCHEMA_VERSION,
        pushlab_version: "0.1.0".into(),
        started_at: "2026-11-25T14:00:00Z".into(),
        target: None,
        scenario,
        machine: Machine {
            os: "Debian GNU/Linux 12".into(),
            kernel: "6.1.0-26-amd64".into(),
            cpu_model: "AMD EPYC 7B13".into(),
            cpus: 2,
            memory_bytes: 8 * 1024 * 1024 * 1024,
            open_files_limit: 1_048_576,
        },
        cells,
        interrupted: false,
    }
}

/// A scenario with every key given, for tests that vary one of them.
pub const ONE_POINT: &str = r#"
name = "quick"
description = "All four techniques at one point."
techniques = ["short-polling", "long-polling", "websocket", "sse"]
clients = 20
duration = "5s"
[publish]
rate = 5
payload_bytes = 200
"#;

/// A deterministic wobble in [0, 1), so timelines are not flat lines.
fn wobble(a: u64, b: u64) -> f64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x % 10_000) as f64 / 10_000.0
}

fn cell(
    scenario: &Scenario,
    technique: Technique,
    clients: u32,
    rate: f64,
    payload_bytes: u32,
) -> CellResult {
    let window = scenario.duration.as_secs_f64();
    let interval_us = scenario.poll_interval.as_secs_f64() * 1e6;
    let n = f64::from(clients);
    let per_client = match scenario.audience {
        Audience::Broadcast => rate,
        Audience::PerUser => rate / n,
    };
    let rtt_us = 600.0 + n * 3.0 + rate * 4.0;
    let big = clients >= 1000;
    // Latency at quantile q (0..1) of each technique's mechanism.
    let latency = |q: f64| -> f64 {
        let tail = (1.0 / (1.0 - q.min(0.99999))).powf(0.3);
        match technique {
            Technique::ShortPolling => interval_us * q + rtt_us * tail,
            Technique::LongPolling => rtt_us * 1.6 * (1.0 + rate / 40.0) * tail,
            Technique::WebSocket => rtt_us * tail,
            Technique::Sse => rtt_us * 1.08 * tail,
        }
    };
    let mut percentiles = Vec::new();
    let mut k = 0;
    loop {
        let p = 100.0 * (1.0 - 0.5f64.powf(f64::from(k) / 4.0));
        if p > 99.999 {
            break;
        }
        percentiles.push(PercentilePoint {
            percentile: p,
            latency_us: latency(p / 100.0) as u64,
        });
        k += 1;
    }
    percentiles.push(PercentilePoint {
        percentile: 100.0,
        latency_us: (latency(0.99999) * 1.2) as u64,
    });
    let comments = (rate * window).round() as u64;
    let expected = match scenario.audience {
        Audience::Broadcast => comments * u64::from(clients),
        Audience::PerUser => comments,
    };
    let lossy = technique == Technique::LongPolling && big;
    let missing = if lossy { expected * 12 / 1000 } else { 0 };
    let delivered = expected - missing;
    let interval = scenario.poll_interval.as_secs_f64();
    let (requests, empty) = match technique {
        Technique::ShortPolling => {
            let r = (n * window / interval).round();
            (r, r * (1.0 - per_client * interval).max(0.0))
        }
        Technique::LongPolling => {
            let wait = (1.0 / per_client).min(30.0);
            let r = (n * window / (rtt_us / 1e6 + wait)).round();
            (r, (n * window / 30.0).round().min(r))
        }
        Technique::WebSocket | Technique::Sse => (n, 0.0),
    };
    let (requests, empty) = (requests as u64, empty as u64);
    let reconnects = if technique == Technique::Sse && big {
        7
    } else {
        0
    };
    let json = u64::from(payload_bytes) + 60;
    let payload_delivered = delivered * json;
    let (up, down) = match technique {
        Technique::ShortPolling | Technique::LongPolling => {
            (requests * 118, requests * 160 + payload_delivered)
        }
        Technique::WebSocket => (
            u64::from(clients) * 210,
            n as u64 * 130 + delivered * (json + 4),
        ),
        Technique::Sse => (
            (u64::from(clients) + reconnects) * 140,
            n as u64 * 150 + delivered * (json + 34),
        ),
    };
    let cpu_us = match technique {
        Technique::ShortPolling => requests as f64 * 45.0 + delivered as f64 * 4.0,
        Technique::LongPolling => requests as f64 * 60.0 + delivered as f64 * 5.0,
        Technique::WebSocket => delivered as f64 * 3.5 + n * 30.0,
        Technique::Sse => delivered as f64 * 4.2 + n * 35.0,
    };
    let per_connection = match technique {
        Technique::ShortPolling => 6.0,
        Technique::LongPolling => 14.0,
        Technique::WebSocket => 134.0,
        Technique::Sse => 22.0,
    };
    let peak_rss = ((12.0 * 1024.0 + n * per_connection) * 1024.0) as u64;
    let core_share = 0.1
        + n / 2000.0
        + if technique == Technique::WebSocket && big {
            0.35
        } else {
            0.0
        };
    let seconds = window as u32;
    let timeline = (0..seconds)
        .map(|second| {
            let stalled = lossy && second == 9;
            let jitter =
                1.0 + wobble(u64::from(second), technique as u64 + u64::from(clients)) * 0.3;
            let spike = if lossy && second == 10 { 6.0 } else { 1.0 };
            TimelinePoint {
                second,
                deliveries: if stalled {
                    0
                } else {
                    delivered / u64::from(seconds)
                },
                p50_us: if stalled {
                    0
                } else {
                    (latency(0.5) * jitter) as u64
                },
                p99_us: if stalled {
                    0
                } else {
                    (latency(0.99) * jitter * spike) as u64
                },
                max_us: if stalled {
                    0
                } else {
                    (latency(0.9999) * jitter * spike * 1.1) as u64
                },
                reconnects: match (reconnects > 0, second) {
                    (true, 7) => 5,
                    (true, 13) => 2,
                    _ => 0,
                },
            }
        })
        .collect();
    let generator_bound = core_share > 0.9;
    let mut warnings = Vec::new();
    if missing > 0 {
        warnings.push(format!(
            "{missing} of {expected} deliveries never arrived after the drain"
        ));
    }
    if generator_bound {
        warnings.push(format!(
            "the load generator used {:.0}% of a core",
            core_share * 100.0
        ));
    }
    let delivered_f = delivered.max(1) as f64;
    CellResult {
        technique,
        clients,
        rate,
        payload_bytes,
        audience: scenario.audience,
        window_seconds: window,
        histogram_text_file: format!("{}-{clients}.hgrm", technique.name()),
        histogram_file: format!("{}-{clients}.hdr", technique.name()),
        latency: LatencySummary {
            count: delivered,
            min_us: (rtt_us * 0.6) as u64,
            mean_us: match technique {
                Technique::ShortPolling => interval_us / 2.0 + rtt_us * 1.1,
                _ => latency(0.5) * 1.1,
            },
            p50_us: latency(0.5) as u64,
            p90_us: latency(0.9) as u64,
            p99_us: latency(0.99) as u64,
            p999_us: latency(0.999) as u64,
            p9999_us: latency(0.9999) as u64,
            max_us: (latency(0.99999) * 1.2) as u64,
            percentiles,
        },
        deliveries: Deliveries {
            comments_published: comments,
            expected,
            delivered,
            delivered_in_window: delivered,
            missing,
            duplicated: 0,
            out_of_order: 0,
            publish_errors: 0,
        },
        client: ClientTotals {
            requests,
            empty_responses: empty,
            connections_opened: u64::from(clients) + reconnects,
            reconnects,
            errors: reconnects,
            bytes_up: up,
            bytes_down: down,
            payload_bytes_delivered: payload_delivered,
        },
        server: ServerTotals {
            requests,
            empty_responses: empty,
            connections_opened: u64::from(clients) + reconnects,
            bytes_in: up,
            bytes_out: down,
            comments_delivered: delivered,
            dropped_slow: 0,
            cpu_seconds: cpu_us / 1e6,
            peak_rss_bytes: peak_rss,
            rss_bytes: peak_rss * 9 / 10,
        },
        agreement: ByteAgreement {
            client_up: up,
            client_down: down,
            server_in: up,
            server_out: down,
            equal: true,
        },
        kernel: Default::default(),
        loadgen: LoadgenUse {
            cpu_seconds: core_share * window,
            core_share,
            generator_bound,
            publish_lateness_mean_us: 150.0,
            publish_lateness_max_us: 900,
            runtime_lag_p99_us: 300,
            runtime_lag_max_us: 1_200,
        },
        per_delivery: PerDelivery {
            requests: requests as f64 / delivered_f,
            bytes: (up + down) as f64 / delivered_f,
            payload_bytes: payload_delivered as f64 / delivered_f,
            server_cpu_us: cpu_us / delivered_f,
        },
        timeline,
        warnings,
    }
}
