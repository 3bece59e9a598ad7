//! The journal's tables, and the versioned migrations that build them
//! (`PRAGMA user_version` counts the migrations applied).
//!
//! A run is one hook for one event; each attempt is a row, keyed `(id, attempt)`, so
//! that `history` shows every attempt and the latest row of a run says where it stands.

use std::path::Path;

use rusqlite::Connection;

use super::error::{JournalError, sql};

/// `PRAGMA application_id`: "THKJ", marking the file as a tracim-hooks journal.
pub(crate) const APPLICATION_ID: i64 = 0x5448_4b4a;

/// The migrations, in order: migration `n` (from 1) takes the file from version
/// `n - 1` to `n`. Append only: a released migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: events, runs, and the counters that must outlive pruning.
    "CREATE TABLE events (
         id          INTEGER PRIMARY KEY,  -- Tracim's event_id
         type        TEXT    NOT NULL,
         received_ms INTEGER NOT NULL,
         tlm         TEXT    NOT NULL      -- exactly as received
     );
     CREATE INDEX events_received ON events (received_ms);
     CREATE TABLE runs (
         id          INTEGER NOT NULL,     -- the runner's RunId
         attempt     INTEGER NOT NULL,
         event_id    INTEGER NOT NULL,
         hook        TEXT    NOT NULL,
         origin      TEXT    NOT NULL,     -- event | replay
         state       TEXT    NOT NULL,     -- see RunState
         queued_ms   INTEGER NOT NULL,
         started_ms  INTEGER,
         ended_ms    INTEGER,
         exit_code   INTEGER,
         signal      INTEGER,
         timed_out   INTEGER NOT NULL DEFAULT 0,
         stdout_tail TEXT,
         stderr_tail TEXT,
         reason      TEXT
     );
     CREATE UNIQUE INDEX runs_key ON runs (id, attempt);
     CREATE INDEX runs_event ON runs (event_id, hook);
     CREATE INDEX runs_hook ON runs (hook, id);
     CREATE INDEX runs_pending ON runs (id)
         WHERE state IN ('queued', 'running', 'retrying');
     CREATE INDEX runs_failures ON runs (hook, id)
         WHERE state IN ('failed', 'retrying', 'interrupted');
     CREATE TABLE meta (
         key   TEXT PRIMARY KEY,           -- last_event_id, run_seq
         value INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 2: the partial indexes' conditions without `IN (...)`: SQLite evaluates an
    // IN list through a temporary table, made and freed for every row written (four
    // per run update), which was most of the writer's work per run.
    "DROP INDEX runs_pending;
     CREATE INDEX runs_pending ON runs (id)
         WHERE state = 'queued' OR state = 'running' OR state = 'retrying';
     DROP INDEX runs_failures;
     CREATE INDEX runs_failures ON runs (hook, id)
         WHERE state = 'failed' OR state = 'retrying' OR state = 'interrupted';",
];

/// A run still to do, as the index `runs_pending` is conditioned: a query uses that
/// index only when its condition is written the same way.
pub(crate) const PENDING: &str = "(state = 'queued' OR state = 'running' OR state = 'retrying')";

/// A run that failed (or is between attempts), as `runs_failures` is conditioned.
pub(crate) const FAILED: &str = "(state = 'failed' OR state = 'retrying' OR state = 'interrupted')";

/// The version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Checks that the file is a journal this build can use, then brings it up to
/// [`VERSION`], one transaction per migration.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let (app, version) = identify(conn, path)?;
    if version == 0 && app != APPLICATION_ID {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(sql("reading the schema", path))?;
        if tables > 0 {
            return Err(JournalError::Foreign {
                path: path.to_path_buf(),
                found: app,
            });
        }
    }
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn
            .transaction()
            .map_err(sql("starting a migration", path))?;
        tx.execute_batch(migration)
            .map_err(sql("migrating the schema", path))?;
        // PRAGMA takes no parameters; both values are our own integers.
        tx.execute_batch(&format!(
            "PRAGMA user_version = {}; PRAGMA application_id = {APPLICATION_ID};",
            done + 1
        ))
        .map_err(sql("recording the schema version", path))?;
        tx.commit().map_err(sql("committing a migration", path))?;
    }
    Ok(())
}

