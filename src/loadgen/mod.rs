//! The load generator: scenarios (parse, then validate), a pre-flight check against the
//! machine's limits, the open-loop publisher, the per-subscriber recorder, the cell runner,
//! and the results as plain data.

pub mod output;
pub mod preflight;
pub mod publisher;
pub mod recorder;
pub mod runner;
pub mod scenario;
pub mod target;
