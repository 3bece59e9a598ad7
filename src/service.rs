//! The long-running runner: the daemon link feeding the supervisor, with reload,
//! readiness notifications and a clean stop.
//!
//! [`Service::run`] takes its controls (reload, shutdown) as a channel, so that
//! `main` maps signals onto it and `demo` and the tests drive it directly.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, error, info, trace, warn};

use crate::complaints::RateLimiter;
use crate::config::Config;
use crate::matcher::{Matcher, PatternError};
use crate::notify::Notifier;
use crate::supervisor::{Settings, Supervisor};
use tracim_daemon_sdk::client::{Client, ClientError, ClientState, Delivery, Inbound};
use tracim_daemon_sdk::protocol::{Event, Message};

/// How long a reload that moves the socket waits for the new one to be
/// registered before it leaves the old one.
const RELINK_WAIT: Duration = Duration::from_secs(5);

/// How many recent event ids are remembered to drop a second delivery of one.
const RECENT_EVENTS: usize = 4096;

/// The ids of the last events dispatched, to run each event once even when it
/// arrives twice (while a reload keeps two registrations for a moment).
#[derive(Default)]
struct Recent {
    order: std::collections::VecDeque<u64>,
    ids: std::collections::HashSet<u64>,
}

impl Recent {
    /// False when the id was seen lately; otherwise remembers it.
    fn first_time(&mut self, id: u64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_EVENTS
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        true
    }
}

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
    client: Client,
    deliveries: mpsc::UnboundedReceiver<Inbound>,
    deliveries_tx: mpsc::UnboundedSender<Inbound>,
    /// Refused input, logged a few times per kind and window.
    complaints: RateLimiter,
    handle: Handle,
    notifier: Notifier,
    recent: Recent,
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
        let supervisor = Supervisor::new(Settings::from(&config.defaults));
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let client = Client::start_into(config.daemon.clone(), deliveries_tx.clone()).await?;
        Ok(Service {
            config_path,
            config: Arc::new(config),
            matcher,
            client,
            deliveries,
            deliveries_tx,
            handle: Handle {
                supervisor,
                events: Arc::new(AtomicU64::new(0)),
            },
            notifier,
            complaints: RateLimiter::new(config_log_window, 5),
            recent: Recent::default(),
        })
    }

    /// For watching the runner from outside.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    fn status_line(&self, state: &ClientState) -> String {
        let hooks = self.config.hooks.len();
        match state {
            ClientState::Registered { master } => {
                format!("registered with {}, {hooks} hooks", master.display())
            }
            ClientState::Waiting { master } => {
                format!(
                    "waiting for TracimDaemon at {}, {hooks} hooks",
                    master.display()
                )
            }
            ClientState::Stopped => "stopped".into(),
        }
    }

    /// Runs until [`Control::Shutdown`] (or until `controls` closes).
    pub async fn run(mut self, mut controls: mpsc::UnboundedReceiver<Control>) {
        let mut state = self.client.state();
        let status = self.status_line(&state.borrow_and_update());
        self.notifier.ready(&status);
        info!(hooks = self.config.hooks.len(), config = %self.config_path.display(), socket = %self.config.daemon.socket.display(), "tracim-hooks running");
        let mut watchdog = self.notifier.watchdog_interval().map(tokio::time::interval);
        let mut complaints_flush = tokio::time::interval(self.complaints.window);
        loop {
            tokio::select! {
                Some(inbound) = self.deliveries.recv() => match inbound {
                    Inbound::Message(delivery) => self.deliver(delivery),
                    Inbound::Refused(refusal) => self.complaints.warn(refusal.kind(), &refusal.to_string()),
                },
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
                        state = self.client.state();
                    }
                    let line = self.status_line(&state.borrow_and_update());
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
    fn deliver(&mut self, delivery: Delivery) {
        let Message::TracimEvent(event) = delivery.envelope.message else {
            debug!(kind = delivery.envelope.message.kind(), "not an event");
            return;
        };
        if !self.recent.first_time(event.id()) {
            debug!(event_id = event.id(), "event delivered twice: run once");
            return;
        }
        self.handle.events.fetch_add(1, Ordering::Relaxed);
        let id = event.id();
        dispatch(
            &self.matcher,
            &self.handle.supervisor,
            &self.client,
            event,
            delivery.received,
        );
        // For the benchmark, which subscribes to this target; off otherwise.
        trace!(target: "tracim_hooks::timing", event_id = id, "event decided");
    }

    async fn reload(&mut self) {
        self.notifier.reloading();
        info!(config = %self.config_path.display(), "reloading");
        match Config::load(&self.config_path) {
            Err(e) => {
                for line in e.lines() {
                    error!("reload refused, keeping the running hooks: {line}");
                }
            }
            Ok(config) => {
                let matcher = match Matcher::new(&config.hooks) {
                    Ok(matcher) => matcher,
                    Err(e) => {
                        error!("reload refused, keeping the running hooks: {e}");
                        let line = self.status_line(&self.client.state().borrow());
                        self.notifier.ready(&line);
                        return;
                    }
                };
                if let Err(e) = self.relink(&config).await {
                    error!("reload refused, keeping the running hooks: {e}");
                    let line = self.status_line(&self.client.state().borrow());
                    self.notifier.ready(&line);
                    return;
                }
                self.handle
                    .supervisor
                    .configure(Settings::from(&config.defaults));
                info!(hooks = config.hooks.len(), "configuration reloaded");
                self.config = Arc::new(config);
                self.matcher = matcher;
            }
        }
        let line = self.status_line(&self.client.state().borrow());
        self.notifier.ready(&line);
    }

    /// Applies changed socket paths by registering anew. A new own socket is
    /// bound before the old one is left, so deliveries always find a listener; a
    /// new master alone is switched to by leaving the old daemon first, since the
    /// same own socket cannot be bound twice (the new daemon has nothing for us
    /// before we register, so nothing is lost meanwhile).
    async fn relink(&mut self, config: &Config) -> Result<(), ClientError> {
        let (old, new) = (&self.config.daemon, &config.daemon);
        if old.socket == new.socket && old.master_socket == new.master_socket {
            if old != new {
                warn!("changed [daemon] timings take effect at the next restart");
            }
            return Ok(());
        }
        let same_socket = old.socket == new.socket;
        if same_socket {
            self.client.shutdown().await;
        }
        let tx = self.deliveries_tx.clone();
        match Client::start_into(new.clone(), tx.clone()).await {
            Ok(client) => {
                // Both stay registered for a moment, so the daemon always has one
                // of them; what both receive meanwhile is run once (see `recent`).
                let mut state = client.state();
                let registered = state.wait_for(|s| matches!(s, ClientState::Registered { .. }));
                if tokio::time::timeout(RELINK_WAIT, registered).await.is_err() {
                    warn!("the new socket is not registered yet; leaving the old one anyway");
                }
                std::mem::replace(&mut self.client, client).shutdown().await;
                Ok(())
            }
            Err(e) if same_socket => {
                // Back to the daemon we had: its socket path is free again.
                self.client = Client::start_into(old.clone(), tx).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn stop(mut self) {
        self.notifier.stopping();
        info!("stopping");
        self.client.shutdown().await;
        // Events that arrived but were not dispatched before the stop: each run
        // they would have started is logged as never started, not lost silently.
        drop(self.deliveries_tx);
        let user_id = self.client.user_id().unwrap_or_default();
        while let Ok(inbound) = self.deliveries.try_recv() {
            let delivery = match inbound {
                Inbound::Message(delivery) => delivery,
                Inbound::Refused(refusal) => {
                    self.complaints.warn(refusal.kind(), &refusal.to_string());
                    continue;
                }
            };
            let Message::TracimEvent(event) = delivery.envelope.message else {
                continue;
            };
            for hook in self.matcher.select(&event, &user_id) {
                warn!(hook = %hook.name, event_id = event.id(), "run never started: shutting down");
            }
        }
        self.complaints.flush(true);
        self.handle
            .supervisor
            .shutdown(self.config.defaults.shutdown_grace)
            .await;
        info!("stopped");
    }
}

/// Submits one run per matching hook, in file order.
fn dispatch(
    matcher: &Matcher,
    supervisor: &Supervisor,
    client: &Client,
    event: Event,
    arrived: Instant,
) {
    let user_id: Arc<str> = client.user_id().unwrap_or_default().into();
    let hooks = matcher.select(&event, &user_id);
    debug!(
        event_id = event.id(),
        event_type = event.event_type(),
        hooks = hooks.len(),
        "event received"
    );
    for hook in hooks {
        // A refusal is logged and counted by the supervisor.
        let _ = supervisor.submit_at(hook, event.clone(), user_id.clone(), arrived);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_drop_repeats_and_forget_the_oldest() {
        let mut recent = Recent::default();
        assert!(recent.first_time(1));
        assert!(!recent.first_time(1));
        for id in 2..=(RECENT_EVENTS as u64 + 1) {
            assert!(recent.first_time(id));
        }
        // 1 has been forgotten, 2 not yet.
        assert!(recent.first_time(1));
        assert!(!recent.first_time(RECENT_EVENTS as u64));
        assert_eq!(recent.order.len(), RECENT_EVENTS);
        assert_eq!(recent.ids.len(), RECENT_EVENTS);
    }
}
