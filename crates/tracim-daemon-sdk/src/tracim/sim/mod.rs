//! A simulated Tracim server on loopback TCP, as strict as the real one on what this
//! SDK uses: login by cookie, API key headers or Basic (401 without), the history
//! endpoint newest first with page tokens, and the live stream (400 without
//! `Accept: text/event-stream`, the backlog unordered and without `event:` lines,
//! keep-alives, `stream-error` then close, a logout closing every stream of the user).
//! Tests steer it: publish events, cut streams at chosen points, split answers into
//! pieces at arbitrary bytes, answer 5xx, go down and come back, count requests.

mod http;
mod routes;
mod sse;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use state::State;

/// An account of the simulated server.
#[derive(Clone, Debug)]
pub struct SimUser {
    /// Its user id.
    pub user_id: u64,
    /// Its user name.
    pub username: String,
    /// Its email.
    pub email: String,
    /// Its display name.
    pub public_name: String,
    /// Its password.
    pub password: String,
}

/// How the simulator cuts what it writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Split {
    /// Everything in one write.
    Whole,
    /// Writes of this many bytes (1: byte by byte).
    Every(usize),
    /// Writes of a random size from 1 to `max` bytes (seeded: reproducible).
    Random {
        /// The largest piece.
        max: usize,
    },
}

/// The simulator's settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The accounts.
    pub users: Vec<SimUser>,
    /// The server's `api.key`; `None`: API key headers are refused.
    pub api_key: Option<String>,
    /// Time between keep-alives on an idle stream (Tracim: 30 s).
    pub keep_alive: Duration,
    /// How answers are cut into writes. For streams, each piece of the event text is
    /// also its own HTTP chunk, so a client sees the pieces as separate reads.
    pub split: Split,
    /// Seed of the backlog's shuffle and of random splits.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            users: vec![SimUser {
                user_id: 1,
                username: "hooks".into(),
                email: "hooks@example.org".into(),
                public_name: "Hooks Bot".into(),
                password: "correct horse battery staple".into(),
            }],
            api_key: Some("sim-api-key-0123456789".into()),
            keep_alive: Duration::from_secs(30),
            split: Split::Whole,
            seed: 17,
        }
    }
}

/// The requests the simulator counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /api/auth/login`.
    Login,
    /// `/api/auth/logout`.
    Logout,
    /// `GET /api/auth/whoami`.
    Whoami,
    /// `GET /api/users/{id}/messages`.
    History,
    /// `GET /api/users/{id}/live_messages`.
    Stream,
    /// Anything else.
    Other,
}

