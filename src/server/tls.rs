//! `--tls`: the server's connections over TLS with a self-signed certificate made at start
//! (for `localhost` and `127.0.0.1`), offering HTTP/2 and HTTP/1.1 by ALPN so browsers
//! negotiate h2 (they speak HTTP/2 only over TLS). Bytes are still counted at the TCP socket,
//! under the TLS layer: the figures are the encrypted bytes on the wire, handshake included.
//!
//! The handshake runs inside the connection's first reads ([`Transport`]), not in the accept
//! loop, so a slow client holds up only itself, and the edge's header deadline bounds it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::{Accept, TlsAcceptor, server::TlsStream};

use crate::accounting::ConnMeter;
use crate::net::CountingStream;

/// The counted socket under everything.
pub type Counted = CountingStream<TcpStream, ConnMeter>;

/// Why `--tls` could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls: cannot make a self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("--tls: cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// The ALPN protocols offered, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A TLS acceptor with a fresh self-signed certificate for `localhost` and `127.0.0.1`, and
/// the certificate (DER), for clients that want to trust it.
pub fn self_signed() -> Result<(TlsAcceptor, Vec<u8>), TlsError> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok((TlsAcceptor::from(Arc::new(config)), cert.to_vec()))
}

/// A connection's transport: the counted socket itself, or TLS over it.
pub enum Transport {
    Plain(Counted),
    /// The TLS handshake, driven by the first reads and writes (boxed: it holds the whole
    /// TLS state, over a kilobyte, which plain connections need not carry).
    Handshake(Box<Accept<Counted>>),
    Tls(Box<TlsStream<Counted>>),
    /// The handshake failed: every later read or write fails.
    Failed,
}

impl Transport {
    /// Drives a pending handshake; `Ready(Ok(Some(h2)))` the moment it completes (whether
    /// ALPN chose HTTP/2), `Ready(Ok(None))` when there is none to drive.
    pub fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<bool>>> {
        match self {
            Transport::Handshake(accept) => {
                let result = ready!(Pin::new(accept.as_mut()).poll(cx));
                match result {
                    Ok(stream) => {
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        *self = Transport::Tls(Box::new(stream));
                        Poll::Ready(Ok(Some(h2)))
                    }
                    Err(error) => {
                        *self = Transport::Failed;
                        Poll::Ready(Err(error))
                    }
                }
            }
            Transport::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the TLS handshake failed",
            ))),
            _ => Poll::Ready(Ok(None)),
        }
    }

    /// Whether bytes read here are the socket's own (no TLS under them).
    pub fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            // The edge stream drives the handshake before reading.
            Transport::Handshake(_) | Transport::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "read before the TLS handshake ended",
            ))),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            Transport::Handshake(_) | Transport::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "write before the TLS handshake ended",
            ))),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
            Transport::Handshake(_) | Transport::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "write before the TLS handshake ended",
            ))),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
            _ => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}
