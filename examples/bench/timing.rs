//! The runner's timing records (`tracim_hooks::timing`), collected for the figures.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const TARGET: &str = "tracim_hooks::timing";

static DECISIONS: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
static SPAWNS: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

fn take<T>(records: &Mutex<Vec<T>>) -> Vec<T> {
    std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()))
}

/// `(event id, when its hooks were decided)` since the last call.
pub fn take_decisions() -> Vec<(u64, Instant)> {
    take(&DECISIONS)
}

/// Arrival-to-spawn delays since the last call.
pub fn take_spawn_latency() -> Vec<Duration> {
    take(&SPAWNS)
}

#[derive(Default)]
struct Fields {
    event_id: Option<u64>,
    since_arrival_us: Option<u64>,
}

impl tracing::field::Visit for Fields {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "event_id" => self.event_id = Some(value),
            "since_arrival_us" => self.since_arrival_us = Some(value),
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

pub struct Layer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let at = Instant::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        fn push<T>(records: &Mutex<Vec<T>>, record: T) {
            records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(record)
        }
        match (fields.event_id, fields.since_arrival_us) {
            (_, Some(us)) => push(&SPAWNS, Duration::from_micros(us)),
            (Some(id), None) => push(&DECISIONS, (id, at)),
            (None, None) => {}
        }
    }
}
