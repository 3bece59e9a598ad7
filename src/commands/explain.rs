//! What `test` and `check` say of a hook's runs beyond its command: its lane,
//! its debounce, the argv after placeholders, and its failure hooks.

use tracim_daemon_sdk::protocol::Event;

use crate::config::format_duration;
use crate::hook::{Command, Hook, Mode};
use crate::placeholder;

/// The lines `test` prints for a hook an event runs (already indented).
pub(super) fn for_event(hook: &Hook, event: &Event) -> Vec<String> {
    let mut lines = Vec::new();
    if let Command::Exec(elements) = &hook.command {
        if elements.iter().any(|e| placeholder::has_fields(e)) {
            // Debug-quoted, so that spaces, quotes and newlines show as they are:
            // each element is one argument.
            lines.push(format!("argv:  {:?}", placeholder::argv(hook, event)));
        }
    }
    let value = hook
        .key
        .as_deref()
        .map(|path| (path, placeholder::field_text(event, path)));
    let lane = match (&value, hook.mode) {
        (_, Mode::Parallel) => None,
        (None, mode) => Some(format!("the hook's one lane ({})", mode_text(mode))),
        (Some((path, text)), mode) => Some(format!(
            "{path} = {text:?}{} ({})",
            if text.is_empty() {
                " (missing: the lane of the empty value)"
            } else {
                ""
            },
            mode_text(mode)
        )),
    };
    if let Some(lane) = lane {
        lines.push(format!("lane:  {lane}"));
    }
    if let Some(debounce) = hook.debounce {
        let of = match &value {
            Some((path, text)) => format!("of {path} = {text:?} "),
            None => String::new(),
        };
        lines.push(format!(
            "debounce: runs {} after the last event {of}(at most {} after the first), with the newest one; the ids of those it replaces in TRACIM_COALESCED",
            format_duration(debounce.wait),
            format_duration(debounce.max),
        ));
    }
    if let Some(line) = failure_line(hook) {
        lines.push(line);
    }
    lines
}

/// The lines `check` prints for a hook's lane, debounce and failure hooks.
pub(super) fn for_check(hook: &Hook, hooks: &[std::sync::Arc<Hook>]) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(key) = &hook.key {
        lines.push(format!("key:     {key} (one lane per value)"));
    }
    if let Some(debounce) = hook.debounce {
        lines.push(format!(
            "debounce: {} (at most {})",
            format_duration(debounce.wait),
            format_duration(debounce.max)
        ));
    }
    if let Some(line) = failure_line(hook) {
        lines.push(line);
    }
    if hook.on.is_empty() {
        let named = hooks
            .iter()
            .any(|h| h.on_failure.iter().any(|f| f.name == hook.name));
        lines.push(if named {
            "on = []: runs only as a failure hook".to_owned()
        } else {
            "warning: on = [] and no hook names it in on_failure: it never runs".to_owned()
        });
    }
    lines
}

fn failure_line(hook: &Hook) -> Option<String> {
    if hook.on_failure.is_empty() {
        return None;
    }
    let names: Vec<&str> = hook.on_failure.iter().map(|h| h.name.as_str()).collect();
    Some(format!(
        "on failure (after {} retr{}): {}, with TRACIM_FAILED_HOOK={} TRACIM_FAILED_EXIT TRACIM_FAILED_ATTEMPTS",
        hook.retries,
        if hook.retries == 1 { "y" } else { "ies" },
        names.join(", "),
        hook.name
    ))
}

fn mode_text(mode: Mode) -> &'static str {
    match mode {
        Mode::Serial => "serial: after the runs of this lane before it",
        Mode::Latest => "latest: only the newest waiting event of this lane runs",
        Mode::Parallel => "parallel",
    }
}
