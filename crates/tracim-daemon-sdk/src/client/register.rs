//! Registration: registering, and registering again whenever the daemon may have
//! forgotten us (a new master socket, pings that stopped, a client list without us).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, info};

use super::master::MasterWatch;
use super::socket::{self, FileIdentity};
use super::{ClientError, ClientState, Shared};
use crate::lock;
use crate::protocol::{ClientInfo, Envelope, Message};

pub(super) async fn ask_clients(
    shared: &Shared,
    timeout: Duration,
) -> Result<Vec<ClientInfo>, ClientError> {
    let (tx, rx) = oneshot::channel();
    lock(&shared.waiters).clients.push(tx);
    send_to_daemon(shared, Message::GetClients).await?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(list)) => Ok(list),
        _ => Err(ClientError::NoAnswer("daemon_get_clients")),
    }
}

pub(super) async fn send_to_daemon(shared: &Shared, message: Message) -> Result<(), ClientError> {
    let bytes = Envelope::new(shared.self_path.clone(), message).encode();
    let master = &shared.config.master_socket;
    socket::send_bytes(master, &bytes)
        .await
        .map_err(|source| ClientError::Send {
            path: master.clone(),
            source,
        })
}

/// How late the daemon's ping may be before we ask whether it still lists us
/// (at most one `ping_interval`).
const PING_SLACK: Duration = Duration::from_secs(5);

/// Registers, and registers again whenever the daemon may have forgotten us: a
/// new master socket (restart), pings that stopped, or a client list without us.
pub(super) async fn register_loop(shared: Arc<Shared>) {
    let config = shared.config.clone();
    let master = config.master_socket.clone();
    let mut backoff = Duration::from_millis(100);
    let mut said_waiting = false;
    loop {
        // --- not registered: try, and wait between tries. The watch starts
        // before the registration, so a restart right after it is not missed.
        let mut watch = MasterWatch::new(&master, config.watch_interval);
        let identity = socket::file_identity(&master);
        let seen = *shared.account_infos.borrow();
        let info = ClientInfo {
            path: shared.self_path.clone(),
            pid: shared.pid.clone(),
        };
        shared.expect_account_info();
        // Counted before sending: whatever arrives from now on is of this one.
        shared
            .registrations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = send_to_daemon(&shared, Message::ClientAdd(info)).await {
            shared.take_account_info();
            if !said_waiting {
                let there = socket::MasterPath::of(&master);
                info!(master = %master.display(), "waiting for TracimDaemon: {there} ({e})");
                said_waiting = true;
            }
            shared.state.send_replace(ClientState::Waiting {
                master: master.clone(),
            });
            // Wake early when the master socket appears or changes.
            let deadline = Instant::now() + backoff;
            while Instant::now() < deadline {
                tokio::time::sleep(config.watch_interval.min(deadline - Instant::now())).await;
                if socket::file_identity(&master) != identity {
                    break;
                }
            }
            backoff = (backoff * 2).min(config.retry_max);
            continue;
        }
        // The daemon answers a registration with its account info.
        let mut infos = shared.account_infos.subscribe();
        let answered = tokio::time::timeout(Duration::from_secs(2), infos.wait_for(|n| *n != seen))
            .await
            .is_ok();
        if !answered {
            // Not due any more: a late or forged one must not be taken.
            shared.take_account_info();
            debug!("no daemon_account_info after registering");
        }
        said_waiting = false;
        backoff = Duration::from_millis(100);
        *lock(&shared.last_ping) = Instant::now();
        info!(
            master = %master.display(),
            socket = %shared.self_path,
            user_id = shared.user_id.borrow().as_deref().unwrap_or("?"),
            "registered with TracimDaemon"
        );
        shared.state.send_replace(ClientState::Registered {
            master: master.clone(),
        });

        // --- registered: watch for any sign the daemon forgot us
        let reason = watch_registration(&shared, identity, &mut watch).await;
        info!(master = %master.display(), "registering again: {reason}");
    }
}

async fn watch_registration(
    shared: &Shared,
    identity: Option<FileIdentity>,
    master: &mut MasterWatch,
) -> &'static str {
    let config = &shared.config;
    let mut check = tokio::time::interval(config.check_interval);
    check.reset();
    // A ping a few seconds late is the first sign the daemon dropped us (after a
    // delivery to us failed, say): ask at once instead of at the next check.
    let late = config.ping_interval + PING_SLACK.min(config.ping_interval);
    let mut asked_about: Option<Instant> = None;
    loop {
        // The next moment the pings could tell something: nothing wakes the
        // client in between (an idle client sleeps until then).
        let last_ping = *lock(&shared.last_ping);
        let due = if asked_about == Some(last_ping) {
            last_ping + config.ping_timeout
        } else {
            last_ping + late.min(config.ping_timeout)
        };
        let ask_now = tokio::select! {
            named = master.changed() => {
                if named || socket::file_identity(&config.master_socket) != identity {
                    return "the daemon's master socket was replaced (daemon restart)";
                }
                false
            }
            () = tokio::time::sleep_until(due.into()) => {
                let last_ping = *lock(&shared.last_ping);
                if last_ping.elapsed() > config.ping_timeout {
                    return "no ping from the daemon within ping_timeout";
                }
                let overdue = last_ping.elapsed() > late && asked_about != Some(last_ping);
                if overdue {
                    asked_about = Some(last_ping);
                    debug!("the daemon's ping is late: asking whether it still lists us");
                }
                overdue
            }
            _ = check.tick() => true,
            () = shared.forgotten.notified() => {
                return "the daemon announced this client deleted";
            }
        };
        if ask_now {
            match ask_clients(shared, config.read_timeout).await {
                Ok(list) if list.iter().any(|c| c.path == shared.self_path) => {}
                Ok(_) => return "the daemon no longer lists this client",
                Err(e) => {
                    debug!("client check: {e}");
                    if matches!(e, ClientError::Send { .. }) {
                        return "the daemon cannot be reached";
                    }
                }
            }
        }
    }
}
