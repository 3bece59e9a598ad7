//! A TracimDaemon client: its own socket, registration, keep-alive, every message
//! received whole, registration again after daemon restarts, and a clean leave.
//!
//! This is the Rust SDK for writing TracimDaemon clients; the hook runner uses
//! nothing else. Unlike the upstream Go and Python SDKs it reads each message to
//! EOF (events over 4 KiB are normal: note bodies travel in them) and notices when
//! the daemon restarted and forgot it.
//!
//! ```
//! use std::time::Duration;
//!
//! use tracim_hooks::link::{Client, ClientConfig};
//! use tracim_hooks::protocol::Message;
//! use tracim_hooks::sim::{SimDaemon, SimOptions};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! // The simulated daemon stands in for TracimDaemon here; for real, the
//! // master socket is ~/.config/TracimDaemon/master.sock.
//! let master = dir.path().join("master.sock");
//! let daemon = SimDaemon::start(&master, SimOptions::default()).await?;
//!
//! let config = ClientConfig::new(&master, dir.path().join("my-client.sock"));
//! let (mut client, mut incoming) = Client::start(config).await?;
//! daemon
//!     .wait_for_client(&client.config().socket, Duration::from_secs(10))
//!     .await;
//! daemon
//!     .send_event(r#"{"event_id":7,"event_type":"content.created.file","fields":{}}"#)
//!     .await;
//!
//! // Every message comes through `incoming`, typed.
//! # let first = tokio::time::timeout(Duration::from_secs(10), async {
//! let first = loop {
//!     let Some(delivery) = incoming.recv().await else { break None };
//!     if let Message::TracimEvent(event) = delivery.envelope.message {
//!         println!("{} {}", event.id(), event.event_type());
//!         break Some(event.id());
//!     }
//! };
//! # first
//! # })
//! # .await?;
//! assert_eq!(first, Some(7));
//! client.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::lock;
use crate::protocol::{AccountInfo, ClientInfo, DecodeError, Envelope, MAX_TO_DAEMON, Message};

/// How a [`Client`] reaches the daemon and how patient it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The daemon's master socket.
    pub master_socket: PathBuf,
    /// This client's own socket (absolute: the daemon answers there).
    pub socket: PathBuf,
    /// Largest message accepted on one connection.
    pub max_message: usize,
    /// How long one connection may take to deliver its message.
    pub read_timeout: Duration,
    /// Register again when no ping came for this long (the daemon pings every 30 s).
    pub ping_timeout: Duration,
    /// How often to ask the daemon whether it still lists this client.
    pub check_interval: Duration,
    /// How often to look whether the master socket was replaced.
    pub watch_interval: Duration,
    /// Longest wait between two registration attempts.
    pub retry_max: Duration,
    /// Connections read at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Complaints about bad input are logged at most 5 times per kind in this
    /// window, then summed up.
    pub log_window: Duration,
}

impl ClientConfig {
    /// The defaults for a master and a client socket.
    pub fn new(master_socket: impl Into<PathBuf>, socket: impl Into<PathBuf>) -> Self {
        ClientConfig {
            master_socket: master_socket.into(),
            socket: socket.into(),
            max_message: 16 * 1024 * 1024,
            read_timeout: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(75),
            check_interval: Duration::from_secs(60),
            watch_interval: Duration::from_secs(1),
            retry_max: Duration::from_secs(5),
            max_connections: 512,
            log_window: Duration::from_secs(10),
        }
    }
}

/// Whether the client is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Trying to reach the daemon at this master socket.
    Waiting {
        /// The master socket.
        master: PathBuf,
    },
    /// Registered with the daemon at this master socket.
    Registered {
        /// The master socket.
        master: PathBuf,
    },
    /// Shut down.
    Stopped,
}

/// Fatal errors of a client.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Another process answers on the socket.
    #[error("another instance is running: something answers on {}", .0.display())]
    AlreadyRunning(PathBuf),
    /// The socket path is taken by something that is not a socket.
    #[error("{} exists and is not a socket; remove it or choose another `socket`", .0.display())]
    NotASocket(PathBuf),
    /// The socket path is not absolute.
    #[error("the client socket must be an absolute path: {}", .0.display())]
    RelativePath(PathBuf),
    /// Creating the socket failed.
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Sending to the daemon failed.
    #[error("cannot send to the daemon at {}: {source}", path.display())]
    Send {
        /// The master socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No answer came in time.
    #[error("the daemon did not answer {0} in time")]
    NoAnswer(&'static str),
}

/// One message received, with the time it was read.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message.
    pub envelope: Envelope,
    /// When its connection was read to the end.
    pub received: Instant,
}

