//! The glossary appended to every report: a short definition of each term a student meets in
//! it, listing only the terms the report's own text uses, so a short report gets a short
//! glossary.

use std::fmt::Write as _;

/// One term: its name, the words that show the report uses it (matched case-insensitively),
/// and its definition.
struct Term {
    name: &'static str,
    used_by: &'static [&'static str],
    definition: &'static str,
}

/// In the order a reader meets them: latency first, then load, then cost.
const TERMS: [Term; 10] = [
    Term {
        name: "p50, p99 (percentiles)",
        used_by: &["p50", "p99", "percentile"],
        definition: "the latency that 50% (the median) or 99% of deliveries stayed within. A \
                     percentile needs at least one sample above it: p99 needs 100 deliveries, \
                     p99.9 1,000, p99.99 10,000; below that the report neither quotes nor \
                     draws it.",
    },
    Term {
        name: "delivery",
        used_by: &["deliver"],
        definition: "one comment arriving at one subscriber. A comment broadcast to 100 \
                     subscribers makes 100 deliveries.",
    },
    Term {
        name: "open loop",
        used_by: &["open loop", "open-loop"],
        definition: "the publisher sends comments on a fixed schedule whatever the server \
                     does, so a slow server cannot slow the load down and hide its own delay.",
    },
    Term {
        name: "coordinated omission",
        used_by: &["scheduled to be published", "coordinated omission"],
        definition: "the error of a tester that waits for each answer before sending the \
                     next request: it never measures the requests a stall held back. Latency \
                     here runs from the time a comment was scheduled, not sent, which avoids \
                     it.",
    },
    Term {
        name: "round trip",
        used_by: &["round trip", "round-trip", "rtt"],
        definition: "the time for a message to reach the other end and an answer to come \
                     back. Over loopback it is tens of microseconds; across a real network, \
                     milliseconds or more.",
    },
    Term {
        name: "keep-alive",
        used_by: &["keep-alive", "keep alive"],
        definition: "HTTP/1.1 reusing one TCP connection for request after request, so a \
                     polling client pays no new TCP handshake per poll, but still holds a \
                     connection open.",
    },
    Term {
        name: "per delivery",
        used_by: &["per delivery", "/ delivery", "per delivered comment"],
        definition: "a cost divided by the deliveries it bought: bytes per delivery = bytes \
                     both ways on the subscribers' sockets in the window ÷ deliveries in the \
                     window.",
    },
    Term {
        name: "RSS (resident set size)",
        used_by: &["rss", "resident"],
        definition: "the server's memory actually held in RAM; \"peak\" is the largest value \
                     seen during the cell.",
    },
    Term {
        name: "generator-bound",
        used_by: &["generator-bound"],
        definition: "the load generator itself used nearly a whole core, so that cell's \
                     latency and throughput may show the generator's limits rather than the \
                     server's.",
    },
    Term {
        name: "protocol overhead",
        used_by: &["overhead"],
        definition: "every byte on the wire that is not the comment itself: HTTP heads, \
                     SSE's `data:` lines, WebSocket frame headers, and polling's empty \
                     answers.",
    },
];

/// The glossary section for a report whose text so far is `report`, or nothing when it uses
/// none of the terms.
pub(super) fn section(report: &str) -> String {
    let text = report.to_lowercase();
    let used: Vec<&Term> = TERMS
        .iter()
        .filter(|t| t.used_by.iter().any(|w| text.contains(w)))
        .collect();
    if used.is_empty() {
        return String::new();
    }
    let mut out = String::from("## Glossary\n\n");
    for term in used {
        let _ = writeln!(out, "- **{}**: {}", term.name, term.definition);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_terms_the_report_uses_are_defined() {
        let text = section("The p99 of the SSE cell; the generator-bound warning.");
        assert!(text.starts_with("## Glossary\n\n"));
        assert!(text.contains("- **p50, p99 (percentiles)**:"));
        assert!(text.contains("- **generator-bound**:"));
        assert!(!text.contains("**RSS"), "{text}");
        assert!(!text.contains("**keep-alive**"), "{text}");
        assert_eq!(section("nothing to define here"), "");
    }

    /// Every term can be triggered, and by its own name where that is a plain word.
    #[test]
    fn every_term_has_a_trigger() {
        for term in &TERMS {
            assert!(!term.used_by.is_empty(), "{}", term.name);
            assert!(
                section(term.used_by[0]).contains(term.name),
                "{}",
                term.name
            );
        }
    }
}
