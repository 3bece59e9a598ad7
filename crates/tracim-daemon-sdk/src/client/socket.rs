//! The client's own socket, private to the user from its first moment, and the
//! one-message connections it sends to the daemon on.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tracing::debug;

use super::ClientError;
use crate::protocol::MAX_TO_DAEMON;

/// Removes the socket only if it is still ours: a newer instance may have taken
/// the path since.
pub(super) fn remove_own_socket(path: &Path, identity: Option<FileIdentity>) {
    if identity.is_some() && file_identity(path) == identity {
        let _ = std::fs::remove_file(path);
    }
}

/// Creates the listening socket with mode 0600 and no moment when it is wider:
/// it is bound inside a fresh 0700 directory, narrowed, then renamed into place.
pub(super) fn bind(path: &Path) -> Result<UnixListener, ClientError> {
    let bind_error = |source| ClientError::Bind {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ClientError::AlreadyRunning(path.to_path_buf()));
            }
            debug!(path = %path.display(), "removing a stale socket");
            std::fs::remove_file(path).map_err(bind_error)?;
        }
        Ok(_) => return Err(ClientError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(bind_error)?;
    }
    static BINDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let staging = parent.join(format!(
        ".tracim-hooks-bind.{}.{}",
        std::process::id(),
        BINDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(bind_error)?;
    let result = (|| {
        let temp = staging.join("s");
        let listener = listen(&temp, 4096)?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temp, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let listener = result.map_err(bind_error)?;
    UnixListener::from_std(listener).map_err(bind_error)
}

/// socket + bind + listen with our own backlog: the daemon's connect fails (and
/// the message is lost) when the backlog is full.
fn listen(path: &Path, backlog: i32) -> io::Result<std::os::unix::net::UnixListener> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&fd, backlog)?;
    Ok(std::os::unix::net::UnixListener::from(fd))
}

/// One message, one connection, one write: the daemon reads a single `read()` of
/// 4096 bytes, so the message must be smaller than that.
pub async fn send_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if bytes.len() > MAX_TO_DAEMON {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "message of {} bytes: the daemon reads at most {MAX_TO_DAEMON}",
                bytes.len()
            ),
        ));
    }
    tokio::time::timeout(Duration::from_secs(2), async {
        let mut stream = UnixStream::connect(path).await?;
        stream.write_all(bytes).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "send timed out")))
}

/// Device, inode and change time of a file.
pub(super) type FileIdentity = (u64, u64, i64, i64);

/// What tells one socket file from its successor at the same path. The inode
/// number alone does not: tmpfs hands a freed one out again at once, so the
/// change time counts too.
pub(super) fn file_identity(path: &Path) -> Option<FileIdentity> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

/// What is at the daemon's master socket path, for messages that must say why
/// the daemon cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterPath {
    /// Nothing: the daemon has not started (or uses another path).
    Missing,
    /// A socket: the daemon's, or one it left behind when it died.
    Socket,
    /// Something that is not a socket, which no daemon can listen on.
    Other(&'static str),
}

impl MasterPath {
    /// Looks at `path` (without following a final symlink's target type away:
    /// a symlink to a socket counts as a socket, as `connect` would).
    pub fn of(path: &Path) -> MasterPath {
        match std::fs::metadata(path) {
            Err(_) => MasterPath::Missing,
            Ok(meta) => {
                let kind = meta.file_type();
                if kind.is_socket() {
                    MasterPath::Socket
                } else if kind.is_dir() {
                    MasterPath::Other("a directory")
                } else if kind.is_file() {
                    MasterPath::Other("a regular file")
                } else if kind.is_fifo() {
                    MasterPath::Other("a FIFO")
                } else {
                    MasterPath::Other("a device")
                }
            }
        }
    }
}

impl std::fmt::Display for MasterPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterPath::Missing => f.write_str("nothing is there yet"),
            MasterPath::Socket => f.write_str("a socket is there, but nobody answers on it"),
            MasterPath::Other(kind) => write!(f, "{kind} is there, not a socket"),
        }
    }
}
