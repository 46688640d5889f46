//! The server's listener: wraps every accepted connection in a byte-counting stream and its
//! edge (deadlines, JSON refusals: `edge.rs`), sets TCP_NODELAY (small pushes must not wait
//! for Nagle) and TCP_USER_TIMEOUT (a vanished peer is noticed in seconds), and refuses
//! connections over the cap with a 503 and `Retry-After` instead of letting the process run
//! out of file descriptors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::edge::{Conn, Edge, EdgeStream};
use super::tls::Transport;
use crate::accounting::{ConnInfo, ConnMeter, Stats};
use crate::http::h2frames::PREFACE;
use crate::model::ServerConfig;
use crate::model::stats::Account;
use crate::net::CountingStream;

/// A `TcpListener` whose connections count their bytes into `Stats`.
pub struct CountingListener {
    listener: TcpListener,
    stats: Arc<Stats>,
    config: Arc<ServerConfig>,
    /// `--tls`: every connection is TLS (with ALPN h2 or http/1.1).
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl CountingListener {
    pub fn new(listener: TcpListener, stats: Arc<Stats>, config: Arc<ServerConfig>) -> Self {
        Self {
            listener,
            stats,
            config,
            tls: None,
        }
    }

    /// Serves TLS with `acceptor` on every connection.
    pub fn with_tls(mut self, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// How long a connection may take to send its first request's head.
    pub fn header_timeout(&self) -> Duration {
        self.config.header_timeout
    }
}

impl axum::serve::Listener for CountingListener {
    type Io = EdgeStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    if !self.config.user_timeout.is_zero() {
                        let _ = crate::sys::set_user_timeout(&stream, self.config.user_timeout);
                    }
                    let cap = self.config.max_connections;
                    let over_cap = self.stats.connections_live() >= cap as u64;
                    let meter = ConnMeter::new(self.stats.clone());
                    let stream = CountingStream::new(stream, meter);
                    if over_cap {
                        self.stats.record_refused();
                        tokio::spawn(refuse(stream, cap));
                        continue;
                    }
                    let edge = Edge::new(self.stats.clone(), &self.config);
                    let meter = stream.meter().clone();
                    let transport = match &self.tls {
                        Some(acceptor) => Transport::Handshake(Box::new(acceptor.accept(stream))),
                        None => Transport::Plain(stream),
                    };
                    return (EdgeStream::new(transport, meter, edge), addr);
                }
                Err(error) => {
                    // EMFILE and friends: back off briefly rather than spin; the error is
                    // transient once connections close.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// Answers a connection over the cap with 503 and closes it; an HTTP/2 client (its preface
/// read) gets SETTINGS and a GOAWAY that processed no stream, its debug data the same JSON
/// error. The request is read first so the close does not turn into a reset that would hide
/// the response from the client.
async fn refuse(mut stream: CountingStream<TcpStream, ConnMeter>, cap: usize) {
    stream.meter().attribute(Account::Other);
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let body = serde_json::json!({
        "error": format!("the server is at its connection cap ({cap}); retry later")
    })
    .to_string();
    if head.starts_with(&PREFACE[..18]) {
        let _ = stream.write_all(&goaway(body.as_bytes())).await;
        let _ = stream.shutdown().await;
        return;
    }
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// An empty SETTINGS frame (the server's required first frame) and a GOAWAY with last
/// stream 0 and NO_ERROR (nothing was processed: the client may retry) carrying `debug`.
fn goaway(debug: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    let len = (8 + debug.len()) as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0x7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(debug);
    out
}

impl Conn {
    /// The handle of the accepted connection `io` from `remote`, for its requests.
    pub fn of(io: &EdgeStream, remote: SocketAddr) -> Self {
        Self {
            info: ConnInfo {
                meter: io.meter().clone(),
                remote,
            },
            edge: io.edge().clone(),
        }
    }
}
