//! Events built in a test: a TLM's text and the daemon's message carrying it.

use serde_json::{Value, json};
use tracim_daemon_sdk::sim::event_message;

use super::place::Place;

/// A TLM's text.
pub fn tlm(id: u64, event_type: &str, fields: Value) -> String {
    json!({
        "event_id": id,
        "event_type": event_type,
        "created": "2026-11-26T10:00:00.511Z",
        "read": null,
        "fields": fields,
    })
    .to_string()
}

/// A valid `daemon_tracim_event` for a `content.created.file`, authored by user 2.
pub fn valid_event(place: &Place, id: u64) -> Vec<u8> {
    event_message(
        &place.master(),
        &tlm(
            id,
            "content.created.file",
            json!({"author": {"user_id": 2}, "content": {"label": "ok"}}),
        ),
    )
}
