//! The TracimDaemon wire protocol: typed messages, and their encoding and decoding.
//!
//! Every message is one JSON object per connection: `{"path", "type", "data"}`. The
//! facts here follow what the daemon really sends (observed on the wire; the
//! README's "The TracimDaemon protocol" sums them up), not the SDK README: type names carry the `daemon_` prefix, `pid`
//! is a string, and `data` of `daemon_tracim_event` is a *string* holding the TLM.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The daemon reads a client's message with a single `read()` of 4096 bytes, so
/// everything we send it must fit strictly below that.
pub const MAX_TO_DAEMON: usize = 4095;

/// A client as the daemon lists it: its socket and its pid (a string on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client's own socket, where the daemon delivers to it.
    pub path: String,
    /// The client's pid, as a decimal string.
    pub pid: String,
}

/// The account the daemon is logged in to Tracim with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Tracim's user id of that account, a string on the wire.
    pub user_id: String,
}

/// One message of the protocol, in either direction.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `daemon_client_add`: a client registers (or refreshes) itself.
    ClientAdd(ClientInfo),
    /// `daemon_client_delete`: a client unregisters.
    ClientDelete(ClientInfo),
    /// `daemon_ping`: the daemon checks a client is alive (or a client the daemon).
    Ping,
    /// `daemon_pong`: the answer to a ping.
    Pong,
    /// `daemon_ack`: the daemon's answer to a pong or an unknown type.
    Ack,
    /// `daemon_get_clients`: ask the daemon which clients it has.
    GetClients,
    /// `daemon_clients`: the answer to `daemon_get_clients`.
    Clients(Vec<ClientInfo>),
    /// `daemon_get_account_info`: ask the daemon which account it uses.
    GetAccountInfo,
    /// `daemon_account_info`: the answer to a registration or to `daemon_get_account_info`.
    AccountInfo(AccountInfo),
    /// `daemon_tracim_event`: one Tracim Live Message.
    TracimEvent(Event),
    /// `daemon_client_added`: another (or this) client registered.
    ClientAdded(ClientInfo),
    /// `daemon_client_deleted`: a client unregistered.
    ClientDeleted(ClientInfo),
    /// Any other type, `daemon_do_request` and `daemon_request_result` included
    /// (broken upstream), kept as it came.
    Other {
        /// The `type` as sent.
        kind: String,
        /// The `data` as sent, if any.
        data: Option<Value>,
    },
}

impl Message {
    /// The wire name of this message's type.
    pub fn kind(&self) -> &str {
        match self {
            Message::ClientAdd(_) => "daemon_client_add",
            Message::ClientDelete(_) => "daemon_client_delete",
            Message::Ping => "daemon_ping",
            Message::Pong => "daemon_pong",
            Message::Ack => "daemon_ack",
            Message::GetClients => "daemon_get_clients",
            Message::Clients(_) => "daemon_clients",
            Message::GetAccountInfo => "daemon_get_account_info",
            Message::AccountInfo(_) => "daemon_account_info",
            Message::TracimEvent(_) => "daemon_tracim_event",
            Message::ClientAdded(_) => "daemon_client_added",
            Message::ClientDeleted(_) => "daemon_client_deleted",
            Message::Other { kind, .. } => kind,
        }
    }
}

/// A message with the socket of its sender, as it travels.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The sender's socket: the daemon answers there.
    pub path: String,
    /// The `type` and its `data`, decoded together.
    pub message: Message,
}

