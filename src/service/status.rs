//! What the service says of itself: the status line (systemd) and the answers to
//! the control socket (`status`, `replay`).

use super::*;

impl Service {
    pub(super) fn status_line(&self, state: &ClientState) -> String {
        let hooks = self.config.hooks.len();
        if self.client.is_none() {
            let detail = self
                .link
                .as_ref()
                .map(|l| crate::lock(&l.status()).detail.clone())
                .unwrap_or_default();
            return format!("{detail}, {hooks} hooks");
        }
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

    /// Remembers since when the client is registered, for `status`, and tells the
    /// catch-up when the daemon is lost and when it registered again (a daemon
    /// restart may show no `Waiting` at all: the registration count tells).
    pub(super) fn note_state(&mut self, state: &ClientState) {
        let registered = matches!(state, ClientState::Registered { .. });
        if !registered && self.was_registered {
            if let Some(catch_up) = &self.catch_up {
                catch_up.link_changed(LinkChange::Lost);
            }
        }
        self.was_registered = registered;
        if registered {
            let count = self.client.as_ref().map_or(0, Client::registrations);
            self.registered_anew(count);
        }
        match state {
            ClientState::Registered { .. } => {
                self.registered_since.get_or_insert_with(SystemTime::now);
            }
            _ => self.registered_since = None,
        }
    }

    /// Serves a request of the control socket.
    pub(super) fn answer(&mut self, ask: Ask) {
        match ask {
            Ask::Status(reply) => {
                let tracim: Option<Box<TracimStatus>> = self
                    .link
                    .as_ref()
                    .map(|l| Box::new(crate::lock(&l.status()).clone()));
                let state = self.client_state().borrow().clone();
                let (state, master) = match (state, &tracim) {
                    (_, Some(t)) if self.client.is_none() => {
                        (t.state.as_str(), t.url.clone().into())
                    }
                    (ClientState::Registered { master }, _) => ("registered", master),
                    (ClientState::Waiting { master }, _) => ("waiting", master),
                    (ClientState::Stopped, _) => {
                        ("stopped", self.config.daemon.master_socket.clone())
                    }
                };
                let (running, queued) = self.handle.supervisor.load();
                let health = self.journal.health();
                let _ = reply.send(LiveStatus {
                    pid: std::process::id(),
                    state: state.into(),
                    master: master.display().to_string(),
                    source: self.config.source.as_str().into(),
                    tracim,
                    registered_since_ms: self.registered_since.map(control::ms),
                    started_ms: control::ms(self.started),
                    hooks: self.config.hooks.iter().map(|h| h.name.clone()).collect(),
                    running,
                    queued,
                    events_received: self.handle.events_received(),
                    journal: JournalHealth {
                        enabled: self.journal.is_enabled(),
                        degraded: health.degraded,
                        degraded_since_ms: health.since.map(control::ms),
                        last_error: health.last_error,
                        backlog: health.backlog,
                        lost: health.lost,
                    },
                });
            }
            Ask::Replay(items, reply) => {
                let user_id = self.user_id();
                let outcome = crate::replay::queue(
                    &items,
                    &self.config,
                    &self.journal,
                    &self.handle.supervisor,
                    &user_id,
                );
                let _ = reply.send(outcome);
            }
        }
    }
}
