//! A Tracim event: its text kept exactly as received, its id and type read on
//! arrival, and the whole TLM decoded on first use.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::DecodeError;
use super::raw::{self, Lookup, Node};
use super::shape::TlmShape;

/// A Tracim Live Message, decoded. Unknown keys are kept in `extra`, since Tracim
/// adds keys over versions and a client must pass them on. Numbers decode to
/// their value (any size; an exponent is written `1e+2` however it was sent):
/// for their text exactly as sent, use [`Event::lookup`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tlm {
    /// Tracim's id of the event.
    pub event_id: u64,
    /// `entity_type.core_event_type[.sub_type]`, e.g. `content.modified.html-document`.
    pub event_type: String,
    /// When Tracim made the event (ISO 8601).
    #[serde(default)]
    pub created: Option<String>,
    /// When the user read it, usually null.
    #[serde(default)]
    pub read: Option<String>,
    /// The event's payload; which keys it holds depends on the entity.
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// Top-level keys this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Tlm {
    /// The three parts of `event_type`: entity, operation, and the sub type ("" when absent).
    pub fn event_type_parts(&self) -> (&str, &str, &str) {
        split_event_type(&self.event_type)
    }
}

fn split_event_type(event_type: &str) -> (&str, &str, &str) {
    let mut parts = event_type.splitn(3, '.');
    let entity = parts.next().unwrap_or("");
    let operation = parts.next().unwrap_or("");
    let sub = parts.next().unwrap_or("");
    (entity, operation, sub)
}

/// A received Tracim event: the TLM's text exactly as it came, its id and type,
/// and the whole TLM decoded when first asked for.
///
/// Most events match no hook, and matching needs only the type: the receive path
/// checks the event's shape without building its tree of values, which is the
/// larger part of decoding. Cloning is cheap: everything is shared, and hooks
/// get the text byte for byte on stdin.
#[derive(Clone)]
pub struct Event {
    inner: Arc<EventInner>,
}

struct EventInner {
    raw: Arc<str>,
    event_id: u64,
    event_type: Box<str>,
    tlm: std::sync::OnceLock<Tlm>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl fmt::Debug for Event {
    // The payload is other people's text: keep it out of debug output by default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("event_id", &self.id())
            .field("event_type", &self.event_type())
            .field("bytes", &self.raw().len())
            .finish()
    }
}

impl Event {
    /// Checks a TLM's JSON text and keeps it as it is.
    pub fn from_text(text: impl Into<Arc<str>>) -> Result<Self, DecodeError> {
        let raw: Arc<str> = text.into();
        let shape: TlmShape = serde_json::from_str(&raw).map_err(DecodeError::Tlm)?;
        let (event_id, event_type) = (shape.event_id, shape.event_type.into_boxed_str());
        Ok(Event {
            inner: Arc::new(EventInner {
                raw,
                event_id,
                event_type,
                tlm: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The TLM's JSON text exactly as received.
    pub fn raw(&self) -> &str {
        &self.inner.raw
    }

    /// The same text, shared rather than copied (each run's stdin writer holds it).
    pub fn raw_shared(&self) -> Arc<str> {
        self.inner.raw.clone()
    }

    /// The decoded TLM (decoded on first use, then kept).
    pub fn tlm(&self) -> &Tlm {
        let inner = &self.inner;
        inner.tlm.get_or_init(|| {
            // The shape was checked on arrival just as this decodes it, so this
            // succeeds; were it ever not to, the event keeps its id and type.
            serde_json::from_str(&inner.raw).unwrap_or_else(|_e| {
                #[cfg(feature = "client")]
                tracing::warn!(
                    event_id = inner.event_id,
                    "event fields could not be decoded: {_e}"
                );
                Tlm {
                    event_id: inner.event_id,
                    event_type: inner.event_type.to_string(),
                    created: None,
                    read: None,
                    fields: Map::new(),
                    extra: Map::new(),
                }
            })
        })
    }

    /// What a dotted path (`fields.author.username`, `fields.content.tags.0`)
    /// leads to, read from the text as received: a number's text is exactly the
    /// characters the daemon sent, unlike in [`Event::tlm`]'s decoded values.
    pub fn lookup(&self, path: &str) -> Option<Lookup<'_>> {
        self.top_level()?.lookup(path)
    }

    /// Calls `f` with the path and text of every scalar of the event, in the
    /// order of its text (texts as [`Event::lookup`] gives them).
    pub fn for_each_scalar<'a>(&'a self, mut f: impl FnMut(&[Cow<'a, str>], Cow<'a, str>)) {
        raw::for_each_scalar(&self.inner.raw, &mut f);
    }

    /// The event's top-level object, read once: for several lookups and a walk
    /// of one event without reading its whole text again for each.
    pub fn top_level(&self) -> Option<Node<'_>> {
        // The text was checked on arrival: it is one JSON object, perhaps with
        // white space around it.
        Node::of_text(self.inner.raw.trim_ascii())
    }

    /// The event's id.
    pub fn id(&self) -> u64 {
        self.inner.event_id
    }

    /// The event's type, e.g. `content.modified.html-document`.
    pub fn event_type(&self) -> &str {
        &self.inner.event_type
    }

    /// The three parts of the type: entity, operation, and the sub type ("" when absent).
    pub fn event_type_parts(&self) -> (&str, &str, &str) {
        split_event_type(self.event_type())
    }
}
