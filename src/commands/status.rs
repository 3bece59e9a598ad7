//! `status`: whether the service runs (live details from its control socket) and
//! each hook's runs of the last 24 h from the journal, which needs no service.

use std::path::Path;
use std::time::SystemTime;

use serde_json::json;

use super::Failure;
use crate::config::Config;
use crate::control::{self, ControlError, LiveStatus, Request, Response};
use crate::journal::{self, HookSummary, JournalError, Reader, SUMMARY_WINDOW, from_ms, utc};

/// `status [--json]`.
pub(super) async fn status(path: &Path, json: bool) -> Result<(), Failure> {
    let config = Config::load(path)?;
    let (live, unreachable) = match control::socket_path(&config.journal) {
        None => (None, None),
        Some(socket) => match control::ask(&socket, &Request::Status).await {
            Ok(Response::Status(live)) => (Some(live), None),
            Ok(other) => (None, Some(format!("unexpected answer: {other:?}"))),
            Err(ControlError::NotRunning) => (None, None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    let summary = if config.journal.enabled {
        let file = config.journal.path.clone();
        let since = SystemTime::now() - SUMMARY_WINDOW;
        tokio::task::spawn_blocking(move || Reader::open(&file)?.summary(since))
            .await
            .map_err(|e| Failure::new(format!("reading the journal failed: {e}")))?
    } else {
        Ok(Vec::new())
    };
    let summary = match summary {
        Ok(summary) => summary,
        Err(JournalError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(Failure::new(e.to_string())),
    };
    // The config's hooks in order, then those only the journal still knows.
    let mut hooks: Vec<(String, bool, Option<&HookSummary>)> = config
        .hooks
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                true,
                summary.iter().find(|s| s.hook == h.name),
            )
        })
        .collect();
    for s in &summary {
        if config.hook(&s.hook).is_none() {
            hooks.push((s.hook.clone(), false, Some(s)));
        }
    }
    if json {
        print_json(&config, live.as_ref(), unreachable.as_deref(), &hooks);
    } else {
        print_text(&config, live.as_ref(), unreachable.as_deref(), &hooks);
    }
    Ok(())
}

fn print_text(
    config: &Config,
    live: Option<&LiveStatus>,
    unreachable: Option<&str>,
    hooks: &[(String, bool, Option<&HookSummary>)],
) {
    match (live, unreachable) {
        (Some(live), _) => {
            let since = live
                .registered_since_ms
                .map(|ms| format!(" since {}", utc(from_ms(ms))))
                .unwrap_or_default();
            let state = match (live.source.as_str(), live.state.as_str(), &live.tracim) {
                ("tracim", _, Some(t)) => t.detail.clone(),
                (_, "registered", _) => format!("registered with {}{since}", live.master),
                (_, "waiting", _) => format!("waiting for TracimDaemon at {}", live.master),
                (_, other, _) => other.to_owned(),
            };
            println!(
                "service: running (pid {}, up since {}), {state}",
                live.pid,
                utc(from_ms(live.started_ms))
            );
            println!(
                "         {} runs going on, {} waiting, {} events received",
                live.running, live.queued, live.events_received
            );
            if let Some(t) = &live.tracim {
                print_tracim(t);
            }
        }
        (None, Some(why)) => println!("service: not answering ({why})"),
        (None, None) if config.journal.enabled => println!("service: not running"),
        (None, None) => {
            println!("service: unknown (the journal, and with it the control socket, is disabled)")
        }
    }
    let journal = &config.journal;
    if !journal.enabled {
        println!("journal: disabled");
    } else {
        let health = match live.map(|l| &l.journal) {
            Some(h) if h.degraded => {
                let since = h
                    .degraded_since_ms
                    .map(|ms| format!(" since {}", utc(from_ms(ms))))
                    .unwrap_or_default();
                format!(
                    "DEGRADED{since}: writes fail ({}); {} records wait in memory, {} lost",
                    h.last_error.as_deref().unwrap_or("unknown error"),
                    h.backlog,
                    h.lost
                )
            }
            Some(h) if h.lost > 0 => format!("ok ({} records lost while degraded)", h.lost),
            Some(_) => "ok".to_owned(),
            None => "not in use".to_owned(),
        };
        println!("journal: {} ({health})", journal.path.display());
    }
    if hooks.is_empty() {
        println!("no hooks");
        return;
    }
    println!("hooks, runs of the last 24 h:");
    let width = hooks.iter().map(|(n, ..)| n.len()).max().unwrap_or(0);
    for (name, configured, summary) in hooks {
        let gone = if *configured {
            ""
        } else {
            "  (no longer in the config)"
        };
        let (ok, failed, pending, skipped) =
            summary.map_or((0, 0, 0, 0), |s| (s.ok, s.failed, s.pending, s.skipped));
        let mut line = format!("  {name:<width$}  ok {ok}  failed {failed}  pending {pending}");
        if skipped > 0 {
            line.push_str(&format!("  skipped {skipped}"));
        }
        if let Some(f) = summary.and_then(|s| s.last_failure.as_ref()) {
            line.push_str(&format!(
                "  last failure: event {} at {} ({})",
                f.event_id,
                utc(f.at),
                f.state.as_str()
            ));
        }
        println!("{line}{gone}");
    }
}

/// The Tracim link's state and its last catch-up.
fn print_tracim(t: &crate::source::link::TracimStatus) {
    let since = t
        .since_ms
        .map(|ms| format!(" (since {})", utc(from_ms(ms))))
        .unwrap_or_default();
    println!("tracim:  {}: {}{since}", t.state, t.detail);
    match &t.last_catch_up {
        Some(c) => {
            let ids = match (c.first_id, c.last_id) {
                (Some(a), Some(b)) => format!(" (ids {a}–{b})"),
                _ => String::new(),
            };
            let skipped = if c.skipped > 0 {
                format!(", {} skipped (catch_up_max / catch_up_window)", c.skipped)
            } else {
                String::new()
            };
            println!(
                "         last catch-up at {}: {} events run{ids} after id {}{skipped}",
                utc(from_ms(c.at_ms)),
                c.ran,
                c.after
            );
        }
        None => println!("         no catch-up yet"),
    }
}

fn print_json(
    config: &Config,
    live: Option<&LiveStatus>,
    unreachable: Option<&str>,
    hooks: &[(String, bool, Option<&HookSummary>)],
) {
    let hooks: Vec<_> = hooks
        .iter()
        .map(|(name, configured, s)| {
            json!({
                "hook": name,
                "configured": configured,
                "ok": s.map_or(0, |s| s.ok),
                "failed": s.map_or(0, |s| s.failed),
                "pending": s.map_or(0, |s| s.pending),
                "skipped": s.map_or(0, |s| s.skipped),
                "last_failure": s.and_then(|s| s.last_failure.as_ref()).map(|f| json!({
                    "run": f.run.0,
                    "event_id": f.event_id,
                    "at": utc(f.at),
                    "state": f.state.as_str(),
                })),
            })
        })
        .collect();
    let out = json!({
        "service": live,
        "service_unreachable": unreachable,
        "journal": {
            "enabled": config.journal.enabled,
            "path": config.journal.path,
            "degraded": live.is_some_and(|l| l.journal.degraded),
        },
        "window_hours": journal::SUMMARY_WINDOW.as_secs() / 3600,
        "hooks": hooks,
    });
    println!("{out}");
}