/// The messages the client receives, in the order the daemon sent them.
/// Pings are answered by the client itself; they are passed on too.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<Delivery>,
}

impl Incoming {
    /// The next message; `None` once the client has shut down.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}

#[derive(Default)]
struct Waiters {
    clients: Vec<oneshot::Sender<Vec<ClientInfo>>>,
    account: Vec<oneshot::Sender<AccountInfo>>,
}

struct Shared {
    config: ClientConfig,
    self_path: String,
    pid: String,
    user_id: watch::Sender<Option<String>>,
    state: watch::Sender<LinkState>,
    last_ping: Mutex<Instant>,
    /// Bumped at each `daemon_account_info`, so the registrar can wait for the next one.
    account_infos: watch::Sender<u64>,
    /// Notified when the daemon announces this client deleted.
    forgotten: tokio::sync::Notify,
    waiters: Mutex<Waiters>,
    complaints: RateLimiter,
}

/// A registered (or registering) TracimDaemon client. Dropping it stops its tasks
/// without unregistering; [`Client::shutdown`] leaves cleanly.
pub struct Client {
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
    registrar: JoinHandle<()>,
    /// Puts messages in order; ends once every connection accepted was read.
    sequencer: JoinHandle<()>,
    /// What our socket file is, so that only ours is ever removed.
    identity: Option<FileIdentity>,
    left: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.shared.self_path)
            .finish()
    }
}

impl Client {
    /// Binds the client's socket (mode 0600), then starts accepting and
    /// registering in the background. Fails only if the socket cannot be had;
    /// a daemon that is not there yet is waited for.
    pub async fn start(config: ClientConfig) -> Result<(Client, Incoming), LinkError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Client::start_into(config, tx).await?;
        Ok((client, Incoming { rx }))
    }

    /// As [`Client::start`], handing messages to a channel of the caller's, which
    /// may be shared: a program that moves to another socket on the fly starts
    /// the new client into the same channel before it shuts the old one down.
    pub async fn start_into(
        config: ClientConfig,
        tx: mpsc::UnboundedSender<Delivery>,
    ) -> Result<Client, LinkError> {
        if !config.socket.is_absolute() {
            return Err(LinkError::RelativePath(config.socket.clone()));
        }
        let listener = bind(&config.socket)?;
        let identity = file_identity(&config.socket);
        let shared = Arc::new(Shared {
            self_path: config.socket.to_string_lossy().into_owned(),
            pid: std::process::id().to_string(),
            user_id: watch::channel(None).0,
            state: watch::channel(LinkState::Waiting {
                master: config.master_socket.clone(),
            })
            .0,
            last_ping: Mutex::new(Instant::now()),
            account_infos: watch::channel(0).0,
            forgotten: tokio::sync::Notify::new(),
            waiters: Mutex::new(Waiters::default()),
            complaints: RateLimiter::new(config.log_window, 5),
            config,
        });
        let (done, finished_reads) = mpsc::unbounded_channel();
        let sequencer = tokio::spawn(sequence(finished_reads, tx));
        let acceptor = tokio::spawn(accept_loop(listener, shared.clone(), done));
        let registrar = tokio::spawn(register_loop(shared.clone()));
        Ok(Client {
            shared,
            acceptor,
            registrar,
            sequencer,
            identity,
            left: false,
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Registered or not, as a watch.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.shared.state.subscribe()
    }

    /// The daemon's account (`daemon_account_info`), once it has said.
    pub fn user_id(&self) -> Option<String> {
        self.shared.user_id.borrow().clone()
    }

    /// Sends any message to the daemon, this client's socket as the sender.
    pub async fn send(&self, message: Message) -> Result<(), LinkError> {
        send_to_daemon(&self.shared, message).await
    }

    /// Pings the daemon (it answers `daemon_pong`, which arrives on [`Incoming`]).
    pub async fn ping(&self) -> Result<(), LinkError> {
        self.send(Message::Ping).await
    }

    /// Asks the daemon which clients it has.
    pub async fn clients(&self, timeout: Duration) -> Result<Vec<ClientInfo>, LinkError> {
        ask_clients(&self.shared, timeout).await
    }

    /// Asks the daemon which account it uses.
    pub async fn account_info(&self, timeout: Duration) -> Result<AccountInfo, LinkError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.waiters).account.push(tx);
        self.send(Message::GetAccountInfo).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(info)) => Ok(info),
            _ => Err(LinkError::NoAnswer("daemon_get_account_info")),
        }
    }

    /// Leaves: stops registering, tells the daemon (`daemon_client_delete`),
    /// stops accepting, hands on what connections already accepted still
    /// deliver, and removes the socket. Afterwards the client is inert; a second
    /// call does nothing.
    pub async fn shutdown(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        self.registrar.abort();
        let info = ClientInfo {
            path: self.shared.self_path.clone(),
            pid: self.shared.pid.clone(),
        };
        match send_to_daemon(&self.shared, Message::ClientDelete(info)).await {
            Ok(()) => {
                info!(master = %self.shared.config.master_socket.display(), "unregistered from TracimDaemon")
            }
            Err(e) => debug!("could not unregister: {e}"),
        }
        self.acceptor.abort();
        let _ = (&mut self.acceptor).await;
        // Connections already accepted are read to their end (each within
        // read_timeout), so what they carry is not lost.
        let reads_done = self.shared.config.read_timeout + Duration::from_secs(1);
        if tokio::time::timeout(reads_done, &mut self.sequencer)
            .await
            .is_err()
        {
            self.sequencer.abort();
        }
        self.shared.complaints.flush(true);
        remove_own_socket(&self.shared.config.socket, self.identity);
        self.shared.state.send_replace(LinkState::Stopped);
    }
}

