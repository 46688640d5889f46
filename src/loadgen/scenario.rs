//! Scenario files: TOML parsed into a raw struct that mirrors the file (unknown keys are
//! errors), then validated into the `Scenario` the runner uses, with errors that name the file
//! and the key. The schema is documented in `scenarios/README.md`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::model::ServerConfig;
use crate::model::network::{Link, Network, Stall, parse_rate};
pub use crate::model::scenario::{
    Audience, CellSpec, Deployment, FeedKind, H2_MAX_CONCURRENT_STREAMS, H2Connections,
    HttpVersion, Load, PublishTo, RedisPersistence, Scenario,
};
use crate::model::technique::Technique;

/// A scenario file that cannot be used, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

/// One value or a list of values: a list makes the scenario a sweep over that key.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub(super) fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(value) => vec![value],
            OneOrMany::Many(values) => values,
        }
    }
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    description: String,
    techniques: Vec<String>,
    clients: OneOrMany<i64>,
    duration: String,
    warmup: Option<String>,
    drain: Option<String>,
    publish: RawPublish,
    short_polling: Option<RawShortPolling>,
    long_polling: Option<RawLongPolling>,
    server: Option<RawServer>,
    http: Option<OneOrMany<String>>,
    h2_connections: Option<String>,
    memory_chart: Option<bool>,
    faults: Option<super::faults_scenario::RawFaults>,
    network: Option<RawNetwork>,
    load: Option<RawLoad>,
    repeat: Option<i64>,
    floor: Option<bool>,
}

/// `[load]`: worker processes and source addresses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    workers: Option<i64>,
    source_addresses: Option<i64>,
}

/// `[network]`: the subscribers' link, whose `rtt`, `bandwidth` and `aggregate_bandwidth` may
/// be lists (sweeps), and `[network.publisher]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    rtt: Option<OneOrMany<String>>,
    jitter: Option<String>,
    bandwidth: Option<OneOrMany<String>>,
    aggregate_bandwidth: Option<OneOrMany<String>>,
    stall: Option<RawStall>,
    publisher: Option<RawLink>,
}

/// `[network.publisher]`: one link, nothing swept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    rtt: Option<String>,
    jitter: Option<String>,
    bandwidth: Option<String>,
    aggregate_bandwidth: Option<String>,
    stall: Option<RawStall>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStall {
    every: String,
    #[serde(rename = "for")]
    length: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    rate: OneOrMany<f64>,
    payload_bytes: Option<OneOrMany<i64>>,
    audience: Option<String>,
    tabs: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShortPolling {
    interval: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLongPolling {
    timeout: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    sse_heartbeat: Option<String>,
    subscriber_queue: Option<i64>,
    feed: Option<String>,
    instances: Option<i64>,
    deployments: Option<Vec<RawDeployment>>,
    publish_to: Option<String>,
    redis_persistence: Option<String>,
}

/// One entry of `[server] deployments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployment {
    feed: String,
    instances: Option<i64>,
}

/// The most server instances one cell may start: each is a process with its own file limit,
/// and two cores gain nothing from more.
const MAX_INSTANCES: u32 = 16;

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: file.clone(),
            source,
        })?;
        Scenario::parse(&text, &file)
    }

    /// Parses and checks scenario text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|error| ScenarioError::Parse {
            file: file.into(),
            message: error.to_string(),
        })?;
        Validator { file }.validate(raw)
    }
}

struct Validator<'a> {
    file: &'a str,
}

