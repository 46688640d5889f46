//! The study handout (`handout.md`): the study note's ten claims, each quoted with a verdict
//! (holds / holds only when ... / does not hold here), the figure and its condition, and a
//! link to the chart, computed from run results alone (a pure function of the runs'
//! summaries and the study's probes, so `study --from DIR...` rebuilds it). Each verdict is a
//! small function of figures, unit-tested; a claim whose figure is missing names the missing
//! measurement instead of a verdict.
//!
//! - [`code`]: claim 1's lines of code and crates, from this build's own sources.

pub mod code;

use std::fmt::Write as _;

use crate::model::faults::TimeSummary;
use crate::model::results::{CellResult, RunSummary};
use crate::model::scenario::Audience;
use crate::model::technique::Technique;
use crate::model::wire::Probes;
use crate::report::fmt::{bytes, int, ms, num, pct};
use crate::report::markdown::wire;
use crate::report::plan::{ChartKind, Point, View};

/// The handout's file name inside the study folder.
pub const HANDOUT_FILE: &str = "handout.md";
/// The probes' file name inside the study folder.
pub const PROBES_FILE: &str = "probes.json";

/// The study note's claims, as quoted in the handout (its English summary).
pub const CLAIMS: [&str; 10] = [
    "It runs over plain HTTP, needs no other protocol, and is easy to build.",
    "The browser reconnects by itself when the network drops (EventSource; `Last-Event-ID`).",
    "The server can push to the client in real time.",
    "Only GET is supported and parameters are limited.",
    "It is one-way, and a sent event cannot be taken back.",
    "The server has a hard time noticing that a client closed the page.",
    "Every client holds a connection open, so many clients load the server.",
    "The client asks again and again; the server answers even when it has nothing (\"meaningless \
     data\"). Simple, fine for data refreshed on a fixed period, but HTTP overhead and server \
     load are high and it cannot be truly real-time.",
    "The server holds the request until there is new data, so fewer requests and less \
     overhead; but when updates come fast it is no better than polling, and many clients \
     still load the server.",
    "After an HTTP handshake (upgrade) the connection is full duplex; works on ports 80/443, \
     CORS and authentication work as for HTTP, but it needs a WebSocket-capable server.",
];

/// One run the handout reads: its folder (as the handout links it, relative to the handout)
/// and its summary.
pub struct StudyRun {
    pub folder: String,
    pub summary: RunSummary,
}

/// A claim's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Holds,
    /// Holds under the condition named.
    HoldsOnlyWhen(String),
    DoesNotHold,
    /// No verdict: the measurement named is missing from the runs.
    Missing(String),
}

impl Verdict {
    pub fn text(&self) -> String {
        match self {
            Verdict::Holds => "**holds**".into(),
            Verdict::HoldsOnlyWhen(when) => format!("**holds only when** {when}"),
            Verdict::DoesNotHold => "**does not hold here**".into(),
            Verdict::Missing(what) => format!("**not measured**: missing {what}"),
        }
    }
}

/// A claim answered: its verdict, the figure and its condition, and the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub verdict: Verdict,
    /// The figures behind the verdict and the conditions they were measured under.
    pub figure: String,
    /// Relative link to the chart that shows it.
    pub chart: Option<String>,
}

impl Answer {
    fn missing(what: &str) -> Answer {
        Answer {
            verdict: Verdict::Missing(what.into()),
            figure: String::new(),
            chart: None,
        }
    }
}

/// Every cell of every run, with its run.
fn all_cells(runs: &[StudyRun]) -> Vec<(&StudyRun, &CellResult)> {
    runs.iter()
        .flat_map(|r| r.summary.cells.iter().map(move |c| (r, c)))
        .collect()
}

/// The first chart of `run` that `wanted` picks, linked from the handout.
fn chart(run: &StudyRun, wanted: impl Fn(&ChartKind) -> bool) -> Option<String> {
    let view = View::new(&run.summary);
    view.charts()
        .into_iter()
        .find(|c| wanted(&c.kind))
        .map(|c| format!("{}/{}", run.folder, c.file_name))
}

/// A plain cell: loopback, HTTP/1.1, no faults, one in-memory server, nothing lost.
fn plain(cell: &CellResult) -> bool {
    cell.link.is_none()
        && cell.faults.is_none()
        && cell.http.is_default()
        && cell.deployment.is_default()
        && cell.deliveries.delivered_in_window > 0
}

/// Comments per second each subscriber receives.
fn per_subscriber_rate(run: &StudyRun, cell: &CellResult) -> f64 {
    match cell.audience {
        Audience::Broadcast => cell.rate,
        Audience::PerUser => {
            let users = (cell.clients / run.summary.scenario.tabs.max(1)).max(1);
            cell.rate / f64::from(users)
        }
    }
}

fn times(t: &TimeSummary) -> String {
    if t.count == 0 {
        return format!("none of {} completed", int(t.incomplete));
    }
    let mut text = format!(
        "{} / {} / {}",
        ms(t.p50_us as f64),
        ms(t.p99_us as f64),
        ms(t.max_us as f64)
    );
    if t.incomplete > 0 {
        let _ = write!(text, " ({} never)", int(t.incomplete));
    }
    text
}

