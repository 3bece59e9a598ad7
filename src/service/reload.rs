//! Reload (SIGHUP): a new config swapped in whole, or the old one kept; a moved
//! socket registered anew before the old registration is left.

use super::*;

impl Service {
    pub(super) async fn reload(&mut self) {
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
                        let line = self.status_line(&self.client_state().borrow());
                        self.notifier.ready(&line);
                        return;
                    }
                };
                if config.source != self.config.source || config.tracim != self.config.tracim {
                    warn!("changed `source` or [tracim] take effect at the next restart");
                }
                if let Err(e) = self.relink(&config).await {
                    error!("reload refused, keeping the running hooks: {e}");
                    let line = self.status_line(&self.client_state().borrow());
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
        let line = self.status_line(&self.client_state().borrow());
        self.notifier.ready(&line);
    }

    /// Applies changed socket paths by registering anew. A new own socket is
    /// bound before the old one is left, so deliveries always find a listener; a
    /// new master alone is switched to by leaving the old daemon first, since the
    /// same own socket cannot be bound twice (the new daemon has nothing for us
    /// before we register, so nothing is lost meanwhile).
    pub(super) async fn relink(&mut self, config: &Config) -> Result<(), ClientError> {
        let Some(current) = self.client.as_mut() else {
            return Ok(());
        };
        let (old, new) = (&self.config.daemon, &config.daemon);
        if old.socket == new.socket && old.master_socket == new.master_socket {
            if old != new {
                warn!("changed [daemon] timings take effect at the next restart");
            }
            return Ok(());
        }
        let same_socket = old.socket == new.socket;
        if same_socket {
            current.shutdown().await;
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
                if let Some(mut old) = self.client.replace(client) {
                    old.shutdown().await;
                }
                // The new client counts its registrations from 0.
                self.registration = 0;
                Ok(())
            }
            Err(e) if same_socket => {
                // Back to the daemon we had: its socket path is free again.
                self.client = Some(Client::start_into(old.clone(), tx).await?);
                self.registration = 0;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}