impl Validator<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.file.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn duration(&self, key: &str, text: &str) -> Result<Duration, ScenarioError> {
        humantime::parse_duration(text.trim()).map_err(|error| {
            self.invalid(
                key,
                format!("expected a duration such as \"20s\" or \"500ms\", got {text:?} ({error})"),
            )
        })
    }

    fn positive_duration(&self, key: &str, text: &str) -> Result<Duration, ScenarioError> {
        let duration = self.duration(key, text)?;
        if duration.is_zero() {
            return Err(self.invalid(key, "must be longer than zero"));
        }
        Ok(duration)
    }

    /// Checks the keys in file order, so the first bad one is the one reported.
    fn validate(&self, raw: RawScenario) -> Result<Scenario, ScenarioError> {
        let name = self.name(&raw.name)?;
        if raw.description.trim().is_empty() {
            return Err(self.invalid("description", "must say what the scenario shows"));
        }
        let techniques = self.techniques(&raw.techniques)?;
        let clients = self.clients(raw.clients)?;
        let rates = self.rates(raw.publish.rate)?;
        let payload_bytes = self.payload_bytes(raw.publish.payload_bytes)?;
        let audience = self.audience(raw.publish.audience.as_deref())?;
        let tabs = self.tabs(raw.publish.tabs, &clients)?;
        let repeat = self.repeat(raw.repeat)?;
        let timing = self.timing(
            &raw.duration,
            raw.warmup.as_deref(),
            raw.drain.as_deref(),
            raw.short_polling.as_ref(),
            raw.long_polling.as_ref(),
        )?;
        let server = self.server(raw.server)?;
        let http = self.http(raw.http)?;
        let h2_connections = self.h2_connections(raw.h2_connections.as_deref())?;
        if http.contains(&HttpVersion::H2) && h2_connections == H2Connections::Shared {
            for &count in &clients {
                for deployment in &server.deployments {
                    let per_connection = count.div_ceil(deployment.instances.max(1));
                    if per_connection > H2_MAX_CONCURRENT_STREAMS {
                        return Err(self.invalid(
                            "h2_connections",
                            format!(
                                "\"shared\" puts {per_connection} subscribers' streams on one \
                                 HTTP/2 connection, over the server's {H2_MAX_CONCURRENT_STREAMS} \
                                 concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS); use \
                                 \"per-client\", fewer clients or more instances"
                            ),
                        ));
                    }
                }
            }
        }
        let network = raw.network.map(|n| self.network(n)).transpose()?;
        let faults = match raw.faults {
            Some(faults) => {
                faults.validate(|key, message| self.invalid(key, message), timing.duration)?
            }
            None => Default::default(),
        };
        // A shared HTTP/2 connection belongs to no one subscriber: cutting, pacing or
        // black-holing "a share of the subscribers" would hit all of them, or none.
        let per_subscriber_faults = !faults.drop.is_empty()
            || faults.close_page.is_some()
            || faults.slow.is_some()
            || faults.vanish.is_some();
        if per_subscriber_faults
            && http.contains(&HttpVersion::H2)
            && h2_connections == H2Connections::Shared
        {
            return Err(self.invalid(
                "h2_connections",
                "faults that act on a share of the subscribers (drop, close_page, slow, vanish) \
                 need their own connections: use h2_connections = \"per-client\" with http = \"2\"",
            ));
        }
        if let Some(fewest) = server.deployments.iter().map(|d| d.instances).min()
            && !faults.restart.is_empty()
            && faults.restart_instance >= fewest
        {
            return Err(self.invalid(
                "faults.restart_instance",
                format!(
                    "is {}, but a deployment has only {fewest} instance(s), numbered from 0",
                    faults.restart_instance
                ),
            ));
        }
        if faults.slow.is_some() && audience == Audience::PerUser {
            return Err(self.invalid(
                "faults.slow",
                "needs publish.audience = \"broadcast\", so the slow and the other subscribers expect the same comments",
            ));
        }
        let load = self.load(raw.load, &clients)?;
        if load.workers > 0 {
            let alone = [
                (!faults.is_empty(), "[faults]"),
                (network.is_some(), "[network]"),
                (http.contains(&HttpVersion::H2), "http = \"2\""),
            ];
            if let Some((_, what)) = alone.iter().find(|(set, _)| *set) {
                return Err(self.invalid(
                    "load.workers",
                    format!(
                        "worker processes cannot be combined with {what} yet: faults, the link \
                         emulator and shared HTTP/2 connections act on subscribers inside the \
                         load generator's own process"
                    ),
                ));
            }
        }
        let floor = raw.floor.unwrap_or(false);
        if floor
            && !techniques
                .iter()
                .any(|t| matches!(t, Technique::Sse | Technique::WebSocket))
        {
            return Err(self.invalid(
                "floor",
                "compares SSE and WebSocket cells with the floor server: list \"sse\" or \"websocket\" in techniques",
            ));
        }
        if floor && !faults.is_empty() {
            return Err(self.invalid(
                "floor",
                "the floor server has no faults to suffer: use a scenario without [faults]",
            ));
        }
        Ok(Scenario {
            name,
            description: raw.description.trim().to_string(),
            techniques,
            clients,
            rates,
            payload_bytes,
            audience,
            tabs,
            duration: timing.duration,
            warmup: timing.warmup,
            drain: timing.drain,
            poll_interval: timing.poll_interval,
            long_poll_timeout: timing.long_poll_timeout,
            sse_heartbeat: server.sse_heartbeat,
            subscriber_queue: server.subscriber_queue,
            deployments: server.deployments,
            publish_to: server.publish_to,
            redis_persistence: server.redis_persistence,
            http,
            h2_connections,
            memory_chart: raw.memory_chart.unwrap_or(false),
            network,
            faults,
            load,
            repeat,
            floor,
        })
    }

    /// `[load] workers` (0 to 64) and `source_addresses` (0 to 250).
    fn load(&self, raw: Option<RawLoad>, clients: &[u32]) -> Result<Load, ScenarioError> {
        let Some(raw) = raw else {
            return Ok(Load::default());
        };
        let count = |key: &str, value: Option<i64>, max: i64| match value {
            None => Ok(0),
            Some(n) if (0..=max).contains(&n) => Ok(n as u32),
            Some(n) => Err(self.invalid(key, format!("must be from 0 to {max}, got {n}"))),
        };
        let load = Load {
            workers: count("load.workers", raw.workers, 64)?,
            source_addresses: count("load.source_addresses", raw.source_addresses, 250)?,
        };
        if let Some(fewest) = clients.iter().min()
            && load.workers > *fewest
        {
            return Err(self.invalid(
                "load.workers",
                format!(
                    "{} workers for a cell of {fewest} clients leaves some with none",
                    load.workers
                ),
            ));
        }
        Ok(load)
    }

    /// How many times each cell runs (`repeat`, default 1): enough runs to see the spread.
    fn repeat(&self, raw: Option<i64>) -> Result<u32, ScenarioError> {
        let Some(n) = raw else {
            return Ok(1);
        };
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=20).contains(n))
            .ok_or_else(|| self.invalid("repeat", format!("must be from 1 to 20, got {n}")))
    }

    /// `http = "1.1"`, `"2"`, or a list of both to compare them.
    fn http(&self, raw: Option<OneOrMany<String>>) -> Result<Vec<HttpVersion>, ScenarioError> {
        let Some(raw) = raw else {
            return Ok(HttpVersion::only_h1());
        };
        let mut versions = Vec::new();
        for name in raw.into_vec() {
            let version = match name.trim() {
                "1.1" => HttpVersion::H1,
                "2" => HttpVersion::H2,
                other => {
                    return Err(
                        self.invalid("http", format!("expected \"1.1\" or \"2\", not {other:?}"))
                    );
                }
            };
            if versions.contains(&version) {
                return Err(self.invalid("http", format!("lists {name:?} twice")));
            }
            versions.push(version);
        }
        if versions.is_empty() {
            return Err(self.invalid("http", "must list at least one version"));
        }
        versions.sort();
        Ok(versions)
    }

    fn h2_connections(&self, raw: Option<&str>) -> Result<H2Connections, ScenarioError> {
        match raw.map(str::trim) {
            None | Some("shared") => Ok(H2Connections::Shared),
            Some("per-client") => Ok(H2Connections::PerClient),
            Some(other) => Err(self.invalid(
                "h2_connections",
                format!("expected \"shared\" or \"per-client\", not {other:?}"),
            )),
        }
    }

    fn name(&self, raw: &str) -> Result<String, ScenarioError> {
        let name = raw.trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(self.invalid(
                "name",
                "must be non-empty letters, digits, '-' or '_' (it names the results folder)",
            ));
        }
        Ok(name)
    }

    fn techniques(&self, names: &[String]) -> Result<Vec<Technique>, ScenarioError> {
        if names.is_empty() {
            return Err(self.invalid("techniques", "must list at least one technique"));
        }
        let mut techniques = Vec::new();
        for name in names {
            let technique: Technique = name
                .parse()
                .map_err(|e: String| self.invalid("techniques", e))?;
            if techniques.contains(&technique) {
                return Err(self.invalid("techniques", format!("lists `{name}` twice")));
            }
            techniques.push(technique);
        }
        Ok(techniques)
    }

    fn clients(&self, raw: OneOrMany<i64>) -> Result<Vec<u32>, ScenarioError> {
        let clients = raw.into_vec();
        if clients.is_empty() {
            return Err(self.invalid("clients", "must hold at least one client count"));
        }
        clients
            .into_iter()
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or_else(|| {
                        self.invalid(
                            "clients",
                            format!("client counts must be from 1 to 100000, got {n}"),
                        )
                    })
            })
            .collect()
    }

    fn rates(&self, raw: OneOrMany<f64>) -> Result<Vec<f64>, ScenarioError> {
        let rates = raw.into_vec();
        if rates.is_empty() {
            return Err(self.invalid("publish.rate", "must hold at least one rate"));
        }
        for rate in &rates {
            if !rate.is_finite() || *rate <= 0.0 || *rate > 100_000.0 {
                return Err(self.invalid(
                    "publish.rate",
                    format!(
                        "rates are comments per second, more than 0 and at most 100000, got {rate}"
                    ),
                ));
            }
        }
        Ok(rates)
    }

    fn payload_bytes(&self, raw: Option<OneOrMany<i64>>) -> Result<Vec<u32>, ScenarioError> {
        let payload_bytes = raw.map_or(vec![100], OneOrMany::into_vec);
        if payload_bytes.is_empty() {
            return Err(self.invalid("publish.payload_bytes", "must hold at least one size"));
        }
        let limit = ServerConfig::default().max_comment_bytes;
        payload_bytes
            .into_iter()
            .map(|n| {
                u32::try_from(n).ok().filter(|n| (32..=limit).contains(&(*n as usize))).ok_or_else(|| {
                    self.invalid(
                        "publish.payload_bytes",
                        format!("sizes must be from 32 (room for the sequence tag) to {limit} (the server's default comment limit), got {n}"),
                    )
                })
            })
            .collect()
    }

    /// Subscribers per user; every client count must be a whole number of users.
    fn tabs(&self, raw: Option<i64>, clients: &[u32]) -> Result<u32, ScenarioError> {
        let Some(n) = raw else {
            return Ok(1);
        };
        let tabs = u32::try_from(n)
            .ok()
            .filter(|n| (1..=16).contains(n))
            .ok_or_else(|| {
                self.invalid("publish.tabs", format!("must be from 1 to 16, got {n}"))
            })?;
        if let Some(c) = clients.iter().find(|c| *c % tabs != 0) {
            return Err(self.invalid(
                "publish.tabs",
                format!("{c} clients are not a whole number of users with {tabs} tabs each"),
            ));
        }
        Ok(tabs)
    }

    fn audience(&self, raw: Option<&str>) -> Result<Audience, ScenarioError> {
        match raw {
            None | Some("broadcast") => Ok(Audience::Broadcast),
            Some("per-user") => Ok(Audience::PerUser),
            Some(other) => Err(self.invalid(
                "publish.audience",
                format!("expected \"broadcast\" or \"per-user\", got {other:?}"),
            )),
        }
    }

    fn timing(
        &self,
        duration: &str,
        warmup: Option<&str>,
        drain: Option<&str>,
        short_polling: Option<&RawShortPolling>,
        long_polling: Option<&RawLongPolling>,
    ) -> Result<Timing, ScenarioError> {
        let duration = self.positive_duration("duration", duration)?;
        let warmup = match warmup {
            Some(text) => self.duration("warmup", text)?,
            None => Duration::from_secs(2),
        };
        let poll_interval = match short_polling {
            Some(p) => self.positive_duration("short_polling.interval", &p.interval)?,
            None => Duration::from_secs(1),
        };
        let long_poll_timeout = match long_polling {
            Some(p) => self.positive_duration("long_polling.timeout", &p.timeout)?,
            None => Duration::from_secs(30),
        };
        let server_limit = ServerConfig::default().long_poll_max_timeout;
        if long_poll_timeout > server_limit {
            return Err(self.invalid(
                "long_polling.timeout",
                format!(
                    "must be at most {} (the server's limit)",
                    humantime::format_duration(server_limit)
                ),
            ));
        }
        let drain = match drain {
            Some(text) => self.duration("drain", text)?,
            None => poll_interval + Duration::from_secs(3),
        };
        if drain < poll_interval {
            return Err(self.invalid("drain", format!("must be at least the short-polling interval ({poll_interval:?}) so the last comments can arrive")));
        }
        Ok(Timing {
            duration,
            warmup,
            drain,
            poll_interval,
            long_poll_timeout,
        })
    }

    /// The `[server]` table: the server's settings and how it is deployed.
    fn server(&self, raw: Option<RawServer>) -> Result<ServerSettings, ScenarioError> {
        // Unset keys keep the server's own defaults, defined once in `ServerConfig`.
        let defaults = ServerConfig::default();
        let server = raw.unwrap_or(RawServer {
            sse_heartbeat: None,
            subscriber_queue: None,
            feed: None,
            instances: None,
            deployments: None,
            publish_to: None,
            redis_persistence: None,
        });
        let sse_heartbeat = match &server.sse_heartbeat {
            Some(text) => self.positive_duration("server.sse_heartbeat", text)?,
            None => defaults.sse_heartbeat,
        };
        let subscriber_queue = match server.subscriber_queue {
            None => defaults.subscriber_queue as u32,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    self.invalid(
                        "server.subscriber_queue",
                        format!("must be from 1 to 1000000, got {n}"),
                    )
                })?,
        };
        let deployments = self.deployments(&server)?;
        let publish_to = match server.publish_to.as_deref() {
            None | Some("one") => PublishTo::One,
            Some("all") => PublishTo::All,
            Some(other) => {
                return Err(self.invalid(
                    "server.publish_to",
                    format!("expected \"one\" or \"all\", got {other:?}"),
                ));
            }
        };
        let redis_persistence = match server.redis_persistence.as_deref() {
            None | Some("none") => RedisPersistence::None,
            Some("append-only") => RedisPersistence::AppendOnly,
            Some(other) => {
                return Err(self.invalid(
                    "server.redis_persistence",
                    format!("expected \"none\" or \"append-only\", got {other:?}"),
                ));
            }
        };
        Ok(ServerSettings {
            sse_heartbeat,
            subscriber_queue,
            deployments,
            publish_to,
            redis_persistence,
        })
    }

    /// `feed` and `instances` name one deployment; `deployments` lists several to compare.
    fn deployments(&self, server: &RawServer) -> Result<Vec<Deployment>, ScenarioError> {
        let Some(list) = &server.deployments else {
            let feed = server.feed.as_deref().unwrap_or("memory");
            return Ok(vec![self.deployment(
                "server.feed",
                "server.instances",
                feed,
                server.instances,
            )?]);
        };
        if server.feed.is_some() || server.instances.is_some() {
            return Err(self.invalid(
                "server.deployments",
                "give either `feed` and `instances` or a `deployments` list, not both",
            ));
        }
        if list.is_empty() {
            return Err(self.invalid("server.deployments", "must hold at least one deployment"));
        }
        let mut deployments = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let deployment = self.deployment(
                &format!("server.deployments[{i}].feed"),
                &format!("server.deployments[{i}].instances"),
                &raw.feed,
                raw.instances,
            )?;
            if deployments.contains(&deployment) {
                return Err(self.invalid(
                    "server.deployments",
                    format!("lists {} twice", deployment.label()),
                ));
            }
            deployments.push(deployment);
        }
        Ok(deployments)
    }

    fn deployment(
        &self,
        feed_key: &str,
        instances_key: &str,
        feed: &str,
        instances: Option<i64>,
    ) -> Result<Deployment, ScenarioError> {
        let feed = match feed {
            "memory" => FeedKind::Memory,
            "redis" => FeedKind::Redis,
            other => {
                return Err(self.invalid(
                    feed_key,
                    format!("expected \"memory\" or \"redis\", got {other:?}"),
                ));
            }
        };
        let instances = match instances {
            None => 1,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_INSTANCES).contains(n))
                .ok_or_else(|| {
                    self.invalid(
                        instances_key,
                        format!("must be from 1 to {MAX_INSTANCES}, got {n}"),
                    )
                })?,
        };
        if feed == FeedKind::Memory && instances > 1 {
            return Err(self.invalid(
                instances_key,
                "the in-memory feed lives inside one process, so instances cannot share it: \
                 use feed = \"redis\" for several instances",
            ));
        }
        Ok(Deployment { feed, instances })
    }
}