/// A running simulated Tracim server on 127.0.0.1.
pub struct TracimSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped by `go_down`: every connection task ends, dropping its socket.
    epoch: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TracimSim {
    /// Starts a server on a free port of 127.0.0.1.
    pub async fn start(config: SimConfig) -> io::Result<Self> {
        let listener = bind("127.0.0.1:0".parse().map_err(io::Error::other)?)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config)),
            epoch: watch::channel(0).0,
        });
        let accept = tokio::spawn(routes::accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// The API base URL, as a Tracim config names it: `http://127.0.0.1:PORT/api`.
    pub fn url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes a realistic TLM of `event_type` to a user, created now; returns its id.
    pub fn publish(&self, user_id: u64, event_type: &str) -> u64 {
        self.publish_at(user_id, event_type, SystemTime::now())
    }

    /// Publishes a realistic TLM with the given creation time.
    pub fn publish_at(&self, user_id: u64, event_type: &str, created: SystemTime) -> u64 {
        let event_type = event_type.to_string();
        self.publish_with(user_id, move |id| state::make_tlm(id, &event_type, created))
    }

    /// Publishes the TLM text `make` builds for the next event id (its JSON must carry
    /// that `event_id`); the text is kept and sent exactly as built.
    pub fn publish_with(&self, user_id: u64, make: impl FnOnce(u64) -> String) -> u64 {
        self.shared.state().publish(user_id, make)
    }

    /// Takes `n` ids of the global sequence for other users: the gaps a user sees.
    pub fn skip_ids(&self, n: u64) {
        self.shared.state().next_id += n;
    }

    /// Takes the next id without publishing it yet, for a later [`TracimSim::publish_reserved`]
    /// (Tracim's async mode publishes out of id order).
    pub fn reserve_id(&self) -> u64 {
        let mut state = self.shared.state();
        let id = state.next_id;
        state.next_id += 1;
        id
    }

    /// Publishes a TLM of `event_type` under an id taken by [`TracimSim::reserve_id`].
    pub fn publish_reserved(&self, user_id: u64, event_id: u64, event_type: &str) {
        let text = state::make_tlm(event_id, event_type, SystemTime::now());
        self.shared.state().deliver(user_id, event_id, text);
    }

    /// The ids of a user's history, ascending.
    pub fn history_ids(&self, user_id: u64) -> Vec<u64> {
        let state = self.shared.state();
        let mut ids: Vec<u64> = state
            .history
            .iter()
            .filter(|m| m.user_id == user_id)
            .map(|m| m.event_id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Changes how answers are cut (for connections opened from now on).
    pub fn set_split(&self, split: Split) {
        self.shared.state().config.split = split;
    }

    /// Changes the keep-alive interval (for streams opened from now on).
    pub fn set_keep_alive(&self, every: Duration) {
        self.shared.state().config.keep_alive = every;
    }

    /// Ends every open stream of the user cleanly (the body's last chunk); returns how many.
    pub fn close_streams(&self, user_id: u64) -> usize {
        self.shared
            .state()
            .command_streams(user_id, || sse::Command::Close)
    }

    /// Cuts every open stream of the user after `bytes` more bytes of its body,
    /// mid-event if that is where it falls, without ending the body; returns how many.
    pub fn cut_streams_after(&self, user_id: u64, bytes: usize) -> usize {
        self.shared
            .state()
            .command_streams(user_id, || sse::Command::CutAfter(bytes))
    }

    /// Sends `event: stream-error` on every open stream of the user, then closes them.
    pub fn stream_error(&self, user_id: u64) -> usize {
        self.shared
            .state()
            .command_streams(user_id, || sse::Command::Error)
    }

    /// Forgets every session of the user (as if they expired); streams stay open.
    pub fn expire_sessions(&self, user_id: u64) {
        self.shared
            .state()
            .sessions
            .retain(|_, owner| *owner != user_id);
    }

    /// The number of live sessions of the user.
    pub fn sessions(&self, user_id: u64) -> usize {
        self.shared
            .state()
            .sessions
            .values()
            .filter(|owner| **owner == user_id)
            .count()
    }

    /// Answers the next `n` requests, whatever they are, with `status` (a proxy's 5xx).
    pub fn fail_next(&self, n: u64, status: u16) {
        let mut state = self.shared.state();
        state.fail_next = n;
        state.fail_status = status;
        state.fail_only = None;
    }

    /// Answers the next `n` requests to `endpoint` with `status`; others are served.
    pub fn fail_next_on(&self, endpoint: Endpoint, n: u64, status: u16) {
        let mut state = self.shared.state();
        state.fail_next = n;
        state.fail_status = status;
        state.fail_only = Some(endpoint);
    }

    /// Stops listening (connections are refused) and drops every open connection.
    pub async fn go_down(&self) {
        let accept = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(accept) = accept {
            accept.abort();
            let _ = accept.await;
        }
        self.shared.epoch.send_modify(|epoch| *epoch += 1);
        self.shared.state().streams.clear();
    }

    /// Listens again on the same port after [`TracimSim::go_down`].
    pub async fn come_back(&self) -> io::Result<()> {
        let listener = bind(self.addr)?;
        let accept = tokio::spawn(routes::accept_loop(listener, self.shared.clone()));
        *self.accept.lock().unwrap_or_else(|p| p.into_inner()) = Some(accept);
        Ok(())
    }

    /// How many requests reached an endpoint (5xx answers from `fail_next` included).
    pub fn requests(&self, endpoint: Endpoint) -> u64 {
        self.shared
            .state()
            .counts
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// The number of open streams of the user.
    pub fn open_streams(&self, user_id: u64) -> usize {
        self.shared
            .state()
            .streams
            .iter()
            .filter(|s| s.user_id == user_id)
            .count()
    }

    /// Waits until the user has at least `n` open streams (their initial body written);
    /// false if that did not happen within `timeout`.
    pub async fn wait_streams(&self, user_id: u64, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ready = self
                .shared
                .state()
                .streams
                .iter()
                .filter(|s| s.user_id == user_id && s.ready())
                .count();
            if ready >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for TracimSim {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take() {
            accept.abort();
        }
        self.shared.epoch.send_modify(|epoch| *epoch += 1);
    }
}

/// Binds with SO_REUSEADDR, so `come_back` gets the same port right after `go_down`.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}
