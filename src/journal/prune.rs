//! Retention: events older than `retention`, then the oldest past `max_events`, go
//! with their runs, a chunk per transaction so that the writer keeps committing
//! between chunks. An event with a run still to do is kept whatever its age: the
//! journal never forgets work it accepted.

use rusqlite::{Connection, TransactionBehavior, params};

use super::schema::PENDING;

/// Events deleted per transaction.
pub(crate) const CHUNK: usize = 2000;

/// What a pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events (with their runs) older than the retention.
    pub by_age: u64,
    /// The oldest events past `max_events`.
    pub by_count: u64,
}

/// One chunk deleted.
pub(crate) struct Step {
    /// The event ids removed.
    pub ids: Vec<u64>,
    /// Whether they went for their age (else for the count).
    pub by_age: bool,
    /// Whether another step may find more.
    pub more: bool,
}

/// An event none of whose runs is still to do.
fn keep_pending() -> String {
    format!("NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = e.id AND {PENDING})")
}

/// Deletes one chunk: by age first, by count once nothing is too old. `None` when
/// there is nothing to prune.
pub(crate) fn step(
    conn: &mut Connection,
    cutoff_ms: i64,
    max_events: u64,
) -> rusqlite::Result<Option<Step>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ids: Vec<i64> = tx
        .prepare_cached(&format!(
            "SELECT id FROM events e WHERE received_ms < ?1 AND {}
             ORDER BY received_ms, id LIMIT ?2",
            keep_pending()
        ))?
        .query_map(params![cutoff_ms, CHUNK as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let by_age = !ids.is_empty();
    let mut limit = CHUNK as u64;
    if !by_age {
        let count: i64 = tx.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let excess = count.unsigned_abs().saturating_sub(max_events);
        if excess == 0 {
            return Ok(None);
        }
        limit = excess.min(CHUNK as u64);
        ids = tx
            .prepare_cached(&format!(
                "SELECT id FROM events e WHERE {}
                 ORDER BY received_ms, id LIMIT ?1",
                keep_pending()
            ))?
            .query_map(params![limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if ids.is_empty() {
            return Ok(None);
        }
    }
    {
        let mut runs = tx.prepare_cached("DELETE FROM runs WHERE event_id = ?1")?;
        let mut events = tx.prepare_cached("DELETE FROM events WHERE id = ?1")?;
        for id in &ids {
            runs.execute([id])?;
            events.execute([id])?;
        }
    }
    tx.commit()?;
    let more = ids.len() as u64 == limit;
    Ok(Some(Step {
        // Stored ids are Tracim's u64 ids that fit an i64 (others are not stored).
        ids: ids
            .into_iter()
            .filter_map(|id| u64::try_from(id).ok())
            .collect(),
        by_age,
        more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, std::path::Path::new(":memory:")).unwrap();
        conn
    }

    fn add(conn: &Connection, id: i64, received_ms: i64, run_state: &str) {
        conn.execute(
            "INSERT INTO events VALUES (?1, 'content.created.file', ?2, '{}')",
            params![id, received_ms],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO runs (id, attempt, event_id, hook, origin, state, queued_ms)
             VALUES (?1, 1, ?1, 'h', 'event', ?2, ?3)",
            params![id, run_state, received_ms],
        )
        .unwrap();
    }

    fn ids(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT id FROM events ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn old_events_go_then_the_oldest_past_the_count_but_never_pending_work() {
        let mut conn = journal();
        add(&conn, 1, 100, "ok");
        add(&conn, 2, 150, "queued");
        add(&conn, 3, 200, "failed");
        add(&conn, 4, 1000, "ok");
        add(&conn, 5, 1100, "ok");
        add(&conn, 6, 1200, "ok");
        let first = step(&mut conn, 500, 2).unwrap().unwrap();
        assert!(first.by_age);
        assert_eq!(first.ids, vec![1, 3]);
        assert!(!first.more);
        // 2 is too old but queued, and counts: 4 and 5 are the oldest past 2 events.
        let second = step(&mut conn, 500, 2).unwrap().unwrap();
        assert!(!second.by_age);
        assert_eq!(second.ids, vec![4, 5]);
        assert_eq!(ids(&conn), vec![2, 6]);
        // Only pending work is past the count now: nothing more to do.
        assert!(step(&mut conn, 500, 2).unwrap().is_none());
        let runs: i64 = conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs, 2, "runs went with their events");
    }
}