/// Reads the file's `application_id` and `user_version`, and refuses a file of
/// another program or of a newer build.
pub(crate) fn identify(conn: &Connection, path: &Path) -> Result<(i64, i64), JournalError> {
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql("reading the application id", path))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql("reading the schema version", path))?;
    if app != 0 && app != APPLICATION_ID {
        return Err(JournalError::Foreign {
            path: path.to_path_buf(),
            found: app,
        });
    }
    if !(0..=VERSION).contains(&version) {
        return Err(JournalError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    Ok((app, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_brought_to_the_current_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        migrate(&mut conn, path).unwrap();
        assert_eq!(identify(&conn, path).unwrap(), (APPLICATION_ID, VERSION));
        // Migrating again is a no-op, not a "table exists" error.
        migrate(&mut conn, path).unwrap();
        conn.execute_batch("INSERT INTO meta VALUES ('run_seq', 1)")
            .unwrap();
    }

    #[test]
    fn a_journal_of_version_1_is_migrated_and_its_run_writes_make_no_temporary_table() {
        let path = Path::new(":memory:");
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA user_version = 1; PRAGMA application_id = {APPLICATION_ID};
             INSERT INTO runs (id, attempt, event_id, hook, origin, state, queued_ms)
             VALUES (1, 1, 7, 'h', 'event', 'queued', 0);"
        ))
        .unwrap();
        let opcodes = |conn: &Connection, sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            stmt.query_map([], |r| r.get::<_, String>(1))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let update = "UPDATE runs SET state = 'ok', ended_ms = 1 WHERE id = 1 AND attempt = 1";
        // The reason for migration 2, seen on the version 1 schema.
        assert!(
            opcodes(&conn, update)
                .iter()
                .any(|op| op == "OpenEphemeral")
        );

        migrate(&mut conn, path).unwrap();
        assert_eq!(identify(&conn, path).unwrap(), (APPLICATION_ID, VERSION));
        let insert =
            "INSERT OR IGNORE INTO runs (id, attempt, event_id, hook, origin, state, queued_ms)
                      VALUES (2, 1, 7, 'h', 'event', 'queued', 0)";
        for sql in [update, insert] {
            let ops = opcodes(&conn, sql);
            assert!(
                !ops.iter().any(|op| op == "OpenEphemeral"),
                "{sql}: {ops:?}"
            );
        }
        // The queries written with the same conditions still find the indexes.
        for (condition, index) in [(PENDING, "runs_pending"), (FAILED, "runs_failures")] {
            let plan: String = conn
                .query_row(
                    &format!("EXPLAIN QUERY PLAN SELECT id FROM runs WHERE {condition}"),
                    [],
                    |r| r.get(3),
                )
                .unwrap();
            assert!(plan.contains(index), "{plan}");
        }
        // The run written before the migration is still pending, through the index.
        let pending: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM runs WHERE {PENDING}"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(pending, 1);
    }

    #[test]
    fn newer_and_foreign_files_are_refused() {
        let path = Path::new("/x/journal.db");
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", VERSION + 1))
            .unwrap();
        let err = migrate(&mut conn, path).unwrap_err();
        assert!(matches!(err, JournalError::NewerSchema { found, .. } if found == VERSION + 1));
        assert!(err.to_string().contains("/x/journal.db"), "{err}");

        let mut other = Connection::open_in_memory().unwrap();
        other
            .execute_batch("CREATE TABLE notes (body TEXT)")
            .unwrap();
        assert!(matches!(
            migrate(&mut other, path),
            Err(JournalError::Foreign { found: 0, .. })
        ));
        let mut marked = Connection::open_in_memory().unwrap();
        marked.execute_batch("PRAGMA application_id = 7").unwrap();
        assert!(matches!(
            migrate(&mut marked, path),
            Err(JournalError::Foreign { found: 7, .. })
        ));
    }
}
