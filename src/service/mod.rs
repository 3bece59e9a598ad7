//! The long-running runner: the event source (the daemon link, or Tracim's stream)
//! and the catch-up from Tracim feeding the supervisor, with reload, readiness
//! notifications and a clean stop.
//!
//! [`Service::run`] takes its controls (reload, shutdown) as a channel, so that
//! `main` maps signals onto it and `demo` and the tests drive it directly.

mod reload;
mod status;
mod stop;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, trace, warn};

use crate::complaints::RateLimiter;
use crate::config::Config;
use crate::control::{self, Ask, JournalHealth, LiveStatus};
use crate::journal::{self, Journal, JournalError, NewEvent, Pending};
use crate::matcher::{Matcher, PatternError};
use crate::notify::Notifier;
use crate::source::catch_up::{self, Arrival, CatchUpHandle, LinkChange};
use crate::source::link::{Link, TracimStatus};
use crate::source::stream::{self, StreamSettings};
use crate::source::{Source, secrets};
use crate::supervisor::{ProcessLauncher, Run, Settings, Supervisor};
use tracim_daemon_sdk::client::{Client, ClientError, ClientState, Delivery, Inbound, Refusal};
use tracim_daemon_sdk::protocol::{Event, Message};
use tracim_daemon_sdk::tracim::{CatchUpLimits, TracimClient};

/// How long a reload that moves the socket waits for the new one to be
/// registered before it leaves the old one.
const RELINK_WAIT: Duration = Duration::from_secs(5);

/// A message this large leaves pieces in the heaps worth giving back.
const HUGE_MESSAGE: usize = 1024 * 1024;

/// How long after a huge message the heaps are trimmed (again later while its
/// runs go on).
const TRIM_DELAY: Duration = Duration::from_secs(2);

/// What the runner can be told while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Read the config file again (SIGHUP).
    Reload,
    /// Leave the daemon, finish the running hooks, exit (SIGTERM, SIGINT).
    Shutdown,
}

