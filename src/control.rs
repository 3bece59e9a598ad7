//! The control socket: how `status` and `replay` reach a running service. A Unix
//! socket next to the journal (`journal.db.sock`, in the journal's 0700 directory),
//! made 0600, and each peer checked with `SO_PEERCRED`: only the user's own
//! processes are answered. One JSON request line, one JSON answer line.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::journal::{JournalSettings, Reader};
use crate::replay::{self, Item, ReplayRequest};

/// How long one exchange may take, either side.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request read.
const MAX_REQUEST: u64 = 64 * 1024;
/// Longest path a Unix socket address can hold (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What a command asks the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// How the service is doing.
    Status,
    /// Run stored events again.
    Replay(ReplayRequest),
}

/// What the service answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The live status.
    Status(LiveStatus),
    /// What a replay queued.
    Replayed(replay::Outcome),
    /// The request could not be served.
    Error(String),
}

/// The running service's own view of itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveStatus {
    /// Its process id.
    pub pid: u32,
    /// `registered`, `waiting` or `stopped`.
    pub state: String,
    /// The daemon's master socket (with `source = "tracim"`: Tracim's URL).
    pub master: String,
    /// `daemon` or `tracim`.
    #[serde(default)]
    pub source: String,
    /// The Tracim link, when `[tracim]` is set.
    #[serde(default)]
    pub tracim: Option<Box<crate::source::link::TracimStatus>>,
    /// Since when it is registered (ms since the epoch).
    pub registered_since_ms: Option<i64>,
    /// When the service started (ms since the epoch).
    pub started_ms: i64,
    /// The hooks of its config, in order.
    pub hooks: Vec<String>,
    /// Runs going on now.
    pub running: usize,
    /// Runs waiting.
    pub queued: usize,
    /// Tracim events received since start.
    pub events_received: u64,
    /// How the journal's writes go.
    pub journal: JournalHealth,
}

/// [`crate::journal::Health`], as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JournalHealth {
    /// Whether the journal is on.
    pub enabled: bool,
    /// Writes fail.
    pub degraded: bool,
    /// Since when (ms since the epoch).
    pub degraded_since_ms: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Records waiting in memory.
    pub backlog: usize,
    /// Records given up.
    pub lost: u64,
}

/// A request handed to the service loop, with where its answer goes.
pub(crate) enum Ask {
    /// Answer with [`Response::Status`].
    Status(oneshot::Sender<LiveStatus>),
    /// Queue these replays.
    Replay(Vec<Item>, oneshot::Sender<replay::Outcome>),
}

/// Where the control socket of a journal is: next to it. `None` when the journal
/// is off (there is nothing to replay, and no private directory to put it in).
pub fn socket_path(journal: &JournalSettings) -> Option<PathBuf> {
    if !journal.enabled {
        return None;
    }
    let mut name = journal.path.clone().into_os_string();
    name.push(".sock");
    Some(PathBuf::from(name))
}

/// Why the command could not talk to the service.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No service listens (no socket, or a stale one).
    #[error("no service is running")]
    NotRunning,
    /// The exchange failed.
    #[error("the service at {path} did not answer: {reason}")]
    Exchange {
        /// The control socket.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Asks the service behind `path`.
pub async fn ask(path: &Path, request: &Request) -> Result<Response, ControlError> {
    let mut stream = match UnixStream::connect(path).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning);
        }
        Err(e) => {
            return Err(ControlError::Exchange {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let exchange = async {
        let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
        line.push('\n');
        stream.write_all(line.as_bytes()).await?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).await?;
        serde_json::from_str::<Response>(&answer).map_err(std::io::Error::other)
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("timed out")))
        .map_err(|e| ControlError::Exchange {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// The listening control socket; the file is removed when it is dropped.
pub(crate) struct Server {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Server {
    /// Listens at `path` (in the journal's private directory), serving requests
    /// through `asks`; the journal at `journal` is read for replays. A failure is
    /// logged and leaves the service without one: it still runs hooks.
    pub(crate) fn start(
        path: PathBuf,
        journal: PathBuf,
        asks: mpsc::UnboundedSender<Ask>,
    ) -> Option<Server> {
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            warn!(path = %path.display(), "the control socket path is too long: `status` shows no live details and `replay` cannot reach the service");
            return None;
        }
        // The journal's lock is held: a socket left here is a dead service's.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(&path);
        }
        let listener = bind_private(&path);
        let listener = match listener {
            Ok(listener) => listener,
            Err(e) => {
                warn!(path = %path.display(), "cannot listen on the control socket: {e}; `status` shows no live details and `replay` cannot reach the service");
                return None;
            }
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (asks, journal) = (asks.clone(), journal.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, asks, journal).await {
                        debug!("control request not served: {e}");
                    }
                });
            }
        });
        Some(Server { path, task })
    }
}

/// Binds with mode 0600 from the first moment, whatever the directory: inside a
/// fresh 0700 directory, narrowed, then renamed into place (as the client socket).
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let parent = path.parent().unwrap_or(Path::new("/"));
    let staging = parent.join(format!(".tracim-hooks-control.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let result = (|| -> std::io::Result<std::os::unix::net::UnixListener> {
        let temp = staging.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&temp)?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temp, path)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    UnixListener::from_std(result?)
}

/// Serves one connection of the user's own.
async fn serve(
    stream: UnixStream,
    asks: mpsc::UnboundedSender<Ask>,
    journal: PathBuf,
) -> std::io::Result<()> {
    let me = rustix::process::geteuid().as_raw();
    let peer = stream.peer_cred()?.uid();
    if peer != me {
        warn!(
            uid = peer,
            "control socket: a connection of another user refused"
        );
        return Ok(());
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let read = reader.read_line(&mut line);
    tokio::time::timeout(EXCHANGE_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::other("request timed out"))??;
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::Error(format!("bad request: {e}")),
        Ok(Request::Status) => {
            let (tx, rx) = oneshot::channel();
            let _ = asks.send(Ask::Status(tx));
            match rx.await {
                Ok(status) => Response::Status(status),
                Err(_) => Response::Error("the service is stopping".into()),
            }
        }
        Ok(Request::Replay(request)) => {
            let planned = tokio::task::spawn_blocking(move || {
                let reader = Reader::open(&journal)?;
                replay::plan(&reader, &request)
            })
            .await
            .map_err(std::io::Error::other)?;
            match planned {
                Err(e) => Response::Error(e.to_string()),
                Ok(items) => {
                    let (tx, rx) = oneshot::channel();
                    let _ = asks.send(Ask::Replay(items, tx));
                    match rx.await {
                        Ok(outcome) => Response::Replayed(outcome),
                        Err(_) => Response::Error("the service is stopping".into()),
                    }
                }
            }
        }
    };
    let mut text = serde_json::to_string(&response).map_err(std::io::Error::other)?;
    text.push('\n');
    tokio::time::timeout(EXCHANGE_TIMEOUT, write.write_all(text.as_bytes()))
        .await
        .map_err(|_| std::io::Error::other("answer timed out"))?
}

pub(crate) use crate::clock::ms;
