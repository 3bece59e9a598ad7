//! What comes in on the client's socket: accepted at once, each connection read
//! to its end in a task of its own, handed on in the daemon's order; and what the
//! client answers by itself (pings, account info, answers it waits for).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tracing::debug;

use super::slots::{Had, Slot, Slots};
use super::{Delivery, Inbound, Shared};
use crate::lock;
use crate::protocol::{DecodeError, Envelope, Message};

/// Input the client did not take. Each says what it is ([`Refusal::kind`], the
/// same for every refusal of its kind, to count or rate-limit by) and the details.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// `accept()` failed (out of file descriptors, say).
    #[error("accept failed: {0}")]
    AcceptFailed(#[source] io::Error),
    /// A process of another user connected (only the user and root may).
    #[error("connection refused: not this user: uid {uid}, pid {}", pid.map_or("?".into(), |p| p.to_string()))]
    ForeignUser {
        /// The peer's uid.
        uid: u32,
        /// The peer's pid, when the kernel says.
        pid: Option<i32>,
    },
    /// The peer's credentials could not be read, so it was not trusted.
    #[error("connection refused: no peer credentials: {0}")]
    NoPeerCredentials(#[source] io::Error),
    /// Every read slot was taken, so the connection that had been silent longest
    /// was closed to read a new one.
    #[error(
        "connection shed: all {slots} read slots were taken; the one silent longest was closed"
    )]
    Shed {
        /// How many connections are read at once.
        slots: usize,
    },
    /// The connection did not end within `read_timeout`.
    #[error("connection timed out before its message ended")]
    TimedOut,
    /// Reading the connection failed.
    #[error("connection read failed: {0}")]
    ReadFailed(#[source] io::Error),
    /// The message was longer than `max_message`; it was not kept.
    #[error("message over max_message dropped: more than {limit} bytes")]
    TooLarge {
        /// The `max_message` in force.
        limit: usize,
    },
    /// The bytes are not a message of the protocol.
    #[error("{}: {error} ({len} bytes)", error.category())]
    Undecodable {
        /// What is wrong with them.
        error: DecodeError,
        /// How many bytes came.
        len: usize,
    },
}

impl Refusal {
    /// The kind, as a short fixed text: `"connection refused: not this user"`,
    /// `"bad JSON"`, and so on.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::AcceptFailed(_) => "accept failed",
            Refusal::ForeignUser { .. } => "connection refused: not this user",
            Refusal::NoPeerCredentials(_) => "connection refused: no peer credentials",
            Refusal::Shed { .. } => "connection shed",
            Refusal::TimedOut => "connection timed out before its message ended",
            Refusal::ReadFailed(_) => "connection read failed",
            Refusal::TooLarge { .. } => "message over max_message dropped",
            Refusal::Undecodable { error, .. } => error.category(),
        }
    }
}

/// Accepts at once and reads each connection in a task of its own, so a slow or
/// silent peer never delays the next one, and the daemon (which delivers to all
/// clients serially) never waits on us.
pub(super) async fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    done: mpsc::UnboundedSender<(u64, Option<Inbound>)>,
) {
    let mut accepted_count = 0u64;
    let slots = Slots::new(shared.config.max_connections);
    let me = rustix::process::geteuid().as_raw();
    let refuse = |refusal| {
        let _ = shared.out.send(Inbound::Refused(refusal));
    };
    loop {
        // Accepted at once, whatever the slots: a new connection (the daemon's
        // next delivery or ping) is read now, not after the silent ones time out.
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                refuse(Refusal::AcceptFailed(e));
                // EMFILE and the like: give the system a moment instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = stream.peer_cred().map(|c| (c.uid(), c.pid()));
        match peer {
            Ok((uid, _)) if uid == me || uid == 0 => {}
            Ok((uid, pid)) => {
                refuse(Refusal::ForeignUser { uid, pid });
                continue;
            }
            Err(e) => {
                refuse(Refusal::NoPeerCredentials(e));
                continue;
            }
        }
        let seq = accepted_count;
        accepted_count += 1;
        let taken = match slots.take(seq).await {
            Some(Had::Free(taken)) => taken,
            Some(Had::Shed(taken)) => {
                refuse(Refusal::Shed {
                    slots: shared.config.max_connections,
                });
                taken
            }
            None => return,
        };
        let shared = shared.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let delivery = read_one(stream, &shared, &taken.slot).await;
            drop(taken);
            let _ = done.send((seq, delivery));
        });
    }
}

