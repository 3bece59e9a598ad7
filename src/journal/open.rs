//! Opening the journal: its files made safe (see `files`), WAL, the schema brought up
//! to date and checked, a corrupt file set aside for a new one, and what the previous
//! life of the runner left to do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use roaring::RoaringTreemap;
use rusqlite::{Connection, OpenFlags};
use tracing::{info, warn};

use super::checkpoint::Checkpointer;
use super::error::{JournalError, sql, sqlite_failure};
use super::files::{lock, move_aside, prepare_dir, secure_file};
use super::handle::Journal;
use super::model::{Pending, PendingKind, PendingRun, RunOrigin, StoredEvent};
use super::schema::{self, PENDING};
use super::seen::Seen;
use super::time;
use super::writer::{Shared, Writer};
use super::{JournalSettings, SyncMode};

/// How long a statement waits for a lock held by another connection (a command
/// reading while the writer checkpoints).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The page size of a new journal. An event's text is 0.5 to 25 KiB, 2.3 KiB on
/// average: SQLite's default 4 KiB page holds one such row and leaves the rest of
/// the page empty, so each event cost a page written twice (log, then checkpoint).
/// Larger pages hold several, and fewer writes carry the same rows. Each commit
/// rewrites the pages it touches whole, though: 8 KiB holds three average rows and
/// measured as cheap per event as 16 KiB, and cheaper per run (bench, journal
/// thread's CPU: 7 µs per event received either way; 22-26 µs per run dispatched
/// against 24-32 µs).
const PAGE_SIZE: u32 = 8192;

/// The opened journal and what the previous life of the runner left to do.
pub struct Opened {
    /// The handle to record with.
    pub journal: Journal,
    /// Runs queued and never started, due for a retry, or interrupted.
    pub pending: Pending,
    /// Where a corrupt file was moved, when it was (already logged as a warning).
    pub moved_aside: Option<PathBuf>,
}

/// What a successful load of the file gives.
struct Loaded {
    conn: Connection,
    ids: RoaringTreemap,
    last_event: Option<i64>,
    next_run: u64,
    pending: Pending,
    marks: HashMap<String, u64>,
}

/// Opens (or creates) the journal of `settings` and starts its writer thread. With
/// the journal off, gives a handle that keeps nothing on disk.
pub fn open(settings: &JournalSettings) -> Result<Opened, JournalError> {
    if !settings.enabled {
        return Ok(Opened {
            journal: Journal::disabled(),
            pending: Pending::default(),
            moved_aside: None,
        });
    }
    let path = settings.path.clone();
    let dir = directory_of(&path);
    prepare_dir(&dir)?;
    let lock = lock(&path, &dir)?;
    let mut moved_aside = None;
    let loaded = match load(&path, &dir, settings.sync) {
        Err(e) if e.is_corrupt() => {
            let aside = move_aside(&path)?;
            warn!(
                "the journal {} is corrupt ({e}): moved aside to {}, starting a new one",
                path.display(),
                aside.display()
            );
            moved_aside = Some(aside);
            load(&path, &dir, settings.sync)?
        }
        other => other?,
    };
    let events = loaded.ids.len();
    let shared = Arc::new(Shared {
        seen: Mutex::new(Seen::from_journal(loaded.ids)),
        marks: Mutex::new(loaded.marks),
        ..Shared::default()
    });
    let (tx, rx) = mpsc::channel();
    let writer = Writer {
        checkpointer: checkpointer(&path, settings.sync)?,
        conn: loaded.conn,
        path: path.clone(),
        rx,
        shared: shared.clone(),
        retention: settings.retention,
        max_events: settings.max_events,
        events,
        _lock: lock,
    };
    let thread = std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || writer.run())
        .map_err(|source| JournalError::Io {
            context: "starting the writer thread of",
            path: path.clone(),
            source,
        })?;
    Ok(Opened {
        journal: Journal::start(
            path,
            Some(tx),
            shared,
            loaded.next_run,
            loaded.last_event,
            Some(thread),
        ),
        pending: loaded.pending,
        moved_aside,
    })
}

/// The directory holding the file (`.` for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens the file, checks it, migrates it, and reads what the runner needs.
fn load(path: &Path, dir: &Path, sync: SyncMode) -> Result<Loaded, JournalError> {
    secure_file(path, dir)?;
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql("opening", path))?;
    configure(&conn, path, sync)?;
    schema::migrate(&mut conn, path)?;
    check(&conn, path)?;

    let mut ids = RoaringTreemap::new();
    let mut max_id = None::<i64>;
    {
        // In id order: the bitmap takes sorted ids fastest.
        let mut stmt = conn
            .prepare("SELECT id FROM events ORDER BY id")
            .map_err(sql("reading event ids", path))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(sql("reading event ids", path))?;
        for id in rows {
            let id = id.map_err(sql("reading event ids", path))?;
            max_id = max_id.max(Some(id));
            if let Ok(id) = u64::try_from(id) {
                ids.insert(id);
            }
        }
    }
    let meta = |key: &str| -> Result<Option<i64>, JournalError> {
        conn.query_row("SELECT max(value) FROM meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .map_err(sql("reading counters", path))
    };
    let last_event = max_id.max(meta("last_event_id")?);
    let max_run: Option<i64> = conn
        .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
        .map_err(sql("reading run ids", path))?;
    let next_run = max_run
        .max(meta("run_seq")?)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
        + 1;
    let pending = pending(&conn, path)?;
    let marks = marks(&conn, path)?;
    // The check and the loads filled the page cache; the writer mostly appends.
    conn.release_memory()
        .map_err(sql("releasing the page cache", path))?;
    Ok(Loaded {
        conn,
        ids,
        last_event,
        next_run,
        pending,
        marks,
    })
}