// ---------------------------------------------------------------------------------------
// The verdicts: pure functions of figures.
// ---------------------------------------------------------------------------------------

/// Claim 1: plain HTTP and easy. Does not hold if SSE needed a WebSocket crate; holds when
/// SSE's two halves are no longer than WebSocket's; otherwise holds only for "no other
/// protocol". `sse_worked`: an SSE cell delivered over plain HTTP/1.1.
pub fn verdict_1(sse: &code::CodeStats, ws: &code::CodeStats, sse_worked: Option<bool>) -> Verdict {
    if sse.crates.iter().any(|c| c.contains("tungstenite")) {
        return Verdict::DoesNotHold;
    }
    match sse_worked {
        None => Verdict::Missing("an SSE cell over plain HTTP/1.1".into()),
        Some(false) => Verdict::DoesNotHold,
        Some(true) if sse.total() <= ws.total() => Verdict::Holds,
        Some(true) => Verdict::HoldsOnlyWhen(format!(
            "\"easy\" means no second protocol: here SSE took {} lines against WebSocket's {}",
            sse.total(),
            ws.total()
        )),
    }
}

/// Claim 2: every dropped SSE subscriber came back, and nothing was lost or duplicated.
pub fn verdict_2(drops: u64, unrecovered: u64, missing: u64, duplicated: u64) -> Verdict {
    if drops == 0 {
        Verdict::Missing("an SSE cell whose connections were dropped".into())
    } else if unrecovered == 0 && missing == 0 && duplicated == 0 {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    }
}

/// What "real time" means here: a delivery within 100 ms, about what a person notices.
pub const REAL_TIME_US: u64 = 100_000;

/// Claim 3: the push techniques' p99 (worst of WebSocket and SSE) within [`REAL_TIME_US`];
/// only at the median when just the p50 is.
pub fn verdict_3(push_p50_us: u64, push_p99_us: u64) -> Verdict {
    if push_p99_us <= REAL_TIME_US {
        Verdict::Holds
    } else if push_p50_us <= REAL_TIME_US {
        Verdict::HoldsOnlyWhen(format!(
            "looking at the median: the p99 was {}",
            ms(push_p99_us as f64)
        ))
    } else {
        Verdict::DoesNotHold
    }
}

/// Claim 4: the server refuses a POST to the stream, and a GET's URL has a limit.
pub fn verdict_4(post_refused: bool, longest_accepted: u64, refused_at: Option<u64>) -> Verdict {
    match (post_refused, refused_at) {
        (true, Some(_)) => Verdict::Holds,
        (true, None) => Verdict::HoldsOnlyWhen(format!(
            "it comes to the method: the URL took every size tried, up to {} B",
            int(longest_accepted)
        )),
        (false, _) => Verdict::HoldsOnlyWhen(
            "the client is a browser's EventSource, which has no method or body option: this \
             server also streams to a POST"
                .into(),
        ),
    }
}

/// Claim 5: the SSE subscribers sent nothing upstream within the window (a stream carries
/// nothing back); the upstream path needs a POST, measured against a WebSocket frame.
pub fn verdict_5(sse_bytes_up: u64, sse_requests: u64) -> Verdict {
    if sse_bytes_up == 0 && sse_requests == 0 {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    }
}

/// Claim 6: a clean close noticed within a second does not make it hard; a vanished client
/// (no FIN, no RST) noticed only after seconds, or never, does.
pub fn verdict_6(clean: Option<&TimeSummary>, vanished: Option<&TimeSummary>) -> Verdict {
    let slow = |t: &TimeSummary| t.incomplete > 0 || t.max_us >= 1_000_000;
    match (clean, vanished) {
        (None, None) => Verdict::Missing("a cell with closed or vanished SSE pages".into()),
        (Some(c), _) if slow(c) => Verdict::Holds,
        (Some(_), Some(v)) if slow(v) => Verdict::HoldsOnlyWhen(
            "the client vanishes without a FIN or RST (a lost network); a page that closes is \
             noticed at once"
                .into(),
        ),
        (Some(_), _) => Verdict::DoesNotHold,
        (None, Some(v)) if slow(v) => Verdict::HoldsOnlyWhen(
            "the client vanishes without a FIN or RST (clean closes were not measured)".into(),
        ),
        (None, Some(_)) => Verdict::DoesNotHold,
    }
}

/// Claim 7: a held SSE connection's server memory against a keep-alive poller's. Holds when
/// it costs clearly more (over 1.5x); otherwise it holds only for pollers that close, and the
/// condition says whether the poller costs about as much or clearly more (over 1.5x).
pub fn verdict_7(sse_bytes_per_conn: f64, poller_bytes_per_conn: f64) -> Verdict {
    if sse_bytes_per_conn > 1.5 * poller_bytes_per_conn {
        return Verdict::Holds;
    }
    let cost = if poller_bytes_per_conn > 1.5 * sse_bytes_per_conn {
        "costs the server more than a held SSE connection"
    } else {
        "costs the server about as much"
    };
    Verdict::HoldsOnlyWhen(format!(
        "the pollers close their connections between polls: a keep-alive poller holds one \
         too, and {cost}"
    ))
}

