//! `pushlab-loadgen conform`: every check passes on pushlab-server, and against the study
//! note's style of server (`examples/note_server.py`, on Debian's python3-aiohttp, which
//! `.ci/run` installs) it lists exactly the gaps that server has by design. Servers listen on
//! port 0; the Python one prints its address, which the tests await.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use pushlab::loadgen::conform::{self, Check, ConformOptions, Verdict};
use pushlab::server::ServerConfig;
use pushlab::techniques::Technique;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const LOADGEN: &str = env!("CARGO_BIN_EXE_pushlab-loadgen");

/// The Python with python3-aiohttp: Debian's, unless `PUSHLAB_PYTHON` names another.
fn python() -> String {
    std::env::var("PUSHLAB_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

/// `examples/note_server.py` on 127.0.0.1:0; killed when dropped.
struct NoteServer {
    child: Child,
    addr: SocketAddr,
}

impl NoteServer {
    async fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/note_server.py");
        let mut child = Command::new(python())
            .args([script, "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its tracebacks (bad input raises, by design) would bury the test output.
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} {script}: {e}", python()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the note server prints its address within 20 s")
            .expect("reading its stdout")
            .expect("it printed its address (it exits at once without python3-aiohttp)");
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("first line {line:?}"));
        Self { child, addr }
    }

    async fn stop(mut self) {
        self.child.kill().await.expect("the note server is killed");
    }
}

#[tokio::test]
async fn every_check_passes_on_pushlab_server() {
    let config = ServerConfig {
        history_capacity: 16,
        ..ServerConfig::default()
    };
    let server = pushlab::server::spawn(config).await.expect("server starts");
    let options = ConformOptions {
        addr: server.addr,
        history: Some(16),
        wait: Duration::from_secs(10),
    };
    let report = conform::run(&options).await.expect("conform runs");
    assert_eq!(report.findings.len(), conform::checks().len());
    for finding in &report.findings {
        assert_eq!(finding.verdict, Verdict::Pass, "{}", finding.check.name());
    }
}

#[tokio::test]
async fn the_note_style_server_lacks_resume_second_tabs_cursor_checks_and_json_errors() {
    let server = NoteServer::start().await;
    let options = ConformOptions {
        addr: server.addr,
        history: None,
        // Its gaps show as things that never arrive: a short wait keeps the test short.
        wait: Duration::from_secs(2),
    };
    let report = conform::run(&options).await.expect("conform runs");
    server.stop().await;
    let expected_failures = vec![
        Check::TwoTabs(Technique::WebSocket),
        Check::TwoTabs(Technique::Sse),
        Check::ResumeAfter(Technique::WebSocket),
        Check::ResumeAfter(Technique::Sse),
        Check::ResumeLastEventId,
        Check::CursorAhead,
        Check::BadInput,
    ];
    assert_eq!(report.failed(), expected_failures, "{report:#?}");
    // No /stats: the byte checks are not made rather than failed; nor is 410 without a size.
    for technique in Technique::ALL {
        let verdict = report.verdict(Check::StatsBytes(technique)).unwrap();
        assert!(
            matches!(verdict, Verdict::NotChecked(why) if why.contains("unavailable")),
            "{verdict:?}"
        );
        // What it does implement, it does right: delivery and routing on all four.
        assert_eq!(
            report.verdict(Check::Delivery(technique)),
            Some(&Verdict::Pass)
        );
        assert_eq!(
            report.verdict(Check::Routing(technique)),
            Some(&Verdict::Pass)
        );
    }
    assert!(matches!(
        report.verdict(Check::CursorEvicted),
        Some(Verdict::NotChecked(_))
    ));
}

#[tokio::test]
async fn the_command_exits_non_zero_on_a_failure_and_names_it() {
    let server = NoteServer::start().await;
    let output = Command::new(LOADGEN)
        .args([
            "conform",
            &format!("http://{}", server.addr),
            "--wait",
            "2s",
        ])
        .output()
        .await
        .expect("pushlab-loadgen runs");
    server.stop().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL         resume Last-Event-ID sse: Last-Event-ID: "),
        "{stdout}"
    );
    assert!(stdout.contains("pass         delivery sse"), "{stdout}");
    assert!(stdout.contains("checks: 7 failed"), "{stdout}");
}

#[tokio::test]
async fn the_command_refuses_a_target_that_is_not_loopback() {
    let output = Command::new(LOADGEN)
        .args(["conform", "http://10.1.2.3:8080"])
        .output()
        .await
        .expect("pushlab-loadgen runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("loopback"), "{stderr}");
}

/// `run --target` at a server without `/stats`: the run completes with the subscribers'
/// own figures, and marks the server's as unavailable rather than zero or disagreeing.
#[tokio::test]
async fn a_run_against_a_server_without_stats_reports_the_client_side_only() {
    let server = NoteServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("nostats.toml");
    std::fs::write(
        &scenario,
        "name = \"nostats\"\ndescription = \"d\"\ntechniques = [\"sse\", \"long-polling\"]\n\
         clients = 3\nduration = \"1s\"\nwarmup = \"300ms\"\ndrain = \"1s\"\n\
         [publish]\nrate = 10\naudience = \"per-user\"\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let output = Command::new(LOADGEN)
        .args(["run", scenario.to_str().unwrap(), "--quiet", "--results"])
        .arg(&results)
        .args(["--target", &format!("http://{}", server.addr)])
        .output()
        .await
        .expect("pushlab-loadgen runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let run = std::fs::read_dir(results.join("nostats"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let summary: pushlab::model::results::RunSummary =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary.cells.len(), 2);
    for cell in &summary.cells {
        let name = cell.technique.name();
        assert!(cell.server_unavailable, "{name}");
        assert!(
            cell.deliveries.delivered > 0,
            "{name}: {:?}",
            cell.deliveries
        );
        assert!(cell.agreement.client_down > 0, "{name}");
        assert_eq!(cell.server.bytes_out, 0, "{name}");
        assert!(cell.idle_memory.is_none(), "{name}");
        assert!(
            cell.warnings.iter().any(|w| w.contains("no /stats")),
            "{name}: {:?}",
            cell.warnings
        );
        assert!(
            !cell.warnings.iter().any(|w| w.contains("bytes differ")),
            "{name}: {:?}",
            cell.warnings
        );
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("| n/a |"), "{report}");
    server.stop().await;
}
