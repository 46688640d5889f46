//! `pushlab-loadgen study`: runs the study's scenarios (`scenarios/study/*.toml`) one after
//! the other into one folder, measures the two probes no scenario can (claim 4: the URL a GET
//! can carry; claim 5: a publish over WebSocket against a POST) against a fresh server, and
//! writes `handout.md` from the results alone, so `study --from DIR...` rebuilds it from
//! existing run folders.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::output::write_run_files;
use super::runner::{self, RunError, RunOptions};
use super::scenario::Scenario;
use super::target::{ServerLaunch, ServerProcess, TargetError};
use crate::http::client::HttpConnection;
use crate::model::wire::{Probes, PublishCost, UpstreamProbe, UrlLimitProbe};
use crate::net::ByteMeter;
use crate::report::handout::{self, HANDOUT_FILE, PROBES_FILE, StudyRun};
use crate::report::{self, ReportError};
use crate::techniques::{Subscriber, Target};

/// Why the study stopped.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("{}: cannot read the scenario folder: {source}", dir.display())]
    Scenarios {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no scenario files (*.toml)", .0.display())]
    NoScenarios(PathBuf),
    #[error(transparent)]
    Scenario(#[from] super::scenario::ScenarioError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("starting the probes' server: {0}")]
    ProbeServer(#[from] TargetError),
    #[error("{}: {source}", file.display())]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a probes file: {source}", file.display())]
    Probes {
        file: PathBuf,
        source: serde_json::Error,
    },
}

/// What `study` needs.
pub struct StudyOptions {
    /// The scenario files to run, in order.
    pub scenarios: Vec<PathBuf>,
    /// The study folder: run folders, `probes.json` and `handout.md` go in it.
    pub out: PathBuf,
    /// Shorter cells: windows of at most 4 s after a 1 s warm-up, for a quick look.
    pub quick: bool,
    pub server_binary: PathBuf,
    pub progress: bool,
    pub interrupt: tokio_util::sync::CancellationToken,
}

/// The `*.toml` files of a folder, sorted by name.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, StudyError> {
    let entries = std::fs::read_dir(dir).map_err(|source| StudyError::Scenarios {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(StudyError::NoScenarios(dir.to_path_buf()));
    }
    Ok(files)
}

/// Loads the scenarios, shortened with `quick`.
pub fn load_scenarios(files: &[PathBuf], quick: bool) -> Result<Vec<Scenario>, StudyError> {
    files
        .iter()
        .map(|file| {
            let mut scenario = Scenario::load(file)?;
            if quick {
                scenario.warmup = scenario.warmup.min(Duration::from_secs(1));
                scenario.duration = scenario.duration.min(Duration::from_secs(4));
            }
            Ok(scenario)
        })
        .collect()
}

/// Runs every scenario into `options.out`, then the probes, then writes the handout; returns
/// the handout's path.
pub async fn run(options: &StudyOptions) -> Result<PathBuf, StudyError> {
    let scenarios = load_scenarios(&options.scenarios, options.quick)?;
    let mut run_dirs = Vec::new();
    for scenario in &scenarios {
        if options.interrupt.is_cancelled() {
            break;
        }
        eprintln!("study: running {}", scenario.name);
        let run_options = RunOptions {
            results_root: options.out.clone(),
            targets: Vec::new(),
            server_binary: options.server_binary.clone(),
            // Beside the server, as cargo builds them; no study scenario has workers.
            loadgen_binary: options.server_binary.with_file_name("pushlab-loadgen"),
            shard: None,
            progress: options.progress,
            interrupt: options.interrupt.clone(),
        };
        let output = runner::run(scenario, &run_options, &mut write_run_files).await?;
        write_run_files(&output.run_dir, &output.summary, &output.histograms)?;
        let saved = report::load_summary(&output.run_dir)?;
        report::write_report(&output.run_dir, &saved)?;
        run_dirs.push(output.run_dir);
    }
    let log = options.out.join("probes-server.log");
    let probes = probe(&options.server_binary, &log).await?;
    let file = options.out.join(PROBES_FILE);
    let json = serde_json::to_string_pretty(&probes).expect("probes serialise");
    write(&file, json.as_bytes())?;
    write_handout(&options.out, &run_dirs)
}

/// Builds `out/handout.md` from run folders (each with its `summary.json`) and, if present,
/// `out/probes.json`: the handout is a function of these files alone.
pub fn write_handout(out: &Path, run_dirs: &[PathBuf]) -> Result<PathBuf, StudyError> {
    let mut runs = Vec::new();
    for dir in run_dirs {
        runs.push(StudyRun {
            folder: relative(out, dir),
            summary: report::load_summary(dir)?,
        });
    }
    // The same handout whatever order the folders were named in.
    runs.sort_by(|a, b| {
        (&a.summary.scenario.name, &a.summary.started_at)
            .cmp(&(&b.summary.scenario.name, &b.summary.started_at))
    });
    let probes_file = out.join(PROBES_FILE);
    let probes =
        match std::fs::read_to_string(&probes_file) {
            Ok(text) => Some(serde_json::from_str::<Probes>(&text).map_err(|source| {
                StudyError::Probes {
                    file: probes_file.clone(),
                    source,
                }
            })?),
            Err(_) => None,
        };
    std::fs::create_dir_all(out).map_err(|source| StudyError::Write {
        file: out.to_path_buf(),
        source,
    })?;
    let file = out.join(HANDOUT_FILE);
    write(&file, handout::render(&runs, probes.as_ref()).as_bytes())?;
    Ok(file)
}

fn write(file: &Path, bytes: &[u8]) -> Result<(), StudyError> {
    std::fs::write(file, bytes).map_err(|source| StudyError::Write {
        file: file.to_path_buf(),
        source,
    })
}

/// `to` as a path from `from` (both made absolute), with `/` separators, for links.
pub fn relative(from: &Path, to: &Path) -> String {
    let absolute = |p: &Path| -> Vec<String> {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    let (from, to) = (absolute(from), absolute(to));
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(to[common..].iter().cloned());
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// Starts a fresh server with default settings and measures both probes on it.
pub async fn probe(binary: &Path, log: &Path) -> Result<Probes, StudyError> {
    let server = ServerProcess::start(&ServerLaunch {
        binary: binary.to_path_buf(),
        args: Vec::new(),
        log: log.to_path_buf(),
    })
    .await?;
    let addr = server.addr;
    let upstream = upstream_probe(addr, 50, 100).await;
    let url_limit = url_limit_probe(addr).await;
    server.stop().await;
    Ok(Probes {
        upstream: upstream
            .map_err(|e| tracing::warn!("upstream probe: {e}"))
            .ok(),
        url_limit: url_limit.map_err(|e| tracing::warn!("URL probe: {e}")).ok(),
    })
}

type ProbeError = Box<dyn std::error::Error + Send + Sync>;

fn median(mut times: Vec<u64>) -> u64 {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or(0)
}

/// `count` comments of `payload` bytes, published one at a time by POST on a keep-alive
/// connection and as frames on a WebSocket, alternating (so both meet the same load on a
/// shared machine), each waiting for its answer; bytes counted at the publisher's sockets,
/// set-up apart.
pub async fn upstream_probe(
    addr: std::net::SocketAddr,
    count: u64,
    payload: usize,
) -> Result<UpstreamProbe, ProbeError> {
    let text = "x".repeat(payload);
    let meter = ByteMeter::new();
    let mut http = HttpConnection::open(&Target { addr }, meter.clone()).await?;
    let http_setup = meter.totals();
    // As user "probe", publishing to "nobody": no comment comes back down the WebSocket,
    // only the acknowledgements.
    let subscriber = Subscriber::new(addr, Some("probe"), None);
    let mut socket = crate::techniques::websocket::connect(&subscriber, None).await?;
    // The first frame names the starting cursor: part of the set-up.
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
    let ws_setup = subscriber.meter.totals();
    let (mut post_times, mut post_accepted) = (Vec::new(), 0);
    let (mut ws_times, mut ws_accepted) = (Vec::new(), 0);
    for _ in 0..count {
        let body = serde_json::json!({ "from": "probe", "to": "nobody", "text": text }).to_string();
        let started = Instant::now();
        if http.post_json("/comments", &body).await.is_ok() {
            post_accepted += 1;
        }
        post_times.push(started.elapsed().as_micros() as u64);

        let frame = serde_json::json!({ "to": "nobody", "text": text }).to_string();
        let started = Instant::now();
        socket.send(Message::text(frame)).await?;
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(5), socket.next())
                .await
                .map_err(|_| "no acknowledgement within 5 s")?
                .ok_or("the WebSocket closed")??;
            if let Message::Text(reply) = reply {
                if reply.as_str().starts_with("{\"ack\"") {
                    ws_accepted += 1;
                    break;
                }
                if reply.as_str().starts_with("{\"error\"") {
                    break;
                }
            }
        }
        ws_times.push(started.elapsed().as_micros() as u64);
    }
    // `totals()` is (up, down).
    let cost = |meter: &ByteMeter, setup: (u64, u64), accepted, times| {
        let (up, down) = meter.totals();
        PublishCost {
            accepted,
            bytes_up: (up - setup.0) as f64 / count as f64,
            bytes_down: (down - setup.1) as f64 / count as f64,
            p50_us: median(times),
            setup_bytes: setup.0 + setup.1,
        }
    };
    let post = cost(&meter, http_setup, post_accepted, post_times);
    let websocket = cost(&subscriber.meter, ws_setup, ws_accepted, ws_times);
    let _ = socket.close(None).await;
    Ok(UpstreamProbe {
        publishes: count,
        payload_bytes: payload as u64,
        post,
        websocket,
    })
}

/// The status line a raw request gets, or how the connection ended without one.
async fn status_line(addr: std::net::SocketAddr, request: &[u8]) -> Result<String, ProbeError> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    if let Err(e) = stream.write_all(request).await {
        return Ok(format!("connection failed while sending ({e})"));
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return "connection closed with no answer".to_string(),
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if let Some(end) = answer.windows(2).position(|w| w == b"\r\n") {
                        return String::from_utf8_lossy(&answer[..end]).into_owned();
                    }
                }
                Err(e) => return format!("connection failed ({e})"),
            }
        }
    };
    Ok(tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| "no answer within 5 s".into()))
}

