//! The pre-flight check: before anything runs, compare the file descriptors and ephemeral
//! ports the largest cell needs with this machine's limits, and refuse with a message that
//! says which limit and by how much, instead of failing midway through a run.

use std::fmt;

use crate::model::ServerConfig;
use crate::model::scenario::{FeedKind, Scenario};

/// Descriptors the load generator holds besides its subscribers' sockets: the runtime,
/// standard streams, log files, the /stats and publisher connections, with a margin.
const LOADGEN_BASE_FDS: u64 = 64;
/// Descriptors the server holds besides client sockets.
const SERVER_BASE_FDS: u64 = 32;

/// What the largest cell needs and what the machine has.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub clients: u64,
    pub publisher_connections: u64,
    pub loadgen_fds_needed: u64,
    pub fd_limit: u64,
    pub server_fds_needed: u64,
    pub ports_needed: u64,
    pub ports_available: u64,
    pub time_wait: u64,
}

/// A scenario this machine cannot run, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("pre-flight check failed: {0}")]
pub struct PreflightError(pub String);

impl fmt::Display for Preflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "largest cell: {} clients + {} publisher connections; load generator needs {} of {} file descriptors; \
             ephemeral ports: {} needed, {} free ({} in TIME_WAIT)",
            self.clients,
            self.publisher_connections,
            self.loadgen_fds_needed,
            self.fd_limit,
            self.ports_needed,
            self.ports_available,
            self.time_wait
        )
    }
}

/// Checks the largest cell of `scenario` against this machine; `own_server` when the load
/// generator starts the server (which then needs a descriptor per client too).
pub fn check(scenario: &Scenario, own_server: bool) -> Result<Preflight, PreflightError> {
    let clients = u64::from(scenario.clients.iter().copied().max().unwrap_or(0));
    let max_rate = scenario.rates.iter().copied().fold(0.0, f64::max);
    // Open-loop publishing keeps about rate x latency POSTs in flight; allow for stalls.
    let publisher_connections = ((max_rate * 0.05).ceil() as u64).clamp(2, 256);
    let fd_limit = crate::sys::raise_open_files_limit();
    // Over an emulated link each connection through the relay costs the load generator two
    // more descriptors: the relay's accepted socket and its own to the server.
    let relayed = |n: u64, through_relay: bool| if through_relay { 3 * n } else { n };
    let network = scenario.network.as_ref();
    // Worker processes each hold their share, with a file limit of their own.
    let per_process = clients.div_ceil(u64::from(scenario.load.workers.max(1)));
    let loadgen_fds_needed = relayed(per_process, network.is_some())
        + relayed(
            publisher_connections,
            network.is_some_and(|n| n.publisher.is_some()),
        )
        + LOADGEN_BASE_FDS;
    // Each instance is a process of its own and gets its round-robin share of the clients.
    let clients_per_instance = scenario
        .clients
        .iter()
        .flat_map(|&c| {
            scenario
                .deployments
                .iter()
                .map(move |d| u64::from(c).div_ceil(u64::from(d.instances)))
        })
        .max()
        .unwrap_or(0);
    let server_fds_needed = clients_per_instance + publisher_connections + SERVER_BASE_FDS;
    let (port_low, port_high) = ephemeral_port_range();
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let time_wait = sockstat_field(&sockstat, "tw");
    let in_use = sockstat_field(&sockstat, "inuse");
    let ports_available = (port_high - port_low + 1).saturating_sub(time_wait + in_use);
    let preflight = Preflight {
        clients,
        publisher_connections,
        loadgen_fds_needed,
        fd_limit,
        server_fds_needed,
        // Ports are unique per (source address, destination): each instance has its own
        // port, and `source_addresses` multiplies the sources.
        ports_needed: clients_per_instance
            .div_ceil(u64::from(scenario.load.source_addresses.max(1)))
            + publisher_connections
            + 1,
        ports_available,
        time_wait,
    };
    if loadgen_fds_needed > fd_limit {
        return Err(PreflightError(format!(
            "the largest cell has {clients} clients, so {} needs about {loadgen_fds_needed} \
             open files, but a process may open at most {fd_limit} (RLIMIT_NOFILE hard limit). \
             Lower `clients` in the scenario, or split the load over more worker processes \
             (`[load] workers`).",
            match scenario.load.workers {
                0 => "the load generator".to_string(),
                n => format!("each of its {n} worker processes"),
            }
        )));
    }
    let server_connection_cap = ServerConfig::default().max_connections as u64;
    if own_server && server_fds_needed > fd_limit.min(server_connection_cap) {
        return Err(PreflightError(format!(
            "the largest cell gives {clients_per_instance} clients to one server instance, so it needs about \
             {server_fds_needed} connections, above its limit of {} (open files {fd_limit}, connection cap \
             {server_connection_cap}). Spread them over more instances (`[server] instances` with feed = \"redis\").",
            fd_limit.min(server_connection_cap)
        )));
    }
    let needs_redis = scenario
        .deployments
        .iter()
        .any(|d| d.feed == FeedKind::Redis);
    if own_server && needs_redis && !on_path("redis-server") {
        return Err(PreflightError(format!(
            "the scenario's feed = \"redis\" needs redis-server, which was not found on PATH: {}",
            crate::feed::redis_server::INSTALL_HINT
        )));
    }
    if preflight.ports_needed > ports_available {
        return Err(PreflightError(format!(
            "the largest cell needs {} ephemeral ports to one server address, but only {ports_available} of \
             {port_low}-{port_high} are free ({time_wait} sockets in TIME_WAIT, which lasts 60 s). \
             Wait for TIME_WAIT to clear, lower `clients`, or bind the subscribers to several source \
             addresses (`[load] source_addresses`).",
            preflight.ports_needed
        )));
    }
    Ok(preflight)
}

