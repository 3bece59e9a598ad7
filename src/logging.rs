//! Log setup: the journal's native protocol under systemd, plain lines on stderr
//! otherwise.
//!
//! Under systemd (`JOURNAL_STREAM` names our stderr) each record goes to journald
//! with its priority and its fields, so `journalctl -p warning` and
//! `journalctl HOOK_NAME=x` work. Records about a run are made inside a [`run_span`],
//! whose fields (`HOOK_NAME`, `EVENT_TYPE`, then `EXIT_STATUS`) journald adds to
//! each; their own `event_id` field becomes `EVENT_ID`. On stderr the run spans are
//! left out: the records name the hook and the event in their own fields already.
//! Lines on stderr carry no colours and no timestamps when it is not a terminal.

use std::io::IsTerminal;

use tracing::Metadata;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The variable holding an `EnvFilter` directive, e.g. `tracim_hooks=debug`.
pub const LOG_ENV: &str = "TRACIM_HOOKS_LOG";

/// The target of [`run_span`]s.
const RUN_TARGET: &str = "tracim_hooks::run";

/// Installs the global subscriber. `verbosity` counts `-v` up and `-q` down from
/// `info`; `TRACIM_HOOKS_LOG`, when set, wins.
pub fn init(verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // -v is about this program and its SDK: other crates (globset, say) stay at
    // warnings.
    let others = if level == "error" { "error" } else { "warn" };
    let filter = std::env::var(LOG_ENV)
        .ok()
        .and_then(|directive| EnvFilter::try_new(directive).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "{others},tracim_hooks={level},tracim_daemon_sdk={level}"
            ))
        });
    let journal_stream = std::env::var("JOURNAL_STREAM").ok();
    // No journald socket (a container without one): stderr, as before.
    let journald = journal_stream
        .as_deref()
        .filter(|value| names_stderr(value))
        .and_then(|_| tracing_journald::layer().ok())
        .map(|layer| {
            layer
                .with_field_prefix(None)
                .with_priority_mappings(priorities())
        });
    let plain = journal_stream.is_some() || !std::io::stderr().is_terminal();
    let stderr = journald.is_none().then(|| {
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(!plain);
        let fmt = if plain {
            fmt.without_time().boxed()
        } else {
            fmt.boxed()
        };
        fmt.with_filter(filter_fn(|meta| !is_run_span(meta)))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .try_init();
}

/// Levels as syslog priorities: info is 6 ("info"), not 5 ("notice"), so that
/// `journalctl -p notice` shows only what needs a look.
fn priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    tracing_journald::PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

pub(crate) fn is_run_span(meta: &Metadata<'_>) -> bool {
    meta.is_span() && meta.target() == RUN_TARGET
}

/// Whether `JOURNAL_STREAM` (`device:inode`, set by systemd for a unit whose
/// stderr it connects to the journal) names the file our stderr is. A child of
/// such a unit may inherit the variable with another stderr: it then logs to
/// that stderr.
fn names_stderr(value: &str) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = parse_journal_stream(value) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The span every record about a run is made in. Its level is ERROR only so that
/// no verbosity drops it (and its fields off the records in it); a span prints
/// nothing itself. `exit_status` and `exit_code` are filled by [`record_exit`].
pub fn run_span(hook: &str, event_type: &str) -> tracing::Span {
    tracing::error_span!(
        target: RUN_TARGET,
        // A root span: one entered while another run's span is (a run started
        // from the end of another) must not carry that one's fields too.
        parent: None,
        "run",
        hook_name = hook,
        event_type,
        exit_status = tracing::field::Empty,
        exit_code = tracing::field::Empty,
    )
}

/// Adds how a run ended to its span, as systemd says it of a unit's process:
/// `EXIT_CODE=exited` with the code, or `killed` with the signal's number (see
/// `Exit::as_systemd`).
pub fn record_exit(span: &tracing::Span, code: &'static str, status: i32) {
    span.record("exit_code", code);
    span.record("exit_status", status);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream(""), None);
    }

    #[test]
    fn journal_stream_must_name_this_stderr() {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        // Some other file never matches.
        let other = tempfile::tempfile().unwrap().metadata().unwrap();
        assert!(!names_stderr(&format!("{}:{}", other.dev(), other.ino())));
        // Our stderr, whatever it is here, does.
        let fd = std::io::stderr().as_fd().try_clone_to_owned().unwrap();
        let me = std::fs::File::from(fd).metadata().unwrap();
        assert!(names_stderr(&format!("{}:{}", me.dev(), me.ino())));
    }
}
