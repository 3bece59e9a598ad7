//! `history`: the runs on record, newest first; with `--event`, that event and
//! each of its runs with its output.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::Failure;
use crate::cli::HistoryArgs;
use crate::config::{Config, parse_duration};
use crate::journal::{Exit, HistoryFilter, JournalError, Reader, RunRecord, RunState, utc};

/// `history [--hook NAME] [--event ID] [--failed] [--since DURATION] [--limit N] [--json]`.
pub(super) async fn history(path: &Path, args: HistoryArgs) -> Result<(), Failure> {
    let config = Config::load(path)?;
    if !config.journal.enabled {
        return Err(Failure::new(format!(
            "the journal is disabled in {}: there is no history",
            path.display()
        )));
    }
    let since = match &args.since {
        Some(text) => {
            let ago = parse_duration(text).map_err(|e| Failure::new(format!("--since: {e}")))?;
            Some(
                SystemTime::now()
                    .checked_sub(ago)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            )
        }
        None => None,
    };
    let filter = HistoryFilter {
        hook: args.hook.clone(),
        event_id: args.event,
        failed_only: args.failed,
        since,
        limit: args.limit,
    };
    let file = config.journal.path.clone();
    let read = tokio::task::spawn_blocking(move || {
        let reader = Reader::open(&file)?;
        let runs = reader.history(&filter)?;
        let detail = match filter.event_id {
            Some(id) => reader.event(id)?,
            None => None,
        };
        Ok::<_, JournalError>((runs, detail))
    })
    .await
    .map_err(|e| Failure::new(format!("reading the journal failed: {e}")))?;
    let (runs, detail) = match read {
        Ok(found) => found,
        Err(JournalError::NotFound { path }) => {
            eprintln!(
                "no runs on record yet: there is no journal at {}",
                path.display()
            );
            return Ok(());
        }
        Err(e) => return Err(Failure::new(e.to_string())),
    };
    if let Some(id) = args.event {
        let Some(detail) = detail else {
            return Err(Failure::new(format!(
                "event {id} is not in the journal (never received, or pruned)"
            )));
        };
        // The event's own story, oldest first, filtered as asked.
        let shown: Vec<_> = detail
            .runs
            .iter()
            .filter(|r| {
                runs.iter()
                    .any(|h| h.run == r.record.run && h.attempt == r.record.attempt)
            })
            .collect();
        if args.json {
            let event = &detail.event;
            println!(
                "{}",
                json!({
                    "event_id": event.id,
                    "event_type": event.event_type,
                    "received": utc(event.received),
                    "tlm": serde_json::from_str::<Value>(&event.text).unwrap_or(Value::String(event.text.to_string())),
                })
            );
            for run in shown {
                let mut line = record_json(&run.record);
                line["stdout_tail"] = json!(run.stdout_tail);
                line["stderr_tail"] = json!(run.stderr_tail);
                println!("{line}");
            }
            return Ok(());
        }
        let event = &detail.event;
        println!(
            "event {} {} received {}",
            event.id,
            event.event_type,
            utc(event.received)
        );
        println!("  {}", crate::exec::escape_controls(&event.text));
        if shown.is_empty() {
            println!("no runs (no hook took it)");
        }
        for run in shown {
            println!("{}", record_line(&run.record));
            for (stream, text) in [("stdout", &run.stdout_tail), ("stderr", &run.stderr_tail)] {
                if text.is_empty() {
                    continue;
                }
                println!("    {stream}:");
                for line in text.lines() {
                    println!("      {line}");
                }
            }
        }
        return Ok(());
    }
    for run in &runs {
        if args.json {
            println!("{}", record_json(run));
        } else {
            println!("{}", record_line(run));
        }
    }
    if runs.is_empty() && !args.json {
        eprintln!("no runs match");
    }
    Ok(())
}

/// One attempt's result, for people.
fn result(run: &RunRecord) -> String {
    let mut text = run.state.as_str().to_owned();
    let detail = match (&run.exit, run.timed_out) {
        (_, true) => Some("timed out".to_owned()),
        (Some(Exit::Code(0)), _) | (None, _) => None,
        (Some(Exit::Code(code)), _) => Some(format!("exit code {code}")),
        (Some(Exit::Signal(signal)), _) => Some(format!("signal {signal}")),
        (Some(Exit::NotRun(why)), _) => Some(why.clone()),
    };
    let detail = match (run.state, detail) {
        (RunState::Dropped | RunState::Coalesced | RunState::Interrupted, _) => run.reason.clone(),
        (_, detail) => detail,
    };
    if let Some(detail) = detail {
        text.push_str(&format!(" ({detail})"));
    }
    if run.state == RunState::Retrying {
        text.push_str(", retried");
    }
    text
}

/// `2026-11-27 13:13:06Z  hook  event 4211  content.modified.html-document  attempt 1  1.2s  ok`
fn record_line(run: &RunRecord) -> String {
    let at = run.started_at.unwrap_or(run.queued_at);
    let duration = run
        .duration()
        .map_or_else(|| "-".to_owned(), |d| format!("{:.1}s", d.as_secs_f64()));
    let replay = if run.origin == crate::journal::RunOrigin::Replay {
        "  (replay)"
    } else {
        ""
    };
    format!(
        "{}  {}  event {}  {}  attempt {}  {duration}  {}{replay}",
        utc(at),
        run.hook,
        run.event_id,
        run.event_type,
        run.attempt,
        result(run)
    )
}

fn record_json(run: &RunRecord) -> Value {
    let (code, signal, not_run) = match &run.exit {
        Some(Exit::Code(code)) => (Some(*code), None, None),
        Some(Exit::Signal(signal)) => (None, Some(*signal), None),
        Some(Exit::NotRun(why)) => (None, None, Some(why.clone())),
        None => (None, None, None),
    };
    json!({
        "run": run.run.0,
        "attempt": run.attempt,
        "hook": run.hook,
        "event_id": run.event_id,
        "event_type": run.event_type,
        "origin": if run.origin == crate::journal::RunOrigin::Replay { "replay" } else { "event" },
        "state": run.state.as_str(),
        "queued": utc(run.queued_at),
        "started": run.started_at.map(utc),
        "ended": run.ended_at.map(utc),
        "duration_ms": run.duration().map(|d| d.as_millis() as u64),
        "exit_code": code,
        "signal": signal,
        "not_run": not_run,
        "timed_out": run.timed_out,
        "reason": run.reason,
    })
}
