//! Rust SDK for TracimDaemon clients (this file is a stand-in: the lead merges it with the real one).

#[cfg(feature = "tracim")]
pub mod tracim;
