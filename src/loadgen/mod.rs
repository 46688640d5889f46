//! The load generator: scenarios (parse, then validate), a pre-flight check against the
//! machine's limits, the open-loop publisher, the per-subscriber recorder, the cell runner,
//! and the results as plain data; `conform`, the item-by-item check that a server speaks the
//! interface.
//!
//! A cell runs in phases (`cell`) that gather plain `observations`; `assemble` turns those
//! into a `CellResult` and its `warning`s with no I/O, so every figure is unit-tested.

pub mod assemble;
pub mod cell;
pub mod conform;
pub mod deploy;
pub mod faults;
mod faults_scenario;
pub mod floor;
pub mod link;
pub mod merge;
pub mod netns;
pub mod observations;
pub mod output;
pub mod preflight;
pub mod publisher;
pub mod recorder;
pub mod runner;
pub mod scenario;
pub mod study;
pub mod subscribers;
pub mod target;
pub mod warning;
pub mod worker;
