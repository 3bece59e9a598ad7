//! A TracimDaemon client: its own socket, registration, keep-alive, every message
//! received whole, registration again after daemon restarts, and a clean leave.
//!
//! This is the Rust SDK for writing TracimDaemon clients; the hook runner uses
//! nothing else. Unlike the upstream Go and Python SDKs it reads each message to
//! EOF (events over 4 KiB are normal: note bodies travel in them) and notices when
//! the daemon restarted and forgot it.
//!
//! See the crate documentation for a complete client. The parts: `socket`
//! (our listening socket, sending to the daemon), `inbound` (accepting, reading,
//! ordering, and the client's own reactions), `register` (registration and
//! watching that it holds).

mod inbound;
mod master;
mod register;
mod slots;
mod socket;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::lock;
use crate::protocol::{AccountInfo, ClientInfo, Envelope, Message};

pub use inbound::Refusal;
pub use socket::{MasterPath, send_bytes};

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
    /// How often the daemon pings (30 s upstream). A ping a few seconds later than
    /// this makes the client ask at once whether the daemon still lists it.
    pub ping_interval: Duration,
    /// Register again when no ping came for this long.
    pub ping_timeout: Duration,
    /// How often to ask the daemon whether it still lists this client.
    pub check_interval: Duration,
    /// How often to look whether the master socket was replaced.
    pub watch_interval: Duration,
    /// Longest wait between two registration attempts.
    pub retry_max: Duration,
    /// Connections read at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl ClientConfig {
    /// The defaults for a master and a client socket.
    pub fn new(master_socket: impl Into<PathBuf>, socket: impl Into<PathBuf>) -> Self {
        ClientConfig {
            master_socket: master_socket.into(),
            socket: socket.into(),
            max_message: 16 * 1024 * 1024,
            read_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(75),
            check_interval: Duration::from_secs(60),
            watch_interval: Duration::from_secs(1),
            retry_max: Duration::from_secs(5),
            max_connections: 512,
        }
    }
}

/// Whether the client is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientState {
    /// Trying to reach the daemon at this master socket.
    Waiting {
        /// Where it expects the daemon (it watches this path for the daemon to appear).
        master: PathBuf,
    },
    /// Registered with the daemon at this master socket.
    Registered {
        /// The daemon's master socket it registered with (it changes on reload).
        master: PathBuf,
    },
    /// Left the daemon and closed its socket, after [`Client::shutdown`] or a drop.
    Stopped,
}

/// Fatal errors of a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
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
        /// The client socket that could not be created.
        path: PathBuf,
        /// The system's reason (permissions, missing directory, path too long…).
        #[source]
        source: io::Error,
    },
    /// Sending to the daemon failed.
    #[error("cannot send to the daemon at {}: {source}", path.display())]
    Send {
        /// The daemon's master socket that could not be reached.
        path: PathBuf,
        /// The system's reason (refused: the daemon is not running; not found…).
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
    /// The message, decoded (a message that could not be decoded is not delivered).
    pub envelope: Envelope,
    /// When its connection was read to the end.
    pub received: Instant,
    /// The registration it came under: [`Client::registrations`] when it was read.
    /// A delivery with a higher number than the one before means the client
    /// registered again in between: whatever the daemon sent meanwhile is missed.
    pub registration: u64,
}

/// What arrives on the client's socket: a message, or input it refused. The
/// client logs neither: what to say about a refusal, and how often, is the
/// caller's choice.
#[derive(Debug)]
pub enum Inbound {
    /// A message, in the order the daemon sent it.
    Message(Delivery),
    /// A connection or message the client did not take; the next one still works.
    Refused(Refusal),
}

/// The messages the client receives, in the order the daemon sent them, and the
/// input it refused. Pings are answered by the client itself; they are passed on too.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<Inbound>,
}

impl Incoming {
    /// The next message or refusal; `None` once the client has shut down.
    pub async fn recv(&mut self) -> Option<Inbound> {
        self.rx.recv().await
    }

    /// The next message, passing over refusals; `None` once the client has shut down.
    pub async fn recv_message(&mut self) -> Option<Delivery> {
        loop {
            if let Inbound::Message(delivery) = self.rx.recv().await? {
                return Some(delivery);
            }
        }
    }
}

#[derive(Default)]
pub(super) struct Waiters {
    pub(super) clients: Vec<oneshot::Sender<Vec<ClientInfo>>>,
    pub(super) account: Vec<oneshot::Sender<AccountInfo>>,
}