/// Whether `program` is an executable file in one of PATH's directories.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn ephemeral_port_range() -> (u64, u64) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut parts = text
        .split_whitespace()
        .filter_map(|p| p.parse::<u64>().ok());
    match (parts.next(), parts.next()) {
        (Some(low), Some(high)) if high >= low => (low, high),
        _ => (32_768, 60_999),
    }
}

/// A field of the `TCP:` line of /proc/net/sockstat, e.g. `tw` or `inuse`.
fn sockstat_field(sockstat: &str, field: &str) -> u64 {
    sockstat
        .lines()
        .find(|line| line.starts_with("TCP:"))
        .and_then(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words
                .windows(2)
                .find(|w| w[0] == field)
                .and_then(|w| w[1].parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_cell_beyond_the_open_files_limit() {
        let text = r#"
name = "big"
description = "too many"
techniques = ["sse"]
clients = [50000]
duration = "1s"
[publish]
rate = 1
"#;
        let scenario = Scenario::parse(text, "big.toml").unwrap();
        let error = check(&scenario, true).unwrap_err().to_string();
        assert!(error.contains("50000 clients"), "{error}");
    }

    #[test]
    fn instances_share_the_clients_and_redis_must_be_installed() {
        let text = r#"
name = "wide"
description = "more clients than one server may hold"
techniques = ["sse"]
clients = [19000]
duration = "1s"
[publish]
rate = 1
[server]
feed = "redis"
instances = 2
[load]
source_addresses = 8
"#;
        let scenario = Scenario::parse(text, "wide.toml").unwrap();
        // Eight source addresses: ports are counted per (source, instance), so the check does
        // not hinge on the sockets other programs left in TIME_WAIT.
        let preflight = check(&scenario, false).unwrap();
        assert_eq!(preflight.server_fds_needed, 9_500 + 2 + SERVER_BASE_FDS);
        assert_eq!(preflight.ports_needed, 9_500_u64.div_ceil(8) + 2 + 1);
        assert!(on_path("sh"));
        assert!(!on_path("no-such-program-pushlab"));
    }

    #[test]
    fn reads_sockstat() {
        let text = "sockets: used 5\nTCP: inuse 7 orphan 0 tw 12 alloc 9 mem 1\n";
        assert_eq!(sockstat_field(text, "tw"), 12);
        assert_eq!(sockstat_field(text, "inuse"), 7);
    }
}
