//! `pushlab-loadgen bench polls`: how fast the load generator's short-polling client can
//! poll, held against wrk on the same `/poll` of the same pushlab-server (one it starts on a
//! free port), so the generator is known not to be the limit. Each poller is the client's
//! own exchange (`Poller::exchange`: request, parse, deliver, move the cursor) on its
//! keep-alive connection, back to back with no interval, as wrk's connections are; wrk
//! sends the very request the pollers send (`/poll?user=bench&after=CURSOR`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::http::client::{ClientError, connect_counted};
use crate::http::h1get::GetConnection;
use crate::loadgen::target::{ServerLaunch, ServerProcess, StatsReader, TargetError};
use crate::model::ServerConfig;
use crate::model::stats::ClientCounters;
use crate::net::ByteMeter;
use crate::techniques::short_polling::{Poller, parse_page};
use crate::techniques::{DeliverySink, Subscriber};

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Server(#[from] TargetError),
    #[error("--connections must be at least 1")]
    NoConnections,
    #[error("--rounds must be at least 1")]
    NoRounds,
    #[error("--duration must be at least one second (wrk counts whole seconds)")]
    TooShort,
    #[error("reading the cursor wrk asks after: {0}")]
    Cursor(#[from] ClientError),
}

/// What `bench polls` is asked for.
#[derive(Debug, Clone)]
pub struct PollBench {
    /// Keep-alive connections, each polling back to back (wrk's `-c`).
    pub connections: u32,
    /// How long each side polls.
    pub duration: Duration,
    /// The pushlab-server binary to start.
    pub server_binary: PathBuf,
    /// wrk's threads (`-t`): the load generator's runtime has one worker per core.
    pub wrk_threads: u32,
    /// Measure the load generator's pollers only (no wrk, nothing installed).
    pub without_wrk: bool,
    /// Rounds of the two clients, alternating (pollers, wrk, pollers, wrk, ...).
    pub rounds: u32,
}

impl PollBench {
    pub fn check(&self) -> Result<(), BenchError> {
        if self.connections == 0 {
            return Err(BenchError::NoConnections);
        }
        if self.rounds == 0 {
            return Err(BenchError::NoRounds);
        }
        if self.duration < Duration::from_secs(1) {
            return Err(BenchError::TooShort);
        }
        Ok(())
    }
}

/// One side's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub requests: u64,
    pub seconds: f64,
    /// The server's CPU over the run, per request, microseconds.
    pub server_cpu_us: f64,
    /// The client's CPU per request, microseconds: the load generator's own process, or
    /// wrk's (its rusage once it has ended).
    pub client_cpu_us: f64,
}

