//! # pushlab
//!
//! A lab that serves one comment feed four ways (short polling, long polling, WebSocket,
//! Server-Sent Events), drives each with many clients, and measures what each costs:
//! delivery latency, requests, connections, bytes on the wire, loss, server CPU and memory.
//!
//! # Layout
//! - [`model`]: plain shared data (the comment), using no other module.
//! - [`feed`]: the comment feed behind a small interface (publish, read after a cursor,
//!   subscribe from a cursor); in memory by default.
//! - [`techniques`]: one file per push technique, holding its server handler *and* its
//!   load-generator client.
//! - [`server`]: `app()` (the router, apart from binding), the counting listener, the
//!   accounting behind `/stats` and `/metrics`, errors as JSON.
//! - [`net`]: byte counting at the socket, used by both sides.
//! - [`http_client`]: a keep-alive HTTP/1.1 client over a counted socket.
//! - [`loadgen`]: scenarios (parse, then validate), the cell runner, the results data.
//! - [`report`]: pure functions from results to JSON, CSV, HdrHistogram text, Markdown, PNG.
//! - [`web`]: the four-pane browser page.

pub mod feed;
pub mod http_client;
pub mod loadgen;
pub mod model;
pub mod net;
pub mod report;
pub mod server;
pub mod techniques;
pub mod web;
