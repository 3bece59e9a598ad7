//! The runner's link to Tracim: one client, who it logged in as, the link's state for
//! `status`, and its trouble: each kind (unreachable, credentials refused, server
//! error) logged once when it starts and once at recovery, retried with a capped
//! backoff meanwhile.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tracim_daemon_sdk::tracim::{TracimClient, TracimError, Whoami};
use tracing::{info, warn};

/// The first wait after a failure; it doubles up to `Backoff::max`.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest wait between two tries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A capped exponential backoff.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// From `min`, doubling, never past `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    /// The wait before the next try; the one after is longer.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BACKOFF_MIN, BACKOFF_MAX)
    }
}

/// The kinds of trouble, each logged once per outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// No answer (connection refused, DNS, TLS, timeout).
    Unreachable,
    /// The credentials were refused (401, or the login refused).
    Refused,
    /// Tracim or its proxy answered 5xx.
    ServerError,
    /// Anything else (an unexpected answer, a broken stream).
    Other,
}

impl Trouble {
    /// The kind of a client error.
    pub fn of(e: &TracimError) -> Trouble {
        match e {
            TracimError::Unreachable { .. } => Trouble::Unreachable,
            e if e.is_auth() => Trouble::Refused,
            e if e.is_server_error() => Trouble::ServerError,
            _ => Trouble::Other,
        }
    }
}

/// The last catch-up, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUpReport {
    /// When it ended (ms since the epoch).
    pub at_ms: i64,
    /// The id it fetched after.
    pub after: u64,
    /// Events it ran (not known to the journal).
    pub ran: u64,
    /// Their lowest and highest ids.
    pub first_id: Option<u64>,
    /// See `first_id`.
    pub last_id: Option<u64>,
    /// Events left out by `catch_up_max` or `catch_up_window`.
    pub skipped: u64,
}

/// The Tracim link as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracimStatus {
    /// The API URL.
    pub url: String,
    /// `connected`, `streaming`, `connecting` or `failing`.
    pub state: String,
    /// What is going on, in words ("streaming from Tracim at URL as USER", or why not).
    pub detail: String,
    /// The account logged in as: user id and public name.
    pub user_id: Option<u64>,
    /// See `user_id`.
    pub public_name: Option<String>,
    /// Since when the state holds (ms since the epoch).
    pub since_ms: Option<i64>,
    /// The last catch-up that ended.
    pub last_catch_up: Option<CatchUpReport>,
}

/// The client with its login and its health; shared by the catch-up and the stream.
pub struct Link {
    client: TracimClient,
    whoami: Mutex<Option<Whoami>>,
    status: Arc<Mutex<TracimStatus>>,
    trouble: Mutex<Option<(Trouble, SystemTime)>>,
    /// Woken at every change of the state, for the systemd status line.
    changed: tokio::sync::Notify,
}

impl Link {
    /// A link on `client`; nothing is sent yet.
    pub fn new(client: TracimClient) -> Link {
        let status = TracimStatus {
            url: client.base_url().to_owned(),
            state: "connecting".into(),
            detail: format!("connecting to Tracim at {}", client.base_url()),
            since_ms: Some(crate::clock::ms(SystemTime::now())),
            ..TracimStatus::default()
        };
        Link {
            client,
            whoami: Mutex::new(None),
            status: Arc::new(Mutex::new(status)),
            trouble: Mutex::new(None),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The client.
    pub fn client(&self) -> &TracimClient {
        &self.client
    }

    /// The state `status` shows; updated in place.
    pub fn status(&self) -> Arc<Mutex<TracimStatus>> {
        self.status.clone()
    }

    /// Who the runner is on Tracim, once known.
    pub fn whoami(&self) -> Option<Whoami> {
        crate::lock(&self.whoami).clone()
    }

    /// Logs in unless already done; says as whom.
    pub async fn login(&self) -> Result<Whoami, TracimError> {
        if let Some(who) = self.whoami() {
            return Ok(who);
        }
        let who = self.client.login().await?;
        *crate::lock(&self.whoami) = Some(who.clone());
        Ok(who)
    }

    /// Forgets who it is: the next [`Link::login`] asks again (the credentials were
    /// refused, or the session ended).
    pub fn forget_login(&self) {
        *crate::lock(&self.whoami) = None;
    }

    /// Sets the state `status` shows (and the systemd status line derives from).
    pub fn set_state(&self, state: &str, detail: String) {
        let who = self.whoami();
        let mut status = crate::lock(&self.status);
        if status.state != state {
            status.since_ms = Some(crate::clock::ms(SystemTime::now()));
        }
        let changed = status.state != state || status.detail != detail;
        status.state = state.to_owned();
        status.detail = detail;
        status.user_id = who.as_ref().map(|w| w.user_id);
        status.public_name = who.map(|w| w.public_name);
        drop(status);
        if changed {
            self.changed.notify_one();
        }
    }

    /// Waits for the next change of the state.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Notes the last catch-up.
    pub fn caught_up(&self, report: CatchUpReport) {
        crate::lock(&self.status).last_catch_up = Some(report);
    }

    /// A request failed: logged when this kind of trouble starts, not at every retry.
    pub fn failed(&self, doing: &str, e: &TracimError) {
        let kind = Trouble::of(e);
        if kind == Trouble::Refused {
            self.forget_login();
        }
        let mut trouble = crate::lock(&self.trouble);
        let new = trouble.map(|(k, _)| k) != Some(kind);
        if new {
            let hint = match kind {
                Trouble::Refused => {
                    " (check [tracim]'s login and its secret file; `tracim-hooks check --online` tells more)"
                }
                _ => "",
            };
            warn!(
                "Tracim: {doing} failed: {e}{hint}; retrying with backoff (logged again when it changes)"
            );
            let since = trouble.map_or_else(SystemTime::now, |(_, since)| since);
            *trouble = Some((kind, since));
        }
        drop(trouble);
        self.set_state(
            "failing",
            format!("not connected to Tracim at {}: {e}", self.client.base_url()),
        );
    }

    /// A request succeeded: ends an outage, with one line saying so.
    pub fn recovered(&self) {
        if let Some((_, since)) = crate::lock(&self.trouble).take() {
            let lasted = SystemTime::now().duration_since(since).unwrap_or_default();
            info!(
                "Tracim at {} answers again (after {:.1}s of trouble)",
                self.client.base_url(),
                lasted.as_secs_f64()
            );
        }
    }

    /// Whether some trouble is going on.
    pub fn in_trouble(&self) -> bool {
        crate::lock(&self.trouble).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
        let waits: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(250));
    }
}
