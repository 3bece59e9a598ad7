//! tracim-hooks: run commands on Tracim events, configured by one TOML file.
//!
//! The library is also a Rust SDK for TracimDaemon clients: [`link::Client`]
//! registers with the daemon, stays registered through its restarts, and hands
//! every message on, however large.

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod env;
pub mod exec;
pub mod link;
pub mod logging;
pub mod matcher;
pub mod notify;
pub mod paths;
pub mod protocol;
pub mod service;
pub mod sim;
pub mod supervisor;
