//! Serving accepted connections, in place of `axum::serve`, for memory: an idle subscriber's
//! connection is mostly hyper's buffers, and `axum::serve` always goes through hyper-util's
//! auto builder, which reads the first 24 bytes itself to tell HTTP/2 from HTTP/1 and hands
//! them back to hyper's HTTP/1 server as a short first read. hyper reserves 8 KiB of read
//! buffer and asks for 8 KiB free before every read, so after those 24 bytes its buffer grew
//! to 16 KiB, kept for the connection's life (heaptrack: 16 KiB of each idle SSE or long-poll
//! connection). Here the first bytes of a plain connection are *peeked* (`MSG_PEEK`: they stay
//! in the socket, so hyper reads and the meter counts them as before) and a connection that
//! is not HTTP/2 goes straight to hyper's HTTP/1 server, whose head then lands in one 8 KiB
//! buffer. Everything else (TLS, h2c, a client whose first bytes could still be the HTTP/2
//! preface, one silent past the header timeout) goes to the auto builder as before. A plain
//! HTTP/1 connection whose first bytes begin a held request (`GET /sse`, `GET /long-poll`)
//! is served by `held.rs`, without hyper's buffers, for as long as its requests are held
//! ones, then handed to hyper.
//!
//! Shutdown is axum's: stop accepting, ask every connection to finish gracefully, wait for
//! them all.

use std::convert::Infallible;
use std::pin::{Pin, pin};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::routing::future::RouteFuture;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use bytes::Bytes;

use super::edge::{Conn, EdgeStream};
use super::held::{self, Prefixed};
use super::listener::CountingListener;

/// Accepts and serves connections with `router` until `shutdown` is cancelled, then waits
/// for the open ones to finish (gracefully: responses in flight complete).
pub async fn run(mut listener: CountingListener, router: Router, shutdown: CancellationToken) {
    // Every connection task holds a clone of `signal`: its receiver dropped tells them to
    // finish; `close`'s receivers dropped tell the loop they have.
    let (signal, signal_rx) = watch::channel(());
    let (close, close_rx) = watch::channel(());
    let header_timeout = listener.header_timeout();
    loop {
        let (io, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let conn = Conn::of(&io, remote);
        let service = Service {
            router: router.clone(),
            conn,
        };
        tokio::spawn(serve_connection(
            io,
            service,
            header_timeout,
            signal.clone(),
            close_rx.clone(),
        ));
    }
    drop(listener);
    drop(signal_rx);
    drop(close_rx);
    close.closed().await;
}

/// One connection, until it ends or shutdown has let its last response finish.
async fn serve_connection(
    io: EdgeStream,
    service: Service,
    header_timeout: Duration,
    signal: watch::Sender<()>,
    close: watch::Receiver<()>,
) {
    let first = tokio::select! {
        first = io.sniff_h1(header_timeout) => first,
        // Shutdown before the first byte: nothing to finish.
        _ = signal.closed() => return,
    };
    // A connection that starts with a held request (SSE, a long poll) is served without
    // hyper's buffers (`held.rs`) for as long as its requests are held ones. (Only the
    // verdict is kept: the task holds nothing of the peeked bytes while it serves.)
    if let Some(starts_held) = first.map(|first| held::starts_held(first.as_slice())) {
        let mut io = io;
        let prefix = if starts_held {
            let call = |request| service.call_with(request);
            // Boxed, as hyper's side below: each connection's task then carries only the
            // path it takes, not room for both.
            match Box::pin(held::serve(&mut io, call, &signal)).await {
                held::Outcome::Closed => {
                    drop(close);
                    return;
                }
                held::Outcome::HandOver(prefix) => prefix,
            }
        } else {
            Bytes::new()
        };
        // Boxed: hyper's HTTP/1 connection is the biggest state here, and a held
        // connection's task would otherwise carry room for it all its life (an idle SSE
        // connection: 9.3 KiB unboxed, 7.0 boxed; a keep-alive poller pays about 0.5 KiB
        // for the extra allocation).
        Box::pin(serve_h1(Prefixed::new(io, prefix), service, &signal)).await;
    } else {
        // Boxed: the auto builder's connection (HTTP/2 state included) is several times
        // the size of the HTTP/1 one, and every connection's task would otherwise carry it.
        Box::pin(serve_auto(io, service, signal)).await;
    }
    drop(close);
}

/// An HTTP/1 connection served by hyper's HTTP/1 server (with upgrades, for WebSockets).
async fn serve_h1(io: Prefixed<EdgeStream>, service: Service, signal: &watch::Sender<()>) {
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    until_done(conn, signal, |conn| conn.graceful_shutdown()).await;
}

/// A connection whose protocol hyper-util's auto builder works out (as `axum::serve` does,
/// with extended CONNECT for WebSockets over HTTP/2).
async fn serve_auto(io: EdgeStream, service: Service, signal: watch::Sender<()>) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http2().enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    until_done(conn, &signal, |conn| conn.graceful_shutdown()).await;
}

/// Drives a connection until it ends, asking it once (`shutdown`) to finish gracefully when
/// the server shuts down (`signal`'s receiver dropped).
async fn until_done<C, E>(conn: C, signal: &watch::Sender<()>, shutdown: fn(Pin<&mut C>))
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = pin!(conn);
    let mut closing = pin!(signal.closed());
    // `closing` completes once and must not be polled again.
    let mut asked = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::trace!("connection ended: {error:#}");
                }
                break;
            }
            _ = &mut closing, if !asked => {
                asked = true;
                shutdown(conn.as_mut());
            }
        }
    }
}

/// The router, handing every request its connection's [`Conn`] as `ConnectInfo` (what
/// `into_make_service_with_connect_info` did).
#[derive(Clone)]
struct Service {
    router: Router,
    conn: Conn,
}

impl Service {
    /// Routes a request, from hyper or from the held-request path.
    fn call_with(&self, mut request: Request) -> RouteFuture<Infallible> {
        request
            .extensions_mut()
            .insert(ConnectInfo(self.conn.clone()));
        tower_service::Service::call(&mut self.router.clone(), request)
    }
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.call_with(request.map(Body::new))
    }
}