/// Reads one connection to its end and decodes it; the client's own reactions
/// (pong, account info, answers) happen here, at once, whatever the order.
async fn read_one(mut stream: UnixStream, shared: &Shared, slot: &Slot) -> Option<Inbound> {
    let limit = shared.config.max_message;
    let read = async {
        let mut buf = Vec::with_capacity(4096);
        // Until its first bytes come, the connection may be shed for a newer one.
        let first = tokio::select! {
            read = stream.read_buf(&mut buf) => read?,
            () = slot.shed() => return Ok(None),
        };
        slot.sending();
        if first > 0 {
            // One byte past the limit tells a message over it from one that fits.
            let mut taken = (&mut stream).take((limit + 1).saturating_sub(buf.len()) as u64);
            taken.read_to_end(&mut buf).await?;
        }
        Ok::<_, io::Error>(Some(buf))
    };
    let bytes = match tokio::time::timeout(shared.config.read_timeout, read).await {
        // Shed: said once by the acceptor, with the count of slots.
        Ok(Ok(None)) => return None,
        Err(_) => return Some(Inbound::Refused(Refusal::TimedOut)),
        Ok(Err(e)) => return Some(Inbound::Refused(Refusal::ReadFailed(e))),
        Ok(Ok(Some(bytes))) if bytes.len() > limit => {
            return Some(Inbound::Refused(Refusal::TooLarge { limit }));
        }
        Ok(Ok(Some(bytes))) => bytes,
    };
    let received = Instant::now();
    drop(stream);
    if bytes.is_empty() {
        // A peer that connects and closes: another instance checking whether
        // this one is alive, say. Nothing was sent, nothing is wrong.
        debug!("empty connection");
        return None;
    }
    Some(match Envelope::decode(&bytes) {
        Ok(envelope) => {
            handle(shared, &envelope);
            Inbound::Message(Delivery {
                envelope,
                received,
                registration: shared
                    .registrations
                    .load(std::sync::atomic::Ordering::SeqCst),
            })
        }
        Err(error) => Inbound::Refused(Refusal::Undecodable {
            error,
            len: bytes.len(),
        }),
    })
}

/// How long a message that was read may wait for the messages accepted before
/// it. The daemon has written a message whole before it connects for the next
/// one, so in practice nothing waits; only a stalled peer that is not the daemon
/// can hold the order up, and then only this long.
const ORDER_HOLD: Duration = Duration::from_millis(50);

/// Hands messages on in the order their connections were accepted, which is the
/// order the daemon sent them: connections are read concurrently (a slow peer
/// must not delay the others), so their reads may finish in another order, and
/// `serial` and `latest` hooks depend on arrival order.
pub(super) async fn sequence(
    mut done: mpsc::UnboundedReceiver<(u64, Option<Inbound>)>,
    tx: mpsc::UnboundedSender<Inbound>,
) {
    let mut next = 0u64;
    let mut waiting: std::collections::BTreeMap<u64, Option<Inbound>> = Default::default();
    let hold = tokio::time::sleep(ORDER_HOLD);
    tokio::pin!(hold);
    let pass = |inbound: Option<Inbound>| {
        if let Some(inbound) = inbound {
            let _ = tx.send(inbound);
        }
    };
    loop {
        tokio::select! {
            item = done.recv() => match item {
                // In order, the usual case: straight through.
                Some((seq, delivery)) if seq == next && waiting.is_empty() => {
                    pass(delivery);
                    next += 1;
                    continue;
                }
                // Its turn was skipped; hand it on now rather than never.
                Some((seq, delivery)) if seq < next => {
                    pass(delivery);
                    continue;
                }
                Some((seq, delivery)) => {
                    if waiting.is_empty() {
                        hold.as_mut().reset(tokio::time::Instant::now() + ORDER_HOLD);
                    }
                    waiting.insert(seq, delivery);
                }
                None => {
                    waiting.into_values().for_each(pass);
                    return;
                }
            },
            () = &mut hold, if !waiting.is_empty() => {
                if let Some(&first) = waiting.keys().next() {
                    debug!(skipped = first - next, "messages out of order: not waiting any longer for earlier ones");
                    next = first;
                }
            }
        }
        let before = next;
        while let Some(delivery) = waiting.remove(&next) {
            pass(delivery);
            next += 1;
        }
        if next != before && !waiting.is_empty() {
            hold.as_mut()
                .reset(tokio::time::Instant::now() + ORDER_HOLD);
        }
    }
}

