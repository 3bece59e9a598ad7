//! Log setup: human-friendly in a terminal, journald-friendly otherwise.
//!
//! Under systemd (`JOURNAL_STREAM` set) or whenever stderr is not a terminal, lines
//! carry no colours and no timestamps of our own: the journal adds its own.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The variable holding an `EnvFilter` directive, e.g. `tracim_hooks=debug`.
pub const LOG_ENV: &str = "TRACIM_HOOKS_LOG";

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
    let plain = std::env::var_os("JOURNAL_STREAM").is_some() || !std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!plain);
    let _ = if plain {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}