pub(super) struct Shared {
    pub(super) config: ClientConfig,
    pub(super) self_path: String,
    pub(super) pid: String,
    pub(super) user_id: watch::Sender<Option<String>>,
    pub(super) state: watch::Sender<ClientState>,
    pub(super) last_ping: Mutex<Instant>,
    /// Bumped at each `daemon_account_info`, so the registrar can wait for the next one.
    pub(super) account_infos: watch::Sender<u64>,
    /// Account-info answers we asked for and have not had yet: any process of the
    /// user can write to our socket, and an unasked `daemon_account_info` must not
    /// change who we think the daemon is (`skip_own` depends on it).
    pub(super) account_asked: std::sync::atomic::AtomicU32,
    /// Notified when the daemon announces this client deleted.
    pub(super) forgotten: tokio::sync::Notify,
    pub(super) waiters: Mutex<Waiters>,
    /// Registrations begun (each `client_add` sent counts, before it is sent).
    pub(super) registrations: std::sync::atomic::AtomicU64,
    /// Where refusals go (messages go through the sequencer, in order).
    pub(super) out: mpsc::UnboundedSender<Inbound>,
}

impl Shared {
    /// Notes that an account-info answer is due (registration or a request).
    pub(super) fn expect_account_info(&self) {
        self.account_asked
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Takes one expected answer; false when none was due.
    pub(super) fn take_account_info(&self) -> bool {
        self.account_asked
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
    }
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
    identity: Option<socket::FileIdentity>,
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
    pub async fn start(config: ClientConfig) -> Result<(Client, Incoming), ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Client::start_into(config, tx).await?;
        Ok((client, Incoming { rx }))
    }

    /// As [`Client::start`], handing messages to a channel of the caller's, which
    /// may be shared: a program that moves to another socket on the fly starts
    /// the new client into the same channel before it shuts the old one down.
    pub async fn start_into(
        config: ClientConfig,
        tx: mpsc::UnboundedSender<Inbound>,
    ) -> Result<Client, ClientError> {
        if !config.socket.is_absolute() {
            return Err(ClientError::RelativePath(config.socket.clone()));
        }
        let listener = socket::bind(&config.socket)?;
        let identity = socket::file_identity(&config.socket);
        let shared = Arc::new(Shared {
            self_path: config.socket.to_string_lossy().into_owned(),
            registrations: std::sync::atomic::AtomicU64::new(0),
            pid: std::process::id().to_string(),
            user_id: watch::channel(None).0,
            state: watch::channel(ClientState::Waiting {
                master: config.master_socket.clone(),
            })
            .0,
            last_ping: Mutex::new(Instant::now()),
            account_infos: watch::channel(0).0,
            account_asked: std::sync::atomic::AtomicU32::new(0),
            forgotten: tokio::sync::Notify::new(),
            waiters: Mutex::new(Waiters::default()),
            out: tx.clone(),
            config,
        });
        let (done, finished_reads) = mpsc::unbounded_channel();
        let sequencer = tokio::spawn(inbound::sequence(finished_reads, tx));
        let acceptor = tokio::spawn(inbound::accept_loop(listener, shared.clone(), done));
        let registrar = tokio::spawn(register::register_loop(shared.clone()));
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

    /// How many registrations were begun so far (from 1 for the first). A
    /// `Registered` state with a higher number than the last one seen means the
    /// daemon lost the client in between (it restarted, or forgot it), even when
    /// the state never showed `Waiting`.
    pub fn registrations(&self) -> u64 {
        self.shared
            .registrations
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Registered or not, as a watch.
    pub fn state(&self) -> watch::Receiver<ClientState> {
        self.shared.state.subscribe()
    }

    /// The daemon's account (`daemon_account_info`), once it has said.
    pub fn user_id(&self) -> Option<String> {
        self.shared.user_id.borrow().clone()
    }

    /// Sends any message to the daemon, this client's socket as the sender.
    pub async fn send(&self, message: Message) -> Result<(), ClientError> {
        register::send_to_daemon(&self.shared, message).await
    }

    /// Pings the daemon (it answers `daemon_pong`, which arrives on [`Incoming`]).
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.send(Message::Ping).await
    }

    /// Asks the daemon which clients it has.
    pub async fn clients(&self, timeout: Duration) -> Result<Vec<ClientInfo>, ClientError> {
        register::ask_clients(&self.shared, timeout).await
    }

    /// Asks the daemon which account it uses.
    pub async fn account_info(&self, timeout: Duration) -> Result<AccountInfo, ClientError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.waiters).account.push(tx);
        self.shared.expect_account_info();
        self.send(Message::GetAccountInfo).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(info)) => Ok(info),
            _ => Err(ClientError::NoAnswer("daemon_get_account_info")),
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
        match register::send_to_daemon(&self.shared, Message::ClientDelete(info)).await {
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
        socket::remove_own_socket(&self.shared.config.socket, self.identity);
        self.shared.state.send_replace(ClientState::Stopped);
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
            socket::remove_own_socket(&self.shared.config.socket, self.identity);
        }
    }
}
