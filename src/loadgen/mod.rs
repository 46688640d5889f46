//! The load generator: scenarios (parse, then validate), the cell runner, and the results.

pub mod results;
pub mod scenario;
