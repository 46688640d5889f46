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
use crate::net::ByteMeter;

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
        let stream = connect_counted(target, meter).await?;
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
    /// stream as a byte stream for a WebSocket client in the client role.
    pub async fn websocket(
        &self,
        path_and_query: &str,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, ClientError> {
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
        Ok(TokioIo::new(hyper::upgrade::on(response).await?))
    }
}
