//! Figures of the journal for the benchmark (`examples/journal_bench.rs`): what the
//! caller's path costs per event and how many events per second the writer commits.
//! No test asserts on them: the machine is shared and its speed varies.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Exit, JournalError, JournalSettings, NewEvent, RunEnd, SyncMode, open};

/// What one measurement saw.
#[derive(Debug, Clone)]
pub struct WriterFigures {
    /// Events recorded.
    pub events: u64,
    /// Runs per event (each also started and ended).
    pub runs_per_event: usize,
    /// The sync mode.
    pub sync: SyncMode,
    /// Time spent in `admit` + `record` (+ `started` + `ended`) on the caller's side.
    pub caller: Duration,
    /// From the first record until `flush` said all is durable.
    pub until_durable: Duration,
    /// The database file's size afterwards, with its write-ahead log.
    pub file_bytes: u64,
}

impl WriterFigures {
    /// Events committed per second, caller and writer together.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.until_durable.as_secs_f64()
    }

    /// Nanoseconds per event on the caller's path.
    pub fn caller_ns_per_event(&self) -> f64 {
        self.caller.as_nanos() as f64 / self.events as f64
    }
}

/// Records `events` events of `text` into a new journal in `dir`, each with
/// `runs_per_event` runs that start and end, as fast as it can, then flushes.
pub fn measure_writer(
    dir: &Path,
    sync: SyncMode,
    events: u64,
    runs_per_event: usize,
    text: &str,
) -> Result<WriterFigures, JournalError> {
    let path = dir.join(format!("measure-{sync:?}.db"));
    let settings = JournalSettings {
        sync,
        max_events: events.max(1),
        ..JournalSettings::at(&path)
    };
    let opened = open(&settings)?;
    let journal = opened.journal;
    let text: Arc<str> = Arc::from(text);
    let hooks: Vec<String> = (0..runs_per_event).map(|i| format!("hook-{i}")).collect();
    let start = Instant::now();
    let mut caller = Duration::ZERO;
    for id in 1..=events {
        let t = Instant::now();
        if journal.admit(id) {
            let runs = journal.record(
                NewEvent {
                    id,
                    event_type: "content.modified.html-document".to_owned(),
                    received: SystemTime::now(),
                    text: text.clone(),
                },
                &hooks,
            );
            for run in runs {
                journal.started(run, 1);
                journal.ended(
                    run,
                    1,
                    RunEnd {
                        exit: Exit::Code(0),
                        timed_out: false,
                        stdout_tail: "done\n".to_owned(),
                        stderr_tail: String::new(),
                        retry: false,
                    },
                );
            }
        }
        caller += t.elapsed();
    }
    journal.flush()?;
    let until_durable = start.elapsed();
    let file_bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut name = path.as_os_str().to_os_string();
            name.push(suffix);
            std::fs::metadata(name).ok()
        })
        .map(|m| m.len())
        .sum();
    journal.close()?;
    Ok(WriterFigures {
        events,
        runs_per_event,
        sync,
        caller,
        until_durable,
        file_bytes,
    })
}
