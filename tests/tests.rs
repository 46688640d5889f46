//! pushlab's integration tests, one binary (ripgrep style) so it links once.

// The load generator end to end: scenarios in, results folders out, against real servers.
mod loadgen;
