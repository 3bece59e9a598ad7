//! The catch-up: at start, and each time the runner registers with the daemon again
//! after losing it, fetch from Tracim's history what happened after the last event id
//! seen **before the gap began**, and hand what the journal has not seen to the
//! service, in id order.
//!
//! Where a gap begins is kept in the journal (the mark [`MARK`]) until a catch-up that
//! started while registered has run, so a stop, a crash or Tracim being down during a
//! catch-up cannot move the starting point past the missed events: live events that
//! arrive meanwhile raise the journal's last id, not the mark. A catch-up made while
//! not registered (at start, before the daemon is there) runs what it finds but keeps
//! the mark: events keep being missed until registration.
//!
//! Why the history endpoint and not the stream's backlog: see the SDK's
//! `tracim::client::history`; in short, it is ordered, paged and ends for sure.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tracim_daemon_sdk::protocol::Event;
use tracim_daemon_sdk::tracim::{CatchUp, CatchUpLimits, TracimError};
use tracing::{debug, info, warn};

use super::link::{Backoff, CatchUpReport, Link};
use crate::journal::Journal;

/// The journal mark holding the id a pending catch-up starts after.
pub const MARK: &str = "catch_up_from";

/// What the service tells the catch-up about the daemon link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// Registered with the daemon (again): catch up now, from `gap_from` (the
    /// journal's last id before any event of the new registration) unless an
    /// older gap is still pending.
    Registered {
        /// The last event id seen before this registration.
        gap_from: Option<u64>,
    },
    /// The daemon is lost: a gap begins after the journal's last id.
    Lost,
}

/// What the catch-up hands the service, in order.
#[derive(Debug)]
pub enum Arrival {
    /// A missed event, to run unless the journal has it by now.
    Event(Event),
    /// Set (`Some`) or clear the journal's [`MARK`]. Marks go through the service
    /// with the events, so the journal records them in order: a cleared mark is
    /// never committed before the events of its catch-up.
    Mark(&'static str, Option<u64>),
}

/// The running catch-up task's inbox.
pub struct CatchUpHandle {
    tx: mpsc::UnboundedSender<LinkChange>,
}

impl CatchUpHandle {
    /// Tells the catch-up the daemon link changed.
    pub fn link_changed(&self, change: LinkChange) {
        let _ = self.tx.send(change);
    }
}

/// Starts the catch-up task; it stops when the handle is dropped.
pub fn spawn(
    link: Arc<Link>,
    journal: Journal,
    limits: CatchUpLimits,
    out: mpsc::UnboundedSender<Arrival>,
) -> CatchUpHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = Worker {
        from: journal.mark(MARK).or_else(|| journal.last_event_id()),
        link,
        journal,
        limits,
        out,
        registered: false,
        epoch: 0,
    };
    tokio::spawn(worker.run(rx));
    CatchUpHandle { tx }
}