/// Claim 8: most polls empty when comments come slower than polls, and more bytes per
/// comment than SSE; at a rate above the poll rate the empties vanish.
pub fn verdict_8(
    low_empty_share: f64,
    bytes_vs_sse: f64,
    high_empty_share: Option<f64>,
) -> Verdict {
    if low_empty_share < 0.5 || bytes_vs_sse < 1.0 {
        return Verdict::DoesNotHold;
    }
    match high_empty_share {
        Some(high) if high < 0.1 => Verdict::HoldsOnlyWhen(
            "comments come slower than the polls; when every poll finds one, none is empty".into(),
        ),
        _ => Verdict::Holds,
    }
}

/// Claim 9: fewer requests than short polling when comments are rare (`lp_low`, `sp_low`:
/// requests per delivered comment), and at a rate faster than one comment per round trip,
/// polling once per round trip: `lp_polls_per_rtt` is long polling's requests per
/// subscriber per round trip there, near 1 when it has become polling.
pub fn verdict_9(lp_low: f64, sp_low: f64, lp_polls_per_rtt: Option<f64>) -> Verdict {
    if lp_low >= sp_low {
        return Verdict::DoesNotHold;
    }
    match lp_polls_per_rtt {
        None => Verdict::Missing(
            "long polling over a real round trip at a rate above one comment per round trip".into(),
        ),
        Some(r) if (0.5..=1.5).contains(&r) => Verdict::Holds,
        Some(_) => Verdict::HoldsOnlyWhen(
            "comments are rare: at a rate above one per round trip it did not settle into \
             polling once per round trip"
                .into(),
        ),
    }
}

/// Claim 10: an upgrade answered `101` and a publish acknowledged over the same socket.
pub fn verdict_10(switched: bool, upstream_acked: Option<bool>) -> Verdict {
    match (switched, upstream_acked) {
        (false, _) => Verdict::DoesNotHold,
        (true, None) => Verdict::HoldsOnlyWhen(
            "taking full duplex on trust: the upstream publish was not measured".into(),
        ),
        (true, Some(true)) => Verdict::Holds,
        (true, Some(false)) => Verdict::DoesNotHold,
    }
}

// ---------------------------------------------------------------------------------------
// The answers: figures gathered from the runs, then the verdict.
// ---------------------------------------------------------------------------------------

fn claim_1(runs: &[StudyRun]) -> Answer {
    let stats: Vec<(Technique, code::CodeStats)> = Technique::ALL
        .into_iter()
        .map(|t| (t, code::stats(t)))
        .collect();
    let of = |t: Technique| {
        &stats
            .iter()
            .find(|(s, _)| *s == t)
            .expect("every technique")
            .1
    };
    let sse_worked = all_cells(runs)
        .into_iter()
        .filter(|(_, c)| c.technique == Technique::Sse && c.http.is_default())
        .map(|(_, c)| c.deliveries.delivered > 0 && c.deliveries.missing == 0)
        .reduce(|a, b| a && b);
    let verdict = verdict_1(of(Technique::Sse), of(Technique::WebSocket), sse_worked);
    let mut figure = String::from(
        "Lines of code in this build (`src/techniques/<technique>.rs`, blank lines, comments, \
         imports and tests left out), split at the client's entry point, and the crates each \
         file names:\n\n| technique | server handler | client | crates named |\n| --- | ---: | ---: | --- |\n",
    );
    for (t, s) in &stats {
        let _ = writeln!(
            figure,
            "| {} | {} | {} | {} |",
            t.name(),
            s.server_lines,
            s.client_lines,
            s.crates.join(", ")
        );
    }
    figure.push_str(
        "\nAll four share the lab's own HTTP/1.1 client and the server's router; long polling \
         reuses short polling's poller. WebSocket alone needs a protocol crate of its own \
         (tokio-tungstenite, behind axum's `ws` feature too); SSE's client uses \
         eventsource-stream, a parser of the text format over an ordinary HTTP response.",
    );
    if let Some(ok) = sse_worked {
        let _ = write!(
            figure,
            " Every SSE cell over HTTP/1.1 in these runs {}.",
            if ok {
                "delivered with nothing missing"
            } else {
                "did not deliver everything"
            }
        );
    }
    Answer {
        verdict,
        figure,
        chart: None,
    }
}

