//! Where the live stream resumes (`after_event_id`): the highest id that cannot hide a
//! lower one still to come.
//!
//! Tracim's backlog (the messages after the id asked) comes in no order and with no end
//! marker; it is over once a live message or a keep-alive arrives. Until then none of
//! its ids can be trusted as a resume point: the stream may break before a lower one
//! comes. In Tracim's async mode, live messages too may arrive out of id order, so an id
//! becomes the resume point only once it has been received [`SETTLE`] ago while the
//! stream stayed up. Whatever comes again after a resume is dropped by the journal.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How long a received id waits before it may become the resume point.
pub const SETTLE: Duration = Duration::from_secs(3);

/// The resume point of one source, across its streams.
#[derive(Debug)]
pub struct ResumePoint {
    confirmed: Option<u64>,
    /// The backlog of the open stream: ids and when they came, until it is over.
    backlog: Vec<(Instant, u64)>,
    in_backlog: bool,
    /// Ids past the backlog, oldest first, not yet settled.
    live: VecDeque<(Instant, u64)>,
}

impl ResumePoint {
    /// Resuming after `confirmed` (`None`: not known yet).
    pub fn new(confirmed: Option<u64>) -> Self {
        ResumePoint {
            confirmed,
            backlog: Vec::new(),
            in_backlog: false,
            live: VecDeque::new(),
        }
    }

    /// The id to resume after.
    pub fn get(&self) -> Option<u64> {
        self.confirmed
    }

    /// Sets the point when none is known (an empty journal: Tracim's newest).
    pub fn start_at(&mut self, id: u64) {
        self.confirmed.get_or_insert(id);
    }

    /// Raises the point to an id known to hide nothing (the end of an ordered,
    /// complete history read).
    pub fn advance_to(&mut self, id: u64) {
        self.confirmed = Some(self.confirmed.map_or(id, |c| c.max(id)));
    }

    /// A stream opened: its backlog starts.
    pub fn opened(&mut self) {
        self.backlog.clear();
        self.live.clear();
        self.in_backlog = true;
    }

    /// A message came.
    pub fn received(&mut self, id: u64, backlog: bool, now: Instant) {
        if backlog && self.in_backlog {
            self.backlog.push((now, id));
        } else {
            self.backlog_over();
            self.live.push_back((now, id));
        }
    }

    /// A keep-alive came (or a live message): the backlog is whole.
    pub fn backlog_over(&mut self) {
        if self.in_backlog {
            self.in_backlog = false;
            self.backlog.sort_unstable();
            self.live.extend(self.backlog.drain(..));
        }
    }

    /// Moves the point to what has settled by `now`; true when it moved.
    pub fn settle(&mut self, now: Instant) -> bool {
        let before = self.confirmed;
        while let Some(&(at, id)) = self.live.front() {
            if at + SETTLE > now {
                break;
            }
            self.live.pop_front();
            self.confirmed = Some(self.confirmed.map_or(id, |c| c.max(id)));
        }
        self.confirmed != before
    }

    /// The stream ended: what had not settled is not trusted (it comes again).
    pub fn ended(&mut self) {
        self.backlog.clear();
        self.live.clear();
        self.in_backlog = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_backlog_counts_only_once_it_is_over_and_settled() {
        let mut r = ResumePoint::new(Some(100));
        r.opened();
        let t0 = Instant::now();
        r.received(105, true, t0);
        r.received(103, true, t0);
        tokio::time::advance(SETTLE * 2).await;
        // Still in the backlog: 104 may yet come.
        assert!(!r.settle(Instant::now()));
        assert_eq!(r.get(), Some(100));
        r.backlog_over();
        assert!(r.settle(Instant::now()));
        assert_eq!(r.get(), Some(105));
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_id_counts_after_it_settled_and_not_if_the_stream_broke() {
        let mut r = ResumePoint::new(Some(100));
        r.opened();
        r.received(110, false, Instant::now());
        tokio::time::advance(SETTLE / 2).await;
        r.received(111, false, Instant::now());
        assert!(!r.settle(Instant::now()));
        tokio::time::advance(SETTLE / 2).await;
        assert!(r.settle(Instant::now()));
        assert_eq!(r.get(), Some(110));
        r.ended();
        tokio::time::advance(SETTLE * 2).await;
        assert!(!r.settle(Instant::now()));
        assert_eq!(r.get(), Some(110));
        // A break in the backlog: nothing of it counts.
        r.opened();
        r.received(120, true, Instant::now());
        r.ended();
        tokio::time::advance(SETTLE * 2).await;
        assert!(!r.settle(Instant::now()));
        assert_eq!(r.get(), Some(110));
    }

    #[test]
    fn start_at_only_fills_an_unknown_point() {
        let mut r = ResumePoint::new(None);
        r.start_at(7);
        r.start_at(9);
        assert_eq!(r.get(), Some(7));
    }
}
