//! HTTP shared by both ends: the load generator's keep-alive HTTP/1.1 client over a counted
//! socket (`client`), and the server's error responses and checked extractors (`error`),
//! which the technique handlers and the server's own routes both use, and request bodies
//! with a deadline (`body`). The polling clients' own HTTP/1.1 `GET` connection, written by
//! hand for its CPU per poll (`h1get`). HTTP/2: the load generator's client (`h2client`, h2c over a
//! counted socket, one connection for many streams), the choice between the two per
//! subscriber (`link`), and the frame split and HPACK decoding that let the server book an
//! HTTP/2 connection's bytes per stream (`h2frames`).

pub mod body;
pub mod client;
pub mod error;
pub mod h1get;
pub mod h2client;
pub mod h2frames;
pub mod link;
