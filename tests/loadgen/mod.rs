//! The load generator end to end: the real `pushlab-loadgen` binary runs tiny scenarios
//! against real `pushlab-server` processes on loopback, and its results are checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pushlab::model::results::RunSummary;

const LOADGEN: &str = env!("CARGO_BIN_EXE_pushlab-loadgen");
pub(super) const SERVER: &str = env!("CARGO_BIN_EXE_pushlab-server");

pub(super) fn scenario(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"
name = "{name}"
description = "integration test"
techniques = ["short-polling", "long-polling", "websocket", "sse"]
clients = 3
duration = "1s"
warmup = "300ms"
drain = "1s"
{extra}
[short_polling]
interval = "100ms"
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub(super) fn loadgen(args: &[&str]) -> Output {
    Command::new(LOADGEN)
        .args(args)
        .output()
        .expect("the loadgen binary runs")
}

/// The one run folder under `results/<name>/`.
pub(super) fn run_dir(results: &Path, name: &str) -> PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(results.join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

pub(super) fn run_scenario(name: &str, publish: &str) -> (RunSummary, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), name, publish);
    let (summary, run) = run_file(&file, name, &["--server-binary", SERVER]);
    (summary, run, dir)
}

/// Runs the scenario `file` (named `name`) with `args` added, its results beside the file,
/// asserts it succeeded and returns the run's summary and folder.
fn run_file(file: &Path, name: &str, args: &[&str]) -> (RunSummary, PathBuf) {
    run_file_into(file, name, &file.parent().unwrap().join("results"), args)
}

/// As [`run_file`], with the results under `results`.
fn run_file_into(file: &Path, name: &str, results: &Path, args: &[&str]) -> (RunSummary, PathBuf) {
    let mut all = vec![
        "run",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--quiet",
    ];
    all.extend_from_slice(args);
    let output = loadgen(&all);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let run = run_dir(results, name);
    (pushlab::report::load_summary(&run).unwrap(), run)
}