fn claim_2(runs: &[StudyRun]) -> Answer {
    let cells: Vec<_> = all_cells(runs)
        .into_iter()
        .filter(|(_, c)| c.technique == Technique::Sse)
        .filter_map(|(r, c)| c.faults.as_ref().filter(|f| f.drops > 0).map(|f| (r, c, f)))
        .collect();
    let Some((run, _, _)) = cells.first() else {
        return Answer::missing("an SSE cell whose connections were dropped (a `[faults] drop`)");
    };
    let sum = |f: &dyn Fn(&CellResult, &crate::model::faults::FaultResults) -> u64| {
        cells.iter().map(|(_, c, x)| f(c, x)).sum::<u64>()
    };
    let drops = sum(&|_, f| f.drops);
    let unrecovered = sum(&|_, f| f.recovery.incomplete);
    let missing = sum(&|c, _| c.deliveries.missing);
    let duplicated = sum(&|c, _| c.deliveries.duplicated);
    let figures: Vec<String> = cells
        .iter()
        .map(|(_, c, f)| {
            format!(
                "{} drops at {} clients and {}/s, recovered in {} (p50 / p99 / max)",
                int(f.drops),
                int(u64::from(c.clients)),
                num(c.rate),
                times(&f.recovery)
            )
        })
        .collect();
    Answer {
        verdict: verdict_2(drops, unrecovered, missing, duplicated),
        figure: format!(
            "{}; {} missing and {} duplicated deliveries. Measured with the lab's SSE client, \
             which reconnects as EventSource does (it waits the server's `retry:` hint, then \
             resumes with `Last-Event-ID`), not with a browser; the wait is most of the \
             recovery time.",
            figures.join("; "),
            int(missing),
            int(duplicated)
        ),
        chart: chart(run, |k| matches!(k, ChartKind::FaultTimes(_))),
    }
}

/// The plain point with the most subscribers where both SSE and short polling ran.
fn reference_point(runs: &[StudyRun]) -> Option<(&StudyRun, Point)> {
    all_cells(runs)
        .into_iter()
        .filter(|(_, c)| c.technique == Technique::Sse && plain(c))
        .filter(|(r, c)| {
            r.summary
                .cells
                .iter()
                .any(|o| o.technique == Technique::ShortPolling && Point::of(o) == Point::of(c))
        })
        .max_by(|(_, a), (_, b)| a.clients.cmp(&b.clients).then(b.rate.total_cmp(&a.rate)))
        .map(|(r, c)| (r, Point::of(c)))
}

fn claim_3(runs: &[StudyRun]) -> Answer {
    let Some((run, point)) = reference_point(runs) else {
        return Answer::missing("a plain cell of SSE beside short polling");
    };
    let view = View::new(&run.summary);
    let push: Vec<&CellResult> = [Technique::WebSocket, Technique::Sse]
        .into_iter()
        .filter_map(|t| view.cell(&point, t))
        .collect();
    let p50 = push.iter().map(|c| c.latency.p50_us).max().unwrap_or(0);
    let p99 = push.iter().map(|c| c.latency.p99_us).max().unwrap_or(0);
    let mut parts: Vec<String> = push
        .iter()
        .map(|c| {
            format!(
                "{} p50 {}, p99 {}",
                c.technique.name(),
                ms(c.latency.p50_us as f64),
                ms(c.latency.p99_us as f64)
            )
        })
        .collect();
    if let Some(sp) = view.cell(&point, Technique::ShortPolling) {
        parts.push(format!(
            "against short polling's p50 {} (polling every {})",
            ms(sp.latency.p50_us as f64),
            humantime::format_duration(run.summary.scenario.poll_interval)
        ));
    }
    Answer {
        verdict: verdict_3(p50, p99),
        figure: format!(
            "{} ({}, on loopback; latency from the moment a comment was due to be published \
             to the moment the subscriber parsed it, the publisher's POST included). \"Real \
             time\" is taken as within {}.",
            parts.join("; "),
            point.describe(),
            ms(REAL_TIME_US as f64)
        ),
        chart: chart(
            run,
            |k| matches!(k, ChartKind::Percentiles(p) if *p == point),
        ),
    }
}

fn claim_4(probes: Option<&Probes>) -> Answer {
    let Some(probe) = probes.and_then(|p| p.url_limit.as_ref()) else {
        return Answer::missing("the URL-length probe (`study` runs it against a fresh server)");
    };
    let post_refused = probe.post_status.contains("405");
    let refused = match (probe.shortest_refused, &probe.refusal) {
        (Some(n), Some(how)) => format!("refused at {} B ({how})", int(n)),
        (Some(n), None) => format!("refused at {} B", int(n)),
        _ => "never refused".into(),
    };
    Answer {
        verdict: verdict_4(post_refused, probe.longest_accepted, probe.shortest_refused),
        figure: format!(
            "`POST /sse` was answered `{}`. Parameters travel in the URL: `GET /sse?user=...` \
             streamed with a request target of {} B and was {refused} (sizes halved to within \
             1%): the limit of this server's HTTP stack on a request target; a browser or a \
             proxy on the way may cut shorter, which this lab does not measure. A body, another \
             method and, in the browser, custom headers are not available to EventSource.",
            probe.post_status,
            int(probe.longest_accepted)
        ),
        chart: None,
    }
}

