//! Catching up from Tracim's history: `GET /api/users/{id}/messages`, newest first.
//!
//! Why the history endpoint and not the live stream's backlog (`after_event_id`): the
//! backlog comes in no guaranteed order (Tracim's query has no ORDER BY) and with no
//! end marker, so a reader can never tell it has it all short of waiting for a keep-alive
//! or a live message, and it arrives whole in one body, however large. The history is
//! ordered (`event_id DESC`), paged by keyset tokens, ends deterministically (a known id
//! is reached, or `has_next` is false), and each page is a plain request that can be
//! retried. That lets a catch-up be exact: every event after an id, in id order, with
//! what it skips counted rather than guessed. The backlog stays useful for the live
//! stream's own resumption, where the journal drops what comes twice.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{TracimClient, read_json};
use crate::tracim::error::TracimError;
use crate::tracim::event::TlmEvent;

/// One page of the history, newest first.
#[derive(Clone, Debug)]
pub struct HistoryPage {
    /// The events of the page, newest first, each as sent.
    pub items: Vec<TlmEvent>,
    /// The token of the next (older) page, when there is one.
    pub next_page_token: Option<String>,
    /// Whether an older page exists.
    pub has_next: bool,
    /// Items of the page that were not TLMs (logged and left out).
    pub unreadable: usize,
}

/// Bounds of a catch-up.
#[derive(Clone, Debug)]
pub struct CatchUpLimits {
    /// At most this many events are returned: the newest ones.
    pub max: usize,
    /// Events created longer ago than this are skipped (`None`: no limit).
    pub window: Option<Duration>,
    /// Events asked per page.
    pub page_size: u32,
}

impl Default for CatchUpLimits {
    fn default() -> Self {
        Self {
            max: 1000,
            window: Some(Duration::from_secs(7 * 24 * 3600)),
            page_size: 200,
        }
    }
}

/// What a catch-up left out, never silently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// How many events were skipped in all.
    pub count: u64,
    /// The lowest skipped id.
    pub first_id: u64,
    /// The highest skipped id.
    pub last_id: u64,
    /// Of `count`, those older than the window.
    pub too_old: u64,
    /// Of `count`, those past `max` (the oldest go first).
    pub over_max: u64,
}

/// The result of [`TracimClient::events_after`].
#[derive(Clone, Debug)]
pub struct CatchUp {
    /// The events after the id asked, in id order (ascending), within the limits.
    pub events: Vec<TlmEvent>,
    /// What was left out by `max` or `window`, when anything was.
    pub skipped: Option<Skipped>,
    /// True when paging reached an id at or below the one asked; false when the history
    /// ended first (older events were removed with their space, or the id is from
    /// before the history began): then events may be missing that no one can fetch.
    pub reached_known: bool,
    /// Pages fetched.
    pub pages: u32,
    /// History items that were not TLMs (logged and left out).
    pub unreadable: usize,
}

#[derive(Deserialize)]
struct RawPage {
    items: Vec<Box<RawValue>>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    has_next: bool,
}

impl TracimClient {
    /// One page of `GET /api/users/{user_id}/messages`.
    pub async fn history_page(
        &self,
        user_id: u64,
        count: u32,
        page_token: Option<&str>,
    ) -> Result<HistoryPage, TracimError> {
        let what = "GET /api/users/{id}/messages";
        let mut query = vec![("count", count.to_string())];
        if let Some(token) = page_token {
            query.push(("page_token", token.to_string()));
        }
        let path = format!("/users/{user_id}/messages");
        let response = self.send(what, Method::GET, &path, &query, true).await?;
        let raw: RawPage = read_json(what, response).await?;
        let mut items = Vec::with_capacity(raw.items.len());
        let mut unreadable = 0;
        for item in raw.items {
            match TlmEvent::from_json(item.get().to_string()) {
                Ok(event) => items.push(event),
                Err(reason) => {
                    unreadable += 1;
                    tracing::warn!(%reason, "skipped an item of Tracim's history");
                }
            }
        }
        if raw.has_next && raw.next_page_token.is_none() {
            return Err(TracimError::Protocol {
                what,
                reason: "has_next without a next_page_token".into(),
            });
        }
        Ok(HistoryPage {
            items,
            next_page_token: raw.next_page_token,
            has_next: raw.has_next,
            unreadable,
        })
    }

