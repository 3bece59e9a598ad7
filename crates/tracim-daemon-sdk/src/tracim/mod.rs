//! A client for Tracim's own HTTP API: login, who am I, the event history and the live
//! event stream (`feature = "tracim"`), and a simulated Tracim server for tests
//! (`feature = "tracim-sim"`).
//!
//! The facts it relies on (endpoints, the stream's format, the backlog's lack of order)
//! are those of Tracim's source, summed up in the project's `TRACIM.md`.

mod auth;
mod client;
mod error;
mod event;
mod frame;
mod stream;

#[cfg(feature = "tracim-sim")]
pub mod sim;

pub use auth::{Credentials, Login, Secret};
pub use client::{
    CatchUp, CatchUpLimits, HistoryPage, Skipped, TracimClient, TracimConfig, Whoami,
};
pub use error::{StreamEnd, TracimError};
pub use event::TlmEvent;
pub use stream::{LiveStream, StreamItem, StreamOptions};
