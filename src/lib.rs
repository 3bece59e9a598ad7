//! tracim-hooks: run commands on Tracim events, configured by one TOML file.
//!
//! The runner's library: configuration, matching, the environment of a run,
//! supervision of hook processes, and the service loop. The TracimDaemon
//! protocol and client live in the `tracim-daemon-sdk` crate, used here like
//! by any other client.

#![warn(missing_docs)]

pub mod cli;
mod clock;
pub mod commands;
mod complaints;
pub mod config;
pub mod control;
pub mod env;
pub mod exec;
pub mod hook;
pub mod journal;
pub mod logging;
pub mod matcher;
pub mod memory;
pub mod notify;
mod paths;
pub mod placeholder;
pub mod replay;
pub mod resume;
mod samples;
pub mod service;
pub mod source;
pub mod supervisor;
mod text;

/// Locks a mutex, taking over one that a panic poisoned: what it guards stays
/// consistent at every unlock here, and a panic elsewhere must not stop the runner.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
