//! tracim-hooks: run commands on Tracim events, configured by one TOML file.
//!
//! The library is also a Rust SDK for TracimDaemon clients: [`link::Client`]
//! registers with the daemon, stays registered through its restarts, and hands
//! every message on, however large.

pub mod config;
pub mod env;
pub mod matcher;
pub mod paths;
pub mod protocol;
pub mod exec;
