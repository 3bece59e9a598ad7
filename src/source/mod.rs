//! Where events come from besides the daemon's deliveries: Tracim itself. The
//! `[tracim]` settings and their secrets, the link's health (logged once per kind of
//! trouble, retried with a capped backoff), and the catch-up that runs what a gap
//! (a daemon restart, the runner's own stop) made the runner miss.

pub mod secrets;
mod settings;

pub use settings::{Source, TracimLogin, TracimSettings};
pub mod catch_up;
pub mod link;
pub mod resume;
pub mod stream;