/// Fatal errors of the runner at start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The link could not be set up (socket taken, not bindable).
    #[error("{0}")]
    Link(#[from] ClientError),
    /// A pattern that passed validation did not compile into the matcher.
    #[error("{0}")]
    Rules(#[from] PatternError),
    /// The journal cannot be used: the runner does not start without it.
    #[error("{}", journal_problem(.0))]
    Journal(#[from] JournalError),
    /// `[tracim]` cannot be used (a secret file refused, a CA file unreadable).
    #[error("[tracim]: {0}")]
    Tracim(String),
}

/// A journal held by another process means a second instance: say it so.
fn journal_problem(e: &JournalError) -> String {
    match e {
        JournalError::Busy { .. } => format!("another instance is running: {e}"),
        e => e.to_string(),
    }
}

/// What others may watch while the runner runs.
#[derive(Clone)]
pub struct Handle {
    /// The supervisor of the hook runs.
    pub supervisor: Supervisor,
    events: Arc<AtomicU64>,
}

impl Handle {
    /// Tracim events received so far.
    pub fn events_received(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

/// A started runner: its socket is listening and registration has begun.
pub struct Service {
    config_path: PathBuf,
    config: Arc<Config>,
    matcher: Matcher,
    /// The daemon link; `None` with `source = "tracim"`.
    client: Option<Client>,
    /// What the state watch follows when there is no daemon client.
    idle_state: watch::Sender<ClientState>,
    /// Tracim itself, when `[tracim]` is set.
    link: Option<Arc<Link>>,
    /// The catch-up task (daemon source with `[tracim]`).
    catch_up: Option<CatchUpHandle>,
    /// The live stream task (`source = "tracim"`).
    stream: Option<tokio::task::JoinHandle<()>>,
    /// Events (and journal marks) from Tracim: the catch-up and the stream.
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    arrivals_tx: Option<mpsc::UnboundedSender<Arrival>>,
    /// Whether the daemon link was registered at the last state change.
    was_registered: bool,
    /// The daemon client's registration the events so far came under
    /// ([`Client::registrations`]); a higher one is a new registration.
    registration: u64,
    deliveries: mpsc::UnboundedReceiver<Inbound>,
    deliveries_tx: mpsc::UnboundedSender<Inbound>,
    /// Refused input, logged a few times per kind and window.
    complaints: RateLimiter,
    handle: Handle,
    notifier: Notifier,
    /// Every event and run on record; also what drops a repeated event id.
    journal: Journal,
    /// What the previous life left to do, queued when the loop starts.
    pending: Pending,
    /// Requests from the control socket (`status`, `replay`).
    asks: mpsc::UnboundedReceiver<Ask>,
    control: Option<control::Server>,
    started: SystemTime,
    registered_since: Option<SystemTime>,
    /// When to give the memory of a huge message back (see `crate::memory`).
    trim_at: Option<tokio::time::Instant>,
}

impl Service {
    /// Binds the socket and starts registering, with `config` loaded from `config_path`.
    pub async fn start(
        config_path: PathBuf,
        config: Config,
        notifier: Notifier,
    ) -> Result<Service, ServiceError> {
        let matcher = Matcher::new(&config.hooks)?;
        let config_log_window = config.log_window;
        // Before the socket: without its journal the runner does not start.
        let settings = config.journal.clone();
        let opened = tokio::task::spawn_blocking(move || journal::open(&settings))
            .await
            .map_err(|e| JournalError::Io {
                context: "opening",
                path: config.journal.path.clone(),
                source: std::io::Error::other(e.to_string()),
            })??;
        let journal = opened.journal;
        if journal.is_enabled() {
            info!(path = %journal.path().display(), "journal open");
        }
        let supervisor = Supervisor::journaled(
            Settings::from(&config.defaults),
            ProcessLauncher::new(),
            journal.clone(),
        );
        let link = match &config.tracim {
            Some(settings) => Some(Arc::new(connect(settings)?)),
            None => None,
        };
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let client = match config.source {
            Source::Daemon => {
                Some(Client::start_into(config.daemon.clone(), deliveries_tx.clone()).await?)
            }
            Source::Tracim => None,
        };
        let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
        let (asks_tx, asks) = mpsc::unbounded_channel();
        let control = control::socket_path(&config.journal)
            .and_then(|path| control::Server::start(path, config.journal.path.clone(), asks_tx));
        Ok(Service {
            config_path,
            config: Arc::new(config),
            matcher,
            client,
            idle_state: watch::channel(ClientState::Stopped).0,
            link,
            catch_up: None,
            stream: None,
            arrivals,
            arrivals_tx: Some(arrivals_tx),
            was_registered: false,
            registration: 0,
            deliveries,
            deliveries_tx,
            handle: Handle {
                supervisor,
                events: Arc::new(AtomicU64::new(0)),
            },
            notifier,
            complaints: RateLimiter::new(config_log_window, 5),
            journal,
            pending: opened.pending,
            asks,
            control,
            started: SystemTime::now(),
            registered_since: None,
            trim_at: None,
        })
    }

    /// For watching the runner from outside.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs until [`Control::Shutdown`] (or until `controls` closes).
    pub async fn run(mut self, mut controls: mpsc::UnboundedReceiver<Control>) {
        let mut state = self.client_state();
        let status = self.status_line(&state.borrow_and_update());
        self.notifier.ready(&status);
        match self.config.source {
            Source::Daemon => {
                info!(hooks = self.config.hooks.len(), config = %self.config_path.display(), socket = %self.config.daemon.socket.display(), "tracim-hooks running")
            }
            Source::Tracim => {
                info!(hooks = self.config.hooks.len(), config = %self.config_path.display(), source = "tracim", "tracim-hooks running")
            }
        }
        let mut watchdog = self.notifier.watchdog_interval().map(tokio::time::interval);
        let mut complaints_flush = tokio::time::interval(self.complaints.window);
        self.start_sources();
        self.note_state(&state.borrow());
        let user_id = self.user_id();
        crate::resume::resume(
            std::mem::take(&mut self.pending),
            &self.config,
            &self.journal,
            &self.handle.supervisor,
            &user_id,
        );
        loop {
            tokio::select! {
                Some(ask) = self.asks.recv() => self.answer(ask),
                Some(inbound) = self.deliveries.recv() => match inbound {
                    Inbound::Message(delivery) => self.deliver(delivery),
                    Inbound::Refused(refusal) => {
                        if matches!(refusal, Refusal::TooLarge { .. }) {
                            self.trim_soon();
                        }
                        self.complaints.warn(refusal.kind(), &refusal.to_string());
                    }
                },
                () = async {
                    match self.trim_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => self.trim_if_idle(),
                Some(arrival) = self.arrivals.recv() => self.arrive(arrival),
                // The Tracim link changed: say it on the status line (with the
                // daemon as source, its registration is what the line shows).
                () = async {
                    match (&self.link, &self.client) {
                        (Some(link), None) => link.changed().await,
                        _ => std::future::pending().await,
                    }
                } => {
                    let line = self.status_line(&state.borrow());
                    self.notifier.status(&line);
                }
                // Suppressed complaints are summed up when their window ends, even
                // when no new one comes to trigger it.
                _ = complaints_flush.tick() => self.complaints.flush(false),
                control = controls.recv() => match control {
                    Some(Control::Reload) => self.reload().await,
                    Some(Control::Shutdown) | None => break,
                },
                changed = state.changed() => {
                    // A client replaced on reload says Stopped, then goes: follow
                    // the new one instead of reporting that.
                    if changed.is_err() || *state.borrow() == ClientState::Stopped {
                        state = self.client_state();
                    }
                    let line = self.status_line(&state.borrow_and_update());
                    self.note_state(&state.borrow());
                    self.notifier.status(&line);
                }
                _ = async {
                    match watchdog.as_mut() {
                        Some(interval) => interval.tick().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.notifier.notify("WATCHDOG=1");
                }
            }
        }
        self.stop().await;
    }

    /// Hands an event to the hooks that take it. Non-event messages end here.
    /// Arms a trim of the heaps for once the runs of a huge message are over.
    fn trim_soon(&mut self) {
        self.trim_at = Some(tokio::time::Instant::now() + TRIM_DELAY);
    }

    /// Gives the memory of huge messages back once nothing runs any more.
    fn trim_if_idle(&mut self) {
        if self.handle.supervisor.load() == (0, 0) {
            crate::memory::trim();
            self.trim_at = None;
        } else {
            self.trim_soon();
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        let Message::TracimEvent(event) = delivery.envelope.message else {
            debug!(kind = delivery.envelope.message.kind(), "not an event");
            return;
        };
        // The first event of a new registration: the gap before it starts after
        // what the journal has now, before this event is in it.
        self.registered_anew(delivery.registration);
        self.take(event, delivery.received);
    }

    /// What Tracim itself sent: a missed event, or a mark for the journal.
    fn arrive(&mut self, arrival: Arrival) {
        match arrival {
            Arrival::Event(event) => self.take(event, Instant::now()),
            Arrival::Mark(key, value) => self.journal.set_mark(key, value),
        }
    }

    /// Runs an event's hooks unless the journal has it, whichever way it came.
    fn take(&mut self, event: Event, received: Instant) {
        if event.raw().len() >= HUGE_MESSAGE {
            self.trim_soon();
        }
        if !self.journal.admit(event.id()) {
            debug!(
                event_id = event.id(),
                "event delivered twice (or already in the journal): run once"
            );
            return;
        }
        self.handle.events.fetch_add(1, Ordering::Relaxed);
        let id = event.id();
        dispatch(
            &self.matcher,
            &self.handle.supervisor,
            &self.journal,
            self.user_id(),
            event,
            received,
        );
        // For the benchmark, which subscribes to this target; off otherwise.
        trace!(target: "tracim_hooks::timing", event_id = id, "event decided");
    }

    /// The daemon client's state, or a state that never changes without one.
    fn client_state(&self) -> watch::Receiver<ClientState> {
        match &self.client {
            Some(client) => client.state(),
            None => self.idle_state.subscribe(),
        }
    }

    /// The account events are seen as (`skip_own`, `TRACIM_DAEMON_USER_ID`): the
    /// daemon's, or the one logged in to Tracim.
    fn user_id(&self) -> Arc<str> {
        match (&self.client, &self.link) {
            (Some(client), _) => client.user_id().unwrap_or_default().into(),
            (None, Some(link)) => link
                .whoami()
                .map(|w| w.user_id.to_string())
                .unwrap_or_default()
                .into(),
            (None, None) => "".into(),
        }
    }

    /// Starts what reads Tracim: the catch-up beside the daemon link.
    fn start_sources(&mut self) {
        let (Some(link), Some(settings), Some(tx)) =
            (&self.link, &self.config.tracim, &self.arrivals_tx)
        else {
            return;
        };
        if self.config.source == Source::Tracim {
            let settings = StreamSettings {
                stream_timeout: settings.stream_timeout,
                max_message: self.config.daemon.max_message,
                window: settings.catch_up_window,
                max: settings.catch_up_max,
            };
            self.stream = Some(stream::spawn(
                link.clone(),
                &self.journal,
                settings,
                tx.clone(),
            ));
        } else {
            let limits = CatchUpLimits {
                max: settings.catch_up_max,
                window: Some(settings.catch_up_window),
                ..CatchUpLimits::default()
            };
            self.catch_up = Some(catch_up::spawn(
                link.clone(),
                self.journal.clone(),
                limits,
                tx.clone(),
            ));
        }
    }

    /// A registration newer than the one the events so far came under: tells the
    /// catch-up, with the last id seen before it (the journal's last id now, since
    /// no event of the new registration was taken yet).
    fn registered_anew(&mut self, registration: u64) {
        if registration <= self.registration {
            return;
        }
        self.registration = registration;
        if let Some(catch_up) = &self.catch_up {
            catch_up.link_changed(LinkChange::Registered {
                gap_from: self.journal.last_event_id(),
            });
        }
    }
}

/// The Tracim link of `[tracim]`: its secrets read and checked now, so that a
/// refused file stops the start with its reason; Tracim itself is not contacted.
fn connect(settings: &crate::source::TracimSettings) -> Result<Link, ServiceError> {
    let config =
        secrets::client_config(settings).map_err(|e| ServiceError::Tracim(e.to_string()))?;
    let client = TracimClient::new(config).map_err(|e| ServiceError::Tracim(e.to_string()))?;
    Ok(Link::new(client))
}

/// Records the event with one run per matching hook (even none: its id stays
/// known after a restart), and submits the runs, in file order.
fn dispatch(
    matcher: &Matcher,
    supervisor: &Supervisor,
    journal: &Journal,
    user_id: Arc<str>,
    event: Event,
    arrived: Instant,
) {
    let hooks = matcher.select(&event, &user_id);
    debug!(
        event_id = event.id(),
        event_type = event.event_type(),
        hooks = hooks.len(),
        "event received"
    );
    let ids = journal.record(new_event(&event), hooks.iter().map(|h| h.name.as_str()));
    for (hook, id) in hooks.into_iter().zip(ids) {
        let run = Run {
            arrived,
            id: Some(id),
            ..Run::new(hook, event.clone(), user_id.clone())
        };
        // A refusal is logged, counted and recorded by the supervisor.
        let _ = supervisor.submit_run(run);
    }
}

/// The event as the journal records it: its text exactly as received.
fn new_event(event: &Event) -> NewEvent {
    NewEvent {
        id: event.id(),
        event_type: event.event_type().to_owned(),
        received: SystemTime::now(),
        text: event.raw_shared(),
    }
}
