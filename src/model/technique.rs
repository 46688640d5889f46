//! The technique list: the one place that says which push techniques exist and what each one
//! is (its name, whether it streams or answers requests, how charts draw it). Everything
//! per-technique elsewhere (routes, `/stats` accounts, drop signals, chart styles, report
//! wording) derives from [`Technique::ALL`] and [`Technique::descriptor`], so a new variant
//! that is missing anywhere is a compile error, not a run-time panic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A way for the server to push comments to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Technique {
    ShortPolling,
    LongPolling,
    // Not kebab-case's "web-socket": the same name everywhere (scenarios, /stats, results).
    #[serde(rename = "websocket")]
    WebSocket,
    Sse,
}

/// How a technique gets a comment to its subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The client asks and the server answers at once, often with nothing (short polling):
    /// requests and empty answers are its cost, the polling interval its latency.
    Answers,
    /// The client asks and the server holds the request until there is something (long
    /// polling): one request per answer, and a re-ask round trip after each.
    Holds,
    /// One long-lived connection down which the server pushes each comment (WebSocket, SSE).
    Streams,
}

/// A marker shape, so techniques stay apart in print and for colour-blind readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
}

/// What a technique is, beyond its behaviour (which lives in `techniques/<name>.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Descriptor {
    /// The name used in scenario files, `/stats`, results and charts.
    pub name: &'static str,
    /// The name a sentence uses: "short polling", "WebSocket".
    pub title: &'static str,
    pub delivery: Delivery,
    /// Chart colour (Okabe-Ito, colour-blind safe), as RGB.
    pub colour: (u8, u8, u8),
    pub shape: Shape,
    /// Marker radius in pixels, and line width: techniques drawn first get larger markers
    /// and wider lines, so one whose values coincide with a later one still shows as an
    /// outline around it.
    pub marker_size: i32,
    pub line_width: u32,
}

impl Technique {
    /// Every technique, in the order tables and charts show them.
    pub const ALL: [Technique; 4] = [
        Technique::ShortPolling,
        Technique::LongPolling,
        Technique::WebSocket,
        Technique::Sse,
    ];

    /// How many techniques there are.
    pub const COUNT: usize = Self::ALL.len();

    /// The properties of this technique: the one table to extend with a new technique.
    pub const fn descriptor(self) -> &'static Descriptor {
        match self {
            Technique::ShortPolling => &Descriptor {
                name: "short-polling",
                title: "short polling",
                delivery: Delivery::Answers,
                // Orange and reddish purple: the two polling techniques must stay apart on a
                // washed-out projector, which vermilion beside amber did not.
                colour: (230, 159, 0),
                shape: Shape::Triangle,
                marker_size: 13,
                line_width: 7,
            },
            Technique::LongPolling => &Descriptor {
                name: "long-polling",
                title: "long polling",
                delivery: Delivery::Holds,
                colour: (204, 121, 167),
                shape: Shape::Square,
                marker_size: 11,
                line_width: 6,
            },
            Technique::WebSocket => &Descriptor {
                name: "websocket",
                title: "WebSocket",
                delivery: Delivery::Streams,
                colour: (0, 114, 178),
                shape: Shape::Circle,
                marker_size: 9,
                line_width: 5,
            },
            Technique::Sse => &Descriptor {
                name: "sse",
                title: "SSE",
                delivery: Delivery::Streams,
                colour: (0, 158, 115),
                shape: Shape::Diamond,
                marker_size: 8,
                line_width: 4,
            },
        }
    }

    /// The name used in scenario files, `/stats`, results and charts.
    pub const fn name(self) -> &'static str {
        self.descriptor().name
    }

    /// Whether the server pushes down one long-lived connection (WebSocket, SSE).
    pub const fn streams(self) -> bool {
        matches!(self.descriptor().delivery, Delivery::Streams)
    }

    /// Whether a subscriber keeps a request or connection open at the server between
    /// comments (long polling, WebSocket, SSE), so a dropped network cuts something off.
    pub const fn holds_connection(self) -> bool {
        !matches!(self.descriptor().delivery, Delivery::Answers)
    }

    /// Position in [`Technique::ALL`], for per-technique arrays: the declaration order,
    /// which `ALL` follows (a test checks it). Called on every request and delivery, so no
    /// search.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Technique {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Technique {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Technique::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Technique::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown technique `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Technique;

    #[test]
    fn serde_names_are_the_names_used_everywhere() {
        for technique in Technique::ALL {
            let json = serde_json::to_string(&technique).unwrap();
            assert_eq!(json, format!("\"{}\"", technique.name()));
            assert_eq!(technique.name().parse::<Technique>(), Ok(technique));
        }
    }

    #[test]
    fn every_variant_is_listed_once_with_its_own_name_and_style() {
        for (i, technique) in Technique::ALL.into_iter().enumerate() {
            assert_eq!(technique.index(), i);
            for other in &Technique::ALL[i + 1..] {
                let (a, b) = (technique.descriptor(), other.descriptor());
                assert_ne!(a.name, b.name);
                assert_ne!(a.colour, b.colour);
                assert_ne!(a.shape, b.shape);
            }
        }
    }
}