fn sse_request(target_len: usize) -> (Vec<u8>, usize) {
    let base = "/sse?user=probe&pad=";
    let target = format!(
        "{base}{}",
        "a".repeat(target_len.saturating_sub(base.len()))
    );
    let request = format!("GET {target} HTTP/1.1\r\nhost: probe\r\n\r\n");
    (request.into_bytes(), target.len())
}

/// The longest `GET /sse?user=probe&pad=...` request target the server streams to (doubling
/// from 1 KiB to 1 MiB, then halving the gap to within 1%), and how `POST /sse` is answered.
pub async fn url_limit_probe(addr: std::net::SocketAddr) -> Result<UrlLimitProbe, ProbeError> {
    let accepted = |line: &str| line.starts_with("HTTP/1.1 200");
    let (mut good, mut bad, mut refusal) = (0usize, None::<usize>, None);
    let mut size = 1024;
    while size <= 1 << 20 {
        let (request, len) = sse_request(size);
        let line = status_line(addr, &request).await?;
        if accepted(&line) {
            good = len;
            size *= 2;
        } else {
            bad = Some(len);
            refusal = Some(line);
            break;
        }
    }
    if let Some(mut high) = bad {
        while high - good > good / 100 + 1 {
            let mid = (good + high) / 2;
            let (request, len) = sse_request(mid);
            let line = status_line(addr, &request).await?;
            if accepted(&line) {
                good = len;
            } else {
                high = len;
                refusal = Some(line);
            }
        }
        bad = Some(high);
    }
    let post = status_line(
        addr,
        b"POST /sse?user=probe HTTP/1.1\r\nhost: probe\r\ncontent-length: 0\r\n\r\n",
    )
    .await?;
    Ok(UrlLimitProbe {
        longest_accepted: good as u64,
        shortest_refused: bad.map(|b| b as u64),
        refusal,
        post_status: post,
    })
}
