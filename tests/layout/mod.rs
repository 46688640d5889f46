//! The module graph: `use crate::` edges between top-level modules form a DAG, with `model`
//! at the bottom using nothing and `report` using only `model`, so each part can grow (a
//! backend, a technique, a chart) without dragging the others along.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its files name with `crate::`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let top = relative.components().next().unwrap().as_os_str();
            let top = top.to_str().unwrap().trim_end_matches(".rs").to_string();
            if top == "lib" || top == "bin" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let uses = graph.entry(top.clone()).or_default();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                for (i, _) in code.match_indices("crate::") {
                    // `pushlab::crate::` cannot occur; skip `$crate::` in macros.
                    if code[..i].ends_with('$') {
                        continue;
                    }
                    let name: String = code[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != top {
                        uses.insert(name);
                    }
                }
            }
        }
    }
    graph
}

/// A cycle through `node`, if any, as a path of module names.
fn find_cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|n| n == node) {
        let mut cycle = path[start..].to_vec();
        cycle.push(node.to_string());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(cycle) = find_cycle(graph, next, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn top_level_modules_form_a_dag_with_model_at_the_bottom() {
    let graph = module_graph();
    assert!(
        graph.contains_key("model") && graph.contains_key("server"),
        "{graph:?}"
    );
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = find_cycle(&graph, node, &mut Vec::new(), &mut done) {
            panic!(
                "import cycle: {}\nwhole graph: {graph:#?}",
                cycle.join(" -> ")
            );
        }
    }
    assert_eq!(
        graph["model"],
        BTreeSet::new(),
        "model must use no other module"
    );
    let report: Vec<_> = graph["report"].iter().collect();
    assert_eq!(
        report,
        ["model"],
        "report must depend on the results types only"
    );
    for handler_side in ["techniques", "feed", "http", "accounting", "web"] {
        assert!(
            !graph[handler_side].contains("server") && !graph[handler_side].contains("loadgen"),
            "{handler_side} must not reach up into server or loadgen: {:?}",
            graph[handler_side]
        );
    }
}

#[test]
fn the_graph_reader_sees_edges() {
    let graph = module_graph();
    assert!(graph["server"].contains("techniques"), "{graph:#?}");
    assert!(graph["loadgen"].contains("report"), "{graph:#?}");
}