/// A Tracim Live Message, decoded. Unknown keys are kept in `extra`, since Tracim
/// adds keys over versions and a client must pass them on.
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

    /// Looks up a dotted path (`fields.author.username`, `fields.content.sub_content_types.0`).
    /// Numeric parts index arrays.
    pub fn lookup(&self, path: &str) -> Option<Lookup<'_>> {
        let mut parts = path.split('.');
        let first = parts.next()?;
        let mut current: &Value = match first {
            "event_id" => return parts.next().is_none().then_some(Lookup::Id(self.event_id)),
            "event_type" => {
                return parts
                    .next()
                    .is_none()
                    .then_some(Lookup::Str(&self.event_type));
            }
            "created" | "read" => {
                let value = if first == "created" {
                    &self.created
                } else {
                    &self.read
                };
                return parts.next().is_none().then_some(match value {
                    Some(text) => Lookup::Str(text),
                    None => Lookup::Value(&NULL),
                });
            }
            "fields" => self.fields.get(parts.next()?)?,
            other => self.extra.get(other)?,
        };
        for part in parts {
            current = match current {
                Value::Object(map) => map.get(part)?,
                Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(Lookup::Value(current))
    }
}

static NULL: Value = Value::Null;

fn split_event_type(event_type: &str) -> (&str, &str, &str) {
    let mut parts = event_type.splitn(3, '.');
    let entity = parts.next().unwrap_or("");
    let operation = parts.next().unwrap_or("");
    let sub = parts.next().unwrap_or("");
    (entity, operation, sub)
}

/// What a path into an event holds.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// The event id.
    Id(u64),
    /// A string the event holds directly.
    Str(&'a str),
    /// Any JSON value.
    Value(&'a Value),
}

impl Lookup<'_> {
    /// The text of a scalar as a hook's environment shows it: strings as they are,
    /// numbers as JSON text, `true`/`false`, null as empty. Objects and arrays have none.
    pub fn scalar_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match self {
            Lookup::Id(id) => Some(Cow::Owned(id.to_string())),
            Lookup::Str(s) => Some(Cow::Borrowed(s)),
            Lookup::Value(v) => scalar_text(v),
        }
    }
}

/// The text of a JSON scalar as hooks and conditions see it: strings as they are,
/// numbers as JSON text, `true`/`false`, null as empty. Objects and arrays have none.
pub fn scalar_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null => Some(Cow::Borrowed("")),
        Value::Array(_) | Value::Object(_) => None,
    }
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

/// What the receive path checks of a TLM: exactly what decoding it into a
/// [`Tlm`] will need, without building any value. Every value, known key or
/// not, goes through `deserialize_any`, so serde_json's nesting limit and
/// number ranges hold here as they do when the TLM is decoded whole: an event
/// accepted now decodes later.
struct TlmShape {
    event_id: u64,
    event_type: String,
}

impl<'de> Deserialize<'de> for TlmShape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TlmShape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Tracim Live Message (an object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TlmShape, A::Error> {
                use serde::de::Error;
                let (mut event_id, mut event_type) = (None, None);
                let mut seen = [false; 5];
                while let Some(key) = map.next_key::<TlmKey>()? {
                    if let Some(i) = key.known() {
                        if std::mem::replace(&mut seen[i], true) {
                            return Err(A::Error::custom(format_args!(
                                "duplicate field `{}`",
                                TlmKey::NAMES[i]
                            )));
                        }
                    }
                    match key {
                        TlmKey::EventId => event_id = Some(map.next_value::<u64>()?),
                        TlmKey::EventType => event_type = Some(map.next_value::<String>()?),
                        TlmKey::Created | TlmKey::Read => {
                            map.next_value::<Option<String>>()?;
                        }
                        TlmKey::Fields => {
                            map.next_value::<AnyObject>()?;
                        }
                        TlmKey::Other => map.next_value_seed(Skip)?,
                    }
                }
                Ok(TlmShape {
                    event_id: event_id.ok_or_else(|| A::Error::missing_field("event_id"))?,
                    event_type: event_type.ok_or_else(|| A::Error::missing_field("event_type"))?,
                })
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A top-level key of a TLM, read without allocating.
#[derive(Clone, Copy)]
enum TlmKey {
    EventId,
    EventType,
    Created,
    Read,
    Fields,
    Other,
}

impl TlmKey {
    const NAMES: [&'static str; 5] = ["event_id", "event_type", "created", "read", "fields"];

    fn known(self) -> Option<usize> {
        (!matches!(self, TlmKey::Other)).then_some(self as usize)
    }
}

impl<'de> Deserialize<'de> for TlmKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TlmKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<TlmKey, E> {
                Ok(match key {
                    "event_id" => TlmKey::EventId,
                    "event_type" => TlmKey::EventType,
                    "created" => TlmKey::Created,
                    "read" => TlmKey::Read,
                    "fields" => TlmKey::Fields,
                    _ => TlmKey::Other,
                })
            }
        }
        d.deserialize_identifier(Visitor)
    }
}

