//! A cell's servers: a private redis-server when the deployment's feed needs one, then its
//! server instances (or the `--target` servers), each with its own `/stats` reader. Also how
//! the cell's clients are spread over them, and Redis's own `INFO` figures.

use std::net::SocketAddr;
use std::path::Path;

use super::target::{ServerLaunch, ServerProcess, StatsReader, TargetError};
use crate::feed::redis_server::{Persistence, RedisServer, RedisServerError};
use crate::http::client::{ClientError, HttpConnection};
use crate::model::scenario::{Deployment, FeedKind, PublishTo, RedisPersistence};
use crate::model::server_config::FeedBackend;
use crate::model::stats::StatsSnapshot;
use crate::model::{ServerConfig, Target};
use crate::net::ByteMeter;

/// Why a cell's servers could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("the scenario's Redis feed: {0}")]
    Redis(#[from] RedisServerError),
    #[error("reading Redis INFO: {0}")]
    RedisInfo(#[from] redis::RedisError),
}

/// What the cell asks for.
pub struct DeployPlan<'a> {
    pub deployment: Deployment,
    pub persistence: RedisPersistence,
    /// Every instance's settings; the feed is set here.
    pub config: ServerConfig,
    /// Already running servers to drive instead (`--target`): then nothing is started.
    pub targets: &'a [SocketAddr],
    pub server_binary: &'a Path,
    /// Log files are `{log_stem}-server-{i}.log` (`-server.log` for a single instance).
    pub log_stem: &'a Path,
}

/// One server a cell drives.
pub struct Instance {
    /// `None` when driving `--target`.
    pub server: Option<ServerProcess>,
    pub addr: SocketAddr,
    /// `None` for a `--target` server without `/stats`: its figures are unavailable.
    pub stats: Option<StatsReader>,
    /// Its `/stats` before any subscriber connected (all zero without `/stats`).
    pub before: StatsSnapshot,
}

/// A cell's servers, stopped by `stop` (or killed when dropped).
pub struct Deployed {
    /// Kept alive for the cell; removed with its data directory when dropped.
    pub redis: Option<RedisServer>,
    pub instances: Vec<Instance>,
    /// The feed's newest id as a poll reported it, for a server without `/stats` (whose
    /// `/stats` would say): where the cell's subscribers start.
    pub newest_id: Option<u64>,
}

/// Starts Redis if the feed needs it, then the instances, and reads each one's `/stats`.
pub async fn deploy(plan: &DeployPlan<'_>) -> Result<Deployed, DeployError> {
    if !plan.targets.is_empty() {
        let mut instances = Vec::new();
        for &addr in plan.targets {
            instances.push(Instance::read_target(addr).await?);
        }
        let newest_id = match instances.first() {
            Some(first) if first.stats.is_none() => Some(newest_id(first.addr).await?),
            _ => None,
        };
        return Ok(Deployed {
            redis: None,
            instances,
            newest_id,
        });
    }
    let mut config = plan.config.clone();
    let redis = match plan.deployment.feed {
        FeedKind::Memory => None,
        FeedKind::Redis => {
            let persistence = match plan.persistence {
                RedisPersistence::None => Persistence::None,
                RedisPersistence::AppendOnly => Persistence::AppendOnly,
            };
            let redis = RedisServer::start(persistence).await?;
            config.feed = FeedBackend::Redis { url: redis.url() };
            Some(redis)
        }
    };
    let count = plan.deployment.instances as usize;
    let mut instances = Vec::new();
    for i in 0..count {
        let stem = plan.log_stem.display();
        let log = if count == 1 {
            format!("{stem}-server.log")
        } else {
            format!("{stem}-server-{i}.log")
        };
        let launch = ServerLaunch {
            binary: plan.server_binary.to_path_buf(),
            args: config.to_args(),
            log: log.into(),
        };
        let server = ServerProcess::start(&launch).await?;
        let addr = server.addr;
        instances.push(Instance::read(Some(server), addr).await?);
    }
    Ok(Deployed {
        redis,
        instances,
        newest_id: None,
    })
}

/// The newest id of a server's feed from the interface itself: a poll without `after` answers
/// from now, and its `next` is the newest id. Without it, subscribers starting from 0 would
/// get every earlier cell's comments, end-of-cell comment included.
async fn newest_id(addr: SocketAddr) -> Result<u64, TargetError> {
    #[derive(serde::Deserialize)]
    struct Page {
        next: u64,
    }
    let target = Target { addr };
    let mut connection = HttpConnection::open(&target, ByteMeter::new()).await?;
    let body = connection.get("/poll?user=pushlab-cursor-probe").await?;
    let page: Page =
        serde_json::from_slice(&body).map_err(|e| TargetError::CursorProbe(e.to_string()))?;
    Ok(page.next)
}

impl Instance {
    async fn read(server: Option<ServerProcess>, addr: SocketAddr) -> Result<Self, TargetError> {
        let mut stats = StatsReader::new(addr);
        let before = stats.read().await?;
        Ok(Self {
            server,
            addr,
            stats: Some(stats),
            before,
        })
    }

