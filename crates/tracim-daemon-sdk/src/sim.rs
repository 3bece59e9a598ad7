//! A simulated TracimDaemon, as strict as the real one, for the tests and `demo`.
//!
//! It speaks the protocol the way the upstream daemon does (see "The TracimDaemon
//! protocol" in the crate documentation): one
//! `read()` of at most 4096 bytes per message, answers as new connections to the
//! sender's `path`, pings at an interval and drops clients that did not pong by the
//! next tick, delivers to clients serially under one lock (a failed connect loses
//! the message for that client), sends events as JSON strings, and forgets every
//! client when restarted. A registration with a numeric pid, or with the SDK
//! README's `client_add`, does not register anything.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::lock;
use crate::protocol::{AccountInfo, ClientInfo, Envelope, Message};

/// The daemon's single read per message.
pub const READ_SIZE: usize = 4096;

/// How the simulated daemon behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Ping period (the real daemon: 30 s).
    pub ping_interval: Duration,
    /// The account it reports.
    pub user_id: String,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            ping_interval: Duration::from_secs(30),
            user_id: "1".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Registered {
    info: ClientInfo,
    ponged: bool,
}

struct Inner {
    master: PathBuf,
    options: SimOptions,
    clients: Mutex<Vec<Registered>>,
    /// Held for every outgoing delivery: the real daemon delivers serially.
    delivery: tokio::sync::Mutex<()>,
    /// Every message received, raw, in order.
    received: Mutex<Vec<FromClient>>,
    changed: Notify,
    pinging: Mutex<bool>,
}

/// A running simulated daemon. Dropping it stops it.
pub struct SimDaemon {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A message as the simulated daemon read it.
#[derive(Debug, Clone)]
pub struct FromClient {
    /// When its read completed.
    pub at: std::time::Instant,
    /// The bytes of its single read.
    pub bytes: Vec<u8>,
}

/// What one broadcast achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastReport {
    /// Clients that took the message.
    pub ok: usize,
    /// Clients whose connect or write failed (the message is lost for them).
    pub failed: usize,
}

impl SimDaemon {
    /// Listens on `master` (replacing a stale file) and starts pinging.
    pub async fn start(master: impl Into<PathBuf>, options: SimOptions) -> io::Result<SimDaemon> {
        let inner = Arc::new(Inner {
            master: master.into(),
            options,
            clients: Mutex::new(Vec::new()),
            delivery: tokio::sync::Mutex::new(()),
            received: Mutex::new(Vec::new()),
            changed: Notify::new(),
            pinging: Mutex::new(true),
        });
        let sim = SimDaemon {
            inner,
            tasks: Mutex::new(Vec::new()),
        };
        sim.listen()?;
        Ok(sim)
    }

    fn listen(&self) -> io::Result<()> {
        let _ = std::fs::remove_file(&self.inner.master);
        if let Some(parent) = self.inner.master.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let listener = UnixListener::bind(&self.inner.master)?;
        let accept = tokio::spawn(accept_loop(listener, self.inner.clone()));
        let pings = tokio::spawn(ping_loop(self.inner.clone()));
        lock(&self.tasks).extend([accept, pings]);
        Ok(())
    }

    fn halt(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.inner.master);
        lock(&self.inner.clients).clear();
    }

    /// The master socket.
    pub fn master(&self) -> &Path {
        &self.inner.master
    }

    /// Exits and starts again, as the upstream daemon does when its stream from
    /// Tracim drops: a new master socket, and no clients.
    pub async fn restart(&self) -> io::Result<()> {
        self.halt();
        self.listen()
    }

    /// Stops: the master socket disappears.
    pub fn stop(&self) {
        self.halt();
    }

    /// The clients it has now.
    pub fn clients(&self) -> Vec<ClientInfo> {
        lock(&self.inner.clients)
            .iter()
            .map(|c| c.info.clone())
            .collect()
    }

    /// Drops a client without telling it, as after a missed pong.
    pub fn forget(&self, path: &str) {
        lock(&self.inner.clients).retain(|c| c.info.path != path);
    }

    /// Stops or resumes pinging (a stalled daemon).
    pub fn set_pinging(&self, on: bool) {
        *lock(&self.inner.pinging) = on;
    }

    /// Every message received so far, raw.
    pub fn received(&self) -> Vec<FromClient> {
        lock(&self.inner.received).clone()
    }

    /// Received messages of one type, decoded, with their arrival times.
    pub fn received_of(&self, kind: &str) -> Vec<(std::time::Instant, Envelope)> {
        self.received()
            .iter()
            .filter_map(|r| Envelope::decode(&r.bytes).ok().map(|e| (r.at, e)))
            .filter(|(_, e)| e.message.kind() == kind)
            .collect()
    }

    /// Waits until `check` holds (looked at on every message and every 20 ms),
    /// or the timeout; returns whether it held.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&SimDaemon) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.inner.changed.notified();
            if check(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    /// Waits until a client with this socket is registered.
    pub async fn wait_for_client(&self, path: &Path, timeout: Duration) -> bool {
        let path = path.to_string_lossy().into_owned();
        self.wait_until(timeout, |sim| sim.clients().iter().any(|c| c.path == path))
            .await
    }

    /// Sends a TLM (its JSON text) to every client, serially, as a JSON string.
    pub async fn send_event(&self, tlm_text: &str) -> BroadcastReport {
        let bytes = event_message(&self.inner.master, tlm_text);
        self.broadcast_raw(&bytes).await
    }

    /// Sends any bytes to every client, serially.
    pub async fn broadcast_raw(&self, bytes: &[u8]) -> BroadcastReport {
        let targets: Vec<String> = self.clients().into_iter().map(|c| c.path).collect();
        let _serial = self.inner.delivery.lock().await;
        let mut result = BroadcastReport { ok: 0, failed: 0 };
        for path in targets {
            match deliver(Path::new(&path), bytes).await {
                Ok(()) => result.ok += 1,
                Err(e) => {
                    warn!(client = %path, "sim: delivery failed, message dropped: {e}");
                    result.failed += 1;
                }
            }
        }
        result
    }
}

