//! `pushlab-loadgen study` on a tiny scenario set against real servers on port 0: the runs,
//! the probes and the handout, each cell's recorded exchange, and `--from` rebuilding the
//! same handout from the run folders alone.

use super::{SERVER, loadgen, scenario};
use pushlab::model::Technique;
use pushlab::model::wire::{Direction, Probes};

#[test]
fn study_runs_its_scenarios_probes_and_writes_a_handout_that_from_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    scenario(
        &scenarios,
        "tiny",
        "[publish]\nrate = 20\npayload_bytes = 50\naudience = \"broadcast\"\n",
    );
    let out = dir.path().join("study");
    let output = loadgen(&[
        "study",
        "--scenarios",
        scenarios.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--server-binary",
        SERVER,
        "--quiet",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let handout = std::fs::read_to_string(out.join("handout.md")).unwrap();
    for i in 1..=10 {
        assert!(handout.contains(&format!("## Claim {i}\n")), "claim {i}");
    }
    // The run's folder sits in the study folder and is linked relative to the handout.
    let run = super::run_dir(&out, "tiny");
    let summary = pushlab::report::load_summary(&run).unwrap();
    let link = run
        .strip_prefix(&out)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        handout.contains(&format!("]({link}/report.md)")),
        "{handout}"
    );
    // Every technique's first subscriber connection was recorded up to a delivered comment,
    // opening with its request; WebSocket's with the upgrade and its 101.
    for cell in &summary.cells {
        let wire = cell
            .wire
            .as_ref()
            .unwrap_or_else(|| panic!("{:?}", cell.technique));
        assert!(wire.delivered, "{:?}: {wire:?}", cell.technique);
        assert_eq!(wire.opening[0].direction, Direction::Up);
        assert!(wire.opening[0].text.starts_with("GET /"), "{wire:?}");
    }
    let ws = summary
        .cells
        .iter()
        .find(|c| c.technique == Technique::WebSocket)
        .unwrap();
    let opening = &ws.wire.as_ref().unwrap().opening;
    assert!(
        opening.iter().any(|c| c.text.starts_with("HTTP/1.1 101")),
        "{opening:?}"
    );
    // The probes measured both publish paths and the URL limit, and the handout uses them.
    let probes: Probes =
        serde_json::from_str(&std::fs::read_to_string(out.join("probes.json")).unwrap()).unwrap();
    let upstream = probes.upstream.expect("the upstream probe ran");
    assert_eq!(upstream.post.accepted, upstream.publishes);
    assert_eq!(upstream.websocket.accepted, upstream.publishes);
    // A POST carries its head each time; a frame does not.
    assert!(
        upstream.post.bytes_up > upstream.websocket.bytes_up,
        "{upstream:?}"
    );
    let url = probes.url_limit.expect("the URL probe ran");
    assert!(url.longest_accepted >= 1024, "{url:?}");
    assert!(handout.contains("## On the wire"));
    // Every file the handout links (run reports, charts, probes) was written.
    for link in handout.split("](").skip(1) {
        let target = &link[..link.find(')').unwrap()];
        assert!(out.join(target).is_file(), "{target} exists");
    }
    assert!(!handout.contains("Missing: the upstream probe"));
    // --from over the same folder rebuilds the same handout from the files alone.
    std::fs::remove_file(out.join("handout.md")).unwrap();
    let output = loadgen(&[
        "study",
        "--out",
        out.to_str().unwrap(),
        "--from",
        run.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("handout.md")).unwrap(),
        handout
    );
}