/// A JSON object, its contents checked and dropped.
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AnyObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AnyObject, A::Error> {
                while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    map.next_value_seed(Skip)?;
                }
                Ok(AnyObject)
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Any JSON value, checked and dropped. Unlike `IgnoredAny` it goes through
/// `deserialize_any`, so serde_json's nesting limit holds here as it does when
/// the TLM is decoded whole: what is accepted now decodes later.
struct Skip;

impl<'de> serde::de::DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> serde::de::Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
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

/// Why bytes could not be read as a message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not UTF-8.
    #[error("not UTF-8: {0}")]
    Utf8(#[source] std::str::Utf8Error),
    /// Not a JSON object of the envelope's shape.
    #[error("not a daemon message: {0}")]
    Envelope(#[source] serde_json::Error),
    /// The envelope is fine but its `data` does not fit its `type`.
    #[error("bad data for {kind}: {source}")]
    Data {
        /// The message's `type`.
        kind: String,
        /// Where and how the `data` differs from what that type carries.
        #[source]
        source: serde_json::Error,
    },
    /// `data` should have held a TLM and does not.
    #[error("bad Tracim event: {0}")]
    Tlm(#[source] serde_json::Error),
}

impl DecodeError {
    /// A short stable name of the kind of error, for rate-limited logging.
    pub fn category(&self) -> &'static str {
        match self {
            DecodeError::Utf8(_) => "message not in UTF-8",
            DecodeError::Envelope(_) => "malformed message",
            DecodeError::Data { .. } => "message with bad data",
            DecodeError::Tlm(_) => "malformed Tracim event",
        }
    }
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

impl Envelope {
    /// Makes an envelope.
    pub fn new(path: impl Into<String>, message: Message) -> Self {
        Envelope {
            path: path.into(),
            message,
        }
    }

    /// Decodes one message as received on a connection.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        // serde_json skips unknown keys without checking their UTF-8: check it all.
        let text = std::str::from_utf8(bytes).map_err(DecodeError::Utf8)?;
        let raw: RawEnvelope<'_> = serde_json::from_str(text).map_err(DecodeError::Envelope)?;
        let message = decode_message(raw.kind, raw.data)?;
        Ok(Envelope {
            path: raw.path,
            message,
        })
    }

    /// Encodes the message as one JSON object, `data` left out when there is none
    /// (as the daemon does).
    pub fn encode(&self) -> Vec<u8> {
        let data: Option<Value> = match &self.message {
            Message::ClientAdd(c)
            | Message::ClientDelete(c)
            | Message::ClientAdded(c)
            | Message::ClientDeleted(c) => Some(to_value(c)),
            Message::Clients(list) => Some(to_value(list)),
            Message::AccountInfo(info) => Some(to_value(info)),
            Message::TracimEvent(event) => Some(Value::String(event.raw().to_owned())),
            Message::Other { data, .. } => data.clone(),
            Message::Ping
            | Message::Pong
            | Message::Ack
            | Message::GetClients
            | Message::GetAccountInfo => None,
        };
        #[derive(Serialize)]
        struct Wire<'a> {
            path: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            data: Option<Value>,
        }
        let wire = Wire {
            path: &self.path,
            kind: self.message.kind(),
            data,
        };
        // Serializing strings and JSON values cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn decode_message(kind: String, data: Option<&RawValue>) -> Result<Message, DecodeError> {
    fn parse<'a, T: Deserialize<'a>>(
        kind: &str,
        data: Option<&'a RawValue>,
    ) -> Result<T, DecodeError> {
        let text = data.map(RawValue::get).unwrap_or("null");
        serde_json::from_str(text).map_err(|source| DecodeError::Data {
            kind: kind.to_owned(),
            source,
        })
    }
    let message = match kind.as_str() {
        "daemon_client_add" => Message::ClientAdd(parse(&kind, data)?),
        "daemon_client_delete" => Message::ClientDelete(parse(&kind, data)?),
        "daemon_ping" => Message::Ping,
        "daemon_pong" => Message::Pong,
        "daemon_ack" => Message::Ack,
        "daemon_get_clients" => Message::GetClients,
        "daemon_clients" => {
            let list: Option<Vec<ClientInfo>> = parse(&kind, data)?;
            Message::Clients(list.unwrap_or_default())
        }
        "daemon_get_account_info" => Message::GetAccountInfo,
        "daemon_account_info" => Message::AccountInfo(parse(&kind, data)?),
        "daemon_client_added" => Message::ClientAdded(parse(&kind, data)?),
        "daemon_client_deleted" => Message::ClientDeleted(parse(&kind, data)?),
        "daemon_tracim_event" => Message::TracimEvent(decode_event(&kind, data)?),
        _ => Message::Other {
            data: match data {
                Some(raw) => Some(parse(&kind, Some(raw))?),
                None => None,
            },
            kind,
        },
    };
    Ok(message)
}

/// The daemon sends the TLM as a JSON string; an object is taken too, as its text.
fn decode_event(kind: &str, data: Option<&RawValue>) -> Result<Event, DecodeError> {
    let Some(raw) = data else {
        return Err(DecodeError::Data {
            kind: kind.to_owned(),
            source: serde::de::Error::custom("no data"),
        });
    };
    let text = raw.get();
    if text.starts_with('"') {
        let tlm_text: String = parse_str(kind, text)?;
        Event::from_text(tlm_text)
    } else if text.starts_with('{') {
        Event::from_text(text)
    } else {
        Err(DecodeError::Data {
            kind: kind.to_owned(),
            source: serde::de::Error::custom("expected the TLM as a string or an object"),
        })
    }
}

fn parse_str(kind: &str, text: &str) -> Result<String, DecodeError> {
    serde_json::from_str(text).map_err(|source| DecodeError::Data {
        kind: kind.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIRE_EVENT: &[u8] = include_bytes!("../tests/fixtures/wire/tracim_event.json");

    #[test]
    fn decodes_every_wire_capture() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wire");
        let expected = [
            ("account_info.json", "daemon_account_info"),
            ("ack.json", "daemon_ack"),
            ("client_added.json", "daemon_client_added"),
            ("client_deleted.json", "daemon_client_deleted"),
            ("clients.json", "daemon_clients"),
            ("ping.json", "daemon_ping"),
            ("pong.json", "daemon_pong"),
            ("tracim_event.json", "daemon_tracim_event"),
        ];
        for (file, kind) in expected {
            let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
            let envelope = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(envelope.message.kind(), kind, "{file}");
            assert_eq!(envelope.path, "/home/user/.config/TracimDaemon/master.sock");
        }
    }

    #[test]
    fn event_string_is_unescaped_once_and_kept_verbatim() {
        let envelope = Envelope::decode(WIRE_EVENT).unwrap();
        let Message::TracimEvent(event) = envelope.message else {
            panic!("not an event")
        };
        assert_eq!(event.id(), 2);
        assert_eq!(event.event_type(), "mention.created");
        // Go's \u003c escapes are undone by the string decoding, and the inner
        // escapes (\" and \u00e9) stay as the TLM's own text.
        assert!(event.raw().contains(r#""raw_content":"<p>hi @hooks</p>""#));
        assert!(event.raw().contains(r#"John \"Q\" Doe \u00e9"#));
        let author = event.tlm().lookup("fields.author.public_name").unwrap();
        assert_eq!(author.scalar_text().unwrap(), "John \"Q\" Doe é");
    }

    #[test]
    fn event_as_object_is_taken_too() {
        let bytes = br#"{"path":"/m","type":"daemon_tracim_event","data":{"event_id":5,"event_type":"user.created","fields":{}}}"#;
        let Message::TracimEvent(event) = Envelope::decode(bytes).unwrap().message else {
            panic!()
        };
        assert_eq!(event.id(), 5);
        assert_eq!(
            event.raw(),
            r#"{"event_id":5,"event_type":"user.created","fields":{}}"#
        );
    }

    #[test]
    fn registration_is_encoded_as_the_daemon_expects() {
        let msg = Envelope::new(
            "/run/user/1000/tracim-hooks.sock",
            Message::ClientAdd(ClientInfo {
                path: "/run/user/1000/tracim-hooks.sock".into(),
                pid: "4241".into(),
            }),
        );
        assert_eq!(
            String::from_utf8(msg.encode()).unwrap(),
            r#"{"path":"/run/user/1000/tracim-hooks.sock","type":"daemon_client_add","data":{"path":"/run/user/1000/tracim-hooks.sock","pid":"4241"}}"#
        );
        let ping = Envelope::new("/m", Message::Pong);
        assert_eq!(ping.encode(), br#"{"path":"/m","type":"daemon_pong"}"#);
    }

    #[test]
    fn round_trips_every_kind() {
        let event = Event::from_text(r#"{"event_id":1,"event_type":"a.b","fields":{}}"#).unwrap();
        let info = ClientInfo {
            path: "/p".into(),
            pid: "1".into(),
        };
        let messages = [
            Message::ClientAdd(info.clone()),
            Message::ClientDelete(info.clone()),
            Message::Ping,
            Message::Pong,
            Message::Ack,
            Message::GetClients,
            Message::Clients(vec![info.clone()]),
            Message::GetAccountInfo,
            Message::AccountInfo(AccountInfo {
                user_id: "1".into(),
            }),
            Message::TracimEvent(event),
            Message::ClientAdded(info.clone()),
            Message::ClientDeleted(info),
            Message::Other {
                kind: "daemon_do_request".into(),
                data: Some(serde_json::json!({"x": 1})),
            },
        ];
        for message in messages {
            let envelope = Envelope::new("/m", message);
            assert_eq!(Envelope::decode(&envelope.encode()).unwrap(), envelope);
        }
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"garbage",
            b"{\"path\":\"/m\",\"type\":\"daemon_tracim_event\",\"data\":\"{\\\"event_id\\\":1,\\\"",
            br#"{"path":"/m","type":"daemon_tracim_event","data":5}"#,
            br#"{"path":"/m","type":"daemon_tracim_event","data":"{\"event_id\":1,\"fields\":{}}"}"#,
            br#"{"path":"/m","type":"daemon_tracim_event","data":"{\"event_id\":1,\"event_type\":7,\"fields\":{}}"}"#,
            br#"{"path":"/m","type":"daemon_tracim_event","data":"{\"event_id\":1,\"event_type\":\"a\",\"fields\":[]}"}"#,
            br#"{"path":"/m","type":"daemon_tracim_event","data":"not json"}"#,
            br#"{"path":"/m","type":"daemon_tracim_event"}"#,
            b"{\"path\":\"/m\",\"type\":\"daemon_ping\",\"x\":\"\xff\xfe\"}",
            br#"{"path":"/m","type":"daemon_client_add","data":{"path":"/c","pid":42}}"#,
            br#"[1,2,3]"#,
        ];
        for case in cases {
            assert!(
                Envelope::decode(case).is_err(),
                "{:?} decoded",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn what_the_arrival_check_accepts_decodes_whole() {
        // Each case says whether it is an event: the check on arrival and the
        // whole decoding must both say so, so that an event taken on arrival
        // never fails to decode later, and the refusals stay refused.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases = [
            (
                r#"{"event_id":1,"event_type":"a.b","fields":{"x":1}}"#.to_owned(),
                true,
            ),
            (
                format!(r#"{{"event_id":1,"event_type":"a.b","fields":{{}},"z":{deep}}}"#),
                false,
            ),
            (
                format!(r#"{{"event_id":1,"event_type":"a.b","fields":{{"x":{deep}}}}}"#),
                false,
            ),
            (
                r#"{"event_id":1,"event_type":"a.b","fields":{},"z":1e400}"#.to_owned(),
                false,
            ),
            (
                r#"{"event_id":1,"event_type":"a.b","fields":{"x":-1e400}}"#.to_owned(),
                false,
            ),
            (
                r#"{"event_id":1,"event_type":"a.b","fields":null}"#.to_owned(),
                false,
            ),
            (
                r#"{"event_id":1,"event_type":"a.b","created":5,"fields":{}}"#.to_owned(),
                false,
            ),
            (
                r#"{"event_id":1,"event_type":"a.b","read":null}"#.to_owned(),
                true,
            ),
            (
                r#"{"event_id":1,"event_id":2,"event_type":"a.b"}"#.to_owned(),
                false,
            ),
            (
                r#"{"event_id":1,"event_type":"a.b","z":1,"z":2}"#.to_owned(),
                true,
            ),
            (r#"{"event_id":1,"event_type":"a.b"}"#.to_owned(), true),
        ];
        for (case, is_event) in cases {
            let arrival = Event::from_text(case.as_str());
            let whole = serde_json::from_str::<Tlm>(&case);
            assert_eq!(
                arrival.is_ok(),
                is_event,
                "on arrival: {case:.80}: {arrival:?}"
            );
            assert_eq!(whole.is_ok(), is_event, "whole: {case:.80}: {whole:?}");
        }
        // A key written with escapes is the same key, on arrival and whole.
        let text = r#"{"event\u005fid":7,"\u0065vent_type":"a.b","fields":{"\u0078":1}}"#;
        assert!(text.contains("\\u005f"));
        let escaped = Event::from_text(text).unwrap();
        assert_eq!(escaped.id(), 7);
        assert_eq!(escaped.event_type(), "a.b");
        assert_eq!(escaped.tlm().fields["x"], 1);
    }

    #[test]
    fn unknown_keys_are_kept() {
        let event =
            Event::from_text(r#"{"event_id":1,"event_type":"a.b","fields":{},"new_key":[1]}"#)
                .unwrap();
        assert_eq!(event.tlm().extra["new_key"], serde_json::json!([1]));
        assert_eq!(event.tlm().event_type_parts(), ("a", "b", ""));
        assert!(matches!(
            event.tlm().lookup("new_key.0"),
            Some(Lookup::Value(v)) if v == 1
        ));
    }

    #[test]
    fn lookup_walks_paths() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/content.created.file.json"
        ))
        .unwrap();
        let event = Event::from_text(text).unwrap();
        let tlm = event.tlm();
        let text_of = |p: &str| {
            tlm.lookup(p)
                .and_then(|l| l.scalar_text().map(|c| c.into_owned()))
        };
        assert_eq!(text_of("event_id").as_deref(), Some("107"));
        assert_eq!(
            text_of("fields.workspace.label").as_deref(),
            Some("Engineering")
        );
        assert_eq!(text_of("fields.content.size").as_deref(), Some("48213"));
        assert_eq!(text_of("fields.author.is_active").as_deref(), Some("true"));
        assert_eq!(text_of("read").as_deref(), Some(""));
        assert_eq!(text_of("fields.content.sub_content_types.0"), None);
        assert_eq!(text_of("fields.nope.x"), None);
        assert_eq!(text_of("fields.content"), None);
    }
}