/// The `[server]` table, checked.
struct ServerSettings {
    sse_heartbeat: Duration,
    subscriber_queue: u32,
    deployments: Vec<Deployment>,
    publish_to: PublishTo,
    redis_persistence: RedisPersistence,
}

/// The longest round trip, jitter or stall a scenario may set: beyond it the link is not a
/// network any client would stay on.
const LINK_LIMIT: Duration = Duration::from_secs(10);

impl Validator<'_> {
    fn network(&self, raw: RawNetwork) -> Result<Network, ScenarioError> {
        let rtts = match raw.rtt {
            Some(list) => list
                .into_vec()
                .iter()
                .map(|t| self.link_duration("network.rtt", t))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![Duration::ZERO],
        };
        if rtts.is_empty() {
            return Err(self.invalid("network.rtt", "must hold at least one round trip"));
        }
        let bandwidths_bps = self.rates_list("network.bandwidth", raw.bandwidth)?;
        let aggregates_bps =
            self.rates_list("network.aggregate_bandwidth", raw.aggregate_bandwidth)?;
        let jitter = match &raw.jitter {
            Some(text) => self.link_duration("network.jitter", text)?,
            None => Duration::ZERO,
        };
        let stall = raw
            .stall
            .map(|s| self.stall("network.stall", &s))
            .transpose()?;
        let subscribers = Link {
            rtt: rtts[0],
            jitter,
            bandwidth_bps: bandwidths_bps.first().copied(),
            aggregate_bps: aggregates_bps.first().copied(),
            stall,
        };
        let publisher = raw
            .publisher
            .map(|p| self.link("network.publisher", &p))
            .transpose()?;
        Ok(Network {
            subscribers,
            rtts,
            bandwidths_bps,
            aggregates_bps,
            publisher,
        })
    }

    fn link(&self, prefix: &str, raw: &RawLink) -> Result<Link, ScenarioError> {
        let duration = |key: &str, text: &Option<String>| match text {
            Some(text) => self.link_duration(&format!("{prefix}.{key}"), text),
            None => Ok(Duration::ZERO),
        };
        let rate = |key: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| {
                    parse_rate(t)
                        .map_err(|message| self.invalid(&format!("{prefix}.{key}"), message))
                })
                .transpose()
        };
        Ok(Link {
            rtt: duration("rtt", &raw.rtt)?,
            jitter: duration("jitter", &raw.jitter)?,
            bandwidth_bps: rate("bandwidth", &raw.bandwidth)?,
            aggregate_bps: rate("aggregate_bandwidth", &raw.aggregate_bandwidth)?,
            stall: raw
                .stall
                .as_ref()
                .map(|s| self.stall(&format!("{prefix}.stall"), s))
                .transpose()?,
        })
    }

    fn link_duration(&self, key: &str, text: &str) -> Result<Duration, ScenarioError> {
        let duration = self.duration(key, text)?;
        if duration > LINK_LIMIT {
            return Err(self.invalid(key, "must be at most 10s"));
        }
        Ok(duration)
    }

    fn rates_list(
        &self,
        key: &str,
        raw: Option<OneOrMany<String>>,
    ) -> Result<Vec<u64>, ScenarioError> {
        let texts = raw.map_or(Vec::new(), OneOrMany::into_vec);
        texts
            .iter()
            .map(|t| parse_rate(t).map_err(|message| self.invalid(key, message)))
            .collect()
    }

    fn stall(&self, key: &str, raw: &RawStall) -> Result<Stall, ScenarioError> {
        let every = self.positive_duration(&format!("{key}.every"), &raw.every)?;
        let length = self.positive_duration(&format!("{key}.for"), &raw.length)?;
        if length >= every || every > Duration::from_secs(3600) {
            return Err(self.invalid(
                key,
                "`for` must be shorter than `every` (and `every` at most 1h)",
            ));
        }
        Ok(Stall { every, length })
    }
}

