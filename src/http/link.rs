//! How a load-generator client reaches the server: HTTP/1.1 (a connection of its own, as
//! before), or HTTP/2 on a connection of its own or on one shared by many clients, as a
//! browser shares one connection among all the streams of one origin. [`Connection`] hides
//! which, so a technique's client is written once.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Response};

use super::client::{ClientError, HttpConnection};
use super::h2client::H2Connection;
use crate::model::Target;
use crate::net::ByteMeter;

/// How a client connects.
#[derive(Clone, Default)]
pub enum HttpLink {
    /// HTTP/1.1, a connection per client.
    #[default]
    H1,
    /// HTTP/2 (h2c, prior knowledge), a connection per client.
    H2PerClient,
    /// HTTP/2, one connection shared by every client holding this link.
    H2Shared(Arc<SharedH2>),
}

impl HttpLink {
    /// Whether the link speaks HTTP/2.
    pub fn is_h2(&self) -> bool {
        !matches!(self, HttpLink::H1)
    }
}

/// One HTTP/2 connection for many clients, opened by the first that needs it and reopened
/// by the first that finds it closed; its bytes are counted in `meter`.
pub struct SharedH2 {
    target: Target,
    meter: Arc<ByteMeter>,
    connection: tokio::sync::Mutex<Option<H2Connection>>,
}

impl SharedH2 {
    pub fn new(target: Target, meter: Arc<ByteMeter>) -> Arc<Self> {
        Arc::new(Self {
            target,
            meter,
            connection: tokio::sync::Mutex::new(None),
        })
    }

    /// The shared connection, and whether this call opened it.
    pub async fn get(&self) -> Result<(H2Connection, bool), ClientError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok((connection.clone(), false));
        }
        let connection = H2Connection::open(&self.target, self.meter.clone()).await?;
        *slot = Some(connection.clone());
        Ok((connection, true))
    }
}

/// A client's connection, whatever its protocol.
pub enum Connection {
    H1(HttpConnection),
    H2(H2Connection),
}

impl Connection {
    /// Whether the server has not closed the connection.
    pub fn is_open(&self) -> bool {
        match self {
            Connection::H1(c) => c.is_open(),
            Connection::H2(c) => c.is_open(),
        }
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, ClientError> {
        match self {
            Connection::H1(c) => c.send(method, path_and_query, headers, body).await,
            Connection::H2(c) => c.send(method, path_and_query, headers, body).await,
        }
    }

    /// `GET` returning the body; non-2xx statuses are errors.
    pub async fn get(&mut self, path_and_query: &str) -> Result<Bytes, ClientError> {
        match self {
            Connection::H1(c) => c.get(path_and_query).await,
            Connection::H2(c) => c.get(path_and_query).await,
        }
    }
}