    /// A `--target` server: one that answers `/stats` with something other than pushlab's
    /// figures (a 404, say) is still driven, with its own figures marked unavailable. A
    /// server that cannot be reached at all is an error.
    async fn read_target(addr: SocketAddr) -> Result<Self, TargetError> {
        match Instance::read(None, addr).await {
            Err(TargetError::Stats(ClientError::Status { .. }) | TargetError::StatsFormat(_)) => {
                Ok(Self {
                    server: None,
                    addr,
                    stats: None,
                    before: StatsSnapshot::default(),
                })
            }
            result => result,
        }
    }
}

impl Deployed {
    /// Every instance's `/stats` now, in instance order (all zero for one without it).
    pub async fn read_all(&mut self) -> Result<Vec<StatsSnapshot>, TargetError> {
        let mut readers: Vec<_> = self.instances.iter_mut().map(|i| &mut i.stats).collect();
        read_all(&mut readers).await
    }

    /// True when every instance serves `/stats`, so the server side's figures exist.
    pub fn has_server_figures(&self) -> bool {
        self.instances.iter().all(|i| i.stats.is_some())
    }

    /// The instances' addresses, in instance order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.instances.iter().map(|i| i.addr).collect()
    }

    /// Stops every instance the cell started (SIGTERM, then kill), then Redis.
    pub async fn stop(self) {
        for instance in self.instances {
            if let Some(server) = instance.server {
                server.stop().await;
            }
        }
        drop(self.redis);
    }
}

/// Each reader's `/stats` now, in order (all zero where an instance has none).
pub async fn read_all(
    readers: &mut [&mut Option<StatsReader>],
) -> Result<Vec<StatsSnapshot>, TargetError> {
    let mut snapshots = Vec::with_capacity(readers.len());
    for reader in readers.iter_mut() {
        snapshots.push(match reader {
            Some(stats) => stats.read().await?,
            None => StatsSnapshot::default(),
        });
    }
    Ok(snapshots)
}

/// How long a figure read from Redis may take before the cell goes on without it.
const REDIS_INFO_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// A Redis's figures now, when the cell started one, or why they could not be read. A Redis
/// busy serving 100,000 long pollers did not answer `INFO` in time, and that cost the
/// whole run; now it costs the cell its Redis figures (a warning says so), as the cell's
/// other figures do not depend on them.
pub async fn redis_figures(redis: Option<&RedisServer>) -> (Option<RedisInfo>, Option<String>) {
    match tokio::time::timeout(REDIS_INFO_WAIT, redis_info(redis)).await {
        Ok(Ok(info)) => (info, None),
        Ok(Err(error)) => (None, Some(error.to_string())),
        Err(_) => (None, Some(format!("no answer within {REDIS_INFO_WAIT:?}"))),
    }
}

/// A Redis's figures now, when the cell started one.
async fn redis_info(redis: Option<&RedisServer>) -> Result<Option<RedisInfo>, DeployError> {
    let Some(redis) = redis else {
        return Ok(None);
    };
    let client = redis::Client::open(redis.url())?;
    // The client's own timeouts raised to the one bound `redis_figures` keeps: a Redis
    // serving 100,000 long pollers answered INFO after more than the client's default half
    // second, and a figure read late is still the figure.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_INFO_WAIT))
        .set_response_timeout(Some(REDIS_INFO_WAIT));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let text: String = redis::cmd("INFO")
        .arg("all")
        .query_async(&mut connection)
        .await?;
    Ok(Some(RedisInfo::parse(&text)))
}

/// The addresses the publisher posts to, in turn: the first instance's, or every one's.
/// (Over an emulated link these are the relays' in front of the instances.)
pub fn publish_targets(addrs: &[SocketAddr], publish_to: PublishTo) -> Vec<Target> {
    let targets = addrs.iter().map(|&addr| Target { addr });
    match publish_to {
        PublishTo::One => targets.take(1).collect(),
        PublishTo::All => targets.collect(),
    }
}

/// The `INFO` fields the report uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RedisInfo {
    /// `used_cpu_sys + used_cpu_user`, seconds since Redis started.
    pub cpu_seconds: f64,
    pub commands: u64,
    pub peak_memory_bytes: u64,
    pub rss_bytes: u64,
}

impl RedisInfo {
    /// Reads `key:value` lines; a missing field reads as zero.
    pub fn parse(text: &str) -> RedisInfo {
        let field = |name: &str| -> f64 {
            text.lines()
                .filter_map(|line| line.trim_end().split_once(':'))
                .find(|(key, _)| *key == name)
                .and_then(|(_, value)| value.parse().ok())
                .unwrap_or(0.0)
        };
        RedisInfo {
            cpu_seconds: field("used_cpu_sys") + field("used_cpu_user"),
            commands: field("total_commands_processed") as u64,
            peak_memory_bytes: field("used_memory_peak") as u64,
            rss_bytes: field("used_memory_rss") as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_read_by_name() {
        let text = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.750000\r\n\
                    used_cpu_sys_children:9.0\r\n# Stats\r\ntotal_commands_processed:4242\r\n\
                    # Memory\r\nused_memory_peak:1048576\r\nused_memory_rss:2097152\r\n";
        assert_eq!(
            RedisInfo::parse(text),
            RedisInfo {
                cpu_seconds: 2.0,
                commands: 4242,
                peak_memory_bytes: 1_048_576,
                rss_bytes: 2_097_152,
            }
        );
        assert_eq!(RedisInfo::parse(""), RedisInfo::default());
    }
}
