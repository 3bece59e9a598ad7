//! The records the writer receives, and how a batch of them becomes one transaction.
//!
//! Every statement is idempotent (insert-or-ignore, updates keyed by run and
//! attempt), so that a batch rolled back by a failure can simply be applied again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::model::{Exit, RunEnd, RunId, RunOrigin, RunState};
use super::schema::PENDING;

/// One thing to write.
#[derive(Debug)]
pub(crate) enum Op {
    /// An event and the runs it causes, committed together.
    Event {
        id: i64,
        event_type: String,
        received_ms: i64,
        text: Arc<str>,
        runs: Vec<(RunId, String)>,
    },
    /// New runs of a stored event (a replay).
    Runs {
        event_id: i64,
        origin: RunOrigin,
        at_ms: i64,
        runs: Vec<(RunId, String)>,
    },
    Started {
        run: RunId,
        attempt: u32,
        at_ms: i64,
    },
    Ended {
        run: RunId,
        attempt: u32,
        at_ms: i64,
        end: RunEnd,
    },
    /// A source's mark set (`Some`) or cleared (`None`) in the `meta` table.
    Mark { key: String, value: Option<i64> },
    /// The run's latest attempt closes without running (dropped, coalesced, interrupted).
    Closed {
        run: RunId,
        state: RunState,
        reason: Option<String>,
        at_ms: i64,
    },
}

impl Op {
    /// Roughly the memory it holds, to bound what waits while writes fail.
    pub(crate) fn weight(&self) -> usize {
        let runs = |runs: &[(RunId, String)]| runs.iter().map(|(_, h)| h.len() + 32).sum();
        64 + match self {
            Op::Event { text, runs: r, .. } => text.len() + runs(r),
            Op::Runs { runs: r, .. } => runs(r),
            Op::Ended { end, .. } => end.stdout_tail.len() + end.stderr_tail.len(),
            Op::Closed { reason, .. } => reason.as_ref().map_or(0, String::len),
            Op::Started { .. } => 0,
            Op::Mark { key, .. } => key.len(),
        }
    }
}

/// A run id as SQLite stores it (ids are given out from 1 up, far below `i64::MAX`).
pub(crate) fn db_run(run: RunId) -> i64 {
    i64::try_from(run.0).unwrap_or(i64::MAX)
}

