//! What the commands read (`status`, `history`, `replay`), through a read-only
//! connection of their own: they work whether or not the service runs, and never
//! hold up its writer (WAL lets a reader and the writer go side by side).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::error::{JournalError, sql};
use super::model::{Exit, RunId, RunOrigin, RunState, StoredEvent};
use super::open::BUSY_TIMEOUT;
use super::schema::{self, FAILED};
use super::time;

/// A read-only view of the journal file.
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

/// One attempt of a run, as `history` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The run.
    pub run: RunId,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// The hook's name.
    pub hook: String,
    /// The event it ran for.
    pub event_id: u64,
    /// That event's type (empty if the event is gone).
    pub event_type: String,
    /// A delivery or a replay.
    pub origin: RunOrigin,
    /// Where it stands.
    pub state: RunState,
    /// When the run was queued.
    pub queued_at: SystemTime,
    /// When this attempt's child was spawned.
    pub started_at: Option<SystemTime>,
    /// When this attempt ended (or was closed without running).
    pub ended_at: Option<SystemTime>,
    /// How the child ended.
    pub exit: Option<Exit>,
    /// Whether it ran past its timeout.
    pub timed_out: bool,
    /// Why it was dropped, coalesced or interrupted.
    pub reason: Option<String>,
}

impl RunRecord {
    /// From the spawn to the end.
    pub fn duration(&self) -> Option<Duration> {
        self.ended_at?.duration_since(self.started_at?).ok()
    }
}

/// An attempt with its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The attempt.
    pub record: RunRecord,
    /// The end of its stdout.
    pub stdout_tail: String,
    /// The end of its stderr.
    pub stderr_tail: String,
}

/// An event with every attempt of every run it caused, oldest first.
#[derive(Debug, Clone)]
pub struct EventDetail {
    /// The event as received.
    pub event: StoredEvent,
    /// Its runs' attempts.
    pub runs: Vec<RunOutput>,
}

/// What `history` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only this hook.
    pub hook: Option<String>,
    /// Only this event.
    pub event_id: Option<u64>,
    /// Only failed attempts.
    pub failed_only: bool,
    /// Only runs queued since.
    pub since: Option<SystemTime>,
    /// At most this many lines.
    pub limit: usize,
}

impl Default for HistoryFilter {
    fn default() -> Self {
        HistoryFilter {
            hook: None,
            event_id: None,
            failed_only: false,
            since: None,
            limit: 50,
        }
    }
}

/// A hook's failure, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The run.
    pub run: RunId,
    /// Its event.
    pub event_id: u64,
    /// When it ended (or was queued, for an interrupted run).
    pub at: SystemTime,
    /// Failed, retrying or interrupted.
    pub state: RunState,
}

/// One hook's recent runs, for `status`: each run counted once, by its latest attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSummary {
    /// The hook's name.
    pub hook: String,
    /// Runs that succeeded.
    pub ok: u64,
    /// Runs that failed for good (or were interrupted).
    pub failed: u64,
    /// Runs queued, running or due for a retry.
    pub pending: u64,
    /// Runs dropped or coalesced.
    pub skipped: u64,
    /// The latest failed attempt in the whole journal.
    pub last_failure: Option<Failure>,
}

const RECORD_COLUMNS: &str = "r.id, r.attempt, r.hook, r.event_id, coalesce(e.type, ''),
     r.origin, r.state, r.queued_ms, r.started_ms, r.ended_ms, r.exit_code, r.signal,
     r.timed_out, r.reason";

fn record(row: &Row) -> rusqlite::Result<RunRecord> {
    let exit = match (
        row.get::<_, Option<i32>>(10)?,
        row.get::<_, Option<i32>>(11)?,
    ) {
        (Some(code), _) => Some(Exit::Code(code)),
        (None, Some(signal)) => Some(Exit::Signal(signal)),
        _ => None,
    };
    let state = RunState::parse(&row.get::<_, String>(6)?);
    let reason: Option<String> = row.get(13)?;
    // A child that could not be spawned has its reason and neither code nor signal.
    let exit = match (exit, state, &reason) {
        (None, RunState::Failed | RunState::Retrying, Some(why)) => Some(Exit::NotRun(why.clone())),
        (exit, _, _) => exit,
    };
    Ok(RunRecord {
        run: RunId(row.get::<_, i64>(0)?.try_into().unwrap_or_default()),
        attempt: row.get(1)?,
        hook: row.get(2)?,
        event_id: row.get::<_, i64>(3)?.try_into().unwrap_or_default(),
        event_type: row.get(4)?,
        origin: RunOrigin::parse(&row.get::<_, String>(5)?),
        state,
        queued_at: time::from_ms(row.get(7)?),
        started_at: row.get::<_, Option<i64>>(8)?.map(time::from_ms),
        ended_at: row.get::<_, Option<i64>>(9)?.map(time::from_ms),
        exit,
        timed_out: row.get(12)?,
        reason,
    })
}