struct Worker {
    link: Arc<Link>,
    journal: Journal,
    limits: CatchUpLimits,
    out: mpsc::UnboundedSender<Arrival>,
    /// The id the pending gap starts after; `None` with an empty journal until
    /// Tracim's newest id is known.
    from: Option<u64>,
    registered: bool,
    /// Bumped at every loss of the daemon.
    epoch: u64,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<LinkChange>) {
        if let Some(from) = self.from {
            // Kept before anything else: a stop before the first catch-up ends must
            // find the same starting point.
            self.mark(Some(from));
        }
        let mut backoff = Backoff::default();
        let mut due = true;
        loop {
            if !due {
                match rx.recv().await {
                    Some(change) => due = self.note(change),
                    None => return,
                }
                continue;
            }
            let (registered, epoch) = (self.registered, self.epoch);
            let result = tokio::select! {
                result = self.once() => result,
                // A change while fetching: note it, then start over (a loss keeps the
                // same starting point; a registration wants a catch-up anyway).
                change = rx.recv() => match change {
                    Some(change) => { self.note(change); continue; }
                    None => return,
                },
            };
            match result {
                Ok(covered) => {
                    self.link.recovered();
                    backoff.reset();
                    if registered && self.registered && epoch == self.epoch {
                        self.from = None;
                        self.mark(None);
                    } else if let Some(covered) = covered
                        && self.from.is_some_and(|from| from < covered)
                    {
                        // Not registered yet, so the gap stays open; but what this
                        // catch-up covered is done (run, or skipped and said so): the
                        // next one starts after it, not over again.
                        self.from = Some(covered);
                        self.mark(Some(covered));
                    }
                    due = false;
                }
                Err(e) => {
                    self.link.failed("catching up", &e);
                    let wait = backoff.next_delay();
                    debug!(?wait, "catch-up: next try");
                    let sleep = tokio::time::sleep(wait);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            () = &mut sleep => break,
                            change = rx.recv() => match change {
                                Some(change) => { self.note(change); }
                                None => return,
                            },
                        }
                    }
                }
            }
        }
    }

    fn mark(&self, value: Option<u64>) {
        let _ = self.out.send(Arrival::Mark(MARK, value));
    }

    /// Takes a change in; true when it calls for a catch-up.
    fn note(&mut self, change: LinkChange) -> bool {
        match change {
            LinkChange::Registered { gap_from } => {
                self.registered = true;
                // A catch-up going on began before this registration: it cannot
                // close the gap.
                self.epoch += 1;
                let from = match (self.from, gap_from) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if from != self.from {
                    self.from = from;
                    self.mark(from);
                }
                true
            }
            LinkChange::Lost => {
                self.registered = false;
                self.epoch += 1;
                // The gap starts after the last id seen; an older pending start
                // stays, since its events are not all run yet.
                if self.from.is_none() {
                    self.from = self.journal.last_event_id();
                    if let Some(from) = self.from {
                        self.mark(Some(from));
                        info!(
                            after = from,
                            "lost the daemon: events after id {from} will be caught up from Tracim"
                        );
                    }
                }
                false
            }
        }
    }

    /// One catch-up from `from`, sent to the service in id order. Returns the
    /// highest id it covered (ran or skipped), if any.
    async fn once(&mut self) -> Result<Option<u64>, TracimError> {
        let who = self.link.login().await?;
        self.link.set_state(
            "connected",
            format!(
                "connected to Tracim at {} as {} (user {})",
                self.link.client().base_url(),
                who.public_name,
                who.user_id
            ),
        );
        let from = match self.from {
            Some(from) => from,
            None => {
                let newest = self.link.client().newest_event_id(who.user_id).await?;
                let from = newest.unwrap_or(0);
                info!(
                    newest = from,
                    "empty journal: Tracim's newest event id {from} is the starting point, nothing older runs"
                );
                self.from = Some(from);
                self.mark(Some(from));
                from
            }
        };
        let journal = self.journal.clone();
        let found = self
            .link
            .client()
            .events_after_unknown(who.user_id, from, &self.limits, |id| journal.knows(id))
            .await?;
        self.report(from, &found);
        let covered = found
            .events
            .last()
            .map(|e| e.event_id)
            .max(found.skipped.as_ref().map(|s| s.last_id));
        for tlm in found.events {
            match Event::from_text(tlm.tlm) {
                Ok(event) => {
                    if self.out.send(Arrival::Event(event)).is_err() {
                        break;
                    }
                }
                Err(e) => warn!(
                    event_id = tlm.event_id,
                    "catch-up: an event of Tracim's history cannot be read, skipped: {e}"
                ),
            }
        }
        Ok(covered)
    }

    fn report(&self, from: u64, found: &CatchUp) {
        let first = found.events.first().map(|e| e.event_id);
        let last = found.events.last().map(|e| e.event_id);
        match (first, last) {
            (Some(a), Some(b)) => info!(
                after = from,
                pages = found.pages,
                "caught up {} events (ids {a}–{b})",
                found.events.len()
            ),
            _ => info!(
                after = from,
                "caught up 0 events: nothing missed after id {from}"
            ),
        }
        if let Some(s) = &found.skipped {
            warn!(
                too_old = s.too_old,
                over_max = s.over_max,
                "catch-up skipped {} events (ids {}–{}): {} older than catch_up_window, {} past catch_up_max",
                s.count,
                s.first_id,
                s.last_id,
                s.too_old,
                s.over_max
            );
        }
        if !found.reached_known && from > 0 {
            warn!(
                after = from,
                "Tracim's history does not reach back to event id {from} (removed with its space, or older than the history): events of the gap may be missing"
            );
        }
        self.link.caught_up(CatchUpReport {
            at_ms: crate::clock::ms(SystemTime::now()),
            after: from,
            ran: found.events.len() as u64,
            first_id: first,
            last_id: last,
            skipped: found.skipped.as_ref().map_or(0, |s| s.count),
        });
    }
}
