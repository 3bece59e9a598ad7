//! Noticing that the daemon's master socket was replaced (the daemon restarted)
//! without polling: an inotify watch on its directory wakes the client only when
//! something there changes. Where inotify cannot be had, the path is looked at
//! every `watch_interval`, as before.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use tokio::io::unix::AsyncFd;

/// Wakes when the directory of the master socket changes.
pub(super) enum MasterWatch {
    /// inotify on the directory.
    Notify(AsyncFd<OwnedFd>),
    /// A timer, where inotify failed (no directory yet, no inotify).
    Poll(tokio::time::Interval),
}

impl MasterWatch {
    pub(super) fn new(master: &Path, poll: Duration) -> MasterWatch {
        match Self::inotify(master) {
            Some(fd) => MasterWatch::Notify(fd),
            None => MasterWatch::Poll(tokio::time::interval(poll)),
        }
    }

    fn inotify(master: &Path) -> Option<AsyncFd<OwnedFd>> {
        let dir = master.parent()?;
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
        let events = WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::ATTRIB
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF;
        inotify::add_watch(&fd, dir, events).ok()?;
        // SAFETY: the OwnedFd moves into the AsyncFd, which neither closes nor
        // replaces it while registered (tokio's I/O-safety contract for raw fds).
        unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
    }

    /// Resolves when the directory may have changed (or the next poll is due).
    pub(super) async fn changed(&mut self) {
        match self {
            MasterWatch::Poll(interval) => {
                interval.tick().await;
            }
            MasterWatch::Notify(fd) => {
                let Ok(mut ready) = fd.readable().await else {
                    return std::future::pending().await;
                };
                // What changed is looked at by the caller; the events are only
                // drained so the next change wakes us again.
                let mut buf = [0u8; 4096];
                while rustix::io::read(fd.get_ref(), &mut buf).is_ok_and(|n| n > 0) {}
                ready.clear_ready();
            }
        }
    }
}
