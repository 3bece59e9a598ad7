//! What can go wrong with the journal, each naming the file or directory concerned.

use std::path::PathBuf;

/// An error of the journal layer.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The directory cannot be written: the runner must not start without its journal.
    #[error(
        "the journal directory {path} is not writable ({source}); fix its permissions, \
         or set [journal] path elsewhere, or enabled = false"
    )]
    Unwritable {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory could not be created or is not a directory.
    #[error("cannot use {path} as the journal directory: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process (a running service) holds the journal.
    #[error("the journal {path} is in use by another tracim-hooks process")]
    Busy {
        /// The database file.
        path: PathBuf,
    },
    /// The file was written by a newer tracim-hooks.
    #[error(
        "the journal {path} has schema version {found}, newer than this tracim-hooks \
         knows ({supported}); upgrade tracim-hooks or set [journal] path elsewhere"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The file is an SQLite database of some other program.
    #[error(
        "{path} is an SQLite database of another program (application id {found:#x}), not a journal"
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// Its `application_id`.
        found: i64,
    },
    /// There is no journal yet (a command ran before any service did).
    #[error("there is no journal at {path} yet")]
    NotFound {
        /// The database file.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("journal {path}: {context}: {source}")]
    Sqlite {
        /// What was being done.
        context: &'static str,
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// Writes fail (a full disk): what was sent is kept in memory and retried.
    #[error("the journal {path} is degraded, writes fail: {last_error}")]
    Degraded {
        /// The database file.
        path: PathBuf,
        /// The last failure.
        last_error: String,
    },
    /// The writer thread is gone (it panicked): nothing more is written.
    #[error("the journal writer of {path} has stopped")]
    WriterGone {
        /// The database file.
        path: PathBuf,
    },
}

impl JournalError {
    /// Whether the file is damaged beyond use, so that it should be set aside.
    pub(crate) fn is_corrupt(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match self {
            JournalError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(DatabaseCorrupt | NotADatabase)
            ),
            _ => false,
        }
    }
}

/// An SQLite-style error of our own finding (e.g. a failed integrity check).
pub(crate) fn sqlite_failure(code: std::ffi::c_int, message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message))
}

/// Wraps an SQLite error with its context and path.
pub(crate) fn sql<'a>(
    context: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(rusqlite::Error) -> JournalError + 'a {
    move |source| JournalError::Sqlite {
        context,
        path: path.to_path_buf(),
        source,
    }
}
