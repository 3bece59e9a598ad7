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
    let mut batch = Batch::new(ops);
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
                    batch.insert_run(&tx, *run, *id, hook, RunOrigin::Event, *received_ms)?;
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
                    batch.insert_run(&tx, *run, *event_id, hook, *origin, *at_ms)?;
                    last_run = last_run.max(Some(db_run(*run)));
                }
            }
            Op::Started {
                run,
                attempt,
                at_ms,
            } => {
                if batch.ends.contains_key(&(*run, *attempt)) {
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
                if batch.written_whole.contains(run) && *attempt == 1 {
                    continue;
                }
                ensure_attempt(&tx, *run, *attempt)?;
                let (code, signal, reason) = exit_columns(end);
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
                    batch.started.get(&(*run, *attempt))
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

/// What a batch says of its attempts as a whole, so that each row is written as few
/// times as it can be. Most short runs are queued, started and ended within one
/// batch: their row is inserted once, complete, instead of inserted then updated
/// twice (each update rewrites the row and moves it between the partial indexes).
struct Batch<'a> {
    /// The attempts that end in this batch: when, and how.
    ends: HashMap<(RunId, u32), (i64, &'a RunEnd)>,
    /// The start times of those attempts, written with their end.
    started: HashMap<(RunId, u32), i64>,
    /// The runs whose first attempt was inserted with its end.
    written_whole: HashSet<RunId>,
}

impl<'a> Batch<'a> {
    fn new(ops: &'a [Op]) -> Batch<'a> {
        let ends: HashMap<_, _> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Ended {
                    run,
                    attempt,
                    at_ms,
                    end,
                } => Some(((*run, *attempt), (*at_ms, end))),
                _ => None,
            })
            .collect();
        let started = ops
            .iter()
            .filter_map(|op| match op {
                Op::Started {
                    run,
                    attempt,
                    at_ms,
                } if ends.contains_key(&(*run, *attempt)) => Some(((*run, *attempt), *at_ms)),
                _ => None,
            })
            .collect();
        Batch {
            ends,
            started,
            written_whole: HashSet::new(),
        }
    }

    /// Records a new run: queued, or, when its first attempt also ends in this batch,
    /// as it ended.
    fn insert_run(
        &mut self,
        conn: &Connection,
        run: RunId,
        event_id: i64,
        hook: &str,
        origin: RunOrigin,
        at_ms: i64,
    ) -> rusqlite::Result<()> {
        let Some(&(ended_ms, end)) = self.ends.get(&(run, 1)) else {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO runs (id, attempt, event_id, hook, origin, state, queued_ms)
                 VALUES (?1, 1, ?2, ?3, ?4, 'queued', ?5)",
            )?
            .execute(params![db_run(run), event_id, hook, origin.as_str(), at_ms])?;
            return Ok(());
        };
        let (code, signal, reason) = exit_columns(end);
        let inserted = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO runs (id, attempt, event_id, hook, origin, state,
                     queued_ms, started_ms, ended_ms, exit_code, signal, timed_out,
                     stdout_tail, stderr_tail, reason)
                 VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                db_run(run),
                event_id,
                hook,
                origin.as_str(),
                end.state().as_str(),
                at_ms,
                self.started.get(&(run, 1)),
                ended_ms,
                code,
                signal,
                end.timed_out,
                end.stdout_tail,
                end.stderr_tail,
                reason,
            ])?;
        // Were the row there already, its end is written by the update, as any
        // other run's is.
        if inserted == 1 {
            self.written_whole.insert(run);
        }
        Ok(())
    }
}

/// An exit as the `exit_code`, `signal` and `reason` columns hold it.
fn exit_columns(end: &RunEnd) -> (Option<i32>, Option<i32>, Option<&str>) {
    match &end.exit {
        Exit::Code(c) => (Some(*c), None, None),
        Exit::Signal(s) => (None, Some(*s), None),
        Exit::NotRun(why) => (None, None, Some(why.as_str())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn end(code: i32, retry: bool) -> RunEnd {
        RunEnd {
            exit: Exit::Code(code),
            timed_out: false,
            stdout_tail: format!("said {code}"),
            stderr_tail: String::new(),
            retry,
        }
    }

    type Row = (
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<String>,
    );

    /// An attempt's row once it ended with `code`, as `end` makes it.
    fn ended(state: &str, started: i64, ended: i64, code: i32) -> Row {
        let said = format!("said {code}");
        (
            state.into(),
            Some(started),
            Some(ended),
            Some(code.into()),
            Some(said),
        )
    }

    fn running(started: i64) -> Row {
        ("running".into(), Some(started), None, None, None)
    }

    fn row(conn: &Connection, run: u64, attempt: u32) -> Row {
        conn.query_row(
            "SELECT state, started_ms, ended_ms, exit_code, stdout_tail FROM runs
             WHERE id = ?1 AND attempt = ?2",
            params![run as i64, attempt],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
    }

    #[test]
    fn an_attempt_queued_started_and_ended_in_one_batch_is_written_whole() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, std::path::Path::new(":memory:")).unwrap();
        let (one, two, three) = (RunId(1), RunId(2), RunId(3));
        let first = [
            Op::Event {
                id: 7,
                event_type: "content.created.file".into(),
                received_ms: 100,
                text: "{}".into(),
                runs: vec![(one, "a".into()), (two, "b".into())],
            },
            Op::Runs {
                event_id: 7,
                origin: RunOrigin::Replay,
                at_ms: 105,
                runs: vec![(three, "a".into())],
            },
            Op::Started {
                run: one,
                attempt: 1,
                at_ms: 110,
            },
            Op::Started {
                run: two,
                attempt: 1,
                at_ms: 111,
            },
            Op::Started {
                run: three,
                attempt: 1,
                at_ms: 112,
            },
            Op::Ended {
                run: one,
                attempt: 1,
                at_ms: 120,
                end: end(0, false),
            },
            // A failure with retries left, and its retry starting, in the same batch.
            Op::Ended {
                run: three,
                attempt: 1,
                at_ms: 121,
                end: end(3, true),
            },
            Op::Started {
                run: three,
                attempt: 2,
                at_ms: 130,
            },
        ];
        commit(&mut conn, &first).unwrap();
        let ok = ended("ok", 110, 120, 0);
        assert_eq!(row(&conn, 1, 1), ok);
        assert_eq!(row(&conn, 2, 1), running(111));
        // Its retry starting closes it: only a run's latest attempt is pending.
        assert_eq!(row(&conn, 3, 1), ended("failed", 112, 121, 3));
        assert_eq!(row(&conn, 3, 2), running(130));

        // The ends of the others in the next batch update their rows.
        let second = [
            Op::Ended {
                run: two,
                attempt: 1,
                at_ms: 140,
                end: end(0, false),
            },
            Op::Ended {
                run: three,
                attempt: 2,
                at_ms: 141,
                end: end(0, false),
            },
        ];
        commit(&mut conn, &second).unwrap();
        assert_eq!(
            row(&conn, 2, 1),
            ended("ok", 111, 140, 0),
            "the start time stays"
        );
        assert_eq!(row(&conn, 3, 2), ended("ok", 130, 141, 0));
        assert_eq!(
            row(&conn, 3, 1).0,
            "failed",
            "the earlier attempt stays closed"
        );

        // A batch applied twice (as after a failed commit) changes nothing.
        commit(&mut conn, &first).unwrap();
        assert_eq!(row(&conn, 1, 1), ok);
    }
}
