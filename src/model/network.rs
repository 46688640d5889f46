//! An emulated network link between the load generator's clients and the server: what a
//! scenario's `[network]` table sets, what a cell ran over, and what `summary.json` records so
//! the report can set the link's share of the latency beside each measurement. The relay that
//! plays the link is the load generator's (`loadgen::link`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One link, the same both ways: a round trip, jitter, bandwidth and periodic stalls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Round-trip time the link adds; each direction is delayed by half of it.
    #[serde(with = "duration_text")]
    pub rtt: Duration,
    /// Each chunk's delay varies by up to this much either way (uniformly), never reordering.
    #[serde(with = "duration_text")]
    pub jitter: Duration,
    /// Bits per second, each direction of each connection; `None` is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bps: Option<u64>,
    /// Bits per second, each direction, shared by every connection over the link (one cell
    /// tower, one Wi-Fi); `None` is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_bps: Option<u64>,
    /// A pause of the whole link at a fixed period: what a lost packet looks like to TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<Stall>,
}

/// `every` period, the link carries nothing for `length`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    #[serde(with = "duration_text")]
    pub every: Duration,
    #[serde(rename = "for", with = "duration_text")]
    pub length: Duration,
}

impl Link {
    /// A link that adds nothing (rtt 0, no limits): the relay then only forwards.
    pub const DIRECT: Link = Link {
        rtt: Duration::ZERO,
        jitter: Duration::ZERO,
        bandwidth_bps: None,
        aggregate_bps: None,
        stall: None,
    };

    /// The delay of each direction.
    pub fn one_way(&self) -> Duration {
        self.rtt / 2
    }

    /// "rtt 100 ms · 2 Mbit/s · jitter 10 ms": the link in a few words, for reports.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("rtt {} ms", self.rtt.as_millis())];
        if let Some(bps) = self.bandwidth_bps {
            parts.push(format!("{} per connection", describe_rate(bps)));
        }
        if let Some(bps) = self.aggregate_bps {
            parts.push(format!("{} shared", describe_rate(bps)));
        }
        if !self.jitter.is_zero() {
            parts.push(format!("jitter ±{} ms", self.jitter.as_millis()));
        }
        if let Some(stall) = self.stall {
            parts.push(format!(
                "stalls {} ms every {} s",
                stall.length.as_millis(),
                stall.every.as_secs_f64()
            ));
        }
        parts.join(" · ")
    }
}

/// "1.5 Mbit/s", "256 kbit/s".
pub fn describe_rate(bps: u64) -> String {
    let (value, unit) = if bps >= 1_000_000 {
        (bps as f64 / 1e6, "Mbit/s")
    } else if bps >= 1_000 {
        (bps as f64 / 1e3, "kbit/s")
    } else {
        (bps as f64, "bit/s")
    };
    format!("{} {unit}", (value * 1000.0).round() / 1000.0)
}

/// Parses "2mbit", "1.5 Mbit/s", "256kbit", "1gbit" into bits per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let body = lower.strip_suffix("/s").unwrap_or(&lower);
    let (number, scale) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .iter()
        .find_map(|(unit, scale)| body.strip_suffix(unit).map(|n| (n.trim(), *scale)))
        .ok_or_else(|| format!("expected a rate such as \"2mbit\" or \"256kbit\", got {text:?}"))?;
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a rate such as \"2mbit\" or \"256kbit\", got {text:?}"))?;
    let bps = value * scale;
    if !bps.is_finite() || !(1_000.0..=100e9).contains(&bps) {
        return Err(format!(
            "rates must be from 1kbit to 100gbit per second, got {text:?}"
        ));
    }
    Ok(bps.round() as u64)
}

/// The scenario's `[network]`: the subscribers' link (its rtt and bandwidths may be swept) and
/// the publisher's (direct unless `[network.publisher]` sets one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// The subscribers' link; its `rtt`, `bandwidth_bps` and `aggregate_bps` are the first
    /// point of each sweep below.
    pub subscribers: Link,
    /// Round trips to sweep (one cell per technique and value).
    #[serde(with = "duration_list")]
    pub rtts: Vec<Duration>,
    /// Per-connection bandwidths to sweep; empty when unlimited.
    #[serde(default)]
    pub bandwidths_bps: Vec<u64>,
    /// Shared bandwidths to sweep; empty when unlimited.
    #[serde(default)]
    pub aggregates_bps: Vec<u64>,
    /// The publisher's link; `None` connects it to the server directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<Link>,
}

impl Network {
    /// Every subscriber link of the sweeps, in run order (rtt outermost).
    pub fn links(&self) -> Vec<Link> {
        fn or_none(values: &[u64]) -> Vec<Option<u64>> {
            if values.is_empty() {
                vec![None]
            } else {
                values.iter().copied().map(Some).collect()
            }
        }
        let mut links = Vec::new();
        for &rtt in &self.rtts {
            for bandwidth_bps in or_none(&self.bandwidths_bps) {
                for aggregate_bps in or_none(&self.aggregates_bps) {
                    links.push(Link {
                        rtt,
                        bandwidth_bps,
                        aggregate_bps,
                        ..self.subscribers
                    });
                }
            }
        }
        links
    }
}

/// Durations as humantime strings ("100ms"), as in scenario files.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*duration).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod duration_list {
    use std::time::Duration;

    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Duration], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(list.len()))?;
        for duration in list {
            seq.serialize_element(&humantime::format_duration(*duration).to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Duration>, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        texts
            .iter()
            .map(|t| humantime::parse_duration(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_their_units() {
        assert_eq!(parse_rate("2mbit"), Ok(2_000_000));
        assert_eq!(parse_rate("1.5 Mbit/s"), Ok(1_500_000));
        assert_eq!(parse_rate("256kbit"), Ok(256_000));
        assert_eq!(parse_rate("1gbit/s"), Ok(1_000_000_000));
        assert!(parse_rate("2mb").is_err());
        assert!(parse_rate("0mbit").is_err());
        assert_eq!(describe_rate(1_500_000), "1.5 Mbit/s");
    }

    #[test]
    fn sweeps_expand_rtt_outermost() {
        let network = Network {
            subscribers: Link::DIRECT,
            rtts: vec![Duration::ZERO, Duration::from_millis(100)],
            bandwidths_bps: vec![],
            aggregates_bps: vec![1_000_000, 2_000_000],
            publisher: None,
        };
        let links = network.links();
        assert_eq!(links.len(), 4);
        assert_eq!(links[1].rtt, Duration::ZERO);
        assert_eq!(links[1].aggregate_bps, Some(2_000_000));
        assert_eq!(links[2].rtt, Duration::from_millis(100));
    }
}
