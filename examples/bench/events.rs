//! Events and messages: the samples, fresh ids, and envelopes made ahead.

use crate::*;

/// The TLM fixtures of the tests: (name, text).
pub(crate) fn fixtures() -> Result<Vec<(String, String)>, String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/samples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{dir}: {e}"))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let name = path.file_stem().unwrap_or_default().to_string_lossy();
            out.push((name.into_owned(), text));
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(format!("no TLM fixtures in {dir}"));
    }
    Ok(out)
}

/// The TLM text with its `event_id` number replaced, the rest byte for byte.
pub(crate) fn with_id(tlm: &str, id: u64) -> String {
    let key = "\"event_id\"";
    let at = tlm.find(key).expect("a TLM has an event_id") + key.len();
    let colon = at + tlm[at..].find(':').expect("event_id: value");
    let value = colon + 1 + (tlm[colon + 1..].len() - tlm[colon + 1..].trim_start().len());
    let digits = tlm[value..].bytes().take_while(u8::is_ascii_digit).count();
    format!("{}{id}{}", &tlm[..value], &tlm[value + digits..])
}

/// A TLM of another type, made from a fixture.
pub(crate) fn retyped(tlm: &str, event_type: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(tlm).expect("fixture is JSON");
    value["event_type"] = event_type.into();
    value.to_string()
}

/// A `daemon_tracim_event` message as the daemon sends it, cut around the event
/// id so that each message sent can have an id of its own.
pub(crate) struct Template {
    pub(crate) prefix: Vec<u8>,
    pub(crate) suffix: Vec<u8>,
}

impl Template {
    const PLACEHOLDER: u64 = 987_654_321_987_654_321;

    pub(crate) fn new(master: &Path, tlm: &str) -> Template {
        let bytes = sim::event_message(master, &with_id(tlm, Self::PLACEHOLDER));
        let needle = Self::PLACEHOLDER.to_string();
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .expect("placeholder in message");
        let template = Template {
            prefix: bytes[..at].to_vec(),
            suffix: bytes[at + needle.len()..].to_vec(),
        };
        match Envelope::decode(&template.message(42)).map(|e| e.message) {
            Ok(Message::TracimEvent(event)) if event.id() == 42 => template,
            other => panic!("template does not decode as an event: {other:?}"),
        }
    }

    pub(crate) fn message(&self, id: u64) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.prefix.len() + self.suffix.len() + 20);
        bytes.extend_from_slice(&self.prefix);
        let _ = write!(bytes, "{id}");
        bytes.extend_from_slice(&self.suffix);
        bytes
    }
}

pub(crate) fn templates<S: AsRef<str>>(master: &Path, tlms: &[S]) -> Arc<Vec<Template>> {
    Arc::new(
        tlms.iter()
            .map(|t| Template::new(master, t.as_ref()))
            .collect(),
    )
}

/// `n` event ids never used before in this run.
pub(crate) fn fresh_ids(n: usize) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1_000_000);
    NEXT.fetch_add(n as u64 + 1, Ordering::Relaxed)
}

pub(crate) fn decoded_events(tlms: &[String]) -> Vec<Event> {
    tlms.iter()
        .map(|t| Event::from_text(t.as_str()).expect("fixture decodes"))
        .collect()
}