impl Drop for SimDaemon {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A `daemon_tracim_event` as the daemon sends it: the TLM as a JSON string.
pub fn event_message(master: &Path, tlm_text: &str) -> Vec<u8> {
    let envelope = serde_json::json!({
        "path": master.to_string_lossy(),
        "type": "daemon_tracim_event",
        "data": tlm_text,
    });
    envelope.to_string().into_bytes()
}

/// Connect, write the whole message, close: the daemon's way of sending.
async fn deliver(path: &Path, bytes: &[u8]) -> io::Result<()> {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut stream = UnixStream::connect(path).await?;
        stream.write_all(bytes).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "delivery timed out",
        ))
    })
}

async fn accept_loop(listener: UnixListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(handle_connection(stream, inner.clone()));
    }
}

async fn handle_connection(mut stream: UnixStream, inner: Arc<Inner>) {
    // Exactly one read of at most 4096 bytes, like the real daemon: whatever a
    // client sends past it, or in a second write, is lost.
    let mut buf = vec![0u8; READ_SIZE];
    let n = match stream.read(&mut buf).await {
        Ok(n) => n,
        Err(_) => return,
    };
    drop(stream);
    buf.truncate(n);
    lock(&inner.received).push(FromClient {
        at: std::time::Instant::now(),
        bytes: buf.clone(),
    });
    let answer = match Envelope::decode(&buf) {
        Ok(envelope) => respond(&inner, envelope),
        Err(e) => {
            debug!("sim: undecodable message dropped: {e}");
            Vec::new()
        }
    };
    inner.changed.notify_waiters();
    if answer.is_empty() {
        return;
    }
    let _serial = inner.delivery.lock().await;
    for (path, message) in answer {
        let bytes = Envelope::new(inner.master.to_string_lossy(), message).encode();
        if let Err(e) = deliver(Path::new(&path), &bytes).await {
            debug!(client = %path, "sim: answer not delivered: {e}");
        }
    }
    inner.changed.notify_waiters();
}

/// The daemon's reaction to one message: what to send to whom.
fn respond(inner: &Inner, envelope: Envelope) -> Vec<(String, Message)> {
    let sender = envelope.path;
    if !sender.starts_with('/') {
        debug!("sim: message without an absolute sender path ignored");
        return Vec::new();
    }
    let mut clients = lock(&inner.clients);
    let everyone = |clients: &[Registered]| -> Vec<String> {
        clients.iter().map(|c| c.info.path.clone()).collect()
    };
    match envelope.message {
        Message::ClientAdd(info) => {
            if !info.path.starts_with('/') || info.pid.is_empty() {
                return Vec::new();
            }
            let account = Message::AccountInfo(AccountInfo {
                user_id: inner.options.user_id.clone(),
            });
            if let Some(existing) = clients.iter_mut().find(|c| c.info.path == info.path) {
                // Registering the same path again updates it: account info, no added.
                existing.info = info;
                existing.ponged = true;
                return vec![(sender, account)];
            }
            clients.push(Registered {
                info: info.clone(),
                ponged: true,
            });
            let mut out = vec![(sender, account)];
            out.extend(
                everyone(&clients)
                    .into_iter()
                    .map(|p| (p, Message::ClientAdded(info.clone()))),
            );
            out
        }
        Message::ClientDelete(info) => {
            clients.retain(|c| c.info.path != info.path);
            everyone(&clients)
                .into_iter()
                .map(|p| (p, Message::ClientDeleted(info.clone())))
                .collect()
        }
        Message::Ping => vec![(sender, Message::Pong)],
        Message::Pong => {
            if let Some(c) = clients.iter_mut().find(|c| c.info.path == sender) {
                c.ponged = true;
            }
            vec![(sender, Message::Ack)]
        }
        Message::GetClients => {
            let list = clients.iter().map(|c| c.info.clone()).collect();
            vec![(sender, Message::Clients(list))]
        }
        Message::GetAccountInfo => vec![(
            sender,
            Message::AccountInfo(AccountInfo {
                user_id: inner.options.user_id.clone(),
            }),
        )],
        // Everything else, `client_add` without its prefix included, is merely acked.
        _ => vec![(sender, Message::Ack)],
    }
}

/// Each tick: drop the clients that did not pong since the last tick, ping the rest.
async fn ping_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.options.ping_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if !*lock(&inner.pinging) {
            continue;
        }
        let targets: Vec<String> = {
            let mut clients = lock(&inner.clients);
            clients.retain(|c| {
                if !c.ponged {
                    debug!(client = %c.info.path, "sim: no pong since the last ping: client removed");
                }
                c.ponged
            });
            for c in clients.iter_mut() {
                c.ponged = false;
            }
            clients.iter().map(|c| c.info.path.clone()).collect()
        };
        inner.changed.notify_waiters();
        let bytes = Envelope::new(inner.master.to_string_lossy(), Message::Ping).encode();
        let _serial = inner.delivery.lock().await;
        for path in targets {
            if let Err(e) = deliver(Path::new(&path), &bytes).await {
                debug!(client = %path, "sim: ping not delivered: {e}");
            }
        }
    }
}