/// The `meta` rows that are marks of a source, not the journal's own counters.
fn marks(conn: &Connection, path: &Path) -> Result<HashMap<String, u64>, JournalError> {
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta WHERE key NOT IN ('last_event_id', 'run_seq')")
        .map_err(sql("reading marks", path))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(sql("reading marks", path))?;
    let mut marks = HashMap::new();
    for row in rows {
        let (key, value) = row.map_err(sql("reading marks", path))?;
        if let Ok(value) = u64::try_from(value) {
            marks.insert(key, value);
        }
    }
    Ok(marks)
}

fn configure(conn: &Connection, path: &Path, sync: SyncMode) -> Result<(), JournalError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql("setting the busy timeout", path))?;
    // Before the file has any page; a journal already there keeps its own size.
    conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))
        .map_err(sql("setting the page size", path))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql("turning on WAL", path))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JournalError::Sqlite {
            context: "turning on WAL",
            path: path.to_path_buf(),
            source: sqlite_failure(
                rusqlite::ffi::SQLITE_ERROR,
                format!("the file system keeps the journal in {mode} mode"),
            ),
        });
    }
    let sync = match sync {
        SyncMode::Normal => "NORMAL",
        SyncMode::Full => "FULL",
    };
    // A small page cache: the writer appends, and idle memory counts. No
    // checkpoint on commit: the checkpointer copies the log (see checkpoint.rs).
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         PRAGMA cache_size = -1024;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = 16777216;"
    ))
    .map_err(sql("configuring", path))
}

/// The checkpointer's own connection, set up as the writer's is: its checkpoints
/// sync the files as the journal's `sync` says.
fn checkpointer(path: &Path, sync: SyncMode) -> Result<Checkpointer, JournalError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql("opening", path))?;
    configure(&conn, path, sync)?;
    Checkpointer::start(conn, path.to_path_buf()).map_err(|source| JournalError::Io {
        context: "starting the checkpoint thread of",
        path: path.to_path_buf(),
        source,
    })
}

/// `PRAGMA quick_check`: damage inside the file (not only in its header) is found at
/// start, when setting the file aside loses nothing the runner holds, rather than as
/// failing writes later.
fn check(conn: &Connection, path: &Path) -> Result<(), JournalError> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(sql("checking", path))?;
    if verdict == "ok" {
        return Ok(());
    }
    Err(JournalError::Sqlite {
        context: "checking",
        path: path.to_path_buf(),
        source: sqlite_failure(rusqlite::ffi::SQLITE_CORRUPT, verdict),
    })
}

/// The runs whose latest attempt is still to do, oldest first, with their events.
fn pending(conn: &Connection, path: &Path) -> Result<Pending, JournalError> {
    let started = Instant::now();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT r.id, r.attempt, r.state, r.hook, r.origin,
                    e.id, e.type, e.received_ms, e.tlm
             FROM runs r JOIN events e ON e.id = r.event_id
             WHERE {PENDING}
             ORDER BY r.id"
        ))
        .map_err(sql("reading pending runs", path))?;
    let mut rows = stmt.query([]).map_err(sql("reading pending runs", path))?;
    let mut events: HashMap<i64, Arc<StoredEvent>> = HashMap::new();
    let mut runs = Vec::new();
    while let Some(row) = rows.next().map_err(sql("reading pending runs", path))? {
        let mut read = || -> rusqlite::Result<PendingRun> {
            let event_id: i64 = row.get(5)?;
            let event = match events.get(&event_id) {
                Some(event) => event.clone(),
                None => {
                    let event = Arc::new(StoredEvent {
                        id: u64::try_from(event_id).unwrap_or_default(),
                        event_type: row.get(6)?,
                        received: time::from_ms(row.get(7)?),
                        text: Arc::from(row.get::<_, String>(8)?),
                    });
                    events.insert(event_id, event.clone());
                    event
                }
            };
            let attempt: u32 = row.get(1)?;
            let state: String = row.get(2)?;
            let (kind, attempt) = match state.as_str() {
                "queued" => (PendingKind::Queued, attempt.max(1)),
                "retrying" => (PendingKind::Retry, attempt + 1),
                _ => (PendingKind::Interrupted, attempt + 1),
            };
            Ok(PendingRun {
                run: super::RunId(row.get::<_, i64>(0)?.try_into().unwrap_or_default()),
                hook: row.get(3)?,
                attempt,
                kind,
                origin: RunOrigin::parse(&row.get::<_, String>(4)?),
                event,
            })
        };
        runs.push(read().map_err(sql("reading pending runs", path))?);
    }
    if !runs.is_empty() {
        info!(
            runs = runs.len(),
            "the journal holds runs left from before ({:?} to read)",
            started.elapsed()
        );
    }
    Ok(Pending { runs })
}