    /// Every event of the user's history after `after` (exclusive), in id order, within
    /// `limits`: pages down from the newest until an id at or below `after`. Only the
    /// kept events are held in memory; the skipped ones are counted with their id range.
    pub async fn events_after(
        &self,
        user_id: u64,
        after: u64,
        limits: &CatchUpLimits,
    ) -> Result<CatchUp, TracimError> {
        self.events_after_unknown(user_id, after, limits, |_| false)
            .await
    }

    /// [`TracimClient::events_after`], leaving out the events `known` says the caller
    /// already has (a journal): they are neither returned nor counted against `max` nor
    /// reported as skipped, so a catch-up whose range also holds events received
    /// meanwhile keeps its `max` for the ones really missed.
    pub async fn events_after_unknown(
        &self,
        user_id: u64,
        after: u64,
        limits: &CatchUpLimits,
        mut known: impl FnMut(u64) -> bool,
    ) -> Result<CatchUp, TracimError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let oldest_allowed = limits
            .window
            .map(|w| now.saturating_sub(w.as_secs() as i64));
        let mut kept: BTreeMap<u64, TlmEvent> = BTreeMap::new();
        let mut skipped = Skipped::default();
        let mut token: Option<String> = None;
        let mut pages = 0u32;
        let mut unreadable = 0;
        let mut lowest_seen = u64::MAX;
        let reached_known = loop {
            let page = self
                .history_page(user_id, limits.page_size.max(1), token.as_deref())
                .await?;
            pages += 1;
            unreadable += page.unreadable;
            // Keyset paging moves strictly down; a page that does not would loop forever.
            if let Some(top) = page.items.iter().map(|e| e.event_id).max() {
                if top >= lowest_seen {
                    return Err(TracimError::Protocol {
                        what: "GET /api/users/{id}/messages",
                        reason: format!("page {pages} starts at id {top}, not below {lowest_seen}"),
                    });
                }
            }
            let mut reached = false;
            for event in page.items {
                lowest_seen = lowest_seen.min(event.event_id);
                if event.event_id <= after {
                    reached = true;
                    continue;
                }
                if known(event.event_id) {
                    continue;
                }
                let too_old = match (oldest_allowed, event.created_unix()) {
                    (Some(limit), Some(created)) => created < limit,
                    (Some(_), None) => {
                        tracing::warn!(
                            event_id = event.event_id,
                            "a history event has no readable `created`: kept"
                        );
                        false
                    }
                    (None, _) => false,
                };
                if too_old {
                    skipped.note(event.event_id, true);
                } else if kept.len() < limits.max {
                    kept.insert(event.event_id, event);
                } else {
                    skipped.note(event.event_id, false);
                }
            }
            if reached {
                break true;
            }
            match (page.has_next, page.next_page_token) {
                (true, Some(next)) => token = Some(next),
                _ => break after == 0,
            }
        };
        Ok(CatchUp {
            events: kept.into_values().collect(),
            skipped: (skipped.count > 0).then_some(skipped),
            reached_known,
            pages,
            unreadable,
        })
    }
}

impl Skipped {
    fn note(&mut self, id: u64, too_old: bool) {
        if self.count == 0 {
            self.first_id = id;
            self.last_id = id;
        }
        self.count += 1;
        self.first_id = self.first_id.min(id);
        self.last_id = self.last_id.max(id);
        if too_old {
            self.too_old += 1;
        } else {
            self.over_max += 1;
        }
    }
}