impl Rate {
    /// Adds another run of the same client: requests and seconds summed, CPU per request
    /// weighted by requests.
    pub fn add(&mut self, other: &Rate) {
        let requests = self.requests + other.requests;
        let weighted = |a: f64, b: f64| {
            if requests > 0 {
                (a * self.requests as f64 + b * other.requests as f64) / requests as f64
            } else {
                0.0
            }
        };
        self.server_cpu_us = weighted(self.server_cpu_us, other.server_cpu_us);
        self.client_cpu_us = weighted(self.client_cpu_us, other.client_cpu_us);
        self.requests = requests;
        self.seconds += other.seconds;
    }

    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Both sides; `wrk` is `None` when wrk could not be run (its reason in `wrk_missing`).
#[derive(Debug, Clone, Default)]
pub struct PollBenchResult {
    /// How the load generator's pollers ran: the process and runtime, as a run's
    /// subscribers run in each load-generator process.
    pub loadgen_mode: String,
    /// Both sides summed over the rounds.
    pub loadgen: Rate,
    pub wrk: Option<Rate>,
    pub wrk_missing: Option<String>,
    /// Each round's two sides, in order.
    pub rounds: Vec<(Rate, Option<Rate>)>,
}

impl PollBenchResult {
    /// The load generator's rate over wrk's.
    pub fn ratio(&self) -> Option<f64> {
        let wrk = self.wrk?.per_second();
        (wrk > 0.0).then(|| self.loadgen.per_second() / wrk)
    }
}

/// Discards deliveries: the bench counts requests.
struct Discard;

impl DeliverySink for Discard {
    fn deliver(&mut self, _: crate::feed::Comment, _: Instant) {}
}

/// Runs the load generator's pollers, then wrk, against one fresh pushlab-server; `say`
/// gets progress lines (wrk's installation, say).
pub async fn polls(
    bench: &PollBench,
    log_dir: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<PollBenchResult, BenchError> {
    bench.check()?;
    let log = log_dir.join("bench-polls-server.log");
    let launch = ServerLaunch {
        binary: bench.server_binary.clone(),
        args: ServerConfig {
            max_connections: (bench.connections as usize + 100).max(1000),
            ..ServerConfig::default()
        }
        .to_args(),
        log: log.clone(),
    };
    let server = ServerProcess::start(&launch).await?;
    let addr = server.addr;
    let mut stats = StatsReader::new(addr);
    // wrk asks with the cursor the pollers ask with (nothing is published, so it never
    // moves): the same request bytes, so the server does the same work for both clients.
    let after = cursor(addr).await?;
    let url = format!("http://{addr}/poll?user=bench&after={after}");
    let mut wrk_missing = if bench.without_wrk {
        Some("not asked for (--without-wrk)".to_string())
    } else {
        wrk_available(say).err()
    };
    let (mut loadgen, mut wrk, mut rounds) = (Rate::default(), Rate::default(), Vec::new());
    // Rounds alternate the two clients, so a neighbour's load on the shared cores falls on
    // both sides alike rather than on whichever ran while it lasted.
    for _ in 0..bench.rounds {
        let mine = loadgen_polls(bench, addr, &mut stats).await?;
        loadgen.add(&mine);
        let mut theirs = None;
        if wrk_missing.is_none() {
            let before = stats.read().await?.process.cpu_seconds;
            match run_wrk(bench, &url).await {
                Ok(mut rate) => {
                    let after = stats.read().await?.process.cpu_seconds;
                    rate.server_cpu_us = per(after - before, rate.requests);
                    wrk.add(&rate);
                    theirs = Some(rate);
                }
                Err(why) => wrk_missing = Some(why),
            }
        }
        rounds.push((mine, theirs));
    }
    server.stop().await;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    Ok(PollBenchResult {
        loadgen_mode: format!(
            "one process, a tokio multi-thread runtime of {workers} worker thread{}, \
             HTTP/1.1 (the polling clients' hand-written GET connection)",
            if workers == 1 { "" } else { "s" }
        ),
        loadgen,
        wrk: wrk_missing.is_none().then_some(wrk),
        wrk_missing,
        rounds,
    })
}

/// The cursor a poller of the fresh feed holds after its first answer.
async fn cursor(addr: std::net::SocketAddr) -> Result<u64, BenchError> {
    let target = crate::model::Target { addr };
    let stream = connect_counted(&target, ByteMeter::new()).await?;
    let mut connection = GetConnection::over(stream, &target);
    let page = parse_page(connection.get("/poll?user=bench").await?)?;
    Ok(page.next)
}

fn per(cpu_seconds: f64, requests: u64) -> f64 {
    if requests > 0 {
        cpu_seconds * 1e6 / requests as f64
    } else {
        0.0
    }
}

async fn loadgen_polls(
    bench: &PollBench,
    addr: std::net::SocketAddr,
    stats: &mut StatsReader,
) -> Result<Rate, BenchError> {
    let counters = Arc::new(ClientCounters::default());
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..bench.connections {
        let mut subscriber = Subscriber::new(addr, Some("bench"), None);
        subscriber.counters = counters.clone();
        subscriber.stop = stop.clone();
        tasks.spawn(async move {
            let mut poller = Poller::new(&subscriber);
            let mut sink = Discard;
            // Back to back: the interval is what the bench leaves out.
            while poller
                .exchange(&subscriber, &mut sink, "/poll", "")
                .await
                .is_some()
            {}
        });
    }
    // Counted from the moment every connection has answered once, as wrk counts from its
    // connections being up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters.ready.load(Ordering::Relaxed) < u64::from(bench.connections)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server_before = stats.read().await?.process.cpu_seconds;
    let (requests_before, cpu_before, started) = (
        counters.requests.load(Ordering::Relaxed),
        crate::sys::cpu_seconds(),
        Instant::now(),
    );
    tokio::time::sleep(bench.duration).await;
    let (requests_after, cpu_after, seconds) = (
        counters.requests.load(Ordering::Relaxed),
        crate::sys::cpu_seconds(),
        started.elapsed().as_secs_f64(),
    );
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    let server_after = stats.read().await?.process.cpu_seconds;
    let requests = requests_after - requests_before;
    Ok(Rate {
        requests,
        seconds,
        server_cpu_us: per(server_after - server_before, requests),
        client_cpu_us: per(cpu_after - cpu_before, requests),
    })
}

/// Whether wrk runs, installing Debian's package if it is missing (and saying so).
fn wrk_available(say: &mut dyn FnMut(&str)) -> Result<(), String> {
    let runs = |name: &str| Command::new(name).arg("--version").output().is_ok();
    if runs("wrk") {
        return Ok(());
    }
    say("wrk is missing: installing it (apt-get install -y --no-install-recommends wrk)");
    let installed = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "wrk"])
        .output();
    match installed {
        Ok(output) if output.status.success() && runs("wrk") => Ok(()),
        Ok(output) => Err(format!(
            "wrk is not installed and apt-get could not install it: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!(
            "wrk is not installed and apt-get did not run: {error}"
        )),
    }
}

