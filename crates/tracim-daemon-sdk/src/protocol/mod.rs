//! The TracimDaemon wire protocol: typed messages, and their encoding and decoding.
//!
//! Every message is one JSON object per connection: `{"path", "type", "data"}`. The
//! facts here follow what the daemon really sends (observed on the wire; the
//! README's "The TracimDaemon protocol" sums them up), not the SDK README: type names carry the `daemon_` prefix, `pid`
//! is a string, and `data` of `daemon_tracim_event` is a *string* holding the TLM.

mod event;
mod raw;
mod shape;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

pub use event::{Event, Tlm};
pub use raw::{Lookup, Node};

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
mod tests;
