//! `run --shard I/N` and `merge`: a scenario run in two shards, merged, holds exactly the
//! counts the shards measured, and the same expected pairs as the scenario run whole.

use super::*;

/// Runs `file` with `args` against fresh servers, its results under `results`; returns the
/// one run folder.
fn run_into(file: &Path, name: &str, results: &Path, args: &[&str]) -> PathBuf {
    let mut all = vec!["--server-binary", SERVER];
    all.extend_from_slice(args);
    run_file_into(file, name, results, &all).1
}

#[test]
fn two_shards_merge_into_the_counts_of_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        dir.path(),
        "sharded",
        "[publish]\nrate = 20\naudience = \"per-user\"\ntabs = 2\n",
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("clients = 3", "clients = 8");
    std::fs::write(&file, text).unwrap();
    let whole = run_into(&file, "sharded", &dir.path().join("whole"), &[]);
    let first = run_into(
        &file,
        "sharded",
        &dir.path().join("s1"),
        &["--shard", "1/2"],
    );
    let second = run_into(
        &file,
        "sharded",
        &dir.path().join("s2"),
        &["--shard", "2/2"],
    );
    let out = dir.path().join("merged");
    // Given in either order.
    let output = loadgen(&[
        "merge",
        second.to_str().unwrap(),
        first.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let load = |d: &Path| pushlab::report::load_summary(d).unwrap();
    let (whole, first, second, merged) = (load(&whole), load(&first), load(&second), load(&out));
    assert_eq!(first.shard.map(|s| (s.index, s.count)), Some((0, 2)));
    assert_eq!(merged.shard, None);
    assert_eq!(merged.cells.len(), 4);
    for (i, cell) in merged.cells.iter().enumerate() {
        let name = cell.technique.name();
        let (a, b) = (&first.cells[i], &second.cells[i]);
        let d = &cell.deliveries;
        // Counts are the shards' sums, exactly.
        assert_eq!(
            d.expected,
            a.deliveries.expected + b.deliveries.expected,
            "{name}"
        );
        assert_eq!(
            d.delivered,
            a.deliveries.delivered + b.deliveries.delivered,
            "{name}"
        );
        assert_eq!(d.missing, 0, "{name}: {d:?}");
        assert_eq!(
            cell.latency.count, d.delivered,
            "{name}: the histograms added up"
        );
        assert_eq!(
            cell.client.bytes_down,
            a.client.bytes_down + b.client.bytes_down,
            "{name}"
        );
        assert_eq!(
            cell.kernel.sockets,
            a.kernel.sockets + b.kernel.sockets,
            "{name}"
        );
        assert!(cell.agreement.equal, "{name}");
        // Each shard held half of the subscribers, one tab of every user: each expected
        // half of the pairs, and together what the whole run expected.
        assert_eq!(
            a.deliveries.expected, a.deliveries.comments_published,
            "{name}"
        );
        assert_eq!(
            d.expected, whole.cells[i].deliveries.expected,
            "{name}: the same comments to the same subscribers"
        );
        assert_eq!(
            cell.timeline.iter().map(|p| p.deliveries).sum::<u64>(),
            d.delivered,
            "{name}: the timeline holds every delivery"
        );
    }
    assert!(out.join("report.md").exists());
    // A shard missing is refused, naming it.
    let output = loadgen(&[
        "merge",
        first_dir(dir.path()).to_str().unwrap(),
        "--out",
        dir.path().join("half").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("shard(s) 2 of 2 missing"), "{stderr}");
}

fn first_dir(dir: &Path) -> PathBuf {
    run_dir(&dir.join("s1"), "sharded")
}

#[test]
fn shard_flags_are_checked() {
    for bad in ["0/2", "3/2", "1", "a/b"] {
        let output = loadgen(&["run", "x.toml", "--shard", bad]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{bad}");
        assert!(stderr.contains("--shard"), "{bad}: {stderr}");
    }
}
