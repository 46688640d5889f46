//! Measures an emulated link from the outside, as a user would check it: round trips of one
//! byte through a relay to an echo server, and a bulk transfer's rate from its first byte to
//! its last. `pushlab-loadgen link` prints these, and the test suite checks them.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::Relay;
use crate::model::network::Link;

/// `count` one-byte round trips through a relay over `link`, on one connection, after a
/// first exchange that pays the connection's set-up.
pub async fn round_trips(link: Link, count: usize) -> io::Result<Vec<Duration>> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let upstream = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let mut byte = [0u8; 1];
        while socket.read(&mut byte).await? == 1 {
            socket.write_all(&byte).await?;
        }
        io::Result::Ok(())
    });
    let relay = Relay::start(link, upstream).await?;
    let mut socket = TcpStream::connect(relay.addr).await?;
    socket.set_nodelay(true)?;
    let mut byte = [0u8; 1];
    let mut times = Vec::with_capacity(count);
    for i in 0..=count {
        let sent = Instant::now();
        socket.write_all(&[1]).await?;
        socket.read_exact(&mut byte).await?;
        if i > 0 {
            times.push(sent.elapsed());
        }
    }
    drop(socket);
    let _ = echo.await;
    Ok(times)
}

/// A bulk transfer's figures.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Bytes received in all.
    pub bytes: u64,
    /// Bytes after the first read: the ones the elapsed time carried.
    pub timed_bytes: u64,
    /// From the end of the first read to the last byte.
    pub elapsed: Duration,
}

impl Transfer {
    pub fn bits_per_second(&self) -> f64 {
        self.timed_bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The server sends `bytes` over a relay on `link` to the client and closes; the rate is
/// timed from the client's first read to the last byte, so the round trip and connection
/// set-up are not counted against the bandwidth.
pub async fn transfer(link: Link, bytes: usize) -> io::Result<Transfer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let upstream = listener.local_addr()?;
    let source = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let block = vec![0x55u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(block.len());
            socket.write_all(&block[..n]).await?;
            left -= n;
        }
        socket.shutdown().await?;
        io::Result::Ok(())
    });
    let relay = Relay::start(link, upstream).await?;
    let mut socket = TcpStream::connect(relay.addr).await?;
    let mut buffer = vec![0u8; 64 * 1024];
    let first = socket.read(&mut buffer).await? as u64;
    let started = Instant::now();
    let mut total = first;
    loop {
        let n = socket.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let elapsed = started.elapsed();
    source.await.map_err(io::Error::other)??;
    Ok(Transfer {
        bytes: total,
        timed_bytes: total - first,
        elapsed,
    })
}

/// The median of some durations (the upper one of an even count).
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}