async fn run_wrk(bench: &PollBench, url: &str) -> Result<Rate, String> {
    // wrk is this process's only child to end meanwhile (the server runs on), so the
    // children's CPU grows by wrk's alone.
    let cpu_before = crate::sys::children_cpu_seconds();
    let output = tokio::process::Command::new("wrk")
        .arg(format!(
            "-t{}",
            bench.wrk_threads.min(bench.connections).max(1)
        ))
        .arg(format!("-c{}", bench.connections))
        .arg(format!("-d{}s", bench.duration.as_secs().max(1)))
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("running wrk: {e}"))?;
    let cpu = crate::sys::children_cpu_seconds() - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut rate =
        parse_wrk(&text).ok_or_else(|| format!("wrk's output had no request count: {text}"))?;
    rate.client_cpu_us = per(cpu, rate.requests);
    Ok(rate)
}

/// Reads `N requests in S.SSs` from wrk's summary.
pub fn parse_wrk(text: &str) -> Option<Rate> {
    let line = text.lines().find(|l| l.contains(" requests in "))?;
    let mut words = line.split_whitespace();
    let requests = words.next()?.parse().ok()?;
    let seconds = line
        .split(" requests in ")
        .nth(1)?
        .split(',')
        .next()?
        .trim();
    let seconds = humantime::parse_duration(seconds).ok()?.as_secs_f64();
    Some(Rate {
        requests,
        seconds,
        ..Rate::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_add_up_with_cpu_weighted_by_requests() {
        let mut total = Rate::default();
        let round = |requests, client_cpu_us| Rate {
            requests,
            seconds: 5.0,
            server_cpu_us: 10.0,
            client_cpu_us,
        };
        total.add(&round(100, 4.0));
        total.add(&round(300, 8.0));
        assert_eq!(total.requests, 400);
        assert_eq!(total.seconds, 10.0);
        assert_eq!(total.client_cpu_us, 7.0);
        assert_eq!(total.server_cpu_us, 10.0);
        assert_eq!(total.per_second(), 40.0);
    }

    #[test]
    fn wrk_summary_is_read() {
        let text = "Running 5s test @ http://127.0.0.1:1/poll\n  2 threads and 64 connections\n\
                    \x20 340512 requests in 5.00s, 60.07MB read\nRequests/sec:  68093.41\n";
        let rate = parse_wrk(text).unwrap();
        assert_eq!(rate.requests, 340_512);
        assert_eq!(rate.seconds, 5.0);
        assert!(parse_wrk("nothing").is_none());
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let bench = PollBench {
            connections: 0,
            duration: Duration::from_secs(5),
            server_binary: "x".into(),
            wrk_threads: 2,
            without_wrk: true,
            rounds: 1,
        };
        assert!(
            bench
                .check()
                .unwrap_err()
                .to_string()
                .contains("--connections")
        );
        let short = PollBench {
            connections: 4,
            duration: Duration::from_millis(500),
            ..bench
        };
        assert!(
            short
                .check()
                .unwrap_err()
                .to_string()
                .contains("--duration")
        );
    }
}
