//! One Tracim Live Message as received: its id and its JSON text, untouched.

use serde::Deserialize;

/// A Tracim Live Message (TLM): its `event_id` and its JSON text exactly as Tracim sent it
/// (what the daemon path hands on too, so hooks see the same bytes whichever way it came).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlmEvent {
    /// Tracim's event id (one global sequence: one user's ids have gaps).
    pub event_id: u64,
    /// The TLM's JSON text.
    pub tlm: String,
}

/// The only fields the client itself reads of a TLM.
#[derive(Deserialize)]
struct Head<'a> {
    event_id: u64,
    #[serde(borrow, default)]
    created: Option<&'a str>,
}

impl TlmEvent {
    /// Reads the id of a TLM's JSON text; refuses text that is not a TLM.
    pub fn from_json(tlm: String) -> Result<Self, String> {
        let event_id = serde_json::from_str::<Head>(&tlm)
            .map_err(|e| format!("not a TLM ({e})"))?
            .event_id;
        Ok(Self { event_id, tlm })
    }

    /// When Tracim created the event (`created`, RFC 3339), as seconds since the epoch;
    /// `None` when the field is missing or unreadable.
    pub fn created_unix(&self) -> Option<i64> {
        let head = serde_json::from_str::<Head>(&self.tlm).ok()?;
        let created = head.created?;
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_id_and_created_and_keeps_the_text() {
        let text = r#"{"event_id": 110, "event_type": "content.created.comment", "created": "2026-11-26T10:00:00.511Z", "fields": {}}"#;
        let ev = TlmEvent::from_json(text.to_string()).expect("a TLM");
        assert_eq!(ev.event_id, 110);
        assert_eq!(ev.tlm, text);
        assert_eq!(ev.created_unix(), Some(1_795_687_200));
        let python = TlmEvent::from_json(
            r#"{"event_id":1,"created":"2026-11-26T10:00:00.511000+00:00"}"#.into(),
        );
        assert_eq!(python.expect("a TLM").created_unix(), Some(1_795_687_200));
        assert!(TlmEvent::from_json("{}".into()).is_err());
        assert!(TlmEvent::from_json("not json".into()).is_err());
        let no_date = TlmEvent::from_json(r#"{"event_id":2}"#.into()).expect("a TLM");
        assert_eq!(no_date.created_unix(), None);
    }
}
