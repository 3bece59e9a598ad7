//! Noticing that the daemon's master socket was replaced (the daemon restarted)
//! without polling: an inotify watch on its directory wakes the client only when
//! something there changes. Where inotify cannot be had, the path is looked at
//! every `watch_interval`, as before.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::io::unix::AsyncFd;

/// Wakes when the directory of the master socket changes.
pub(super) enum MasterWatch {
    /// inotify on the directory, and the socket's file name in it.
    Notify(AsyncFd<OwnedFd>, std::ffi::OsString),
    /// A timer, where inotify failed (no directory yet, no inotify).
    Poll(tokio::time::Interval),
}

impl MasterWatch {
    pub(super) fn new(master: &Path, poll: Duration) -> MasterWatch {
        match (Self::inotify(master), master.file_name()) {
            (Some(fd), Some(name)) => MasterWatch::Notify(fd, name.to_owned()),
            _ => MasterWatch::Poll(tokio::time::interval(poll)),
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

    /// Resolves when the directory may have changed (or the next poll is due):
    /// `true` when an event named the socket itself (created, deleted, moved),
    /// which is a replacement even when the new file looks like the old one (a
    /// reused inode within one tick of the change-time clock).
    pub(super) async fn changed(&mut self) -> bool {
        match self {
            MasterWatch::Poll(interval) => {
                interval.tick().await;
                false
            }
            MasterWatch::Notify(fd, name) => {
                let Ok(mut ready) = fd.readable().await else {
                    return std::future::pending().await;
                };
                let mut replaced = false;
                let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
                let mut events = inotify::Reader::new(fd.get_ref(), &mut buf);
                while let Ok(event) = events.next() {
                    let named = event
                        .file_name()
                        .is_some_and(|n| n.to_bytes() == name.as_encoded_bytes());
                    let swapped = ReadFlags::CREATE
                        | ReadFlags::DELETE
                        | ReadFlags::MOVED_FROM
                        | ReadFlags::MOVED_TO;
                    replaced |= (named && event.events().intersects(swapped))
                        || event
                            .events()
                            .intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF);
                }
                ready.clear_ready();
                replaced
            }
        }
    }
}
