//! The crate's log records captured in-process: a tracing layer installed once
//! per test binary, and the records of one hook read back. Tests in one binary
//! share it, so each tells its records apart by hook names of its own.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, Once};

use tracing_subscriber::layer::SubscriberExt;

/// One captured log event of the crate.
#[derive(Debug, Clone)]
pub struct Log {
    pub level: tracing::Level,
    pub message: String,
    pub fields: BTreeMap<&'static str, String>,
}

impl Log {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

static LOGS: Mutex<Vec<Log>> = Mutex::new(Vec::new());

struct Capture;

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<&'static str, String>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields.insert(field.name(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.insert(field.name(), format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        if !meta.target().starts_with("tracim_hooks") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        LOGS.lock().unwrap_or_else(|p| p.into_inner()).push(Log {
            level: *meta.level(),
            message: fields.message,
            fields: fields.fields,
        });
    }
}

/// Installs the capturing subscriber (once for the whole test binary).
pub fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
    });
}

/// The captured records naming this hook, in the order they were logged.
pub fn logs_of(hook: &str) -> Vec<Log> {
    LOGS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|l| l.get("hook") == Some(hook))
        .cloned()
        .collect()
}

/// The captured output lines of this hook on one stream ("stdout", "stderr").
pub fn stream_lines(hook: &str, stream: &str) -> Vec<Log> {
    logs_of(hook)
        .into_iter()
        .filter(|l| l.get("stream") == Some(stream))
        .collect()
}
