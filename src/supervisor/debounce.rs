//! The timer of a debounced run: it follows the run's deadline as newer events
//! move it, then queues the run by its hook's mode.

use tracing::debug;

use super::Supervisor;
use super::queue::{LaneKey, Woke};

impl Supervisor {
    /// Sleeps until the settling run of `key` is due, following its deadline
    /// as newer events move it, then queues it. Ends early at a stop: the run
    /// is then among those the stop leaves.
    pub(super) fn debounce_timer(&self, key: LaneKey, serial: u64) {
        let this = self.clone();
        let mut closing = self.inner.closing.subscribe();
        tokio::spawn(async move {
            let mut deadline = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    _ = closing.wait_for(|c| *c) => return,
                }
                let starts = {
                    let mut state = this.lock();
                    match state.wake(&key, serial, tokio::time::Instant::now()) {
                        Woke::Gone => return,
                        Woke::Later(later) => {
                            deadline = later;
                            continue;
                        }
                        Woke::Due(job) => {
                            job.span().in_scope(|| debug!(hook = %job.hook.name, event_id = job.event.id(), lane = %job.lane, coalesced = job.coalesced.len(), "debounce over: queued"));
                            this.enqueue(&mut state, job);
                            state.take_startable()
                        }
                    }
                };
                this.start_all(starts);
                this.inner.changed.notify_waiters();
                return;
            }
        });
    }
}
