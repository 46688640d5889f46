//! An HTTP/2 client connection (h2c, prior knowledge) over a byte-counting socket: hyper's
//! low-level HTTP/2 client. One connection carries any number of concurrent streams; the
//! handle is cheap to clone, so many subscribers can share one connection as a browser's
//! tabs share one per origin.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::client::{ClientError, connect_counted};
use crate::model::Target;
use crate::net::{ByteMeter, CountingStream};
use tokio::net::TcpStream;

/// One HTTP/2 connection; clones send on the same connection.
#[derive(Clone)]
pub struct H2Connection {
    sender: http2::SendRequest<Full<Bytes>>,
    /// `http://HOST:PORT`, the scheme and authority every request names.
    origin: String,
}

impl H2Connection {
    /// Connects and performs the HTTP/2 handshake (preface and SETTINGS).
    pub async fn open(target: &Target, meter: Arc<ByteMeter>) -> Result<Self, ClientError> {
        Self::over(connect_counted(target, meter).await?, target).await
    }

    /// Performs the HTTP/2 handshake on a counted connection to `target`.
    pub async fn over(
        stream: CountingStream<TcpStream, ByteMeter>,
        target: &Target,
    ) -> Result<Self, ClientError> {
        let stream = DrainOnClose::new(stream);
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            origin: format!("http://{}", target.host()),
        })
    }

    /// Whether the connection is still usable.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends a request on a new stream and returns the response with its body streaming.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.origin));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.unwrap_or_default()))?;
        let mut sender = self.sender.clone();
        sender.ready().await?;
        Ok(sender.send_request(request).await?)
    }

    /// Sends a request and reads the whole body; non-2xx statuses are errors.
    pub async fn fetch(
        &self,
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
    pub async fn get(&self, path_and_query: &str) -> Result<Bytes, ClientError> {
        self.fetch(Method::GET, path_and_query, &[], None).await
    }

    /// `POST` of a JSON body, returning the response body.
    pub async fn post_json(&self, path: &str, json: &str) -> Result<Bytes, ClientError> {
        let headers = [("content-type", "application/json")];
        self.fetch(
            Method::POST,
            path,
            &headers,
            Some(Bytes::copy_from_slice(json.as_bytes())),
        )
        .await
    }

    /// Opens a WebSocket on a new stream by extended CONNECT (RFC 8441) and returns the
    /// stream as a byte stream for a WebSocket client in the client role. It holds this
    /// connection's handle, so the connection lives as long as the WebSocket.
    pub async fn websocket(&self, path_and_query: &str) -> Result<H2Tunnel, ClientError> {
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .uri(format!("{}{path_and_query}", self.origin))
            .header("sec-websocket-version", "13")
            .body(Full::new(Bytes::new()))?;
        request
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let mut sender = self.sender.clone();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.into_body().collect().await?.to_bytes();
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(H2Tunnel {
            io: TokioIo::new(hyper::upgrade::on(response).await?),
            _connection: self.clone(),
        })
    }
}

/// A client socket that, when closed, reads what the server still sends until the server
/// closes too (at most `DRAIN_LIMIT`). The HTTP/2 stack closes a connection by sending
/// GOAWAY and shutting its write side; the server may answer with a GOAWAY of its own. Read
/// and counted here, those bytes are counted at both ends, as a socket dropped at once would
/// leave them counted by the server alone.
struct DrainOnClose<S> {
    inner: S,
    /// Set once the write side is shut: then the read side is drained.
    draining: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

/// The longest a closing connection waits for the server to close its side.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

impl<S> DrainOnClose<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            draining: None,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for DrainOnClose<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite
    for DrainOnClose<S>
{
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.draining.is_none() {
            std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.draining = Some(Box::pin(tokio::time::sleep(DRAIN_LIMIT)));
        }
        let mut scratch = [0u8; 1024];
        loop {
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    if let Some(limit) = &mut this.draining {
                        std::task::ready!(limit.as_mut().poll(cx));
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

/// An HTTP/2 stream opened by extended CONNECT, as a byte stream, with a handle on its
/// connection.
pub struct H2Tunnel {
    io: TokioIo<hyper::upgrade::Upgraded>,
    _connection: H2Connection,
}

impl tokio::io::AsyncRead for H2Tunnel {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for H2Tunnel {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
