//! `pushlab-loadgen`: runs a scenario against pushlab-server (one fresh server per cell, or
//! `--target`), and writes histograms, JSON, CSV, charts and a report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use pushlab::loadgen::conform::{self, ConformOptions, Verdict};
use pushlab::loadgen::floor::bench::{self as floor_bench, PollBench};
use pushlab::loadgen::link::probe;
use pushlab::loadgen::merge;
use pushlab::loadgen::netns;
use pushlab::loadgen::output::write_run_files;
use pushlab::loadgen::runner::{self, RunOptions};
use pushlab::loadgen::scenario::Scenario;
use pushlab::loadgen::study;
use pushlab::loadgen::target::sibling_server_binary;
use pushlab::model::network::{Link, describe_rate};
use pushlab::model::results::Shard;
use pushlab::report;
use tokio_util::sync::CancellationToken;

/// Drives short polling, long polling, WebSocket and SSE with many clients and measures
/// delivery latency, requests, bytes on the wire, loss, and server CPU and memory.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a scenario file and writes results/<scenario>/<UTC time>/.
    Run {
        /// The scenario file (TOML; see scenarios/README.md).
        scenario: PathBuf,
        /// Drive already running servers (e.g. http://127.0.0.1:8080) instead of starting
        /// fresh ones per cell. Give it more than once (or comma-separated) for instances
        /// sharing one feed: subscribers spread over them round-robin. Loopback addresses only.
        #[arg(long, value_delimiter = ',')]
        target: Vec<String>,
        /// Folder that receives the run folders.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// The pushlab-server binary to start per cell [default: the one beside this binary].
        #[arg(long, conflicts_with = "target")]
        server_binary: Option<PathBuf>,
        /// No progress bar (it is also hidden when stderr is not a terminal).
        #[arg(long)]
        quiet: bool,
        /// Hold only share I of N of every cell's subscribers (subscribers I, I+N, ...; I from
        /// 1), e.g. one machine of several; `merge` adds the shards' run folders up.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<Shard>,
    },
    /// Merges the run folders of a scenario's shards (`run --shard I/N`, all N of them) into
    /// one run folder: histograms added, counts summed, the report drawn.
    Merge {
        /// The shards' run folders.
        #[arg(required = true)]
        run_dirs: Vec<PathBuf>,
        /// The merged run folder to write (must not exist yet).
        #[arg(long)]
        out: PathBuf,
    },
    /// Checks, item by item, that a running server speaks pushlab's interface (README), so
    /// `run --target` can measure it. Exits non-zero if any check fails.
    Conform {
        /// The server, e.g. http://127.0.0.1:8080. Loopback addresses only.
        url: String,
        /// How many comments the server keeps (pushlab-server's `--history`): the 410 check
        /// publishes that many and two more. Without it, that check is not made.
        #[arg(long)]
        history: Option<u64>,
        /// How long to wait for anything the server should send.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
    /// Checks scenario files without running them.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Measures an emulated link (the relay a scenario's `[network]` puts between clients and
    /// server) and prints its round trip and bandwidth, to check the emulation.
    Link {
        /// Round-trip time the link adds.
        #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
        rtt: std::time::Duration,
        /// Bandwidth per connection, each direction (e.g. 2mbit, 256kbit) [default: unlimited].
        #[arg(long, value_parser = parse_rate)]
        bandwidth: Option<u64>,
        /// Each chunk's delay varies by up to this much either way.
        #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
        jitter: std::time::Duration,
        /// One-byte round trips to time.
        #[arg(long, default_value_t = 20)]
        round_trips: usize,
        /// How long the bulk transfer should take at the set bandwidth (its size follows).
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        transfer_time: std::time::Duration,
    },
    /// A worker process of a run with `[load] workers`: holds a share of a cell's
    /// subscribers, taking orders on stdin and reporting on stdout (started by `run`).
    #[command(hide = true)]
    Worker,
    /// Benchmarks the load generator itself against a reference tool.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
    /// Runs the study's scenarios (scenarios/study/*.toml) and two probes, and writes
    /// results/study/<UTC time>/handout.md: the study note's ten claims, each with a verdict,
    /// its figure and its chart. With --from, builds the handout from existing run folders.
    Study {
        /// Folder for the runs, probes.json and handout.md [default: results/study/<UTC time>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Shorter cells (at most a 4 s window after a 1 s warm-up), for a quick look.
        #[arg(long, conflicts_with = "from")]
        quick: bool,
        /// The folder of scenario files to run.
        #[arg(long, default_value = "scenarios/study", conflicts_with = "from")]
        scenarios: PathBuf,
        /// Build the handout from these run folders (each with a summary.json) instead of
        /// running anything; probes.json is read from --out if it is there.
        #[arg(long, num_args = 1..)]
        from: Vec<PathBuf>,
        /// The pushlab-server binary [default: the one beside this binary].
        #[arg(long)]
        server_binary: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Redraws the charts and report of a run folder from its summary.json.
    Report {
        /// A run folder, e.g. results/quick/2026-11-25T14-00-00Z.
        run_dir: PathBuf,
    },
}

/// What `bench` measures.
#[derive(Subcommand, Debug)]
enum Bench {
    /// The load generator's short-polling client and wrk against the same pushlab-server
    /// `/poll` (one it starts on a free port), each polling back to back on N keep-alive
    /// connections; prints both rates and loadgen/wrk (installs wrk with apt-get if missing).
    Polls {
        /// Keep-alive connections on each side (wrk's -c).
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// How long each side polls (whole seconds, as wrk takes it).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// The pushlab-server binary to start [default: the one beside this binary].
        #[arg(long)]
        server_binary: Option<PathBuf>,
        /// Run the load generator's pollers only: no wrk (nothing is installed).
        #[arg(long)]
        without_wrk: bool,
        /// Rounds of the two clients, alternating (pollers, wrk, pollers, ...), each of
        /// --duration; the figures are summed over them, so a neighbour's load on shared
        /// cores falls on both sides.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match execute(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pushlab-loadgen: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate { files } => {
            let mut failed = false;
            for file in files {
                match Scenario::load(&file) {
                    Ok(scenario) => println!(
                        "{}: ok ({} cells of {} + warm-up {})",
                        file.display(),
                        scenario.runs().len(),
                        humantime::format_duration(scenario.duration),
                        humantime::format_duration(scenario.warmup)
                    ),
                    Err(error) => {
                        eprintln!("{error}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Conform { url, history, wait } => {
            let options = ConformOptions {
                addr: parse_target("conform URL", &url)?,
                history,
                wait,
            };
            conform(options)
        }
        Command::Link {
            rtt,
            bandwidth,
            jitter,
            round_trips,
            transfer_time,
        } => {
            if round_trips == 0 {
                bail!("--round-trips must be at least 1");
            }
            let link = Link {
                rtt,
                jitter,
                bandwidth_bps: bandwidth,
                ..Link::DIRECT
            };
            measure_link(link, round_trips, transfer_time)
        }
        Command::Worker => worker(),
        Command::Merge { run_dirs, out } => merge_shards(&run_dirs, &out),
        Command::Bench {
            what:
                Bench::Polls {
                    connections,
                    duration,
                    server_binary,
                    without_wrk,
                    rounds,
                },
        } => {
            let bench = PollBench {
                connections,
                duration,
                server_binary: server_binary.unwrap_or_else(sibling_server_binary),
                wrk_threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
                without_wrk,
                rounds,
            };
            bench.check()?;
            bench_polls(bench)
        }
        Command::Study {
            out,
            quick,
            scenarios,
            from,
            server_binary,
            quiet,
        } => {
            let out = out.unwrap_or_else(|| {
                let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                PathBuf::from("results/study").join(now.to_string().replace(':', "-"))
            });
            if !from.is_empty() {
                let handout = study::write_handout(&out, &from)?;
                println!("{}", handout.display());
                return Ok(ExitCode::SUCCESS);
            }
            let files = study::scenario_files(&scenarios)?;
            let loaded = study::load_scenarios(&files, quick)?;
            // Vanishing subscribers need a network namespace of the study's own: run the
            // whole study again inside one, with the same folder.
            if loaded.iter().any(|s| s.faults.vanish.is_some()) {
                if !netns::inside() {
                    // The re-run must write to this folder, not one named by its own time.
                    let status = netns::rerun_inside_with(&[("PUSHLAB_STUDY_OUT", out.as_path())])?;
                    return Ok(ExitCode::from(
                        status.code().unwrap_or(1).clamp(0, 255) as u8
                    ));
                }
                netns::prepare()?;
            }
            let out = std::env::var_os("PUSHLAB_STUDY_OUT")
                .map(PathBuf::from)
                .unwrap_or(out);
            let options = study::StudyOptions {
                scenarios: files,
                out,
                quick,
                server_binary: server_binary.unwrap_or_else(sibling_server_binary),
                progress: !quiet,
                interrupt: CancellationToken::new(),
            };
            run_study(options)
        }
        Command::Report { run_dir } => {
            let summary = report::load_summary(&run_dir)?;
            for path in report::write_report(&run_dir, &summary)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenario,
            target,
            results,
            server_binary,
            quiet,
            shard,
        } => {
            let scenario = Scenario::load(&scenario)?;
            if let Some(shard) = shard {
                check_shard(&scenario, shard)?;
            }
            let targets = target
                .iter()
                .map(|t| parse_target("--target", t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // Vanishing subscribers need a network namespace of the run's own: run again
            // inside one (the run's process tree is all that lives there).
            if scenario.faults.vanish.is_some() {
                if !targets.is_empty() {
                    return Err(netns::NetnsError::Target.into());
                }
                if !netns::inside() {
                    let status = netns::rerun_inside()?;
                    return Ok(ExitCode::from(
                        status.code().unwrap_or(1).clamp(0, 255) as u8
                    ));
                }
                netns::prepare()?;
            }
            let options = RunOptions {
                results_root: results,
                targets,
                server_binary: server_binary.unwrap_or_else(sibling_server_binary),
                loadgen_binary: std::env::current_exe()
                    .context("finding this binary, which worker processes run")?,
                shard,
                progress: !quiet,
                interrupt: CancellationToken::new(),
            };
            run(scenario, options)
        }
    }
}

#[tokio::main]
async fn worker() -> anyhow::Result<ExitCode> {
    pushlab::loadgen::worker::serve(tokio::io::stdin(), tokio::io::stdout()).await?;
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn run(scenario: Scenario, options: RunOptions) -> anyhow::Result<ExitCode> {
    let interrupt = options.interrupt.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: finishing with the cells already measured");
            interrupt.cancel();
        }
    });
    let output = runner::run(&scenario, &options, &mut write_run_files).await?;
    // Once more after the last cell: an interrupted run is marked only after it.
    write_run_files(&output.run_dir, &output.summary, &output.histograms)?;
    // Draw from summary.json as written, exactly as `report RUN_DIR` will redraw it.
    let saved = report::load_summary(&output.run_dir)?;
    let written = report::write_report(&output.run_dir, &saved)
        .with_context(|| format!("writing the report in {}", output.run_dir.display()))?;
    println!("{}", report::table::render(&output.summary));
    println!("pre-flight: {}", output.preflight);
    println!("results: {}", output.run_dir.display());
    for path in written {
        println!("  {}", path.display());
    }
    let lossy = output
        .summary
        .cells
        .iter()
        .any(|c| c.deliveries.missing > 0);
    if lossy {
        eprintln!("WARNING: some cells lost deliveries; see the table above");
    }
    Ok(if output.summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// `I/N` with 1 <= I <= N, as `--shard` takes it (shard I is index I - 1).
fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("expected I/N with 1 <= I <= N, such as 1/2, got {text:?}");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if i == 0 || i > n {
        return Err(bad());
    }
    Ok(Shard {
        index: i - 1,
        count: n,
    })
}

/// A shard must hold someone in every cell (and every worker of it), and the fault
/// injector's results are not merged.
fn check_shard(scenario: &Scenario, shard: Shard) -> anyhow::Result<()> {
    if !scenario.faults.is_empty() {
        bail!("--shard cannot be used with a scenario with [faults]: their results are not merged");
    }
    let per_process = shard.count * scenario.load.workers.max(1);
    if let Some(fewest) = scenario.clients.iter().min()
        && *fewest < per_process
    {
        bail!(
            "--shard {}/{}: a cell of {fewest} clients split {} ways leaves some shard or worker with none",
            shard.index + 1,
            shard.count,
            per_process
        );
    }
    Ok(())
}

/// `merge`: the shards' run folders into one.
fn merge_shards(run_dirs: &[PathBuf], out: &Path) -> anyhow::Result<ExitCode> {
    if out.exists() {
        bail!("--out {}: already exists; name a new folder", out.display());
    }
    let runs = run_dirs
        .iter()
        .map(|dir| merge::load(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = merge::merge(&runs)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_run_files(out, &merged.summary, &merged.histograms)?;
    for (cell, seconds) in merged.summary.cells.iter().zip(&merged.seconds) {
        let path = out.join(report::hgrm::seconds_file(&cell.histogram_file));
        std::fs::write(&path, report::hgrm::serialize_all(seconds))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let saved = report::load_summary(out)?;
    report::write_report(out, &saved)
        .with_context(|| format!("writing the report in {}", out.display()))?;
    println!("{}", report::table::render(&merged.summary));
    println!("merged {} shards into {}", runs.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn bench_polls(bench: PollBench) -> anyhow::Result<ExitCode> {
    let logs = tempfile::tempdir()?;
    println!(
        "bench polls: {} connections, {} round{} of {} each side, alternating, against a fresh pushlab-server",
        bench.connections,
        bench.rounds,
        if bench.rounds == 1 { "" } else { "s" },
        humantime::format_duration(bench.duration)
    );
    let result = floor_bench::polls(&bench, logs.path(), &mut |line| println!("{line}")).await?;
    let loadgen = result.loadgen;
    println!("loadgen pollers ran as: {}", result.loadgen_mode);
    println!(
        "loadgen pollers: {:>9.0} polls/s ({} in {:.2} s); CPU per poll: generator {:.1} us, server {:.1} us",
        loadgen.per_second(),
        loadgen.requests,
        loadgen.seconds,
        loadgen.client_cpu_us,
        loadgen.server_cpu_us
    );
    match (&result.wrk, &result.wrk_missing) {
        (Some(wrk), _) => println!(
            "wrk:             {:>9.0} polls/s ({} in {:.2} s); CPU per poll: wrk       {:.1} us, server {:.1} us",
            wrk.per_second(),
            wrk.requests,
            wrk.seconds,
            wrk.client_cpu_us,
            wrk.server_cpu_us
        ),
        (None, Some(why)) => println!("wrk:             not measured: {why}"),
        (None, None) => {}
    }
    if result.rounds.len() > 1 && result.wrk.is_some() {
        let each: Vec<String> = result
            .rounds
            .iter()
            .map(|(mine, theirs)| {
                let wrk = theirs.map_or(0.0, |w| w.per_second());
                format!(
                    "{:.0}/{:.0} = {:.2}x",
                    mine.per_second(),
                    wrk,
                    if wrk > 0.0 {
                        mine.per_second() / wrk
                    } else {
                        0.0
                    }
                )
            })
            .collect();
        println!("rounds (polls/s): {}", each.join(", "));
    }
    if let Some(ratio) = result.ratio() {
        let verdict = if ratio >= 1.0 {
            "at least wrk's rate"
        } else {
            "below wrk's rate"
        };
        println!("loadgen/wrk:     {ratio:.2}x ({verdict}; goal >= 1.0x)");
    }
    if loadgen.server_cpu_us > 0.0 {
        let share = loadgen.client_cpu_us / loadgen.server_cpu_us;
        let verdict = if share < 1.0 { "below" } else { "not below" };
        println!(
            "generator/server CPU per poll: {share:.2} (the generator's {verdict} the server's; goal < 1)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn run_study(options: study::StudyOptions) -> anyhow::Result<ExitCode> {
    let interrupt = options.interrupt.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: the handout covers the runs already made");
            interrupt.cancel();
        }
    });
    let handout = study::run(&options).await?;
    println!("{}", handout.display());
    Ok(ExitCode::SUCCESS)
}

fn parse_rate(text: &str) -> Result<u64, String> {
    pushlab::model::network::parse_rate(text)
}

#[tokio::main]
async fn measure_link(
    link: Link,
    count: usize,
    transfer_time: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    println!("link: {}", link.describe());
    let times = probe::round_trips(link, count).await?;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!(
        "round trip over {count}: min {:.1} ms, median {:.1} ms, max {:.1} ms (set: {:.1} ms)",
        ms(*times.iter().min().expect("at least one")),
        ms(probe::median(&times)),
        ms(*times.iter().max().expect("at least one")),
        ms(link.rtt)
    );
    // Unlimited, send enough that the copy, not the set-up, dominates.
    let bytes = match link.bandwidth_bps {
        Some(bps) => (bps as f64 / 8.0 * transfer_time.as_secs_f64()) as usize,
        None => 64 << 20,
    }
    .max(64 * 1024);
    let transfer = probe::transfer(link, bytes).await?;
    let set = link
        .bandwidth_bps
        .map_or("unlimited".to_string(), describe_rate);
    println!(
        "bandwidth, server to client: {} ({} bytes in {:.3} s after the first read; set: {set})",
        describe_rate(transfer.bits_per_second() as u64),
        transfer.timed_bytes,
        transfer.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn conform(options: ConformOptions) -> anyhow::Result<ExitCode> {
    let report = conform::run(&options).await?;
    println!("conform http://{}", report.target);
    for finding in &report.findings {
        let name = finding.check.name();
        match &finding.verdict {
            Verdict::Pass => println!("  pass         {name}"),
            Verdict::Fail(reason) => println!("  FAIL         {name}: {reason}"),
            Verdict::NotChecked(why) => println!("  not checked  {name}: {why}"),
        }
    }
    let failures = report.failures();
    let total = report.findings.len();
    if failures == 0 {
        println!("{total} checks: no failure");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{total} checks: {failures} failed");
        Ok(ExitCode::FAILURE)
    }
}

/// `http://HOST:PORT` of a loopback server: load is only ever sent to this machine.
fn parse_target(flag: &str, text: &str) -> anyhow::Result<SocketAddr> {
    let rest = text
        .strip_prefix("http://")
        .unwrap_or(text)
        .trim_end_matches('/');
    let addr: SocketAddr = match rest.parse() {
        Ok(addr) => addr,
        Err(_) => match rest.strip_prefix("localhost:").map(str::parse::<u16>) {
            Some(Ok(port)) => SocketAddr::from(([127, 0, 0, 1], port)),
            _ => bail!("{flag} {text:?}: expected http://IP:PORT, e.g. http://127.0.0.1:8080"),
        },
    };
    if !addr.ip().is_loopback() {
        bail!("{flag} {text:?}: pushlab only sends load to loopback addresses (127.0.0.0/8, ::1)");
    }
    Ok(addr)
}