fn claim_5(runs: &[StudyRun], probes: Option<&Probes>) -> Answer {
    let sse = all_cells(runs)
        .into_iter()
        .filter(|(_, c)| c.technique == Technique::Sse && plain(c))
        .max_by_key(|(_, c)| c.clients);
    let Some((_, sse)) = sse else {
        return Answer::missing("a plain SSE cell");
    };
    let verdict = verdict_5(sse.client.bytes_up, sse.client.requests);
    let mut figure = format!(
        "Within the window of the SSE cell at {} clients, the subscribers sent {} upstream in \
         {} requests, while receiving {}: the stream carries nothing back.",
        int(u64::from(sse.clients)),
        bytes(sse.client.bytes_up as f64),
        int(sse.client.requests),
        bytes(sse.client.bytes_down as f64)
    );
    match probes.and_then(|p| p.upstream.as_ref()) {
        Some(u) => {
            let _ = write!(
                figure,
                " Sending upstream therefore takes another request: {} publishes of {} B \
                 comments cost {} up and {} down each by `POST /comments` on a keep-alive \
                 connection (answer after {} at the median), against {} up and {} down as a \
                 frame on an open WebSocket (acknowledged after {}), whose upgrade and first frame cost \
                 {} once; the two alternated, one of each at a time. The POST carries its \
                 request and response heads every time and its body names the sender; the \
                 frame carries 6 B of header (2 B plus the client's 4 B mask) and the \
                 connection names the sender.",
                int(u.publishes),
                int(u.payload_bytes),
                bytes(u.post.bytes_up),
                bytes(u.post.bytes_down),
                ms(u.post.p50_us as f64),
                bytes(u.websocket.bytes_up),
                bytes(u.websocket.bytes_down),
                ms(u.websocket.p50_us as f64),
                bytes(u.websocket.setup_bytes as f64)
            );
        }
        None => figure.push_str(
            " Missing: the upstream probe (a publish by POST against one over a WebSocket).",
        ),
    }
    figure.push_str(
        " \"Cannot be taken back\" is true of every technique here: nothing retracts a sent \
         comment; a retraction would be a new event the client applies.",
    );
    Answer {
        verdict,
        figure,
        chart: None,
    }
}

fn claim_6(runs: &[StudyRun]) -> Answer {
    let sse: Vec<_> = all_cells(runs)
        .into_iter()
        .filter(|(_, c)| c.technique == Technique::Sse)
        .filter_map(|(r, c)| c.faults.as_ref().map(|f| (r, c, f)))
        .collect();
    let clean = sse
        .iter()
        .find_map(|(r, c, f)| f.close_detection.as_ref().map(|d| (*r, *c, d)));
    let vanished = sse.iter().find_map(|(r, c, f)| {
        f.vanish
            .iter()
            .find(|v| v.settings == Default::default())
            .or(f.vanish.first())
            .map(|v| (*r, *c, v))
    });
    let verdict = verdict_6(clean.map(|x| x.2), vanished.map(|x| &x.2.detection));
    if let Verdict::Missing(_) = verdict {
        return Answer {
            verdict,
            figure: String::new(),
            chart: None,
        };
    }
    let mut parts = Vec::new();
    if let Some((run, c, d)) = clean {
        parts.push(format!(
            "pages that closed cleanly (a FIN) at {}/s were noticed in {} (p50 / p99 / max, \
             read from the server's connection count every 20 ms; SSE heartbeat {})",
            num(c.rate),
            times(d),
            humantime::format_duration(run.summary.scenario.sse_heartbeat)
        ));
    }
    if let Some((_, c, v)) = vanished {
        parts.push(format!(
            "{} subscribers whose network vanished (no FIN, no RST) at {}/s were noticed in \
             {}, watched for {} s after (server settings: SSE heartbeat {}, TCP user timeout {})",
            int(u64::from(v.vanished)),
            num(c.rate),
            times(&v.detection),
            num(v.watched_ms as f64 / 1000.0),
            v.settings
                .sse_heartbeat
                .map_or("default".into(), |d| humantime::format_duration(d)
                    .to_string()),
            v.settings
                .user_timeout
                .map_or("default".into(), |d| humantime::format_duration(d)
                    .to_string()),
        ));
    } else {
        parts.push("missing: the vanished-client case (a `[faults] vanish`, needs root)".into());
    }
    let run = clean.map(|x| x.0).or(vanished.map(|x| x.0));
    Answer {
        verdict,
        figure: format!("SSE: {}.", parts.join("; ")),
        chart: run.and_then(|r| chart(r, |k| matches!(k, ChartKind::FaultTimes(_)))),
    }
}

fn claim_7(runs: &[StudyRun]) -> Answer {
    let idle = |t: Technique| {
        all_cells(runs)
            .into_iter()
            .filter(|(_, c)| c.technique == t && plain(c))
            .filter_map(|(r, c)| c.idle_memory.map(|m| (r, c, m)))
            .max_by_key(|(_, c, _)| c.clients)
    };
    let (Some((run, sse, m)), Some((_, sp, p))) =
        (idle(Technique::Sse), idle(Technique::ShortPolling))
    else {
        return Answer::missing(
            "the servers' idle memory per connection for SSE and short polling",
        );
    };
    Answer {
        verdict: verdict_7(m.bytes_per_connection, p.bytes_per_connection),
        figure: format!(
            "Server memory per idle subscriber, all connected, nothing published yet: SSE {} \
             ({} connections), short polling with keep-alive {} ({} connections); at {}/s the \
             server used {} µs of CPU per SSE delivery against {} µs per short-polling \
             delivery. What a held connection costs while idle is memory; the lab did not \
             measure idle CPU (resident memory moves in pages, so read per-connection figures \
             at a few hundred clients as rough).",
            bytes(m.bytes_per_connection),
            int(m.connections),
            bytes(p.bytes_per_connection),
            int(p.connections),
            num(sse.rate),
            num(sse.per_delivery.server_cpu_us),
            num(sp.per_delivery.server_cpu_us)
        ),
        chart: chart(run, |k| matches!(k, ChartKind::Cost)),
    }
}

