//! The scenario file's `[faults]` section: the raw keys as written, and their checks, with
//! errors that name the key (`faults.drop.share`). Kept apart from `scenario.rs` so the
//! fault keys grow here.

use std::time::Duration;

use serde::Deserialize;

use super::scenario::ScenarioError;
use crate::model::faults::{
    ClosePage, DropFault, Faults, How, LivenessSettings, Side, Slow, Vanish,
};

/// `[faults]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFaults {
    drop: Option<super::scenario::OneOrMany<RawDrop>>,
    restart: Option<Vec<String>>,
    restart_instance: Option<i64>,
    close_page: Option<RawClosePage>,
    slow: Option<RawSlow>,
    vanish: Option<RawVanish>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVanish {
    at: String,
    share: f64,
    settings: Option<Vec<RawLiveness>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLiveness {
    sse_heartbeat: Option<String>,
    ws_ping_interval: Option<String>,
    ws_pong_timeout: Option<String>,
    user_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlow {
    share: f64,
    read_bytes_per_s: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrop {
    every: String,
    share: f64,
    side: String,
    how: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClosePage {
    at: String,
    share: f64,
}

impl RawFaults {
    /// Checks every key; `invalid` builds the error naming the file and key; moments must
    /// fall inside the measured window (`duration`).
    pub fn validate(
        self,
        invalid: impl Fn(&str, String) -> ScenarioError,
        window: Duration,
    ) -> Result<Faults, ScenarioError> {
        let duration = |key: &str, text: &str| {
            humantime::parse_duration(text.trim()).map_err(|error| {
                invalid(
                    key,
                    format!("expected a duration such as \"2s\", got {text:?} ({error})"),
                )
            })
        };
        let within = |key: &str, at: Duration| {
            if at.is_zero() || at >= window {
                Err(invalid(
                    key,
                    format!(
                        "must fall inside the measured window (after 0 and before `duration`, {})",
                        humantime::format_duration(window)
                    ),
                ))
            } else {
                Ok(at)
            }
        };
        let share = |key: &str, share: f64| {
            if share.is_finite() && share > 0.0 && share <= 1.0 {
                Ok(share)
            } else {
                Err(invalid(
                    key,
                    format!("a share of the subscribers, more than 0 and at most 1, got {share}"),
                ))
            }
        };
        let mut drops = Vec::new();
        for raw in self.drop.map(|d| d.into_vec()).unwrap_or_default() {
            drops.push({
                let every = duration("faults.drop.every", &raw.every)?;
                if every < Duration::from_millis(100) {
                    return Err(invalid(
                        "faults.drop.every",
                        "must be at least 100ms, so a drop can be told from the next".into(),
                    ));
                }
                let side = match raw.side.as_str() {
                    "server" => Side::Server,
                    "client" => Side::Client,
                    other => {
                        return Err(invalid(
                            "faults.drop.side",
                            format!("expected \"server\" or \"client\", got {other:?}"),
                        ));
                    }
                };
                let how = match raw.how.as_deref() {
                    None | Some("close") => How::Close,
                    Some("reset") => How::Reset,
                    Some(other) => {
                        return Err(invalid(
                            "faults.drop.how",
                            format!("expected \"close\" or \"reset\", got {other:?}"),
                        ));
                    }
                };
                if side == Side::Server && how == How::Reset {
                    return Err(invalid(
                        "faults.drop.how",
                        "the server's admin drop ends the stream itself; \"reset\" is for side = \"client\"".into(),
                    ));
                }
                DropFault {
                    every,
                    share: share("faults.drop.share", raw.share)?,
                    side,
                    how,
                }
            });
        }
        let mut restart = Vec::new();
        for text in self.restart.unwrap_or_default() {
            let at = within("faults.restart", duration("faults.restart", &text)?)?;
            if restart.last().is_some_and(|last| at <= *last) {
                return Err(invalid(
                    "faults.restart",
                    "moments must be in increasing order".into(),
                ));
            }
            restart.push(at);
        }
        let restart_instance = match self.restart_instance {
            None => 0,
            Some(n) if restart.is_empty() => {
                return Err(invalid(
                    "faults.restart_instance",
                    format!(
                        "names instance {n}, but `faults.restart` sets no moment to restart it"
                    ),
                ));
            }
            Some(n) => u32::try_from(n).ok().filter(|n| *n < 16).ok_or_else(|| {
                invalid(
                    "faults.restart_instance",
                    format!("must be an instance index from 0 to 15, got {n}"),
                )
            })?,
        };
        let close_page = match self.close_page {
            None => None,
            Some(raw) => Some(ClosePage {
                at: within(
                    "faults.close_page.at",
                    duration("faults.close_page.at", &raw.at)?,
                )?,
                share: share("faults.close_page.share", raw.share)?,
            }),
        };
        let slow = match self.slow {
            None => None,
            Some(raw) => Some(Slow {
                share: share("faults.slow.share", raw.share)?,
                read_bytes_per_s: u64::try_from(raw.read_bytes_per_s)
                    .ok()
                    .filter(|r| (100..=1_000_000_000).contains(r))
                    .ok_or_else(|| {
                        invalid(
                            "faults.slow.read_bytes_per_s",
                            format!(
                                "bytes a second, from 100 to 1000000000, got {}",
                                raw.read_bytes_per_s
                            ),
                        )
                    })?,
            }),
        };
        let vanish = match self.vanish {
            None => None,
            Some(raw) => {
                let at = within("faults.vanish.at", duration("faults.vanish.at", &raw.at)?)?;
                let share = share("faults.vanish.share", raw.share)?;
                let mut settings = Vec::new();
                for entry in raw.settings.unwrap_or_default() {
                    let key = |name: &str| format!("faults.vanish.settings.{name}");
                    let one = |name: &str, text: &Option<String>| {
                        text.as_deref().map(|t| duration(&key(name), t)).transpose()
                    };
                    settings.push(LivenessSettings {
                        sse_heartbeat: one("sse_heartbeat", &entry.sse_heartbeat)?,
                        ws_ping_interval: one("ws_ping_interval", &entry.ws_ping_interval)?,
                        ws_pong_timeout: one("ws_pong_timeout", &entry.ws_pong_timeout)?,
                        user_timeout: one("user_timeout", &entry.user_timeout)?,
                    });
                }
                if settings.is_empty() {
                    settings.push(LivenessSettings::default());
                }
                if settings
                    .iter()
                    .any(|s| s.sse_heartbeat.is_some_and(|h| h.is_zero()))
                {
                    return Err(invalid(
                        "faults.vanish.settings.sse_heartbeat",
                        "must be longer than zero".into(),
                    ));
                }
                Some(Vanish {
                    at,
                    share,
                    settings,
                })
            }
        };
        Ok(Faults {
            drop: drops,
            restart,
            restart_instance,
            close_page,
            slow,
            vanish,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::model::faults::{How, Side};
    use crate::model::scenario::Scenario;

    const BASE: &str = "name = \"t\"\ndescription = \"d\"\ntechniques = [\"sse\"]\nclients = 10\n\
                        duration = \"10s\"\n[publish]\nrate = 10\n";

    fn parse(faults: &str) -> Result<Scenario, String> {
        Scenario::parse(&format!("{BASE}[faults]\n{faults}"), "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_faults_section_is_checked_into_the_scenario() {
        let s = parse(
            "drop = { every = \"2s\", share = 0.1, side = \"client\", how = \"reset\" }\n\
             restart = [\"5s\"]\nclose_page = { at = \"3s\", share = 0.2 }\n\
             slow = { share = 0.05, read_bytes_per_s = 2000 }\n",
        )
        .unwrap();
        let drop = s.faults.drop[0];
        assert_eq!(
            (drop.side, drop.how, drop.share),
            (Side::Client, How::Reset, 0.1)
        );
        assert_eq!(s.faults.restart, [std::time::Duration::from_secs(5)]);
        assert_eq!(s.faults.close_page.unwrap().share, 0.2);
        assert_eq!(s.faults.slow.unwrap().read_bytes_per_s, 2000);
        let s = parse(
            "vanish = { at = \"3s\", share = 0.1, settings = [{ user_timeout = \"3s\" }, \
             { ws_ping_interval = \"2s\", ws_pong_timeout = \"1s\" }] }\n",
        )
        .unwrap();
        let vanish = s.faults.vanish.unwrap();
        assert_eq!(vanish.settings.len(), 2);
        assert_eq!(vanish.settings[0].label(), "user timeout 3s");
        assert_eq!(vanish.settings[1].label(), "ping 2s + 1s");
        assert!(Scenario::parse(BASE, "t.toml").unwrap().faults.is_empty());
    }

    #[test]
    fn drops_from_both_sides_are_a_list() {
        let s = parse(
            "drop = [{ every = \"2s\", share = 0.1, side = \"client\" },\n\
             { every = \"2s\", share = 0.1, side = \"server\" }]\n",
        )
        .unwrap();
        let sides: Vec<Side> = s.faults.drop.iter().map(|d| d.side).collect();
        assert_eq!(sides, [Side::Client, Side::Server]);
        assert_eq!(s.faults.drop[0].how, How::Close);
    }

    #[test]
    fn bad_fault_keys_are_named() {
        let cases = [
            (
                "drop = { every = \"2s\", share = 0, side = \"client\" }",
                "`faults.drop.share`",
            ),
            (
                "drop = { every = \"2s\", share = 0.1, side = \"middle\" }",
                "`faults.drop.side`",
            ),
            (
                "drop = { every = \"2s\", share = 0.1, side = \"server\", how = \"reset\" }",
                "`faults.drop.how`",
            ),
            (
                "drop = { every = \"soon\", share = 0.1, side = \"client\" }",
                "`faults.drop.every`",
            ),
            ("restart = [\"12s\"]", "`faults.restart`"),
            ("restart = [\"5s\", \"4s\"]", "`faults.restart`"),
            (
                "vanish = { at = \"3s\", share = 0.1, settings = [{ user_timeout = \"soon\" }] }",
                "`faults.vanish.settings.user_timeout`",
            ),
            (
                "slow = { share = 0.1, read_bytes_per_s = 5 }",
                "`faults.slow.read_bytes_per_s`",
            ),
            (
                "close_page = { at = \"3s\", share = 1.5 }",
                "`faults.close_page.share`",
            ),
            ("vanish_soon = 1", "unknown field `vanish_soon`"),
        ];
        for (text, key) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(key), "{text}: {error}");
        }
    }
}
