//! The checkpointer: copies the write-ahead log into the journal's file on a thread
//! and a connection of its own, when the runner has a moment rather than in the
//! middle of a burst, so that no commit of the writer waits behind a copy.
//!
//! SQLite's own checkpoints run inside the commit that passes a threshold, on the
//! writer: every 4 MiB of records a commit took some milliseconds more and records
//! waited behind it. Here the writer asks for one at a lull (see `writer::LULL`). A
//! record is as safe in the log as in the file: copying it later loses nothing.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tracing::{debug, warn};

/// Records written since the last checkpoint past which one is due: the writer
/// asks for it at its next lull.
pub(crate) const DUE_BYTES: usize = 4 << 20;

/// Checkpoints in a row while the writer keeps adding to the log: each copies
/// what came during the one before, and the log starts over from its beginning
/// (instead of growing) only once one has copied all of it.
const ROUNDS: usize = 4;

/// The handle the writer keeps. Dropping it ends the thread, after the
/// checkpoint under way, and closes its connection.
pub(crate) struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread, which owns `conn` (a read-write connection to the
    /// journal, configured as the writer's is, for the same syncs).
    pub(crate) fn start(conn: Connection, path: PathBuf) -> std::io::Result<Checkpointer> {
        let (nudge, asked) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("journal-ckpt".into())
            .spawn(move || run(&conn, &path, &asked))?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint. One asked for and not begun yet covers this one.
    pub(crate) fn nudge(&self) {
        if let Some(nudge) = &self.nudge {
            let _ = nudge.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, path: &std::path::Path, asked: &Receiver<()>) {
    let mut failing = false;
    while asked.recv().is_ok() {
        for _ in 0..ROUNDS {
            // PASSIVE: copies what no reader still needs, and never waits for one.
            let copied = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            });
            match copied {
                Ok((log, done)) => {
                    if failing {
                        debug!(path = %path.display(), "journal checkpoints succeed again");
                    }
                    failing = false;
                    if done >= log {
                        break;
                    }
                }
                Err(e) => {
                    // Records are safe in the log meanwhile; it grows until one succeeds.
                    if !failing {
                        warn!(path = %path.display(), "journal checkpoint failed, trying again later: {e}");
                    }
                    failing = true;
                    break;
                }
            }
        }
    }
}
