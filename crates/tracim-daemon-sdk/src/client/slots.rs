//! Read slots: how many connections are read at once, and which one gives its
//! slot up when all are taken. A connection that has sent nothing for
//! [`SHED_AFTER`] can be shed for a newer one (silent peers must not starve the
//! daemon, whose deliveries and pings then wait); one that has started sending
//! keeps its slot until `read_timeout`, and so does one just opened, which a
//! client that connects and then writes (as the daemon does) would lose.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::lock;

/// How long a connection may stay silent before it can be shed.
pub(super) const SHED_AFTER: Duration = Duration::from_secs(1);

/// One connection being read.
pub(super) struct Slot {
    opened: Instant,
    /// Its first bytes have come: it is not shed any more.
    sending: AtomicBool,
    /// Asked to give its slot up.
    shed: AtomicBool,
    wake: Notify,
}

impl Slot {
    /// Notes that the peer has started sending.
    pub(super) fn sending(&self) {
        self.sending.store(true, Ordering::SeqCst);
    }

    /// Resolves when this connection is shed for a newer one.
    pub(super) async fn shed(&self) {
        self.wake.notified().await;
    }
}

/// The slots, in accept order.
pub(super) struct Slots {
    permits: Arc<Semaphore>,
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
}

/// A taken slot; dropping it frees it.
pub(super) struct Taken {
    slots: Arc<Slots>,
    seq: u64,
    pub(super) slot: Arc<Slot>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Taken {
    fn drop(&mut self) {
        lock(&self.slots.open).remove(&self.seq);
    }
}

/// How a slot was had.
pub(super) enum Had {
    /// A free one.
    Free(Taken),
    /// After shedding the connection that had been silent longest.
    Shed(Taken),
}

impl Slots {
    pub(super) fn new(count: usize) -> Arc<Slots> {
        Arc::new(Slots {
            permits: Arc::new(Semaphore::new(count.max(1))),
            open: Mutex::new(BTreeMap::new()),
        })
    }

    /// A slot for connection `seq`: a free one at once; else the oldest
    /// connection still silent is shed and its slot taken as soon as it lets go;
    /// when every connection is sending, the first to end frees one.
    pub(super) async fn take(self: &Arc<Self>, seq: u64) -> Option<Had> {
        let mut shed = false;
        let permit = loop {
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                break permit;
            }
            match self.oldest_silent() {
                // Shed it; its reader lets go at once.
                Some((slot, since)) if since.elapsed() >= SHED_AFTER => {
                    slot.shed.store(true, Ordering::SeqCst);
                    // notify_one keeps the wake-up for a reader not waiting yet.
                    slot.wake.notify_one();
                    shed = true;
                    break self.permits.clone().acquire_owned().await.ok()?;
                }
                // A slot frees up, or the oldest silent one becomes sheddable.
                Some((_, since)) => tokio::select! {
                    permit = self.permits.clone().acquire_owned() => break permit.ok()?,
                    () = tokio::time::sleep_until(since + SHED_AFTER) => {}
                },
                // Every connection is sending: the first to end frees a slot.
                None => break self.permits.clone().acquire_owned().await.ok()?,
            }
        };
        let slot = Arc::new(Slot {
            opened: Instant::now(),
            sending: AtomicBool::new(false),
            shed: AtomicBool::new(false),
            wake: Notify::new(),
        });
        lock(&self.open).insert(seq, slot.clone());
        let taken = Taken {
            slots: self.clone(),
            seq,
            slot,
            _permit: permit,
        };
        Some(if shed {
            Had::Shed(taken)
        } else {
            Had::Free(taken)
        })
    }

    /// The connection silent longest (and not shed yet), with when it opened.
    fn oldest_silent(&self) -> Option<(Arc<Slot>, Instant)> {
        lock(&self.open)
            .values()
            .find(|slot| !slot.sending.load(Ordering::SeqCst) && !slot.shed.load(Ordering::SeqCst))
            .map(|slot| (slot.clone(), slot.opened))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_oldest_silent_connection_is_shed_and_a_sending_one_kept() {
        let slots = Slots::new(2);
        let Some(Had::Free(first)) = slots.take(0).await else {
            panic!("a free slot")
        };
        let Some(Had::Free(second)) = slots.take(1).await else {
            panic!("a free slot")
        };
        first.slot.sending();
        // Full: the third sheds the second (the first is sending), once the
        // second has been silent for SHED_AFTER, not before.
        let t0 = Instant::now();
        let third = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take(2).await }
        });
        second.slot.shed().await;
        assert_eq!(t0.elapsed(), SHED_AFTER);
        drop(second);
        assert!(matches!(third.await.unwrap(), Some(Had::Shed(_))));
        drop(first);
    }
}
