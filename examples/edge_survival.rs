//! How long slow, silent and idle connections survive against a running `pushlab-server`,
//! and whether silent sockets can lock `/stats` out. Prints figures; asserts nothing.
//!
//! ```text
//! pushlab-server --bind 127.0.0.1:7000 &
//! pushlab-server --bind 127.0.0.1:7001 --max-connections 100 &
//! cargo run --example edge_survival -- 127.0.0.1:7000 127.0.0.1:7001
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any measurement waits: far past every default timeout.
const GIVE_UP: Duration = Duration::from_secs(150);

/// Reads until the server closes (or errors); returns the seconds since `start`.
async fn closed_after(socket: &mut TcpStream, start: Instant) -> String {
    let mut buffer = [0u8; 4096];
    let wait = async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(GIVE_UP, wait).await {
        Ok(()) => format!("closed after {:.1} s", start.elapsed().as_secs_f64()),
        Err(_) => format!("still open after {} s", GIVE_UP.as_secs()),
    }
}

async fn dripped_head(addr: SocketAddr) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let head = b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let (mut reader, mut writer) = socket.split();
    let drip = async {
        for byte in head {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        std::future::pending::<()>().await;
    };
    let mut reply = Vec::new();
    let read = async {
        let _ = tokio::time::timeout(GIVE_UP, reader.read_to_end(&mut reply)).await;
    };
    tokio::select! { _ = drip => {}, _ = read => {} }
    let status = String::from_utf8_lossy(reply.get(..12).unwrap_or(&reply)).into_owned();
    format!(
        "closed after {:.1} s, answered {status:?}",
        start.elapsed().as_secs_f64()
    )
}

async fn silent(addr: SocketAddr) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    closed_after(&mut socket, Instant::now()).await
}

async fn stalled_body(addr: SocketAddr) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    socket
        .write_all(
            b"POST /comments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"from\":\"a",
        )
        .await
        .unwrap();
    closed_after(&mut socket, start).await
}

async fn idle_keep_alive(addr: SocketAddr) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 4096];
    let n = socket.read(&mut buffer).await.unwrap();
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
    closed_after(&mut socket, Instant::now()).await
}

/// Status of `GET /stats` on a fresh connection, or why there was none.
async fn stats_status(addr: SocketAddr) -> String {
    let attempt = async {
        let mut socket = TcpStream::connect(addr).await?;
        socket
            .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut reply = Vec::new();
        socket.read_to_end(&mut reply).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&reply[..12.min(reply.len())]).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(status)) => status,
        Ok(Err(error)) => format!("error {error}"),
        Err(_) => "no answer in 5 s".into(),
    }
}

async fn lockout(addr: SocketAddr) -> String {
    let start = Instant::now();
    let mut sockets = Vec::new();
    for _ in 0..100 {
        sockets.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut refused_until = None;
    loop {
        let status = stats_status(addr).await;
        let at = start.elapsed().as_secs_f64();
        if status.contains("200") {
            return match refused_until {
                Some(last) => {
                    format!("/stats refused (last at {last:.1} s), answered 200 again at {at:.1} s")
                }
                None => format!("/stats answered 200 at {at:.1} s, never refused"),
            };
        }
        refused_until = Some(at);
        if start.elapsed() > GIVE_UP {
            return format!(
                "/stats still refused after {} s: {status}",
                GIVE_UP.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .expect("usage: edge_survival ADDR [CAPPED_ADDR]")
        .parse()
        .unwrap();
    let capped: Option<SocketAddr> = args.next().map(|a| a.parse().unwrap());
    let (head, silent, body, idle, locked) = tokio::join!(
        dripped_head(addr),
        silent(addr),
        stalled_body(addr),
        idle_keep_alive(addr),
        async {
            match capped {
                Some(capped) => lockout(capped).await,
                None => "not measured (no second address)".into(),
            }
        }
    );
    println!("head at 1 byte/s:                  {head}");
    println!("silent TCP socket:                 {silent}");
    println!("body stalled after 10 of 1,000 B:  {body}");
    println!("idle keep-alive after a response:  {idle}");
    println!("100 silent sockets, cap 100:       {locked}");
}
