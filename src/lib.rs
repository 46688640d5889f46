//! # pushlab
//!
//! A lab that serves one comment feed four ways (short polling, long polling, WebSocket,
//! Server-Sent Events), drives each with many clients, and measures what each costs:
//! delivery latency, requests, connections, bytes on the wire, loss, server CPU and memory.
//!
//! # Layout
//! Modules are listed bottom-up: each uses only modules above it in this list (a test,
//! `tests/layout/mod.rs`, keeps it so).
//! - [`model`]: plain data shared by everyone: the technique list and each technique's
//!   descriptor, the comment, the server's settings, the `/stats` wire types, the checked
//!   scenario, the results of a run.
//! - [`sys`]: the few libc calls, each behind a safe function.
//! - [`wake`]: a waker that remembers it rang, so a streaming response polls its quiet
//!   sources (shutdown, drops, timers, the client leaving) only when one fired.
//! - [`net`]: byte counting at the socket, used by both sides.
//! - [`feed`]: the comment feed behind an async, fallible interface, its in-memory and Redis
//!   backends (and a private redis-server for tests) and the conformance checks every backend
//!   passes.
//! - [`http`]: keep-alive HTTP/1.1 and HTTP/2 clients over counted sockets; the HTTP/2 frame
//!   split and HPACK decoding for per-stream byte accounting; errors as JSON responses.
//! - [`accounting`]: the server's live counters and per-connection byte meters.
//! - [`techniques`]: one file per push technique, holding its server handler *and* its
//!   load-generator client; handlers get a narrow context.
//! - [`web`]: the four-pane browser page.
//! - [`server`]: `app()` (the router, apart from binding), the counting listener, `/stats`,
//!   `/metrics`, publishing and the admin endpoint.
//! - [`report`]: pure functions from results to JSON, CSV, HdrHistogram text, Markdown, PNG,
//!   and the study handout.
//! - [`loadgen`]: scenarios (parse, then validate), the cell runner, the publisher, and
//!   `conform`, which checks that a server speaks the interface.

pub mod accounting;
pub mod feed;
pub mod http;
pub mod loadgen;
pub mod model;
pub mod net;
pub mod report;
pub mod server;
pub mod sys;
pub mod techniques;
pub mod wake;
pub mod web;