fn claim_8(runs: &[StudyRun]) -> Answer {
    let polls: Vec<_> = all_cells(runs)
        .into_iter()
        .filter(|(_, c)| {
            c.technique == Technique::ShortPolling && plain(c) && c.client.requests > 0
        })
        .collect();
    let poll_rate = |r: &StudyRun| 1.0 / r.summary.scenario.poll_interval.as_secs_f64();
    let empty = |c: &CellResult| c.client.empty_responses as f64 / c.client.requests as f64;
    let low = polls
        .iter()
        .filter(|(r, c)| per_subscriber_rate(r, c) < poll_rate(r))
        .min_by(|(ra, a), (rb, b)| {
            per_subscriber_rate(ra, a).total_cmp(&per_subscriber_rate(rb, b))
        });
    let high = polls
        .iter()
        .filter(|(r, c)| per_subscriber_rate(r, c) > poll_rate(r))
        .max_by(|(ra, a), (rb, b)| {
            per_subscriber_rate(ra, a).total_cmp(&per_subscriber_rate(rb, b))
        });
    let Some((run, sp)) = low else {
        return Answer::missing("a short-polling cell with comments rarer than polls");
    };
    let view = View::new(&run.summary);
    let Some(sse) = view.cell(&Point::of(sp), Technique::Sse) else {
        return Answer::missing("an SSE cell beside the short-polling cell");
    };
    let ratio = sp.per_delivery.bytes / sse.per_delivery.bytes.max(1.0);
    let mut figure = format!(
        "At {} comments/s per subscriber ({}, polling every {}): {} of polls came back \
         empty, {} requests and {} per delivered comment against SSE's {} ({}x), server CPU \
         {} µs against {} µs per delivery, and latency p50 {} against SSE's {}.",
        num(per_subscriber_rate(run, sp)),
        Point::of(sp).describe(),
        humantime::format_duration(run.summary.scenario.poll_interval),
        pct(empty(sp)),
        num(sp.per_delivery.requests),
        bytes(sp.per_delivery.bytes),
        bytes(sse.per_delivery.bytes),
        num(ratio),
        num(sp.per_delivery.server_cpu_us),
        num(sse.per_delivery.server_cpu_us),
        ms(sp.latency.p50_us as f64),
        ms(sse.latency.p50_us as f64)
    );
    if let Some((hr, hc)) = high {
        let _ = write!(
            figure,
            " At {} comments/s per subscriber, {} of polls were empty and each carried {} \
             comments on average ({} per delivered comment).",
            num(per_subscriber_rate(hr, hc)),
            pct(empty(hc)),
            num(1.0 / hc.per_delivery.requests.max(f64::MIN_POSITIVE)),
            bytes(hc.per_delivery.bytes)
        );
    }
    Answer {
        verdict: verdict_8(empty(sp), ratio, high.map(|(_, c)| empty(c))),
        figure,
        chart: chart(run, |k| matches!(k, ChartKind::Cost)),
    }
}

