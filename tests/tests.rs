//! pushlab's integration tests, as one binary so the crate and its dependencies link once.

// The server over real sockets (issue 2): every technique, accounting, bad input, lifecycle.
mod server;
