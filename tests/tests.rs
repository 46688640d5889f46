//! One integration-test binary for the whole crate: one module per concern.

// The four-pane page in a real headless Chromium (needs Debian's chromium, chromium-driver).
mod browser;
