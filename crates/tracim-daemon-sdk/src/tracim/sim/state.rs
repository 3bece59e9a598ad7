//! The simulator's state: accounts, sessions, the event history, open streams, counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::mpsc;

use super::sse::Command;
use super::{Endpoint, SimConfig, SimUser};

/// One message of a user's history.
pub(crate) struct Stored {
    pub user_id: u64,
    pub event_id: u64,
    pub text: Arc<str>,
}

/// An open stream, as the state sees it.
pub(crate) struct StreamHandle {
    pub id: u64,
    pub user_id: u64,
    pub tx: mpsc::UnboundedSender<Command>,
    /// Set once the stream's first body (stream-open and backlog) is written.
    pub ready: Arc<AtomicBool>,
}

impl StreamHandle {
    pub(crate) fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

pub(crate) struct State {
    pub config: SimConfig,
    /// The global event id sequence.
    pub next_id: u64,
    pub history: Vec<Stored>,
    /// Session key -> user id.
    pub sessions: HashMap<String, u64>,
    pub streams: Vec<StreamHandle>,
    pub next_stream: u64,
    pub counts: HashMap<Endpoint, u64>,
    pub fail_next: u64,
    pub fail_status: u16,
    pub fail_only: Option<Endpoint>,
    pub rng: StdRng,
}

impl State {
    pub(crate) fn new(config: SimConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self {
            config,
            next_id: 100,
            history: Vec::new(),
            sessions: HashMap::new(),
            streams: Vec::new(),
            next_stream: 0,
            counts: HashMap::new(),
            fail_next: 0,
            fail_status: 503,
            fail_only: None,
            rng,
        }
    }

    pub(crate) fn user(&self, user_id: u64) -> Option<&SimUser> {
        self.config.users.iter().find(|u| u.user_id == user_id)
    }

    /// The account a login names: Tracim takes a user name or an email.
    pub(crate) fn user_by_login(&self, login: &str) -> Option<&SimUser> {
        self.config
            .users
            .iter()
            .find(|u| u.username == login || u.email == login)
    }

    pub(crate) fn publish(&mut self, user_id: u64, make: impl FnOnce(u64) -> String) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let text = make(id);
        self.deliver(user_id, id, text);
        id
    }

    /// Stores a message and sends it to every open stream of the user.
    pub(crate) fn deliver(&mut self, user_id: u64, event_id: u64, text: String) {
        let text: Arc<str> = text.into();
        self.history.push(Stored {
            user_id,
            event_id,
            text: text.clone(),
        });
        // A send fails only when the stream task has just ended; it unregisters itself.
        self.command_streams(user_id, || Command::Message(text.clone()));
    }

    pub(crate) fn command_streams(&mut self, user_id: u64, command: impl Fn() -> Command) -> usize {
        let mut n = 0;
        for stream in self.streams.iter().filter(|s| s.user_id == user_id) {
            if stream.tx.send(command()).is_ok() {
                n += 1;
            }
        }
        n
    }

    pub(crate) fn count(&mut self, endpoint: Endpoint) {
        *self.counts.entry(endpoint).or_default() += 1;
    }
}

/// A TLM shaped like Tracim's (see the project's `tlm/` samples).
pub(crate) fn make_tlm(event_id: u64, event_type: &str, created: SystemTime) -> String {
    let created = time::OffsetDateTime::from(created)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
    let subtype = event_type.rsplit('.').next().unwrap_or("");
    serde_json::json!({
        "event_id": event_id,
        "event_type": event_type,
        "created": created,
        "read": null,
        "fields": {
            "author": { "user_id": 2, "username": "jdoe", "public_name": "John Doe", "is_active": true, "is_deleted": false },
            "workspace": { "workspace_id": 3, "label": "Engineering", "is_deleted": false },
            "content": {
                "content_id": event_id,
                "content_type": subtype,
                "label": format!("Event {event_id}"),
                "raw_content": "<p>été 日本 ✅</p>",
            },
            "client_token": null,
        }
    })
    .to_string()
}
