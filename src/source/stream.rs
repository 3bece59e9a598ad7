//! `source = "tracim"`: the runner holds Tracim's live event stream itself and
//! resumes after every end (closed, network error, silence past `stream_timeout`,
//! `stream-error`, a logout, a Tracim restart) from the resume point, with a capped
//! backoff. Each event goes to the service, whose journal drops what comes twice.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracim_daemon_sdk::protocol::Event;
use tracim_daemon_sdk::tracim::{StreamEnd, StreamItem, StreamOptions, TracimError, Whoami};
use tracing::{debug, info, warn};

use super::catch_up::Arrival;
use super::link::{Backoff, Link};
use super::resume::ResumePoint;
use crate::journal::Journal;

/// The journal mark holding the stream's resume point.
pub const MARK: &str = "stream_resume";

/// After `stream-error` (too many users online) Tracim wants clients to hold back.
const STREAM_ERROR_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(2), Duration::from_secs(120));

/// A stream that stayed up this long (or brought a message) ended normally: the
/// next one opens at once.
const HEALTHY: Duration = Duration::from_secs(1);

/// How often the resume point is settled and kept.
const TICK: Duration = Duration::from_secs(1);

/// What the stream needs from the config.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Silence after which the stream is taken as dead.
    pub stream_timeout: Duration,
    /// The largest event accepted.
    pub max_message: usize,
    /// Backlog events older than this are skipped (and said so).
    pub window: Duration,
    /// The most events the history read (when there is no point yet) runs.
    pub max: usize,
}

/// Starts the stream task; abort the handle to stop it.
pub fn spawn(
    link: Arc<Link>,
    journal: &Journal,
    settings: StreamSettings,
    out: mpsc::UnboundedSender<Arrival>,
) -> JoinHandle<()> {
    let resume = ResumePoint::new(journal.mark(MARK).or_else(|| journal.last_event_id()));
    let reader = Reader {
        journal: journal.clone(),
        link,
        settings,
        out,
        resume,
        kept: None,
    };
    tokio::spawn(reader.run())
}

struct Reader {
    journal: Journal,
    link: Arc<Link>,
    settings: StreamSettings,
    out: mpsc::UnboundedSender<Arrival>,
    resume: ResumePoint,
    /// The resume point last sent to the journal.
    kept: Option<u64>,
}

/// Why one stream ended, for what comes next.
enum Ended {
    /// It could not be opened (or logged in).
    NotOpened(TracimError),
    /// It ran and ended.
    Ran {
        end: Option<StreamEnd>,
        stream_error: bool,
        healthy: bool,
    },
    /// The service is gone.
    Stop,
}