fn claim_9(runs: &[StudyRun]) -> Answer {
    // Rare comments on loopback: requests per delivered comment of both pollers.
    let low = all_cells(runs)
        .into_iter()
        .filter(|(r, c)| {
            c.technique == Technique::LongPolling
                && plain(c)
                && per_subscriber_rate(r, c) < 1.0 / r.summary.scenario.poll_interval.as_secs_f64()
        })
        .find_map(|(r, lp)| {
            View::new(&r.summary)
                .cell(&Point::of(lp), Technique::ShortPolling)
                .map(|sp| (r, lp.clone(), sp.clone()))
        });
    let Some((run, lp, sp)) = low else {
        return Answer::missing("long and short polling at a rate below the poll rate");
    };
    // Fast comments over a real round trip: long polling's polls per round trip.
    let fast = all_cells(runs)
        .into_iter()
        .filter(|(r, c)| {
            c.technique == Technique::LongPolling
                && c.faults.is_none()
                && c.link.is_some_and(|l| {
                    !l.rtt.is_zero() && per_subscriber_rate(r, c) * l.rtt.as_secs_f64() > 1.0
                })
                && c.window_seconds > 0.0
        })
        .max_by_key(|(_, c)| c.link.map(|l| l.rtt));
    let polls_per_rtt = fast.map(|(_, c)| {
        let rtt = c.link.expect("filtered").rtt.as_secs_f64();
        c.client.requests as f64 / f64::from(c.clients) / c.window_seconds * rtt
    });
    let mut figure = format!(
        "On loopback at {} comments/s per subscriber ({}): long polling made {} requests per \
         delivered comment against short polling's {}, {} against {} per comment.",
        num(per_subscriber_rate(run, &lp)),
        Point::of(&lp).describe(),
        num(lp.per_delivery.requests),
        num(sp.per_delivery.requests),
        bytes(lp.per_delivery.bytes),
        bytes(sp.per_delivery.bytes)
    );
    let mut link = None;
    match fast {
        Some((fr, fc)) => {
            let rtt = fc.link.expect("filtered").rtt;
            let push = View::new(&fr.summary)
                .cell(&Point::of(fc), Technique::Sse)
                .map(|s| s.latency.p50_us);
            let _ = write!(
                figure,
                " Over a {} round trip at {} comments/s (one every {}), long polling asked {} \
                 times per subscriber per round trip, {} requests per delivered comment (each \
                 answer batching what came while the next request travelled), latency p50 {}{}.",
                humantime::format_duration(rtt),
                num(per_subscriber_rate(fr, fc)),
                ms(1e6 / per_subscriber_rate(fr, fc)),
                num(polls_per_rtt.unwrap_or(0.0)),
                num(fc.per_delivery.requests),
                ms(fc.latency.p50_us as f64),
                push.map_or(String::new(), |p| format!(
                    " against SSE's {}",
                    ms(p as f64)
                ))
            );
            link = chart(fr, |k| matches!(k, ChartKind::Cost));
        }
        None => figure.push_str(
            " Missing: a cell over a real round trip with comments faster than one per round trip.",
        ),
    }
    figure.push_str(
        " \"Many clients still load the server\": each long poller holds a connection as an \
         SSE client does, so claim 7's figures apply.",
    );
    Answer {
        verdict: verdict_9(
            lp.per_delivery.requests,
            sp.per_delivery.requests,
            polls_per_rtt,
        ),
        figure,
        chart: link.or_else(|| chart(run, |k| matches!(k, ChartKind::Cost))),
    }
}

fn claim_10(runs: &[StudyRun], probes: Option<&Probes>) -> Answer {
    let mut recorded: Vec<_> = all_cells(runs)
        .into_iter()
        .filter(|(_, c)| c.technique == Technique::WebSocket && c.http.is_default())
        .filter_map(|(r, c)| c.wire.as_ref().map(|w| (r, c, w)))
        .collect();
    // Shown: a plain cell's, the rarest comments first (as under "On the wire"), whatever
    // order the runs came in; the answer times of every recorded upgrade beside it.
    recorded.sort_by(|(ra, a, _), (rb, b, _)| {
        plain(b)
            .cmp(&plain(a))
            .then(per_subscriber_rate(ra, a).total_cmp(&per_subscriber_rate(rb, b)))
    });
    let Some(&(run, cell, capture)) = recorded.first() else {
        return Answer::missing("a recorded WebSocket exchange (a cell's `wire` capture)");
    };
    let answer_times: Vec<u64> = recorded
        .iter()
        .filter_map(|(_, _, w)| wire::heads(w).map(|h| h.answer_us))
        .collect();
    let switched = capture
        .opening
        .iter()
        .any(|c| c.text.starts_with("HTTP/1.1 101"));
    let heads = wire::heads(capture);
    let acked = probes
        .and_then(|p| p.upstream.as_ref())
        .map(|u| u.websocket.accepted == u.publishes && u.publishes > 0);
    let mut figure = match heads {
        Some(h) => format!(
            "The upgrade, once per connection: a {} B request (GET with `Upgrade: websocket` \
             and a `Sec-WebSocket-Key`) answered by a {} B `101 Switching Protocols` after {} \
             (one subscriber's first connection in the {}-client cell of `{}`, on loopback, \
             while the cell's other subscribers connected at the same moment). \
             After it, a comment costs a frame header of 2 to 4 B on top of its JSON (see on \
             the wire).",
            int(h.request),
            int(h.response),
            ms(h.answer_us as f64),
            int(u64::from(cell.clients)),
            run.summary.scenario.name
        ),
        None => "The recorded opening holds no complete upgrade.".into(),
    };
    if answer_times.len() > 1 {
        let _ = write!(
            figure,
            " Over the {} WebSocket cells recorded, the 101 came after {} to {}.",
            answer_times.len(),
            ms(*answer_times.iter().min().expect("several") as f64),
            ms(*answer_times.iter().max().expect("several") as f64)
        );
    }
    match probes.and_then(|p| p.upstream.as_ref()) {
        Some(u) => {
            let _ = write!(
                figure,
                " Full duplex: the same socket carried {} publishes upstream, each acknowledged \
                 ({} of {}), while comments flowed down.",
                int(u.publishes),
                int(u.websocket.accepted),
                int(u.publishes)
            );
        }
        None => figure.push_str(" Missing: the upstream probe."),
    }
    figure.push_str(
        " The upgrade is served on the same port and router as every HTTP route here; CORS and \
         authentication are not exercised by this lab (no browser origin, no credentials). \
         The server needed a WebSocket implementation (tokio-tungstenite, claim 1's table).",
    );
    // No chart draws the handshake: the exchange under "On the wire" shows it.
    Answer {
        verdict: verdict_10(switched, acked),
        figure,
        chart: None,
    }
}