/// Applies a batch in one transaction; returns how many events it added.
pub(crate) fn commit(conn: &mut Connection, ops: &[Op]) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // An attempt that starts and ends within one batch (most short runs do) is
    // written once, by its end, which takes its start time along.
    let ended_here: HashSet<(RunId, u32)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Ended { run, attempt, .. } => Some((*run, *attempt)),
            _ => None,
        })
        .collect();
    let mut started_here: HashMap<(RunId, u32), i64> = HashMap::new();
    let mut added = 0;
    let mut last_event = None::<i64>;
    let mut last_run = None::<i64>;
    for op in ops {
        match op {
            Op::Event {
                id,
                event_type,
                received_ms,
                text,
                runs,
            } => {
                added += tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO events (id, type, received_ms, tlm)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![id, event_type, received_ms, &**text])?
                    as u64;
                last_event = last_event.max(Some(*id));
                for (run, hook) in runs {
                    insert_run(&tx, *run, *id, hook, RunOrigin::Event, *received_ms)?;
                    last_run = last_run.max(Some(db_run(*run)));
                }
            }
            Op::Runs {
                event_id,
                origin,
                at_ms,
                runs,
            } => {
                for (run, hook) in runs {
                    insert_run(&tx, *run, *event_id, hook, *origin, *at_ms)?;
                    last_run = last_run.max(Some(db_run(*run)));
                }
            }
            Op::Started {
                run,
                attempt,
                at_ms,
            } => {
                if ended_here.contains(&(*run, *attempt)) {
                    started_here.insert((*run, *attempt), *at_ms);
                    continue;
                }
                ensure_attempt(&tx, *run, *attempt)?;
                tx.prepare_cached(
                    "UPDATE runs SET state = 'running', started_ms = ?3
                     WHERE id = ?1 AND attempt = ?2",
                )?
                .execute(params![db_run(*run), attempt, at_ms])?;
            }
            Op::Ended {
                run,
                attempt,
                at_ms,
                end,
            } => {
                ensure_attempt(&tx, *run, *attempt)?;
                let (code, signal, reason) = match &end.exit {
                    Exit::Code(c) => (Some(*c), None, None),
                    Exit::Signal(s) => (None, Some(*s), None),
                    Exit::NotRun(why) => (None, None, Some(why.as_str())),
                };
                tx.prepare_cached(
                    "UPDATE runs SET state = ?3, ended_ms = ?4, exit_code = ?5, signal = ?6,
                         timed_out = ?7, stdout_tail = ?8, stderr_tail = ?9, reason = ?10,
                         started_ms = coalesce(?11, started_ms)
                     WHERE id = ?1 AND attempt = ?2",
                )?
                .execute(params![
                    db_run(*run),
                    attempt,
                    end.state().as_str(),
                    at_ms,
                    code,
                    signal,
                    end.timed_out,
                    end.stdout_tail,
                    end.stderr_tail,
                    reason,
                    started_here.get(&(*run, *attempt))
                ])?;
            }
            Op::Mark { key, value } => match value {
                Some(value) => {
                    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                        .execute(params![key, value])?;
                }
                None => {
                    tx.prepare_cached("DELETE FROM meta WHERE key = ?1")?
                        .execute(params![key])?;
                }
            },
            Op::Closed {
                run,
                state,
                reason,
                at_ms,
            } => {
                tx.prepare_cached(
                    "UPDATE runs SET state = ?2, ended_ms = ?3, reason = ?4
                     WHERE id = ?1 AND attempt = (SELECT max(attempt) FROM runs WHERE id = ?1)",
                )?
                .execute(params![db_run(*run), state.as_str(), at_ms, reason])?;
            }
        }
    }
    let raise = |key: &str, value: Option<i64>| -> rusqlite::Result<()> {
        if let Some(value) = value {
            tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            )?
            .execute(params![key, value])?;
        }
        Ok(())
    };
    raise("last_event_id", last_event)?;
    raise("run_seq", last_run)?;
    tx.commit()?;
    Ok(added)
}

fn insert_run(
    conn: &Connection,
    run: RunId,
    event_id: i64,
    hook: &str,
    origin: RunOrigin,
    at_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO runs (id, attempt, event_id, hook, origin, state, queued_ms)
         VALUES (?1, 1, ?2, ?3, ?4, 'queued', ?5)",
    )?
    .execute(params![db_run(run), event_id, hook, origin.as_str(), at_ms])?;
    Ok(())
}

/// Makes the row of a later attempt from the run's latest one (a retry, or a rerun
/// after a crash), so that every attempt keeps its own row. The earlier attempts are
/// closed, so that only a run's latest row is ever in a pending state.
fn ensure_attempt(conn: &Connection, run: RunId, attempt: u32) -> rusqlite::Result<()> {
    // A first attempt's row is the one the run was recorded with; without it there
    // is no row to copy either. Most runs end at their first attempt: no query.
    if attempt <= 1 {
        return Ok(());
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM runs WHERE id = ?1 AND attempt = ?2")?
        .query_row(params![db_run(run), attempt], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO runs (id, attempt, event_id, hook, origin, state, queued_ms)
             SELECT id, ?2, event_id, hook, origin, 'queued', queued_ms FROM runs
             WHERE id = ?1 ORDER BY attempt DESC LIMIT 1",
        )?
        .execute(params![db_run(run), attempt])?;
        conn.prepare_cached(&format!(
            "UPDATE runs SET state = CASE state
                 WHEN 'running' THEN 'interrupted'
                 WHEN 'retrying' THEN 'failed'
                 ELSE 'dropped' END
             WHERE id = ?1 AND attempt < ?2 AND {PENDING}"
        ))?
        .execute(params![db_run(run), attempt])?;
    }
    Ok(())
}
