//! Fault scenarios end to end, one test per fault kind, each over all four techniques:
//! while the server stays up nothing is lost and nothing duplicated, since every client
//! resumes from its cursor (SSE with Last-Event-ID, WebSocket and the pollers with
//! `after`); a restart's loss is booked with its cause, never as LOSS.

use pushlab::model::faults::Side;
use pushlab::model::results::{CellResult, RunSummary};
use pushlab::model::technique::Technique;

use super::run_scenario;

const PUBLISH: &str = "[publish]\nrate = 20\n";

fn run_with_faults(name: &str, faults: &str) -> RunSummary {
    let (summary, _run, _dir) = run_scenario(name, &format!("{PUBLISH}[faults]\n{faults}"));
    assert_eq!(summary.cells.len(), 4);
    summary
}

/// Nothing lost, duplicated or out of order, and no LOSS warning.
fn assert_no_loss(cell: &CellResult) {
    let name = cell.technique.name();
    let d = &cell.deliveries;
    assert!(d.expected > 0, "{name}: nothing expected");
    assert_eq!((d.missing, d.lost_to_restart), (0, 0), "{name}: {d:?}");
    assert_eq!((d.duplicated, d.out_of_order), (0, 0), "{name}: {d:?}");
    assert_eq!(d.delivered, d.expected, "{name}: {d:?}");
    assert!(
        cell.warnings.iter().all(|w| !w.starts_with("LOSS:")),
        "{name}: {:?}",
        cell.warnings
    );
}

/// Every drop was followed by a delivery over a new connection.
fn assert_recovered(cell: &CellResult, side: Side) {
    let name = cell.technique.name();
    let faults = cell
        .faults
        .as_ref()
        .expect("a cell with faults reports them");
    assert!(faults.errors.is_empty(), "{name}: {:?}", faults.errors);
    if side == Side::Server && cell.technique == Technique::ShortPolling {
        // A short poller holds no connection between its polls: nothing for the server to drop.
        assert_eq!(faults.drops, 0, "{name}: {faults:?}");
        return;
    }
    assert!(faults.drops >= 2, "{name}: {faults:?}");
    let r = &faults.recovery;
    assert_eq!(r.count + r.incomplete, faults.drops, "{name}: {r:?}");
    assert!(r.count >= 1 && r.max_us > 0, "{name}: {r:?}");
    assert!(!faults.connections_open.is_empty(), "{name}");
}

fn drops_lose_nothing(name: &str, side: &str, how: &str, expected: Side) {
    let summary = run_with_faults(
        name,
        &format!(
            "drop = {{ every = \"300ms\", share = 0.3, side = \"{side}\", how = \"{how}\" }}\n"
        ),
    );
    for cell in &summary.cells {
        assert_no_loss(cell);
        assert_recovered(cell, expected);
    }
}

#[test]
fn client_side_closes_lose_nothing() {
    drops_lose_nothing("drop-client-close", "client", "close", Side::Client);
}

#[test]
fn client_side_resets_lose_nothing() {
    drops_lose_nothing("drop-client-reset", "client", "reset", Side::Client);
}

#[test]
fn server_side_drops_lose_nothing() {
    drops_lose_nothing("drop-server", "server", "close", Side::Server);
}

#[test]
fn a_restart_books_its_loss_with_its_cause() {
    let summary = run_with_faults("restart", "restart = [\"500ms\"]\n");
    for cell in &summary.cells {
        let name = cell.technique.name();
        let d = &cell.deliveries;
        // Whatever the earlier server held unread is lost *to the restart*; nothing else.
        assert_eq!((d.missing, d.duplicated), (0, 0), "{name}: {d:?}");
        assert_eq!(d.delivered + d.lost_to_restart, d.expected, "{name}: {d:?}");
        let faults = cell.faults.as_ref().unwrap();
        assert_eq!(faults.restarts, 1, "{name}: {faults:?}");
        assert!(
            cell.warnings.iter().any(|w| w.contains("RESTART:")),
            "{name}: every subscriber learned of the restart: {:?}",
            cell.warnings
        );
        assert!(
            cell.warnings.iter().all(|w| !w.starts_with("LOSS:")),
            "{name}: {:?}",
            cell.warnings
        );
    }
}

#[test]
fn pages_that_close_are_noticed_and_expect_nothing_after() {
    let summary = run_with_faults(
        "close-page",
        "close_page = { at = \"400ms\", share = 0.3 }\n",
    );
    for cell in &summary.cells {
        let name = cell.technique.name();
        assert_no_loss(cell);
        let faults = cell.faults.as_ref().unwrap();
        let detection = faults.close_detection.expect("measured");
        assert_eq!(
            (detection.count, detection.incomplete),
            (1, 0),
            "{name}: {faults:?}"
        );
    }
}

