//! The Rust SDK for TracimDaemon clients.
//!
//! TracimDaemon logs into a Tracim server, reads the user's stream of Tracim
//! Live Messages (TLMs) and relays each one to its local clients over Unix
//! sockets. This crate speaks that protocol the way the daemon really does.
//!
//! # The wire protocol
//!
//! - Unix-domain **stream** sockets. The daemon listens on its *master* socket
//!   (by default `~/.config/TracimDaemon/master.sock`); every client listens on a
//!   socket of its own.
//! - **One message per connection**: connect to the peer's socket, write one JSON
//!   object (no newline, no length prefix), close. Answers come as new
//!   connections to the sender's socket, never on the same one.
//! - The daemon reads a message with a single `read()` of at most 4096 bytes, so
//!   a client's message must be one write under 4096 bytes
//!   ([`protocol::MAX_TO_DAEMON`]). The daemon writes whole messages of any size:
//!   events carry note bodies and are often far larger, so a client reads to EOF.
//! - Every message is an envelope `{"path": <sender's socket>, "type": …, "data": …}`
//!   ([`protocol::Envelope`]); the types are [`protocol::Message`]'s variants.
//!   A client registers with `daemon_client_add` (its `pid` as a JSON *string*),
//!   answers the daemon's `daemon_ping`, and leaves with `daemon_client_delete`.
//! - An event (`daemon_tracim_event`) carries the TLM as a JSON string; its text
//!   is kept exactly as received ([`protocol::Event::raw`]) and decoded on first
//!   use ([`protocol::Event::tlm`]).
//! - When the daemon restarts it forgets its clients; nothing tells them. A client
//!   that wants to stay registered watches the master socket and the pings.
//!
//! # Features
//!
//! - (always) [`protocol`]: the messages, built with serde and serde_json only.
//! - `client` (default): [`client::Client`], a tokio client that registers, answers
//!   pings, reads every message whole, registers again after daemon restarts and
//!   leaves cleanly.
//! - `sim`: [`sim::SimDaemon`], a simulated daemon as strict as the real one, for
//!   tests and demos.
//! - `tracim`: `tracim::TracimClient`, Tracim's own HTTP API as a client needs it to
//!   miss nothing: login (session cookie, API key or Basic), the history endpoint to
//!   catch up after a gap, and the live event stream with its resume point.
//! - `tracim-sim`: `tracim::sim::TracimSim`, a simulated Tracim server as strict as
//!   the real one.
//!
//! # A complete client
//!
//! Registers with a (here simulated) daemon, prints the events it receives, and
//! leaves cleanly:
//!
//! ```
//! # #[cfg(feature = "sim")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tracim_daemon_sdk::client::{Client, ClientConfig, Inbound};
//! use tracim_daemon_sdk::protocol::Message;
//! use tracim_daemon_sdk::sim::{SimDaemon, SimOptions};
//!
//! let dir = std::env::temp_dir().join(format!("tds-doc-{}", std::process::id()));
//! let daemon = SimDaemon::start(dir.join("master.sock"), SimOptions::default()).await?;
//!
//! // A real client names the daemon's master socket and a socket of its own.
//! let config = ClientConfig::new(daemon.master(), dir.join("client.sock"));
//! let (mut client, mut incoming) = Client::start(config).await?;
//! assert!(daemon.wait_for_client(&dir.join("client.sock"), Duration::from_secs(10)).await);
//!
//! daemon.send_event(r#"{"event_id": 7, "event_type": "tag.created", "fields": {}}"#).await;
//! // Messages come in the daemon's order; refused input (another user, bad JSON…)
//! // comes as `Inbound::Refused` for the program to log as it likes.
//! while let Some(inbound) = incoming.recv().await {
//!     let Inbound::Message(delivery) = inbound else { continue };
//!     if let Message::TracimEvent(event) = delivery.envelope.message {
//!         println!("{} {}", event.id(), event.event_type());
//!         assert_eq!(event.id(), 7);
//!         break;
//!     }
//! }
//! client.shutdown().await;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sim"))]
//! # fn main() {}
//! ```
//!

#![warn(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod protocol;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "tracim")]
pub mod tracim;

/// Locks a mutex, taking over one that a panic poisoned: what it guards stays
/// consistent at every unlock here, and a panic elsewhere must not stop a client.
#[cfg(feature = "client")]
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
