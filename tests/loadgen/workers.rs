//! `[load] workers` and `source_addresses`: subscribers held by worker processes, bound to
//! 127.0.0.2 onwards, their shares added up exactly by the parent.

use super::*;

/// Per-user with two tabs over three workers and two source addresses: every pair is checked
/// in the worker that holds the subscriber, and the sums are what one process would count.
#[test]
fn worker_processes_hold_the_subscribers_and_their_shares_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        dir.path(),
        "workers",
        "[publish]\nrate = 20\naudience = \"per-user\"\ntabs = 2\n\
         [load]\nworkers = 3\nsource_addresses = 2\n",
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("clients = 3", "clients = 12");
    std::fs::write(&file, text).unwrap();
    let (summary, run) = run_file(&file, "workers", &["--server-binary", SERVER]);
    assert_eq!(summary.scenario.load.workers, 3);
    for cell in &summary.cells {
        let name = cell.technique.name();
        let d = &cell.deliveries;
        assert!(d.comments_published > 0, "{name}: {d:?}");
        // Each accepted comment is expected at both tabs of its one user.
        assert_eq!(d.expected, 2 * d.comments_published, "{name}: {d:?}");
        assert_eq!(
            (d.delivered, d.missing, d.duplicated),
            (d.expected, 0, 0),
            "{name}: {d:?}"
        );
        assert_eq!(cell.latency.count, d.delivered, "{name}");
        // The workers' socket counts, added up, equal what the server counted.
        let a = &cell.agreement;
        assert!(a.client_down > 0, "{name}: {a:?}");
        assert!(a.equal, "{name}: {a:?}");
        assert!(cell.kernel.sockets >= 12, "{name}: {:?}", cell.kernel);
        // Their CPU is the generator's: more than nothing.
        assert!(cell.loadgen.cpu_seconds > 0.0, "{name}");
    }
    // Each worker logged to its own file beside the cell's server log.
    assert!(run.join("logs/cell-000-worker-2.log").exists());
}

#[test]
fn workers_are_refused_with_faults_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        dir.path(),
        "refused",
        "[publish]\nrate = 20\n[load]\nworkers = 2\n[faults]\nrestart = [\"500ms\"]\n",
    );
    let output = loadgen(&["validate", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("load.workers"), "{stderr}");
    assert!(stderr.contains("[faults]"), "{stderr}");
}