impl Reader {
    async fn run(mut self) {
        let mut backoff = Backoff::default();
        let mut error_backoff = Backoff::new(STREAM_ERROR_BACKOFF.0, STREAM_ERROR_BACKOFF.1);
        loop {
            let wait = match self.once().await {
                Ended::Stop => return,
                Ended::NotOpened(e) => {
                    self.link.failed("opening the event stream", &e);
                    backoff.next_delay()
                }
                Ended::Ran {
                    end,
                    stream_error,
                    healthy,
                } => {
                    self.resume.ended();
                    let after = self.resume.get().unwrap_or(0);
                    let why = end.map_or_else(
                        || "stream-error (too many users online)".to_owned(),
                        |e| e.to_string(),
                    );
                    let wait = if stream_error {
                        error_backoff.next_delay()
                    } else if healthy {
                        backoff.reset();
                        error_backoff.reset();
                        Duration::ZERO
                    } else {
                        backoff.next_delay()
                    };
                    info!(
                        "Tracim's event stream ended ({why}): resuming after event id {after} in {:.1}s",
                        wait.as_secs_f64()
                    );
                    self.link.set_state(
                        "reconnecting",
                        format!(
                            "reconnecting to Tracim at {} ({why})",
                            self.link.client().base_url()
                        ),
                    );
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Logs in, opens the stream after the resume point, reads it to its end.
    async fn once(&mut self) -> Ended {
        let who = match self.link.login().await {
            Ok(who) => who,
            Err(e) => return Ended::NotOpened(e),
        };
        if self.resume.get().is_none() {
            match self.link.client().newest_event_id(who.user_id).await {
                Ok(newest) => {
                    let newest = newest.unwrap_or(0);
                    info!(
                        newest,
                        "empty journal: Tracim's newest event id {newest} is the starting point, nothing older runs"
                    );
                    self.resume.start_at(newest);
                    self.keep();
                }
                Err(e) => return Ended::NotOpened(e),
            }
        }
        if self.resume.get() == Some(0) {
            // Tracim sends no backlog for `after_event_id=0`: while the point is 0
            // (the user had no event at all), read the history instead, which is
            // ordered and complete, and resume after its end.
            if let Err(e) = self.read_history(who.user_id).await {
                return Ended::NotOpened(e);
            }
        }
        let after = self.resume.get().unwrap_or(0);
        let options = StreamOptions {
            silence_timeout: self.settings.stream_timeout,
            max_event_size: self.settings.max_message,
        };
        let mut stream = match self
            .link
            .client()
            .open_stream(who.user_id, Some(after), options)
            .await
        {
            Ok(stream) => stream,
            Err(e) => {
                if e.is_auth() {
                    self.link.forget_login();
                }
                return Ended::NotOpened(e);
            }
        };
        let opened = Instant::now();
        self.resume.opened();
        self.link.recovered();
        self.streaming(&who);
        debug!(after, "Tracim's event stream open");
        let mut tick = tokio::time::interval(TICK);
        let mut messages = 0u64;
        let mut skipped = Skipped::default();
        let (end, stream_error) = loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = tick.tick() => {
                    if self.resume.settle(Instant::now()) {
                        self.keep();
                    }
                    continue;
                }
            };
            match item {
                Ok(StreamItem::Open) => {}
                Ok(StreamItem::KeepAlive) => {
                    self.resume.backlog_over();
                    skipped.report();
                }
                Ok(StreamItem::Message { event, backlog }) => {
                    messages += 1;
                    self.resume
                        .received(event.event_id, backlog, Instant::now());
                    if !backlog {
                        skipped.report();
                    }
                    if backlog && too_old(&event, self.settings.window) {
                        skipped.note(event.event_id);
                        continue;
                    }
                    match Event::from_text(event.tlm) {
                        Ok(event) => {
                            if self.out.send(Arrival::Event(event)).is_err() {
                                return Ended::Stop;
                            }
                        }
                        Err(e) => warn!(
                            event_id = event.event_id,
                            "an event of Tracim's stream cannot be read, skipped: {e}"
                        ),
                    }
                }
                Ok(StreamItem::StreamError { .. }) => {
                    warn!("Tracim sent stream-error (too many users online): backing off");
                    break (None, true);
                }
                Err(end) => break (Some(end), false),
            }
        };
        skipped.report();
        if stream_error {
            // The server closes the stream next; nothing after it is worth reading.
            drop(stream);
        }
        Ended::Ran {
            end,
            stream_error,
            healthy: messages > 0 || opened.elapsed() >= HEALTHY,
        }
    }

    /// Every event of the user's history after 0, to the service, in id order.
    async fn read_history(&mut self, user_id: u64) -> Result<(), TracimError> {
        let limits = tracim_daemon_sdk::tracim::CatchUpLimits {
            max: self.settings.max,
            window: Some(self.settings.window),
            ..Default::default()
        };
        // Read first: every id up to it is in the history read after it.
        let newest = self.link.client().newest_event_id(user_id).await?;
        let journal = self.journal.clone();
        let found = self
            .link
            .client()
            .events_after_unknown(user_id, 0, &limits, |id| journal.knows(id))
            .await?;
        for tlm in found.events {
            if let Ok(event) = Event::from_text(tlm.tlm) {
                let _ = self.out.send(Arrival::Event(event));
            }
        }
        if let Some(s) = &found.skipped {
            warn!(
                "the history read skipped {} events (ids {}–{})",
                s.count, s.first_id, s.last_id
            );
        }
        if let Some(newest) = newest {
            self.resume.advance_to(newest);
            self.keep();
        }
        Ok(())
    }

    fn streaming(&self, who: &Whoami) {
        self.link.set_state(
            "streaming",
            format!(
                "streaming from Tracim at {} as {}",
                self.link.client().base_url(),
                who.public_name
            ),
        );
    }

    /// Sends the resume point to the journal when it moved (in order with the events).
    fn keep(&mut self) {
        let point = self.resume.get();
        if point != self.kept {
            self.kept = point;
            let _ = self.out.send(Arrival::Mark(MARK, point));
        }
    }
}

/// Whether a backlog event is older than the window.
fn too_old(event: &tracim_daemon_sdk::tracim::TlmEvent, window: Duration) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    event
        .created_unix()
        .is_some_and(|created| created < now.saturating_sub(window.as_secs() as i64))
}

/// Backlog events skipped as too old, reported once the backlog is over.
#[derive(Default)]
struct Skipped {
    count: u64,
    first: u64,
    last: u64,
}

impl Skipped {
    fn note(&mut self, id: u64) {
        if self.count == 0 {
            (self.first, self.last) = (id, id);
        }
        self.count += 1;
        self.first = self.first.min(id);
        self.last = self.last.max(id);
    }

    fn report(&mut self) {
        if self.count > 0 {
            warn!(
                "the stream's backlog skipped {} events (ids {}–{}): older than catch_up_window",
                self.count, self.first, self.last
            );
            *self = Skipped::default();
        }
    }
}
