//! The event ids already in the journal, in memory, so that the accept path decides
//! "run or not" without waiting for disk.
//!
//! With the journal on, the set mirrors the file: loaded at open, grown by
//! [`Seen::admit`], shrunk by pruning; its size is bounded by `max_events` (plus what
//! arrives between two prunes). With the journal off, it keeps the last
//! [`RECENT_WITHOUT_JOURNAL`] ids, as the runner did before the journal.
//!
//! Tracim's event ids are a database serial, so the ids a journal holds are nearly
//! a run of consecutive numbers: a compressed bitmap keeps 100,000 of them in tens
//! of KiB, where a hash set took a few MiB of the runner's resident memory.

use std::collections::{HashSet, VecDeque};

use roaring::RoaringTreemap;

/// How many ids are remembered when nothing is kept on disk.
pub(crate) const RECENT_WITHOUT_JOURNAL: usize = 4096;

#[derive(Debug)]
pub(crate) enum Seen {
    /// The journal's ids.
    Journal(RoaringTreemap),
    /// The last ids, in arrival order. A window sliding over ids suits a hash set:
    /// in the bitmap, each id let go would shift the others of its block.
    Recent {
        ids: HashSet<u64>,
        order: VecDeque<u64>,
    },
}

impl Default for Seen {
    fn default() -> Seen {
        Seen::Journal(RoaringTreemap::new())
    }
}

impl Seen {
    /// A set mirroring the journal's events.
    pub(crate) fn from_journal(ids: RoaringTreemap) -> Seen {
        Seen::Journal(ids)
    }

    /// A set of the last [`RECENT_WITHOUT_JOURNAL`] ids.
    pub(crate) fn recent() -> Seen {
        Seen::Recent {
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// True the first time an id is seen; remembers it.
    pub(crate) fn admit(&mut self, id: u64) -> bool {
        match self {
            Seen::Journal(ids) => ids.insert(id),
            Seen::Recent { ids, order } => {
                if !ids.insert(id) {
                    return false;
                }
                order.push_back(id);
                if order.len() > RECENT_WITHOUT_JOURNAL
                    && let Some(oldest) = order.pop_front()
                {
                    ids.remove(&oldest);
                }
                true
            }
        }
    }

    /// Whether an id is known, without admitting it.
    pub(crate) fn contains(&self, id: u64) -> bool {
        match self {
            Seen::Journal(ids) => ids.contains(id),
            Seen::Recent { ids, .. } => ids.contains(&id),
        }
    }

    /// Forgets ids pruned from the journal.
    pub(crate) fn forget(&mut self, pruned: &[u64]) {
        match self {
            Seen::Journal(ids) => {
                for &id in pruned {
                    ids.remove(id);
                }
            }
            Seen::Recent { ids, .. } => {
                for id in pruned {
                    ids.remove(id);
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        match self {
            Seen::Journal(ids) => ids.len(),
            Seen::Recent { ids, .. } => ids.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_admitted_once_until_forgotten() {
        let mut seen = Seen::from_journal([1u64, 2].into_iter().collect());
        assert!(!seen.admit(1));
        assert!(seen.admit(3));
        assert!(!seen.admit(3));
        seen.forget(&[1, 3]);
        assert!(seen.admit(1));
        assert!(seen.admit(3));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn without_a_journal_only_the_recent_ids_are_kept() {
        let mut seen = Seen::recent();
        for id in 0..RECENT_WITHOUT_JOURNAL as u64 + 10 {
            assert!(seen.admit(id));
        }
        assert_eq!(seen.len(), RECENT_WITHOUT_JOURNAL as u64);
        assert!(!seen.admit(RECENT_WITHOUT_JOURNAL as u64 + 9));
        // The oldest were let go.
        assert!(seen.admit(0));
    }
}
