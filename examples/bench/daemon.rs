//! The daemon's side: one connection per message, sent from a runtime of its
//! own; and the configs the phases run on.

use crate::*;

/// Sends one message. A full listen backlog fails the connect (the daemon would
/// lose the message): that is counted, and the message sent again.
pub(crate) async fn send(
    socket: &Path,
    bytes: &[u8],
    backlog_full: &AtomicU64,
) -> Result<(), String> {
    for _ in 0..10_000 {
        let sent = async {
            let mut stream = UnixStream::connect(socket).await?;
            stream.write_all(bytes).await?;
            stream.shutdown().await
        };
        match sent.await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                backlog_full.fetch_add(1, Ordering::Relaxed);
                // Sleep, not spin: spinning would take the CPU the runner needs.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(format!("cannot send to {}: {e}", socket.display())),
        }
    }
    Err(format!(
        "{}: listen backlog full for 10 s",
        socket.display()
    ))
}

pub(crate) struct Blast {
    pub(crate) started: Instant,
    /// When the connect of message `i` began.
    pub(crate) sent: Vec<Instant>,
    pub(crate) backlog_full: u64,
}

/// The daemon's runtime: one thread of its own, as the daemon is a process of its
/// own. Sharing the runner's runtime would put the senders' tasks in the
/// runner's queues, which `tracim-hooks run` never has to share.
pub(crate) static DAEMON_SIDE: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

pub(crate) fn daemon_side() -> &'static tokio::runtime::Handle {
    DAEMON_SIDE.get().expect("started in main").handle()
}

/// `n` messages from `senders` concurrent tasks on the daemon's runtime, message
/// `i` with id `base + i`. When they outrun the runner, the runner's listen
/// backlog fills, and what is measured includes the time spent queued there.
pub(crate) async fn blast(
    socket: &Path,
    templates: &Arc<Vec<Template>>,
    base: u64,
    n: usize,
    senders: usize,
) -> Result<Blast, String> {
    let backlog_full = Arc::new(AtomicU64::new(0));
    // The messages in id order, each sender taking the next one when it is free:
    // the daemon delivers in order. (Each sender with every `senders`-th id, the
    // streams drifted thousands of ids apart, and most events were recorded
    // behind ones with higher ids, which the daemon never does.)
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders.min(n))
        .map(|_| {
            let (socket, templates) = (socket.to_path_buf(), templates.clone());
            let (backlog_full, next) = (backlog_full.clone(), next.clone());
            daemon_side().spawn(async move {
                let mut sent = Vec::with_capacity(n / senders + 1);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let bytes = templates[i % templates.len()].message(base + i as u64);
                    let t0 = Instant::now();
                    send(&socket, &bytes, &backlog_full).await?;
                    sent.push((i, t0));
                }
                Ok::<_, String>(sent)
            })
        })
        .collect();
    let mut sent = vec![started; n];
    for task in tasks {
        for (i, t0) in task.await.map_err(|e| e.to_string())?? {
            sent[i] = t0;
        }
    }
    Ok(Blast {
        started,
        sent,
        backlog_full: backlog_full.load(Ordering::Relaxed),
    })
}

/// Polls `done` every millisecond until it holds; when it was seen to, or `None`.
pub(crate) async fn wait_until(
    mut done: impl FnMut() -> bool,
    timeout: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return Some(Instant::now());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A config on sockets of `dir`, with its journal there too (on, as by default):
/// never the user's own.
pub(crate) fn config_text(dir: &Path, tag: &str, rest: &str) -> String {
    config_text_journal(dir, tag, rest, true)
}

/// [`config_text`], with the journal on or off.
pub(crate) fn config_text_journal(dir: &Path, tag: &str, rest: &str, journal: bool) -> String {
    format!(
        "[daemon]\nmaster_socket = \"{}\"\nsocket = \"{}\"\n\n[journal]\nenabled = {journal}\npath = \"{}\"\n\n{rest}",
        dir.join(format!("{tag}-master.sock")).display(),
        dir.join(format!("{tag}.sock")).display(),
        dir.join(format!("{tag}-journal.db")).display()
    )
}

pub(crate) const NEVER_HOOK: &str =
    "[[hook]]\nname = \"never\"\non = \"nomatch.never\"\nexec = [\"true\"]\n";

pub(crate) fn trivial_hook(parallel: usize) -> String {
    format!(
        "[defaults]\nmax_parallel = {parallel}\nqueue_limit = 100000\n\n\
         [[hook]]\nname = \"trivial\"\non = \"*\"\nexec = [\"true\"]\n"
    )
}