impl Drop for Client {
    /// A client dropped without [`Client::shutdown`] stops its tasks and removes
    /// its socket, but cannot tell the daemon (that needs an await): the daemon
    /// drops it at its next ping.
    fn drop(&mut self) {
        if !self.left {
            self.registrar.abort();
            self.acceptor.abort();
            self.sequencer.abort();
            remove_own_socket(&self.shared.config.socket, self.identity);
        }
    }
}

/// Removes the socket only if it is still ours: a newer instance may have taken
/// the path since.
fn remove_own_socket(path: &Path, identity: Option<FileIdentity>) {
    if identity.is_some() && file_identity(path) == identity {
        let _ = std::fs::remove_file(path);
    }
}

/// Creates the listening socket with mode 0600 and no moment when it is wider:
/// it is bound inside a fresh 0700 directory, narrowed, then renamed into place.
fn bind(path: &Path) -> Result<UnixListener, LinkError> {
    let bind_error = |source| LinkError::Bind {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(LinkError::AlreadyRunning(path.to_path_buf()));
            }
            debug!(path = %path.display(), "removing a stale socket");
            std::fs::remove_file(path).map_err(bind_error)?;
        }
        Ok(_) => return Err(LinkError::NotASocket(path.to_path_buf())),
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
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain socket syscalls on a descriptor we own; errors are checked.
    unsafe {
        let fd = libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let listener = std::os::unix::net::UnixListener::from_raw_fd(fd);
        let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
        if libc::bind(fd, (&raw const addr).cast(), len as libc::socklen_t) != 0
            || libc::listen(fd, backlog) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(listener)
    }
}

/// Accepts at once and reads each connection in a task of its own, so a slow or
/// silent peer never delays the next one, and the daemon (which delivers to all
/// clients serially) never waits on us.
async fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    done: mpsc::UnboundedSender<(u64, Option<Delivery>)>,
) {
    let mut accepted_count = 0u64;
    let permits = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut flush = tokio::time::interval(shared.complaints.window);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        // Suppressed complaints are summed up when their window ends, even when
        // no new complaint comes to trigger it.
        let accepted = loop {
            tokio::select! {
                accepted = listener.accept() => break accepted,
                _ = flush.tick() => shared.complaints.flush(false),
            }
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                shared.complaints.warn("accept failed", &e.to_string());
                // EMFILE and the like: give the system a moment instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = stream.peer_cred().map(|c| (c.uid(), c.pid()));
        match peer {
            Ok((uid, _)) if uid == me || uid == 0 => {}
            Ok((uid, pid)) => {
                shared.complaints.warn(
                    "connection refused: not this user",
                    &format!(
                        "uid {uid}, pid {}",
                        pid.map_or("?".into(), |p| p.to_string())
                    ),
                );
                continue;
            }
            Err(e) => {
                shared
                    .complaints
                    .warn("connection refused: no peer credentials", &e.to_string());
                continue;
            }
        }
        let seq = accepted_count;
        accepted_count += 1;
        let shared = shared.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let delivery = read_one(stream, &shared).await;
            drop(permit);
            let _ = done.send((seq, delivery));
        });
    }
}

