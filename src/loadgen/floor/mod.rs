//! The floor: what the same cell costs on a bare tokio server writing the same bytes
//! (`server`), run beside pushlab's own cells when a scenario says `floor = true`, and the
//! `bench polls` comparison of the load generator's pollers with wrk (`bench`).

pub mod server;
