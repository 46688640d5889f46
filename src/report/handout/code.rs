//! Claim 1's figures, taken from this build's own source: each technique's file
//! (`src/techniques/<technique>.rs`, embedded with `include_str!`) split into its server half
//! and its client half, with the lines of code of each and the crates the file names. A pure
//! counter over text, so the figures change only when the code does.

use crate::model::technique::Technique;

/// The source of one technique's file, as built.
pub fn source(technique: Technique) -> &'static str {
    match technique {
        Technique::ShortPolling => include_str!("../../techniques/short_polling.rs"),
        Technique::LongPolling => include_str!("../../techniques/long_polling.rs"),
        Technique::WebSocket => include_str!("../../techniques/websocket.rs"),
        Technique::Sse => include_str!("../../techniques/sse.rs"),
    }
}

/// The crates this build depends on (Cargo.toml's `[dependencies]`), to tell a crate path
/// from a module path in the sources.
const MANIFEST: &str = include_str!("../../../Cargo.toml");

/// Lines of code of one technique's two halves and the crates its file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeStats {
    /// Non-blank, non-comment lines before the client's entry point (`pub async fn
    /// run_client` and its doc comment), `use` lines and tests left out.
    pub server_lines: usize,
    /// The same from the client's entry point to the tests.
    pub client_lines: usize,
    /// Crates of `[dependencies]` named anywhere in the file outside its tests, sorted.
    pub crates: Vec<String>,
}

impl CodeStats {
    pub fn total(&self) -> usize {
        self.server_lines + self.client_lines
    }
}

/// Counts one technique's file of this build.
pub fn stats(technique: Technique) -> CodeStats {
    count(source(technique), &dependencies(MANIFEST))
}

/// The dependency names of a manifest's `[dependencies]` table, with `-` as `_` (as paths
/// spell them).
pub fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if !inside || line.starts_with('#') {
            continue;
        }
        if let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() {
                names.push(name.replace('-', "_"));
            }
        }
    }
    names
}

/// Counts `text` (a technique file): halves split at the client's entry point, tests cut off.
pub fn count(text: &str, crates: &[String]) -> CodeStats {
    let code = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let lines: Vec<&str> = code.lines().collect();
    let entry = lines
        .iter()
        .position(|l| l.trim_start().starts_with("pub async fn run_client"))
        .unwrap_or(lines.len());
    // The entry point's doc comment and attributes belong to the client half.
    let mut split = entry;
    while split > 0 {
        let above = lines[split - 1].trim_start();
        if above.starts_with("///") || above.starts_with("#[") {
            split -= 1;
        } else {
            break;
        }
    }
    let counted = |part: &[&str]| part.iter().filter(|l| is_code(l)).count();
    let mut named: Vec<String> = crates
        .iter()
        .filter(|krate| names_crate(code, krate))
        .cloned()
        .collect();
    named.sort();
    CodeStats {
        server_lines: counted(&lines[..split]),
        client_lines: counted(&lines[split..]),
        crates: named,
    }
}

/// A line of code: not blank, not a comment, not an import.
fn is_code(line: &str) -> bool {
    let line = line.trim();
    !(line.is_empty()
        || line.starts_with("//")
        || line.starts_with("use ")
        || line.starts_with("pub use ")
        || line.starts_with("pub(crate) use "))
}

/// Whether `code` names `krate` as a path root (`krate::`), not as part of a longer name.
fn names_crate(code: &str, krate: &str) -> bool {
    let needle = format!("{krate}::");
    code.match_indices(&needle).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_split_at_the_client_entry_and_skip_comments_imports_and_tests() {
        let text = "//! doc\nuse axum::Router;\n\nfn handler() {\n    // why\n    axum::x();\n}\n\n\
                    /// The client.\npub async fn run_client() {\n    tokio_tungstenite::connect();\n}\n\
                    #[cfg(test)]\nmod tests {\n    fn t() { serde_json::x(); }\n}\n";
        let crates = vec![
            "axum".to_string(),
            "tokio_tungstenite".to_string(),
            "tokio".to_string(),
            "serde_json".to_string(),
        ];
        let stats = count(text, &crates);
        assert_eq!(stats.server_lines, 3, "fn, call, brace");
        assert_eq!(stats.client_lines, 3, "fn, call, brace");
        // `tokio` is not named by `tokio_tungstenite::`; tests' crates are left out.
        assert_eq!(stats.crates, ["axum", "tokio_tungstenite"]);
    }

    #[test]
    fn dependencies_are_read_from_the_dependencies_table_only() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\n# note\nfoo-bar = \"1\"\nbaz = { version = \"2\" }\n[dev-dependencies]\nqux = \"1\"\n";
        assert_eq!(dependencies(manifest), ["foo_bar", "baz"]);
    }

    #[test]
    fn every_technique_file_of_this_build_has_both_halves() {
        for technique in Technique::ALL {
            let stats = stats(technique);
            assert!(stats.server_lines > 10, "{technique:?}: {stats:?}");
            assert!(stats.client_lines > 10, "{technique:?}: {stats:?}");
        }
        assert!(
            stats(Technique::WebSocket)
                .crates
                .contains(&"tokio_tungstenite".to_string())
        );
        assert!(
            !stats(Technique::Sse)
                .crates
                .iter()
                .any(|c| c.contains("tungstenite"))
        );
    }
}