/// Reads one connection to its end and decodes it; the client's own reactions
/// (pong, account info, answers) happen here, at once, whatever the order.
async fn read_one(mut stream: UnixStream, shared: &Shared) -> Option<Delivery> {
    let limit = shared.config.max_message;
    let read = async {
        let mut buf = Vec::with_capacity(4096);
        // One byte past the limit tells a message over it from one that fits.
        let mut taken = (&mut stream).take(limit as u64 + 1);
        taken.read_to_end(&mut buf).await.map(|_| buf)
    };
    let bytes = match tokio::time::timeout(shared.config.read_timeout, read).await {
        Err(_) => {
            shared
                .complaints
                .warn("connection timed out before its message ended", "");
            return None;
        }
        Ok(Err(e)) => {
            shared
                .complaints
                .warn("connection read failed", &e.to_string());
            return None;
        }
        Ok(Ok(bytes)) if bytes.len() > limit => {
            shared.complaints.warn(
                "message over max_message dropped",
                &format!("more than {limit} bytes"),
            );
            return None;
        }
        Ok(Ok(bytes)) => bytes,
    };
    let received = Instant::now();
    drop(stream);
    if bytes.is_empty() {
        // A peer that connects and closes: another instance checking whether
        // this one is alive, say. Nothing was sent, nothing is wrong.
        debug!("empty connection");
        return None;
    }
    match Envelope::decode(&bytes) {
        Ok(envelope) => {
            handle(shared, &envelope);
            Some(Delivery { envelope, received })
        }
        Err(e) => {
            complain_decode(shared, &e, bytes.len());
            None
        }
    }
}

/// How long a message that was read may wait for the messages accepted before
/// it. The daemon has written a message whole before it connects for the next
/// one, so in practice nothing waits; only a stalled peer that is not the daemon
/// can hold the order up, and then only this long.
const ORDER_HOLD: Duration = Duration::from_millis(50);

/// Hands messages on in the order their connections were accepted, which is the
/// order the daemon sent them: connections are read concurrently (a slow peer
/// must not delay the others), so their reads may finish in another order, and
/// `serial` and `latest` hooks depend on arrival order.
async fn sequence(
    mut done: mpsc::UnboundedReceiver<(u64, Option<Delivery>)>,
    tx: mpsc::UnboundedSender<Delivery>,
) {
    let mut next = 0u64;
    let mut waiting: std::collections::BTreeMap<u64, Option<Delivery>> = Default::default();
    let hold = tokio::time::sleep(ORDER_HOLD);
    tokio::pin!(hold);
    let pass = |delivery: Option<Delivery>| {
        if let Some(delivery) = delivery {
            let _ = tx.send(delivery);
        }
    };
    loop {
        tokio::select! {
            item = done.recv() => match item {
                // In order, the usual case: straight through.
                Some((seq, delivery)) if seq == next && waiting.is_empty() => {
                    pass(delivery);
                    next += 1;
                    continue;
                }
                // Its turn was skipped; hand it on now rather than never.
                Some((seq, delivery)) if seq < next => {
                    pass(delivery);
                    continue;
                }
                Some((seq, delivery)) => {
                    if waiting.is_empty() {
                        hold.as_mut().reset(tokio::time::Instant::now() + ORDER_HOLD);
                    }
                    waiting.insert(seq, delivery);
                }
                None => {
                    waiting.into_values().for_each(pass);
                    return;
                }
            },
            () = &mut hold, if !waiting.is_empty() => {
                if let Some(&first) = waiting.keys().next() {
                    debug!(skipped = first - next, "messages out of order: not waiting any longer for earlier ones");
                    next = first;
                }
            }
        }
        let before = next;
        while let Some(delivery) = waiting.remove(&next) {
            pass(delivery);
            next += 1;
        }
        if next != before && !waiting.is_empty() {
            hold.as_mut()
                .reset(tokio::time::Instant::now() + ORDER_HOLD);
        }
    }
}

fn complain_decode(shared: &Shared, error: &DecodeError, len: usize) {
    shared
        .complaints
        .warn(error.category(), &format!("{error} ({len} bytes)"));
}