/// A scenario's durations, checked.
struct Timing {
    duration: Duration,
    warmup: Duration,
    drain: Duration,
    poll_interval: Duration,
    long_poll_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
description = "d"
techniques = ["sse", "websocket"]
clients = [10, 100]
duration = "5s"
[publish]
rate = 10
"#;

    #[test]
    fn a_good_file_expands_into_cells() {
        let scenario = Scenario::parse(GOOD, "t.toml").unwrap();
        assert_eq!(scenario.cells().len(), 4);
        assert_eq!(scenario.audience, Audience::Broadcast);
        assert_eq!(scenario.payload_bytes, [100]);
    }

    #[test]
    fn repeat_runs_every_cell_once_then_again() {
        let single = Scenario::parse(GOOD, "t.toml").unwrap();
        assert_eq!(single.repeat, 1);
        assert_eq!(single.runs().len(), single.cells().len());
        let text = GOOD.replace("[publish]", "repeat = 3\n[publish]");
        let scenario = Scenario::parse(&text, "t.toml").unwrap();
        let runs = scenario.runs();
        assert_eq!(runs.len(), 12);
        // Interleaved: all four cells, then all four again.
        let cells = scenario.cells();
        for (i, (repeat, spec)) in runs.iter().enumerate() {
            assert_eq!(*repeat as usize, i / 4);
            assert_eq!(*spec, cells[i % 4]);
        }
        // Results files leave the default out, so older runs read as before.
        let json = serde_json::to_value(&single).unwrap();
        assert!(json.get("repeat").is_none());
        assert_eq!(serde_json::to_value(&scenario).unwrap()["repeat"], 3);
        let error = Scenario::parse(
            &GOOD.replace("[publish]", "repeat = 0\n[publish]"),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(error, "t.toml: `repeat`: must be from 1 to 20, got 0");
    }

    #[test]
    fn a_network_table_sweeps_the_round_trip() {
        let text = format!(
            "{GOOD}[network]\nrtt = [\"0ms\", \"100ms\"]\nbandwidth = \"2mbit\"\n\
             jitter = \"10ms\"\nstall = {{ every = \"10s\", for = \"300ms\" }}\n\
             [network.publisher]\nrtt = \"20ms\"\n"
        );
        let scenario = Scenario::parse(&text, "t.toml").unwrap();
        let cells = scenario.cells();
        assert_eq!(cells.len(), 8);
        let link = cells[4].link.unwrap();
        assert_eq!(link.rtt, Duration::from_millis(100));
        assert_eq!(link.bandwidth_bps, Some(2_000_000));
        assert_eq!(link.stall.unwrap().length, Duration::from_millis(300));
        let network = scenario.network.as_ref().unwrap();
        assert_eq!(network.publisher.unwrap().rtt, Duration::from_millis(20));
        assert!(
            Scenario::parse(GOOD, "t.toml").unwrap().cells()[0]
                .link
                .is_none()
        );
        let bad = text.replace("\"2mbit\"", "\"2mb\"");
        let error = Scenario::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(error.contains("`network.bandwidth`"), "{error}");
        let bad = text.replace("\"300ms\"", "\"20s\"");
        let error = Scenario::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(error.contains("`network.stall`"), "{error}");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let bad = GOOD.replace("rate = 10", "rate = 0");
        let error = Scenario::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(error.starts_with("t.toml: `publish.rate`"), "{error}");
        let unknown = GOOD.replace("[publish]", "colour = 1\n[publish]");
        let error = Scenario::parse(&unknown, "t.toml").unwrap_err().to_string();
        assert!(error.contains("unknown field `colour`"), "{error}");
        let negative = GOOD.replace("\"5s\"", "\"-5s\"");
        let error = Scenario::parse(&negative, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`duration`"), "{error}");
        let empty = GOOD.replace("[\"sse\", \"websocket\"]", "[]");
        let error = Scenario::parse(&empty, "t.toml").unwrap_err().to_string();
        assert!(error.contains("`techniques`"), "{error}");
    }

    #[test]
    fn floor_is_off_by_default_and_needs_a_push_technique_and_no_faults() {
        assert!(!Scenario::parse(GOOD, "t.toml").unwrap().floor);
        let on = GOOD.replace("duration", "floor = true\nduration");
        assert!(Scenario::parse(&on, "t.toml").unwrap().floor);
        let polls_only = on.replace(
            "techniques = [\"sse\", \"websocket\"]",
            "techniques = [\"short-polling\"]",
        );
        let error = Scenario::parse(&polls_only, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`floor`"), "{error}");
        let faults = format!("{on}[faults]\nrestart = [\"1s\"]\n");
        let error = Scenario::parse(&faults, "t.toml").unwrap_err().to_string();
        assert!(error.contains("`floor`"), "{error}");
    }

    #[test]
    fn deployments_default_to_one_in_memory_server_and_sweep_when_listed() {
        let scenario = Scenario::parse(GOOD, "t.toml").unwrap();
        assert_eq!(scenario.deployments, [Deployment::default()]);
        assert_eq!(scenario.publish_to, PublishTo::One);
        let listed = format!(
            "{GOOD}[server]\npublish_to = \"all\"\ndeployments = [{{ feed = \"memory\" }}, \
             {{ feed = \"redis\", instances = 3 }}]\n"
        );
        let scenario = Scenario::parse(&listed, "t.toml").unwrap();
        assert_eq!(scenario.publish_to, PublishTo::All);
        assert_eq!(scenario.cells().len(), 8);
        assert_eq!(scenario.cells()[2].deployment.label(), "redis x3");
        let one = format!("{GOOD}[server]\nfeed = \"redis\"\ninstances = 2\n");
        let scenario = Scenario::parse(&one, "t.toml").unwrap();
        assert_eq!(
            scenario.deployments,
            [Deployment {
                feed: FeedKind::Redis,
                instances: 2
            }]
        );
    }

    #[test]
    fn http_versions_sweep_and_shared_http2_stays_under_the_stream_limit() {
        let scenario = Scenario::parse(GOOD, "t.toml").unwrap();
        assert_eq!(scenario.http, [HttpVersion::H1]);
        let both = GOOD.replace("duration", "http = [\"2\", \"1.1\"]\nduration");
        let scenario = Scenario::parse(&both, "t.toml").unwrap();
        assert_eq!(scenario.http, [HttpVersion::H1, HttpVersion::H2]);
        assert_eq!(scenario.h2_connections, H2Connections::Shared);
        assert_eq!(scenario.cells().len(), 8);
        assert_eq!(scenario.cells()[2].http, HttpVersion::H2);
        for (line, key) in [
            ("http = \"3\"", "`http`"),
            ("http = [\"2\", \"2\"]", "`http`"),
            (
                "http = \"2\"\nh2_connections = \"pooled\"",
                "`h2_connections`",
            ),
        ] {
            let text = GOOD.replace("duration", &format!("{line}\nduration"));
            let error = Scenario::parse(&text, "t.toml").unwrap_err().to_string();
            assert!(error.contains(key), "{line}: {error}");
        }
        let crowded = GOOD
            .replace("[10, 100]", "[10, 201]")
            .replace("duration", "http = \"2\"\nduration");
        let error = Scenario::parse(&crowded, "t.toml").unwrap_err().to_string();
        assert!(
            error.contains("`h2_connections`") && error.contains("201"),
            "{error}"
        );
        let per_client = crowded.replace("duration", "h2_connections = \"per-client\"\nduration");
        assert!(Scenario::parse(&per_client, "t.toml").is_ok());
        // Faults on a share of the subscribers need connections of their own.
        let faulted = GOOD.replace("duration", "http = \"2\"\nduration")
            + "[faults]\nclose_page = { at = \"1s\", share = 0.1 }\n";
        let error = Scenario::parse(&faulted, "t.toml").unwrap_err().to_string();
        assert!(
            error.contains("`h2_connections`") && error.contains("per-client"),
            "{error}"
        );
        let per_client = faulted.replace(
            "http = \"2\"",
            "http = \"2\"\nh2_connections = \"per-client\"",
        );
        assert!(Scenario::parse(&per_client, "t.toml").is_ok());
    }

    #[test]
    fn the_load_table_sets_workers_and_source_addresses_in_range() {
        let scenario = Scenario::parse(
            &format!("{GOOD}[load]\nworkers = 4\nsource_addresses = 3\n"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            (scenario.load.workers, scenario.load.source_addresses),
            (4, 3)
        );
        assert_eq!(
            scenario.load.source_for(0),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(
            scenario.load.source_for(5),
            Some("127.0.0.4".parse().unwrap())
        );
        assert_eq!(
            Scenario::parse(GOOD, "t.toml").unwrap().load.source_for(0),
            None
        );
        let cases = [
            ("workers = 65", "`load.workers`"),
            ("workers = 11", "`load.workers`"),
            ("source_addresses = -1", "`load.source_addresses`"),
            ("threads = 2", "threads"),
        ];
        for (table, key) in cases {
            let text = format!("{GOOD}[load]\n{table}\n");
            let error = Scenario::parse(&text, "t.toml").unwrap_err().to_string();
            assert!(error.contains(key), "{table}: {error}");
        }
    }

    #[test]
    fn deployment_errors_name_the_key() {
        let cases = [
            ("instances = 3", "`server.instances`"),
            ("feed = \"etcd\"", "`server.feed`"),
            ("feed = \"redis\"\ninstances = 0", "`server.instances`"),
            ("publish_to = \"some\"", "`server.publish_to`"),
            ("redis_persistence = \"rdb\"", "`server.redis_persistence`"),
            (
                "feed = \"redis\"\ndeployments = [{ feed = \"redis\" }]",
                "`server.deployments`",
            ),
            (
                "deployments = [{ feed = \"redis\", instances = 99 }]",
                "`server.deployments[0].instances`",
            ),
            (
                "deployments = [{ feed = \"redis\" }, { feed = \"redis\", instances = 1 }]",
                "`server.deployments`",
            ),
        ];
        for (table, key) in cases {
            let text = format!("{GOOD}[server]\n{table}\n");
            let error = Scenario::parse(&text, "t.toml").unwrap_err().to_string();
            assert!(error.contains(key), "{table}: {error}");
        }
    }
}