#[test]
fn slow_subscribers_are_compared_with_a_control_and_hold_nobody_back_from_their_comments() {
    let summary = run_with_faults("slow", "slow = { share = 0.3, read_bytes_per_s = 500 }\n");
    for cell in &summary.cells {
        let name = cell.technique.name();
        let slow = cell
            .faults
            .as_ref()
            .and_then(|f| f.slow)
            .expect("the comparison is reported");
        assert_eq!(slow.slow_subscribers, 1, "{name}: {slow:?}");
        // The others lose nothing; the control ran and measured them.
        assert_eq!(slow.fast_missing, 0, "{name}: {slow:?}");
        assert!(
            slow.fast_p99_us > 0 && slow.control_p99_us > 0,
            "{name}: {slow:?}"
        );
        assert!(slow.control_peak_rss_bytes > 0, "{name}: {slow:?}");
        assert_eq!(cell.deliveries.duplicated, 0, "{name}");
    }
}

/// Needs root for the run's own network namespace; without it the run must refuse, saying
/// why, and this checks that instead.
#[test]
fn vanished_subscribers_are_closed_by_the_servers_liveness_settings() {
    let dir = tempfile::tempdir().unwrap();
    let faults = "[publish]\nrate = 10\n[faults]\nvanish = { at = \"500ms\", share = 0.3, settings = \
                  [{ sse_heartbeat = \"300ms\", ws_ping_interval = \"300ms\", ws_pong_timeout = \
                  \"300ms\", user_timeout = \"1s\" }] }\n";
    let file = super::scenario(dir.path(), "vanish", faults);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("duration = \"1s\"", "duration = \"4s\"");
    std::fs::write(&file, text).unwrap();
    let results = dir.path().join("results");
    let output = super::loadgen(&[
        "run",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--server-binary",
        super::SERVER,
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        assert!(
            stderr.contains("`faults.vanish` cannot run here") && stderr.contains("root"),
            "{stderr}"
        );
        return;
    }
    let run = super::run_dir(&results, "vanish");
    let summary: RunSummary =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    for cell in &summary.cells {
        let name = cell.technique.name();
        let faults = cell.faults.as_ref().unwrap();
        assert!(faults.errors.is_empty(), "{name}: {:?}", faults.errors);
        let [v] = faults.vanish.as_slice() else {
            panic!("{name}: one run per setting: {faults:?}");
        };
        assert_eq!(v.vanished, 1, "{name}: {v:?}");
        // Nothing else is lost: the vanished subscriber expects nothing after its last.
        assert_eq!(cell.deliveries.missing, 0, "{name}: {:?}", cell.deliveries);
        if cell.technique == Technique::ShortPolling {
            // An idle keep-alive is written to by nothing: open until the idle timeout.
            assert_eq!(v.detection.incomplete, 1, "{name}: {v:?}");
        } else {
            // A write (heartbeat, ping, comment) unacknowledged for the user timeout.
            assert_eq!(v.detection.count, 1, "{name}: {v:?}");
            assert!(v.detection.max_us < 3_000_000, "{name}: {v:?}");
        }
    }
}

/// Issue 12's restart: one of two instances over Redis restarts mid-window; its subscribers
/// reconnect to the same address and resume from their cursors, so nothing is lost (not even
/// to the restart) and nothing duplicated, and each one's recovery is timed.
#[test]
fn a_restarted_instance_over_redis_loses_nothing() {
    let (summary, run, _dir) = run_scenario(
        "restart-instance",
        "[publish]\nrate = 20\n[server]\nfeed = \"redis\"\ninstances = 2\npublish_to = \"all\"\n\
         [faults]\nrestart = [\"500ms\"]\nrestart_instance = 1\n",
    );
    assert_eq!(summary.cells.len(), 4);
    for cell in &summary.cells {
        let name = cell.technique.name();
        assert_no_loss(cell);
        let faults = cell
            .faults
            .as_ref()
            .expect("a cell with faults reports them");
        assert!(faults.errors.is_empty(), "{name}: {:?}", faults.errors);
        assert_eq!(faults.restarts, 1, "{name}: {faults:?}");
        // Subscriber 1 of 3 is the restarted instance's only one.
        let recovery = faults
            .restart_recovery
            .expect("a restart's recovery is timed");
        assert_eq!(
            (recovery.count, recovery.incomplete),
            (1, 0),
            "{name}: {recovery:?}"
        );
        assert!(recovery.max_us > 0, "{name}");
        let restarted: Vec<bool> = cell.instances.iter().map(|i| i.restarted).collect();
        assert_eq!(restarted, [false, true], "{name}");
        assert!(
            cell.instances[0].agreement.equal,
            "{name}: {:?}",
            cell.instances[0]
        );
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("a restarted instance loses nothing"),
        "{report}"
    );
}