/// What the client itself does with a message, before passing it on.
fn handle(shared: &Shared, envelope: &Envelope) {
    match &envelope.message {
        Message::Ping => {
            *lock(&shared.last_ping) = Instant::now();
            let master = shared.config.master_socket.clone();
            let pong = Envelope::new(shared.self_path.clone(), Message::Pong).encode();
            // Answered from its own task: keep-alive waits behind nothing.
            tokio::spawn(async move {
                if let Err(e) = send_bytes(&master, &pong).await {
                    debug!("pong not delivered: {e}");
                }
            });
        }
        Message::AccountInfo(info) => {
            shared.user_id.send_replace(Some(info.user_id.clone()));
            shared.account_infos.send_modify(|n| *n += 1);
            for waiter in lock(&shared.waiters).account.drain(..) {
                let _ = waiter.send(info.clone());
            }
        }
        Message::Clients(list) => {
            let waiters: Vec<_> = lock(&shared.waiters).clients.drain(..).collect();
            for waiter in waiters {
                let _ = waiter.send(list.clone());
            }
        }
        Message::ClientDeleted(info) if info.path == shared.self_path => {
            shared.forgotten.notify_one();
        }
        _ => debug!(kind = envelope.message.kind(), "message received"),
    }
}

async fn ask_clients(shared: &Shared, timeout: Duration) -> Result<Vec<ClientInfo>, LinkError> {
    let (tx, rx) = oneshot::channel();
    lock(&shared.waiters).clients.push(tx);
    send_to_daemon(shared, Message::GetClients).await?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(list)) => Ok(list),
        _ => Err(LinkError::NoAnswer("daemon_get_clients")),
    }
}

async fn send_to_daemon(shared: &Shared, message: Message) -> Result<(), LinkError> {
    let bytes = Envelope::new(shared.self_path.clone(), message).encode();
    let master = &shared.config.master_socket;
    send_bytes(master, &bytes)
        .await
        .map_err(|source| LinkError::Send {
            path: master.clone(),
            source,
        })
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
type FileIdentity = (u64, u64, i64, i64);

/// What tells one socket file from its successor at the same path. The inode
/// number alone does not: tmpfs hands a freed one out again at once, so the
/// change time counts too.
fn file_identity(path: &Path) -> Option<FileIdentity> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

/// Registers, and registers again whenever the daemon may have forgotten us: a
/// new master socket (restart), pings that stopped, or a client list without us.
async fn register_loop(shared: Arc<Shared>) {
    let config = shared.config.clone();
    let master = config.master_socket.clone();
    let mut backoff = Duration::from_millis(100);
    let mut said_waiting = false;
    loop {
        // --- not registered: try, and wait between tries
        let identity = file_identity(&master);
        let seen = *shared.account_infos.borrow();
        let info = ClientInfo {
            path: shared.self_path.clone(),
            pid: shared.pid.clone(),
        };
        if let Err(e) = send_to_daemon(&shared, Message::ClientAdd(info)).await {
            if !said_waiting {
                info!(master = %master.display(), "waiting for TracimDaemon ({e})");
                said_waiting = true;
            }
            shared.state.send_replace(LinkState::Waiting {
                master: master.clone(),
            });
            // Wake early when the master socket appears or changes.
            let deadline = Instant::now() + backoff;
            while Instant::now() < deadline {
                tokio::time::sleep(config.watch_interval.min(deadline - Instant::now())).await;
                if file_identity(&master) != identity {
                    break;
                }
            }
            backoff = (backoff * 2).min(config.retry_max);
            continue;
        }
        // The daemon answers a registration with its account info.
        let mut infos = shared.account_infos.subscribe();
        let answered = tokio::time::timeout(Duration::from_secs(2), infos.wait_for(|n| *n != seen))
            .await
            .is_ok();
        if !answered {
            debug!("no daemon_account_info after registering");
        }
        said_waiting = false;
        backoff = Duration::from_millis(100);
        *lock(&shared.last_ping) = Instant::now();
        info!(
            master = %master.display(),
            socket = %shared.self_path,
            user_id = shared.user_id.borrow().as_deref().unwrap_or("?"),
            "registered with TracimDaemon"
        );
        shared.state.send_replace(LinkState::Registered {
            master: master.clone(),
        });

        // --- registered: watch for any sign the daemon forgot us
        let reason = watch_registration(&shared, identity).await;
        info!(master = %master.display(), "registering again: {reason}");
    }
}

async fn watch_registration(shared: &Shared, identity: Option<FileIdentity>) -> &'static str {
    let config = &shared.config;
    let mut watch = tokio::time::interval(config.watch_interval);
    let mut check = tokio::time::interval(config.check_interval);
    check.reset();
    loop {
        tokio::select! {
            _ = watch.tick() => {
                if file_identity(&config.master_socket) != identity {
                    return "the daemon's master socket was replaced (daemon restart)";
                }
                if lock(&shared.last_ping).elapsed() > config.ping_timeout {
                    return "no ping from the daemon within ping_timeout";
                }
            }
            _ = check.tick() => {
                match ask_clients(shared, config.read_timeout).await {
                    Ok(list) if list.iter().any(|c| c.path == shared.self_path) => {}
                    Ok(_) => return "the daemon no longer lists this client",
                    Err(e) => {
                        debug!("client check: {e}");
                        if matches!(e, LinkError::Send { .. }) {
                            return "the daemon cannot be reached";
                        }
                    }
                }
            }
            () = shared.forgotten.notified() => {
                return "the daemon announced this client deleted";
            }
        }
    }
}

