//! A private `redis-server` process on a free loopback port, its data in a temporary
//! directory: what the Redis feed's tests (and the load generator's Redis cells) run against,
//! so nothing depends on a system Redis service. It can be killed and restarted on the same
//! port and data directory, to rehearse a broker outage.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How to install the binary, for the error a machine without it gets.
pub const INSTALL_HINT: &str = "install it with `apt-get install -y --no-install-recommends redis-server` \
     (Debian's package; `.ci/run` does this when it is missing)";

/// Longest wait for a starting redis-server to say it is ready: a safety net, not a pace.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How many fresh ports to try when another process takes the one picked first.
const PORT_ATTEMPTS: usize = 5;

/// Why a redis-server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    /// No `redis-server` on PATH.
    #[error("redis-server was not found on PATH: {INSTALL_HINT}")]
    NotInstalled,
    /// The temporary directory, the port probe or the process itself failed.
    #[error("cannot start redis-server: {0}")]
    Io(#[from] std::io::Error),
    /// The process exited or never said it was ready.
    #[error("redis-server on port {port} did not start: {detail}")]
    DidNotStart { port: u16, detail: String },
}

/// Whether the data survives a restart of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// `--save "" --appendonly no`: a restart starts empty (the default for load cells).
    None,
    /// `--appendonly yes --appendfsync always`: every acknowledged write is in the data
    /// directory before the reply, so a killed and restarted server has lost nothing.
    AppendOnly,
}

/// A running redis-server, killed when dropped.
pub struct RedisServer {
    /// `None` between `kill` and `restart`.
    child: Option<Child>,
    port: u16,
    persistence: Persistence,
    /// Holds the data directory; removed on drop.
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts redis-server on a free port of 127.0.0.1.
    ///
    /// The port comes from binding port 0 and closing it, so another process may take it
    /// before redis-server binds it: redis-server then exits with "Address already in use"
    /// and another port is tried.
    pub async fn start(persistence: Persistence) -> Result<Self, RedisServerError> {
        let dir = tempfile::Builder::new()
            .prefix("pushlab-redis-")
            .tempdir()?;
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
                .local_addr()?
                .port();
            match spawn(port, persistence, &dir).await {
                Ok(child) => {
                    return Ok(Self {
                        child: Some(child),
                        port,
                        persistence,
                        dir,
                    });
                }
                Err(SpawnError::PortTaken(error)) => last = Some(error),
                Err(SpawnError::Other(error)) => return Err(error),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the process (SIGKILL, no chance to save) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the process again on the same port and data directory (killing it first if it
    /// still runs); with `Persistence::AppendOnly` it comes back with its data.
    pub async fn restart(&mut self) -> Result<(), RedisServerError> {
        self.kill().await;
        let child = spawn(self.port, self.persistence, &self.dir)
            .await
            .map_err(|error| match error {
                SpawnError::PortTaken(error) | SpawnError::Other(error) => error,
            })?;
        self.child = Some(child);
        Ok(())
    }
}

enum SpawnError {
    /// Worth retrying on another port.
    PortTaken(RedisServerError),
    Other(RedisServerError),
}

/// Starts redis-server on `port` and returns once it accepted a PING.
async fn spawn(
    port: u16,
    persistence: Persistence,
    dir: &tempfile::TempDir,
) -> Result<Child, SpawnError> {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir.path())
        // Logs go to stdout, where the "ready" line is awaited.
        .args(["--logfile", "", "--daemonize", "no", "--save", ""]);
    match persistence {
        Persistence::None => command.args(["--appendonly", "no"]),
        Persistence::AppendOnly => command.args(["--appendonly", "yes", "--appendfsync", "always"]),
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| {
            SpawnError::Other(if error.kind() == std::io::ErrorKind::NotFound {
                RedisServerError::NotInstalled
            } else {
                error.into()
            })
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut log = Vec::new();
    let ready = tokio::time::timeout(START_DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let is_ready = line.contains("Ready to accept connections");
            log.push(line);
            if is_ready {
                return true;
            }
        }
        false
    })
    .await;
    let did_not_start = |detail: String| RedisServerError::DidNotStart { port, detail };
    match ready {
        Ok(true) => {}
        Ok(false) => {
            // The process ended: say why, from its log and stderr.
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            let _ = child.wait().await;
            log.push(stderr);
            let detail = log.join("\n");
            let error = did_not_start(detail.trim().to_string());
            return Err(if detail.contains("Address already in use") {
                SpawnError::PortTaken(error)
            } else {
                SpawnError::Other(error)
            });
        }
        Err(_) => {
            let _ = child.kill().await;
            return Err(SpawnError::Other(did_not_start(format!(
                "no \"Ready to accept connections\" within {START_DEADLINE:?}; log:\n{}",
                log.join("\n")
            ))));
        }
    }
    // Keep draining the log, or redis-server would block once the pipe is full.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    ping(port)
        .await
        .map_err(|error| SpawnError::Other(did_not_start(format!("PING failed: {error}"))))?;
    Ok(child)
}

/// One PING over a plain socket, expecting `+PONG`.
async fn ping(port: u16) -> std::io::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"PING\r\n").await?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await?;
    if &reply == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "unexpected reply {:?}",
            String::from_utf8_lossy(&reply)
        )))
    }
}