impl Reader {
    /// Opens the journal at `path` read-only. A missing file is
    /// [`JournalError::NotFound`]: no service has run yet.
    pub fn open(path: &Path) -> Result<Reader, JournalError> {
        if !path.exists() {
            return Err(JournalError::NotFound {
                path: path.to_path_buf(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql("opening", path))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql("setting the busy timeout", path))?;
        schema::identify(&conn, path)?;
        Ok(Reader {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Whether the file has its tables yet (a journal created and never migrated
    /// reads as empty).
    fn ready(&self) -> Result<bool, JournalError> {
        let (_, version) = schema::identify(&self.conn, &self.path)?;
        Ok(version > 0)
    }

    /// Attempts, newest first.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<RunRecord>, JournalError> {
        if !self.ready()? {
            return Ok(Vec::new());
        }
        let event_id = filter.event_id.and_then(|id| i64::try_from(id).ok());
        if filter.event_id.is_some() && event_id.is_none() {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM runs r LEFT JOIN events e ON e.id = r.event_id
                 WHERE (?1 IS NULL OR r.hook = ?1)
                   AND (?2 IS NULL OR r.event_id = ?2)
                   AND (?3 = 0 OR {FAILED})
                   AND (?4 IS NULL OR r.queued_ms >= ?4)
                 ORDER BY r.id DESC, r.attempt DESC
                 LIMIT ?5"
            ))
            .map_err(sql("reading the history", &self.path))?;
        let rows = stmt
            .query_map(
                params![
                    filter.hook,
                    event_id,
                    filter.failed_only,
                    filter.since.map(time::to_ms),
                    i64::try_from(filter.limit).unwrap_or(i64::MAX)
                ],
                record,
            )
            .map_err(sql("reading the history", &self.path))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(sql("reading the history", &self.path))
    }

    /// Each hook's runs queued since `since` (by their latest attempt), and its last
    /// failure, by hook name.
    pub fn summary(&self, since: SystemTime) -> Result<Vec<HookSummary>, JournalError> {
        if !self.ready()? {
            return Ok(Vec::new());
        }
        let context = "reading the summary";
        let mut hooks: BTreeMap<String, HookSummary> = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT hook, state, count(*) FROM runs r
                 WHERE queued_ms >= ?1
                   AND attempt = (SELECT max(attempt) FROM runs WHERE id = r.id)
                 GROUP BY hook, state",
            )
            .map_err(sql(context, &self.path))?;
        let rows = stmt
            .query_map([time::to_ms(since)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?.unsigned_abs(),
                ))
            })
            .map_err(sql(context, &self.path))?;
        for row in rows {
            let (hook, state, count) = row.map_err(sql(context, &self.path))?;
            let entry = hooks.entry(hook.clone()).or_insert_with(|| HookSummary {
                hook,
                ok: 0,
                failed: 0,
                pending: 0,
                skipped: 0,
                last_failure: None,
            });
            match RunState::parse(&state) {
                RunState::Ok => entry.ok += count,
                RunState::Failed | RunState::Interrupted => entry.failed += count,
                RunState::Queued | RunState::Running | RunState::Retrying => entry.pending += count,
                RunState::Dropped | RunState::Coalesced => entry.skipped += count,
            }
        }
        let mut names = self
            .conn
            .prepare_cached("SELECT DISTINCT hook FROM runs")
            .map_err(sql(context, &self.path))?;
        let all: Vec<String> = names
            .query_map([], |r| r.get(0))
            .map_err(sql(context, &self.path))?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql(context, &self.path))?;
        for hook in all {
            let last_failure = self.last_failure(&hook)?;
            let entry = hooks.entry(hook.clone()).or_insert_with(|| HookSummary {
                hook,
                ok: 0,
                failed: 0,
                pending: 0,
                skipped: 0,
                last_failure: None,
            });
            entry.last_failure = last_failure;
        }
        Ok(hooks.into_values().collect())
    }

