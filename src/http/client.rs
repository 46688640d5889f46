//! A keep-alive HTTP/1.1 client connection over a byte-counting socket: hyper's low-level
//! client, because reqwest cannot count the bytes its sockets carry (see `net.rs`).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::model::Target;
use crate::net::{ByteMeter, CountingStream};

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building the request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("{status} from the server: {body}")]
    Status { status: StatusCode, body: String },
    #[error("unparsable response: {0}")]
    Parse(String),
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The socket failed (the hand-written polling client, `h1get`).
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// An answer the hand-written polling client could not read as HTTP/1.1.
    #[error("HTTP: {0}")]
    Protocol(String),
}

/// Source addresses this process's subscribers bind to, round robin; unset, the kernel
/// picks (127.0.0.1). Process-wide rather than per target because it belongs to the process:
/// a load-generator worker holds one share of a cell and binds every one of its subscribers.
static SOURCE_ADDRESSES: std::sync::OnceLock<(Vec<IpAddr>, AtomicUsize)> =
    std::sync::OnceLock::new();

/// Makes every later [`connect_counted`] of this process bind to one of `addrs` in turn (with
/// `IP_BIND_ADDRESS_NO_PORT`, so ports are shared across destinations). Set once; later
/// calls are ignored.
pub fn bind_connections_to(addrs: Vec<IpAddr>) {
    if !addrs.is_empty() {
        let _ = SOURCE_ADDRESSES.set((addrs, AtomicUsize::new(0)));
    }
}

fn next_source_address() -> Option<IpAddr> {
    let (addrs, next) = SOURCE_ADDRESSES.get()?;
    Some(addrs[next.fetch_add(1, Ordering::Relaxed) % addrs.len()])
}

/// Opens a TCP connection to `target` whose bytes `meter` counts, with TCP_NODELAY.
pub async fn connect_counted(
    target: &Target,
    meter: Arc<ByteMeter>,
) -> Result<CountingStream<TcpStream, ByteMeter>, ClientError> {
    let error = |source| ClientError::Connect {
        addr: target.addr,
        source,
    };
    let stream = match next_source_address() {
        None => TcpStream::connect(target.addr).await.map_err(error)?,
        Some(source) => connect_from(source, target.addr).await.map_err(error)?,
    };
    let _ = stream.set_nodelay(true);
    Ok(CountingStream::tcp(stream, meter))
}

/// Connects from `source` (any port) to `addr`.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    crate::sys::bind_address_no_port(socket.as_raw_fd())?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// As [`connect_counted`], with the socket's receive buffer (`SO_RCVBUF`) set to
/// `recv_buffer` bytes before connecting, so the TCP window it advertises is that small.
pub async fn connect_counted_small(
    target: &Target,
    meter: Arc<ByteMeter>,
    recv_buffer: u32,
) -> Result<CountingStream<TcpStream, ByteMeter>, ClientError> {
    let error = |source| ClientError::Connect {
        addr: target.addr,
        source,
    };
    let socket = if target.addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(error)?;
    socket.set_recv_buffer_size(recv_buffer).map_err(error)?;
    let stream = socket.connect(target.addr).await.map_err(error)?;
    let _ = stream.set_nodelay(true);
    Ok(CountingStream::tcp(stream, meter))
}

/// One keep-alive connection; requests on it go one after another, as a browser's would.
pub struct HttpConnection {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpConnection {
    /// Connects and performs the HTTP/1.1 handshake (no bytes are sent until a request).
    pub async fn open(target: &Target, meter: Arc<ByteMeter>) -> Result<Self, ClientError> {
        Self::over(connect_counted(target, meter).await?, target).await
    }

    /// Performs the HTTP/1.1 handshake over a counted stream already connected to `target`.
    pub async fn over(
        stream: CountingStream<TcpStream, ByteMeter>,
        target: &Target,
    ) -> Result<Self, ClientError> {
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: target.host(),
        })
    }

    /// Whether the server has not closed the connection.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, &self.host);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.unwrap_or_default()))?;
        self.sender.ready().await?;
        Ok(self.sender.send_request(request).await?)
    }

    /// Sends a request and reads the whole body; non-2xx statuses are errors.
    pub async fn fetch(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Bytes, ClientError> {
        let response = self.send(method, path_and_query, headers, body).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }

    /// `GET` returning the body.
    pub async fn get(&mut self, path_and_query: &str) -> Result<Bytes, ClientError> {
        self.fetch(Method::GET, path_and_query, &[], None).await
    }

    /// `POST` of a JSON body, returning the response body.
    pub async fn post_json(&mut self, path: &str, json: &str) -> Result<Bytes, ClientError> {
        let headers = [("content-type", "application/json")];
        self.fetch(
            Method::POST,
            path,
            &headers,
            Some(Bytes::copy_from_slice(json.as_bytes())),
        )
        .await
    }
}

/// Percent-encodes a query component (user ids may hold any printable character).
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_connection_from_a_source_address_arrives_from_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source: std::net::IpAddr = "127.0.0.3".parse().unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(super::connect_from(source, addr), listener.accept());
        let (client, (_, peer)) = (client.unwrap(), accepted.unwrap());
        assert_eq!(peer.ip(), source);
        assert_eq!(client.local_addr().unwrap(), peer);
    }
}
