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
pub mod journal;
pub mod link;
pub mod logging;
pub mod matcher;
pub mod notify;
pub mod paths;
pub mod protocol;
pub mod service;
pub mod sim;
pub mod supervisor;

/// Locks a mutex, taking over one that a panic poisoned: what it guards stays
/// consistent at every unlock here, and a panic elsewhere must not stop the runner.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