/// A `pushlab-server` with `args` on 127.0.0.1:0, killed when dropped, and its `http://` URL.
fn start_server(args: &[&str]) -> (KillOnDrop, String) {
    let mut server = KillOnDrop(
        Command::new(SERVER)
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("first line names the address");
    let url = format!("http://{addr}");
    (server, url)
}

fn assert_clean(summary: &RunSummary) {
    assert_eq!(summary.cells.len(), 4);
    for cell in &summary.cells {
        let name = cell.technique.name();
        let d = &cell.deliveries;
        assert!(d.expected > 0, "{name}: nothing expected");
        assert_eq!(d.missing, 0, "{name}: {d:?}");
        assert_eq!(d.delivered, d.expected, "{name}: {d:?}");
        assert_eq!(d.duplicated, 0, "{name}: {d:?}");
        assert_eq!(d.out_of_order, 0, "{name}: {d:?}");
        assert_eq!(cell.latency.count, d.delivered, "{name}");
        let a = &cell.agreement;
        assert!(a.client_up > 0 && a.client_down > 0, "{name}: {a:?}");
        assert_eq!(
            (a.client_up, a.client_down),
            (a.server_in, a.server_out),
            "{name}: the ends disagree"
        );
        assert!(a.equal, "{name}");
        // The kernel's own count (TCP_INFO) agrees, but for the sequence numbers SYN and FIN take.
        let k = &cell.kernel;
        assert!(k.sockets >= 3, "{name}: {k:?}");
        assert!(
            (a.client_up..=a.client_up + 2 * k.sockets).contains(&k.bytes_acked),
            "{name}: {k:?} {a:?}"
        );
        assert!(
            (a.client_down..=a.client_down + k.sockets).contains(&k.bytes_received),
            "{name}: {k:?}"
        );
        assert!(k.segments_in > 0 && k.segments_out > 0, "{name}: {k:?}");
        assert!(
            cell.warnings.iter().all(|w| !w.contains("LOSS")),
            "{name}: {:?}",
            cell.warnings
        );
    }
}

#[test]
fn a_broadcast_scenario_runs_every_technique_with_no_loss_and_agreeing_byte_counts() {
    let (summary, run, _dir) =
        run_scenario("broadcast", "[publish]\nrate = 20\npayload_bytes = 100\n");
    assert_clean(&summary);
    // Each of 3 subscribers receives each of the ~20 measured comments.
    for cell in &summary.cells {
        assert_eq!(
            cell.deliveries.expected,
            cell.deliveries.comments_published * 3
        );
        assert!(run.join(&cell.histogram_text_file).exists());
        let bytes = std::fs::read(run.join(&cell.histogram_file)).unwrap();
        let histogram = pushlab::report::hgrm::deserialize(&bytes).unwrap();
        assert_eq!(histogram.len(), cell.latency.count);
    }
    let polling = &summary.cells[0];
    assert!(polling.client.requests > 0 && polling.server.requests > 0);
    // Short polling at 100 ms: latency is bounded by the interval plus a little.
    assert!(polling.latency.max_us < 400_000, "{:?}", polling.latency);
    let csv = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    // The run ends with charts and a report that links each of them, and `report` redraws
    // them byte for byte from summary.json.
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let charts: Vec<PathBuf> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    // No sweep here: percentiles, cost per delivery, timeline.
    assert!(charts.len() >= 3, "{charts:?}");
    for chart in &charts {
        let name = chart.file_name().unwrap().to_str().unwrap();
        assert!(
            report.contains(&format!("]({name})")),
            "report.md does not link {name}"
        );
    }
    let before: Vec<Vec<u8>> = charts.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let output = loadgen(&["report", run.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after: Vec<Vec<u8>> = charts.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(
        before == after,
        "`report` did not reproduce the charts byte for byte"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("report.md")).unwrap(),
        report
    );
}

/// Over HTTP/2, shared and per-client: every technique delivers everything, the subscribers'
/// sockets carry what the server booked to the technique plus its HTTP/2 overhead, and the
/// connections are one per instance, or one per subscriber.
#[test]
fn an_http2_scenario_delivers_and_both_ends_agree_with_the_overhead_apart() {
    for (connections, sockets) in [("shared", 1), ("per-client", 3)] {
        let (summary, _run, _dir) = run_scenario(
            &format!("h2-{connections}"),
            &format!("http = \"2\"\nh2_connections = \"{connections}\"\n[publish]\nrate = 20\n"),
        );
        assert_eq!(summary.cells.len(), 4);
        for cell in &summary.cells {
            let name = format!("{} ({connections})", cell.technique.name());
            assert_eq!(
                cell.http,
                pushlab::model::scenario::HttpVersion::H2,
                "{name}"
            );
            let d = &cell.deliveries;
            assert!(d.expected > 0 && d.missing == 0, "{name}: {d:?}");
            let a = &cell.agreement;
            assert!(a.equal, "{name}: {a:?}");
            assert!(a.server_h2_overhead_in >= 24 * sockets, "{name}: {a:?}");
            assert_eq!(
                (a.client_up, a.client_down),
                (
                    a.server_in + a.server_h2_overhead_in,
                    a.server_out + a.server_h2_overhead_out
                ),
                "{name}"
            );
            assert_eq!(cell.kernel.sockets, sockets, "{name}: {:?}", cell.kernel);
            assert!(
                cell.warnings.iter().all(|w| !w.contains("differ")),
                "{name}: {:?}",
                cell.warnings
            );
        }
    }
}

#[test]
fn a_per_user_scenario_delivers_each_comment_to_its_one_recipient() {
    let (summary, _run, _dir) = run_scenario(
        "per-user",
        "[publish]\nrate = 6\npayload_bytes = 64\naudience = \"per-user\"\n",
    );
    assert_clean(&summary);
    for cell in &summary.cells {
        assert_eq!(cell.deliveries.expected, cell.deliveries.comments_published);
    }
    // Most short polls find nothing for their user: the note's "meaningless" answers.
    let polling = &summary.cells[0];
    assert!(polling.client.empty_responses > 0, "{:?}", polling.client);
}

#[test]
fn bad_scenario_files_are_refused_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[publish]\nrate = 0\n", "`publish.rate`"),
        (
            "colour = \"red\"\n[publish]\nrate = 1\n",
            "unknown field `colour`",
        ),
        (
            "[publish]\nrate = 1\naudience = \"some\"\n",
            "`publish.audience`",
        ),
        ("[publish]\nrate = \"fast\"\n", "rate"),
    ];
    for (i, (extra, expected)) in cases.iter().enumerate() {
        let file = scenario(dir.path(), &format!("bad{i}"), extra);
        let output = loadgen(&["validate", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "case {i} passed validation");
        assert!(
            stderr.contains(&format!("bad{i}.toml")),
            "case {i}: {stderr}"
        );
        assert!(stderr.contains(expected), "case {i}: {stderr}");
    }
    let negative = dir.path().join("negative.toml");
    let text =
        std::fs::read_to_string(scenario(dir.path(), "ok", "[publish]\nrate = 1\n")).unwrap();
    std::fs::write(&negative, text.replace("\"1s\"", "\"-1s\"")).unwrap();
    let output = loadgen(&["validate", negative.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("`duration`"));
    let empty = dir.path().join("empty.toml");
    std::fs::write(
        &empty,
        text.replace(
            r#"["short-polling", "long-polling", "websocket", "sse"]"#,
            "[]",
        ),
    )
    .unwrap();
    let output = loadgen(&["validate", empty.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("`techniques`"));
    let output = loadgen(&["validate", "/nonexistent/x.toml"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/x.toml: cannot read"));
    let output = loadgen(&["validate", "scenarios/quick.toml"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_scenario_beyond_the_open_files_limit_is_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), "huge", "[publish]\nrate = 1\n");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("clients = 3", "clients = 60000");
    std::fs::write(&file, text).unwrap();
    let started = Instant::now();
    let output = loadgen(&[
        "run",
        file.to_str().unwrap(),
        "--results",
        dir.path().to_str().unwrap(),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("pre-flight check failed") && stderr.contains("60000 clients"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused only after running"
    );
    assert!(
        !dir.path().join("huge").exists(),
        "a refused run must not create a results folder"
    );
}

#[test]
fn flags_are_checked_and_load_only_goes_to_loopback() {
    let output = loadgen(&[
        "run",
        "scenarios/quick.toml",
        "--target",
        "http://10.0.0.1:80",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--target") && stderr.contains("loopback"),
        "{stderr}"
    );
    let output = loadgen(&[
        "run",
        "scenarios/quick.toml",
        "--target",
        "nonsense",
        "--quiet",
    ]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--target \"nonsense\""));
}

#[test]
fn a_running_server_can_be_the_target() {
    let (_server, url) = start_server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), "target", "[publish]\nrate = 20\n");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        r#"["short-polling", "long-polling", "websocket", "sse"]"#,
        r#"["sse", "websocket"]"#,
    );
    std::fs::write(&file, text).unwrap();
    let (summary, _run) = run_file(&file, "target", &["--target", &url]);
    assert_eq!(summary.target.as_deref(), Some(url.as_str()));
    for cell in &summary.cells {
        assert_eq!(cell.deliveries.missing, 0);
        assert!(cell.agreement.equal, "{:?}", cell.agreement);
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The load generator's `/stats` reader keeps one connection between reads; a measured window
/// longer than the server's idle timeout must not turn the closing read into an error.
#[tokio::test]
async fn stats_reads_survive_the_servers_idle_timeout() {
    let server = pushlab::server::spawn(pushlab::server::ServerConfig {
        idle_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .expect("binds 127.0.0.1:0");
    let mut reader = pushlab::loadgen::target::StatsReader::new(server.addr);
    reader.read().await.expect("the first read");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while server.state.snapshot().timeouts.idle == 0 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server closed the idle /stats connection"
    );
    let again = reader.read().await.expect("a read after the idle timeout");
    assert!(again.timeouts.idle >= 1, "{:?}", again.timeouts);
}

/// `[server] feed = "redis"` and `instances`: the load generator starts its own redis-server
/// and the instances, spreads the subscribers over them, and each instance's bytes agree.
#[test]
fn a_redis_deployment_spreads_subscribers_over_instances_and_loses_nothing() {
    let server =
        "[publish]\nrate = 20\n[server]\nfeed = \"redis\"\ninstances = 2\npublish_to = \"all\"\n";
    let (summary, run, _dir) = run_scenario("scale", server);
    assert_clean(&summary);
    for cell in &summary.cells {
        let name = cell.technique.name();
        assert_eq!(cell.deployment.label(), "redis x2", "{name}");
        assert_eq!(cell.instances.len(), 2, "{name}");
        let spread: Vec<u64> = cell.instances.iter().map(|i| i.subscribers).collect();
        assert_eq!(spread, [2, 1], "{name}: round-robin over 3 subscribers");
        for instance in &cell.instances {
            let a = &instance.agreement;
            assert!(a.equal && a.client_down > 0, "{name}: {instance:?}");
            assert!(
                instance.connections_opened >= instance.subscribers,
                "{name}"
            );
            assert!(instance.comments_delivered > 0, "{name}: {instance:?}");
        }
        // The instances' bytes add up to the cell's.
        let down: u64 = cell.instances.iter().map(|i| i.agreement.server_out).sum();
        assert_eq!(down, cell.agreement.server_out, "{name}");
        let redis = cell.redis.expect("the cell started a Redis");
        assert!(
            redis.commands > 0 && redis.peak_memory_bytes > 0,
            "{name}: {redis:?}"
        );
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("## Server instances and Redis"), "{report}");
}

/// Several `--target` servers sharing one Redis feed: subscribers spread over them.
#[tokio::test]
async fn several_running_servers_can_be_the_targets() {
    use pushlab::feed::redis_server::{Persistence, RedisServer};
    let redis = RedisServer::start(Persistence::None).await.unwrap();
    let (_a, url_a) = start_server(&["--feed", &redis.url()]);
    let (_b, url_b) = start_server(&["--feed", &redis.url()]);
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), "targets", "[publish]\nrate = 20\n");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        r#"["short-polling", "long-polling", "websocket", "sse"]"#,
        r#"["sse", "long-polling"]"#,
    );
    std::fs::write(&file, text).unwrap();
    let targets = format!("{url_a},{url_b}");
    // The run blocks; Redis (this runtime's child) keeps serving meanwhile.
    let (summary, _run) =
        tokio::task::spawn_blocking(move || run_file(&file, "targets", &["--target", &targets]))
            .await
            .unwrap();
    assert_eq!(summary.target, Some(format!("{url_a} {url_b}")));
    for cell in &summary.cells {
        assert_eq!(cell.deliveries.missing, 0, "{:?}", cell.deliveries);
        assert_eq!(cell.deliveries.delivered, cell.deliveries.expected);
        let urls: Vec<&str> = cell.instances.iter().map(|i| i.url.as_str()).collect();
        assert_eq!(urls, [url_a.as_str(), url_b.as_str()]);
        assert!(cell.instances.iter().all(|i| i.agreement.equal));
    }
}

/// A Redis scenario on a machine without redis-server stops before running and says how to
/// install it.
#[test]
fn a_redis_scenario_without_redis_server_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        dir.path(),
        "noredis",
        "[publish]\nrate = 5\n[server]\nfeed = \"redis\"\n",
    );
    let output = Command::new(LOADGEN)
        .args(["run", file.to_str().unwrap(), "--quiet", "--results"])
        .arg(dir.path().join("results"))
        .args(["--server-binary", SERVER])
        // A PATH with no redis-server on it.
        .env("PATH", dir.path())
        .output()
        .expect("the loadgen binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("redis-server") && stderr.contains("apt-get install"),
        "{stderr}"
    );
}

#[test]
fn over_an_emulated_link_every_technique_delivers_with_agreeing_byte_counts() {
    let (summary, run, _dir) = run_scenario(
        "link",
        "[publish]\nrate = 20\n[network]\nrtt = \"40ms\"\njitter = \"5ms\"\nbandwidth = \"2mbit\"\n\
         [network.publisher]\nrtt = \"20ms\"\n",
    );
    // The relay forwards every byte and every close: both ends still agree to the byte.
    assert_clean(&summary);
    for cell in &summary.cells {
        let link = cell.link.expect("each cell records its link");
        assert_eq!(link.rtt, Duration::from_millis(40));
        // No delivery beats the publisher's one-way delay plus the subscriber's less its
        // jitter.
        assert!(
            cell.latency.min_us >= 10_000 + 15_000,
            "{}: {:?}",
            cell.technique.name(),
            cell.latency
        );
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("## The link's share of the latency"),
        "{report}"
    );
}
mod faults;
mod shards;
mod study;
mod workers;

/// `publish.tabs`: two subscribers per user, each expecting every comment addressed to that
/// user; pushlab-server feeds both tabs, so nothing is missing.
#[test]
fn every_tab_of_a_user_gets_that_users_comments() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        dir.path(),
        "tabs",
        "[publish]\nrate = 20\naudience = \"per-user\"\ntabs = 2\n",
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("clients = 3", "clients = 4");
    std::fs::write(&file, text).unwrap();
    let (summary, _run) = run_file(&file, "tabs", &["--server-binary", SERVER]);
    assert_eq!(summary.scenario.tabs, 2);
    for cell in &summary.cells {
        let d = &cell.deliveries;
        let name = cell.technique.name();
        // Each accepted comment is expected at both tabs of its user.
        assert_eq!(d.expected, 2 * d.comments_published, "{name}: {d:?}");
        assert_eq!((d.missing, d.duplicated), (0, 0), "{name}: {d:?}");
        assert_eq!(d.delivered, d.expected, "{name}: {d:?}");
    }
}
