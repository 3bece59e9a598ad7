//! The journal's files on disk: a 0700 directory that must be writable, a 0600
//! database with 0600 companions, the lock that allows one writer, and a corrupt
//! file set aside as `journal.db.broken-<time>`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracing::info;

use super::error::JournalError;
use super::time;

/// Creates the directory 0700 when missing, and checks that it can be written.
/// An existing directory keeps its mode (it may be shared, like `/tmp`): the file
/// itself is 0600.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), JournalError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(JournalError::Dir {
                path: dir.to_path_buf(),
                source: io::Error::other("not a directory"),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| dir_error(dir, source))?;
            info!("created the journal directory {}", dir.display());
        }
        Err(source) => return Err(dir_error(dir, source)),
    }
    // access(2) rather than a probe file: it also sees a read-only mount, and leaves
    // nothing behind.
    use rustix::fs::Access;
    rustix::fs::access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
        JournalError::Unwritable {
            path: dir.to_path_buf(),
            source: e.into(),
        }
    })
}

fn dir_error(dir: &Path, source: io::Error) -> JournalError {
    if is_unwritable(&source) {
        JournalError::Unwritable {
            path: dir.to_path_buf(),
            source,
        }
    } else {
        JournalError::Dir {
            path: dir.to_path_buf(),
            source,
        }
    }
}

fn is_unwritable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    ) || e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error())
}

/// How long a lock held by someone else is waited for before the journal is said
/// to be in use.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(300);

/// Takes `journal.db.lock`, so that two runners never write one journal (each would
/// run the other's pending runs). Released when the writer thread ends, or the
/// process dies.
pub(crate) fn lock(path: &Path, dir: &Path) -> Result<File, JournalError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let lock_path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|source| file_error("creating", &lock_path, dir, source))?;
    use rustix::fs::FlockOperation;
    // A lock just released can still be held for a moment by a child forked while
    // it was taken (the child's copy of the descriptor holds it until its exec
    // closes it): a second runner holds it for good, so a short wait tells them apart.
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    let mut taken = rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive);
    while taken == Err(rustix::io::Errno::WOULDBLOCK) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        taken = rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive);
    }
    if let Err(e) = taken {
        return Err(if e == rustix::io::Errno::WOULDBLOCK {
            JournalError::Busy {
                path: path.to_path_buf(),
            }
        } else {
            JournalError::Io {
                context: "locking",
                path: lock_path,
                source: e.into(),
            }
        });
    }
    Ok(file)
}

fn file_error(context: &'static str, path: &Path, dir: &Path, source: io::Error) -> JournalError {
    if is_unwritable(&source) {
        JournalError::Unwritable {
            path: dir.to_path_buf(),
            source,
        }
    } else {
        JournalError::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Creates the file 0600 before SQLite does (SQLite would follow the umask), and
/// brings an existing file and its companions back to 0600: SQLite gives the -wal
/// and -shm files the mode of the database.
pub(crate) fn secure_file(path: &Path, dir: &Path) -> Result<(), JournalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| file_error("creating", path, dir, source))?;
    for file in [
        path.to_path_buf(),
        companion(path, "-wal"),
        companion(path, "-shm"),
    ] {
        match fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o777 != 0o600 => {
                fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).map_err(
                    |source| JournalError::Io {
                        context: "making private",
                        path: file.clone(),
                        source,
                    },
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `journal.db-wal` and the like.
fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Renames a corrupt file (and its write-ahead log) to `journal.db.broken-<time>`.
pub(crate) fn move_aside(path: &Path) -> Result<PathBuf, JournalError> {
    let stamp = time::stamp(SystemTime::now());
    let mut aside = companion(path, &format!(".broken-{stamp}"));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = companion(path, &format!(".broken-{stamp}-{n}"));
    }
    fs::rename(path, &aside).map_err(|source| JournalError::Io {
        context: "moving aside the corrupt journal",
        path: path.to_path_buf(),
        source,
    })?;
    // The log belongs to the broken file: a new file must not replay it. The shared
    // memory index is rebuilt from the log, so it just goes.
    let wal = companion(path, "-wal");
    if wal.exists() {
        let _ = fs::rename(&wal, companion(&aside, "-wal"));
    }
    let _ = fs::remove_file(companion(path, "-shm"));
    Ok(aside)
}