/// What the client itself does with a message, before passing it on.
fn handle(shared: &Shared, envelope: &Envelope) {
    match &envelope.message {
        Message::Ping => {
            *lock(&shared.last_ping) = Instant::now();
            let master = shared.config.master_socket.clone();
            let pong = Envelope::new(shared.self_path.clone(), Message::Pong).encode();
            // Answered from its own task: keep-alive waits behind nothing.
            tokio::spawn(async move {
                if let Err(e) = super::send_bytes(&master, &pong).await {
                    debug!("pong not delivered: {e}");
                }
            });
        }
        Message::AccountInfo(info) if shared.take_account_info() => {
            shared.user_id.send_replace(Some(info.user_id.clone()));
            shared.account_infos.send_modify(|n| *n += 1);
            for waiter in lock(&shared.waiters).account.drain(..) {
                let _ = waiter.send(info.clone());
            }
        }
        Message::AccountInfo(info) => {
            debug!(user_id = %info.user_id, "a daemon_account_info nobody asked for: the account is not changed");
        }
        Message::Clients(list) => {
            let waiters: Vec<_> = lock(&shared.waiters).clients.drain(..).collect();
            for waiter in waiters {
                let _ = waiter.send(list.clone());
            }
        }
        Message::ClientDeleted(info) if info.path == shared.self_path => {
            shared.forgotten.notify_one();
        }
        _ => debug!(kind = envelope.message.kind(), "message received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(path: &str) -> Option<Inbound> {
        Some(Inbound::Message(Delivery {
            envelope: Envelope::new(path, Message::Ping),
            received: Instant::now(),
            registration: 1,
        }))
    }

    fn paths(rx: &mut mpsc::UnboundedReceiver<Inbound>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|inbound| match inbound {
                Inbound::Message(d) => Some(d.envelope.path),
                Inbound::Refused(_) => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn messages_leave_in_accept_order_and_a_stuck_one_is_not_waited_for_long() {
        let (done, finished) = mpsc::unbounded_channel();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(sequence(finished, tx));
        let settle = || tokio::time::sleep(Duration::from_millis(1));

        // 1 and 2 finish before 0: they wait for it, then all leave in order.
        done.send((1, delivery("b"))).unwrap();
        done.send((2, delivery("c"))).unwrap();
        settle().await;
        assert!(paths(&mut rx).is_empty());
        done.send((0, delivery("a"))).unwrap();
        settle().await;
        assert_eq!(paths(&mut rx), ["a", "b", "c"]);

        // A connection that yields nothing still takes its turn.
        done.send((3, None)).unwrap();
        done.send((4, delivery("e"))).unwrap();
        settle().await;
        assert_eq!(paths(&mut rx), ["e"]);

        // 5 is stuck: 6 waits for ORDER_HOLD, not longer; 5 comes late and
        // still gets through.
        done.send((6, delivery("g"))).unwrap();
        tokio::time::sleep(ORDER_HOLD - Duration::from_millis(5)).await;
        assert!(paths(&mut rx).is_empty());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(paths(&mut rx), ["g"]);
        done.send((5, delivery("f"))).unwrap();
        done.send((7, delivery("h"))).unwrap();
        settle().await;
        assert_eq!(paths(&mut rx), ["f", "h"]);

        // When the acceptor is gone, what waits is handed on and the stream ends.
        done.send((9, delivery("j"))).unwrap();
        drop(done);
        settle().await;
        assert_eq!(paths(&mut rx), ["j"]);
        assert!(rx.recv().await.is_none());
    }
}
