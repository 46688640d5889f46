//! The server a cell drives: a fresh `pushlab-server` child process per cell on a free
//! loopback port (so each cell starts clean and the server has its own file-descriptor
//! budget and its own CPU and memory figures), or an already running one (`--target`).
//! Also the `/stats` reader, on a connection of its own that the server books to "other".

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::http::client::{ClientError, HttpConnection};
use crate::model::Target;
use crate::model::stats::StatsSnapshot;
use crate::net::ByteMeter;

/// Why the server could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "cannot start the server {binary}: {source} (build it with `cargo build --release`, or pass --server-binary)"
    )]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("the server {binary} did not print `listening on ADDR` ({0})", .detail)]
    NoAddress { binary: PathBuf, detail: String },
    #[error("reading /stats: {0}")]
    Stats(#[from] ClientError),
    #[error("unparsable /stats: {0}")]
    StatsFormat(String),
    #[error("the server has no /stats, and its /poll did not say the newest id: {0}")]
    CursorProbe(String),
}

/// How to start a server for a cell.
#[derive(Debug, Clone)]
pub struct ServerLaunch {
    pub binary: PathBuf,
    pub args: Vec<String>,
    /// Where the server's stderr goes.
    pub log: PathBuf,
}

/// A server the load generator started, stopped with SIGTERM when dropped or stopped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// How it was started, to start it again on the same address (`restart`).
    launch: ServerLaunch,
}

impl ServerProcess {
    pub async fn start(launch: &ServerLaunch) -> Result<Self, TargetError> {
        let log = std::fs::File::create(&launch.log).map_err(|source| TargetError::Spawn {
            binary: launch.log.clone(),
            source,
        })?;
        let (child, addr) = Self::spawn(launch, "127.0.0.1:0", log).await?;
        Ok(Self {
            child,
            addr,
            launch: launch.clone(),
        })
    }

    /// Starts the binary on `bind` and reads the address it prints.
    async fn spawn(
        launch: &ServerLaunch,
        bind: &str,
        log: std::fs::File,
    ) -> Result<(Child, SocketAddr), TargetError> {
        let mut child = Command::new(&launch.binary)
            .args(["--bind", bind])
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| TargetError::Spawn {
                binary: launch.binary.clone(),
                source,
            })?;
        let stdout = child.stdout.take().expect("piped above");
        let mut lines = BufReader::new(stdout).lines();
        let no_address = |detail: String| TargetError::NoAddress {
            binary: launch.binary.clone(),
            detail,
        };
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| no_address("nothing within 10 s".into()))?
            .map_err(|e| no_address(e.to_string()))?
            .ok_or_else(|| no_address(format!("it exited; see {}", launch.log.display())))?;
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| no_address(format!("first line was {line:?}")))?;
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok((child, addr))
    }

    /// Stops the server as `stop` does, then starts it again with the same flags on the same
    /// address, so clients reconnect where they were; its log continues in the same file.
    /// Returns when the new process listens.
    pub async fn restart(&mut self) -> Result<(), TargetError> {
        self.terminate().await;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.launch.log)
            .map_err(|source| TargetError::Spawn {
                binary: self.launch.log.clone(),
                source,
            })?;
        let (child, addr) = Self::spawn(&self.launch, &self.addr.to_string(), log).await?;
        self.child = child;
        self.addr = addr;
        Ok(())
    }

    /// Sends SIGTERM and waits up to five seconds for a clean exit, then kills.
    pub async fn stop(mut self) {
        self.terminate().await;
    }

    async fn terminate(&mut self) {
        if let Some(pid) = self.child.id() {
            crate::sys::terminate(pid);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Reads `/stats` over one keep-alive connection that is not counted with any technique.
pub struct StatsReader {
    target: Target,
    connection: Option<HttpConnection>,
}

impl StatsReader {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            target: Target { addr },
            connection: None,
        }
    }

    pub async fn read(&mut self) -> Result<StatsSnapshot, TargetError> {
        // A reused connection may have been closed by the server's idle timeout just as we
        // ask (a window longer than `--idle-timeout` between two reads): `/stats` is safe to
        // ask again, so one failure on a reused connection is retried on a fresh one.
        let reused = self.connection.as_ref().is_some_and(|c| c.is_open());
        match self.read_once().await {
            Err(TargetError::Stats(_)) if reused => self.read_once().await,
            result => result,
        }
    }

    async fn read_once(&mut self) -> Result<StatsSnapshot, TargetError> {
        if self.connection.as_ref().is_none_or(|c| !c.is_open()) {
            self.connection = Some(HttpConnection::open(&self.target, ByteMeter::new()).await?);
        }
        let connection = self.connection.as_mut().expect("opened above");
        let body = match connection.get("/stats").await {
            Ok(body) => body,
            Err(error) => {
                self.connection = None;
                return Err(error.into());
            }
        };
        serde_json::from_slice(&body).map_err(|e| TargetError::StatsFormat(e.to_string()))
    }
}

/// The server binary built beside the running executable.
pub fn sibling_server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("pushlab-loadgen"));
    let dir = exe.parent().unwrap_or(Path::new("."));
    // `cargo test` runs from target/debug/deps; the binaries sit one level up.
    let candidates = [dir.join("pushlab-server"), dir.join("../pushlab-server")];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| candidates[0].clone())
}