    /// A hook's latest failed attempt.
    pub fn last_failure(&self, hook: &str) -> Result<Option<Failure>, JournalError> {
        if !self.ready()? {
            return Ok(None);
        }
        self.conn
            .prepare_cached(&format!(
                "SELECT id, event_id, coalesce(ended_ms, started_ms, queued_ms), state
                 FROM runs WHERE hook = ?1 AND {FAILED}
                 ORDER BY id DESC, attempt DESC LIMIT 1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row([hook], |r| {
                    Ok(Failure {
                        run: RunId(r.get::<_, i64>(0)?.try_into().unwrap_or_default()),
                        event_id: r.get::<_, i64>(1)?.try_into().unwrap_or_default(),
                        at: time::from_ms(r.get(2)?),
                        state: RunState::parse(&r.get::<_, String>(3)?),
                    })
                })
                .optional()
            })
            .map_err(sql("reading the last failure", &self.path))
    }

    /// One event as received, with every attempt of its runs and their output.
    pub fn event(&self, id: u64) -> Result<Option<EventDetail>, JournalError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        if !self.ready()? {
            return Ok(None);
        }
        let context = "reading an event";
        let event = self
            .conn
            .prepare_cached("SELECT id, type, received_ms, tlm FROM events WHERE id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([id], |r| {
                    Ok(StoredEvent {
                        id: r.get::<_, i64>(0)?.try_into().unwrap_or_default(),
                        event_type: r.get(1)?,
                        received: time::from_ms(r.get(2)?),
                        text: Arc::from(r.get::<_, String>(3)?),
                    })
                })
                .optional()
            })
            .map_err(sql(context, &self.path))?;
        let Some(event) = event else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS}, coalesce(r.stdout_tail, ''), coalesce(r.stderr_tail, '')
                 FROM runs r LEFT JOIN events e ON e.id = r.event_id
                 WHERE r.event_id = ?1 ORDER BY r.id, r.attempt"
            ))
            .map_err(sql(context, &self.path))?;
        let runs = stmt
            .query_map([id], |r| {
                Ok(RunOutput {
                    record: record(r)?,
                    stdout_tail: r.get(14)?,
                    stderr_tail: r.get(15)?,
                })
            })
            .map_err(sql(context, &self.path))?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql(context, &self.path))?;
        Ok(Some(EventDetail { event, runs }))
    }

    /// What `replay --failed` runs: for each event and hook, its newest run when that
    /// run failed for good (or was interrupted) and ended since `since`.
    pub fn failed_since(&self, since: SystemTime) -> Result<Vec<RunRecord>, JournalError> {
        if !self.ready()? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM runs r LEFT JOIN events e ON e.id = r.event_id
                 WHERE r.state IN ('failed', 'interrupted')
                   AND coalesce(r.ended_ms, r.queued_ms) >= ?1
                   AND r.attempt = (SELECT max(attempt) FROM runs WHERE id = r.id)
                   AND r.id = (SELECT max(id) FROM runs
                               WHERE event_id = r.event_id AND hook = r.hook)
                 ORDER BY r.id"
            ))
            .map_err(sql("reading failed runs", &self.path))?;
        let rows = stmt
            .query_map([time::to_ms(since)], record)
            .map_err(sql("reading failed runs", &self.path))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(sql("reading failed runs", &self.path))
    }

    /// The highest event id ever recorded (it outlives pruning).
    pub fn last_event_id(&self) -> Result<Option<u64>, JournalError> {
        if !self.ready()? {
            return Ok(None);
        }
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(v) FROM (SELECT max(id) AS v FROM events
                  UNION ALL SELECT value FROM meta WHERE key = 'last_event_id')",
                [],
                |r| r.get(0),
            )
            .map_err(sql("reading the last event id", &self.path))?;
        Ok(id.and_then(|id| u64::try_from(id).ok()))
    }
}
