//! pushlab's integration tests, one binary (ripgrep style) so it links once; one module per
//! concern, all on real sockets on 127.0.0.1 with port 0 (but `layout`, which reads src/).

// The four-pane page in a real headless Chromium (needs Debian's chromium, chromium-driver).
mod browser;
// `pushlab-loadgen conform` against pushlab-server and the Python example (python3-aiohttp).
mod conform;
// The floor server's bytes, `floor = true` cells, and `bench polls`.
mod floor;
// The module graph of src/: a DAG with model at the bottom.
mod layout;
// The link emulator's relay: delays, bandwidth, and bytes and closes forwarded faithfully.
mod link;
// The load generator end to end: scenarios in, results folders out, against real servers.
mod loadgen;
// The server over real sockets: every technique, accounting, bad input, lifecycle.
mod server;