/// The ten answers, in the claims' order.
pub fn answers(runs: &[StudyRun], probes: Option<&Probes>) -> Vec<Answer> {
    vec![
        claim_1(runs),
        claim_2(runs),
        claim_3(runs),
        claim_4(probes),
        claim_5(runs, probes),
        claim_6(runs),
        claim_7(runs),
        claim_8(runs),
        claim_9(runs),
        claim_10(runs, probes),
    ]
}

/// The handout.
pub fn render(runs: &[StudyRun], probes: Option<&Probes>) -> String {
    let mut out = String::from("# The study note's ten claims, measured\n\n");
    out.push_str(
        "Each claim of the study note (`notes/study-note.md`), quoted, with a verdict computed \
         from the runs below: **holds**, **holds only when** a condition, **does not hold \
         here**, or **not measured** naming the measurement that is missing. The figures are \
         this machine's, on loopback unless a link is named; absolute times vary up to 2x \
         from run to run here, so read ratios measured in one run.\n\n",
    );
    out.push_str("Runs read:\n\n");
    for run in runs {
        let s = &run.summary;
        let _ = writeln!(
            out,
            "- [`{}`]({}/report.md): {} cells, started {}{}",
            s.scenario.name,
            run.folder,
            s.cells.len(),
            s.started_at,
            if s.interrupted { " (interrupted)" } else { "" }
        );
    }
    if let Some(p) = probes {
        let _ = writeln!(
            out,
            "- [`{PROBES_FILE}`]({PROBES_FILE}): against a fresh server with default settings, \
             {}{}",
            if p.upstream.is_some() {
                "publishes by POST and over a WebSocket"
            } else {
                "no upstream probe"
            },
            if p.url_limit.is_some() {
                ", and the longest URL `GET /sse` accepts"
            } else {
                ""
            }
        );
    }
    out.push('\n');
    let answers = answers(runs, probes);
    out.push_str("| claim | verdict |\n| ---: | --- |\n");
    for (i, a) in answers.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} |",
            i + 1,
            a.verdict.text().replace('|', "\\|")
        );
    }
    out.push('\n');
    for (i, (claim, a)) in CLAIMS.iter().zip(&answers).enumerate() {
        let _ = writeln!(
            out,
            "## Claim {}\n\n> {claim}\n\nVerdict: {}.\n",
            i + 1,
            a.verdict.text()
        );
        if !a.figure.is_empty() {
            let _ = writeln!(out, "{}\n", a.figure);
        }
        if let Some(link) = &a.chart {
            let _ = writeln!(out, "![claim {}]({link})\n", i + 1);
        }
    }
    on_the_wire(&mut out, runs);
    out
}

/// Every technique's recorded exchange, from the first run that has one, and one delivered
/// comment's bytes by layer in every plain cell that recorded one.
fn on_the_wire(out: &mut String, runs: &[StudyRun]) {
    let mut body = String::new();
    for technique in Technique::ALL {
        let mut cells: Vec<(&StudyRun, &CellResult)> = all_cells(runs)
            .into_iter()
            .filter(|(_, c)| c.technique == technique && c.wire.is_some() && plain(c))
            .collect();
        // The rarest comments first: its exchange is the shortest to read (a fast poll's
        // answer holds dozens of comments), whatever order the runs were given in.
        cells.sort_by(|(ra, a), (rb, b)| {
            per_subscriber_rate(ra, a).total_cmp(&per_subscriber_rate(rb, b))
        });
        let Some((first_run, first)) = cells.first() else {
            continue;
        };
        wire::exchange_part(&mut body, &View::new(&first_run.summary), first);
        let columns: Vec<(String, &CellResult)> = cells
            .iter()
            .map(|(r, c)| {
                (
                    format!(
                        "{}: {} clients, {}/s each",
                        r.summary.scenario.name,
                        int(u64::from(c.clients)),
                        num(per_subscriber_rate(r, c))
                    ),
                    *c,
                )
            })
            .collect();
        wire::breakdown_table(&mut body, &columns);
    }
    if body.is_empty() {
        out.push_str("## On the wire\n\nMissing: no run recorded an exchange.\n");
        return;
    }
    out.push_str(
        "## On the wire\n\nOne subscriber's first connection per technique, recorded by the \
         load generator's counting client: its opening and the exchange that carried its \
         first comment (`\\r\\n` is CRLF, `\\xNN` a byte that is not text). Below each, one \
         delivered comment's bytes by layer over each cell's window: the HTTP heads are the \
         recorded heads times the requests (polls) or connections opened (streams) per \
         delivered comment, framing is the rest of what the sockets counted beyond the \
         comment's JSON. TCP/IP headers are the kernel's segments on the subscribers' \
         sockets at 52 B each (IPv4 20 B + TCP 32 B with timestamps), counted over the whole \
         cell and taken in the window's share of its bytes: connection set-up and close are \
         in them, which weighs where each subscriber received few comments; loopback's \
         64 KiB MTU makes fewer, larger segments than Ethernet would.\n\n",
    );
    out.push_str(&body);
}

#[cfg(test)]
mod tests;