/// Logs a kind of complaint at most `burst` times per `window`, then says how many
/// were left out, so a flood of bad input cannot flood the journal.
struct RateLimiter {
    window: Duration,
    burst: u32,
    seen: Mutex<HashMap<&'static str, (Instant, u32, u64)>>,
}

impl RateLimiter {
    fn new(window: Duration, burst: u32) -> Self {
        RateLimiter {
            window,
            burst,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Logs how many complaints of each kind were left out, for the windows that
    /// are over (or all of them).
    fn flush(&self, all: bool) {
        let mut seen = lock(&self.seen);
        let now = Instant::now();
        for (what, entry) in seen.iter_mut() {
            if entry.2 > 0 && (all || now.duration_since(entry.0) > self.window) {
                warn!(suppressed = entry.2, "{what}: {} more not logged", entry.2);
                entry.2 = 0;
            }
        }
    }

    fn warn(&self, what: &'static str, detail: &str) {
        let mut seen = lock(&self.seen);
        let now = Instant::now();
        let entry = seen.entry(what).or_insert((now, 0, 0));
        if now.duration_since(entry.0) > self.window {
            if entry.2 > 0 {
                warn!(suppressed = entry.2, "{what}: {} more not logged", entry.2);
            }
            *entry = (now, 0, 0);
        }
        if entry.1 < self.burst {
            entry.1 += 1;
            warn!("{what}: {detail}");
        } else {
            entry.2 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(path: &str) -> Option<Delivery> {
        Some(Delivery {
            envelope: Envelope::new(path, Message::Ping),
            received: Instant::now(),
        })
    }

    fn paths(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|d| d.envelope.path)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn messages_leave_in_accept_order_and_a_stuck_one_is_not_waited_for_long() {
        let (done, finished) = mpsc::unbounded_channel();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(sequence(finished, tx));
        let settle = || tokio::time::sleep(Duration::from_millis(1));

        // 1 and 2 finish before 0: they wait for it, then all leave in order.
        done.send((1, delivery("b"))).unwrap();
        done.send((2, delivery("c"))).unwrap();
        settle().await;
        assert!(paths(&mut rx).is_empty());
        done.send((0, delivery("a"))).unwrap();
        settle().await;
        assert_eq!(paths(&mut rx), ["a", "b", "c"]);

        // A connection that yields nothing still takes its turn.
        done.send((3, None)).unwrap();
        done.send((4, delivery("e"))).unwrap();
        settle().await;
        assert_eq!(paths(&mut rx), ["e"]);

        // 5 is stuck: 6 waits for ORDER_HOLD, not longer; 5 comes late and
        // still gets through.
        done.send((6, delivery("g"))).unwrap();
        tokio::time::sleep(ORDER_HOLD - Duration::from_millis(5)).await;
        assert!(paths(&mut rx).is_empty());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(paths(&mut rx), ["g"]);
        done.send((5, delivery("f"))).unwrap();
        done.send((7, delivery("h"))).unwrap();
        settle().await;
        assert_eq!(paths(&mut rx), ["f", "h"]);

        // When the acceptor is gone, what waits is handed on and the stream ends.
        done.send((9, delivery("j"))).unwrap();
        drop(done);
        settle().await;
        assert_eq!(paths(&mut rx), ["j"]);
        assert!(rx.recv().await.is_none());
    }
}
