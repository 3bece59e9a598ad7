//! Registration: registering, and registering again whenever the daemon may have
//! forgotten us (a new master socket, pings that stopped, a client list without us).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, info};

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

/// Registers, and registers again whenever the daemon may have forgotten us: a
/// new master socket (restart), pings that stopped, or a client list without us.
pub(super) async fn register_loop(shared: Arc<Shared>) {
    let config = shared.config.clone();
    let master = config.master_socket.clone();
    let mut backoff = Duration::from_millis(100);
    let mut said_waiting = false;
    loop {
        // --- not registered: try, and wait between tries
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
        let reason = watch_registration(&shared, identity).await;
        info!(master = %master.display(), "registering again: {reason}");
    }
}

async fn watch_registration(shared: &Shared, identity: Option<FileIdentity>) -> &'static str {
    let config = &shared.config;
    let mut watch = tokio::time::interval(config.watch_interval);
    let mut check = tokio::time::interval(config.check_interval);
    check.reset();
    loop {
        tokio::select! {
            _ = watch.tick() => {
                if socket::file_identity(&config.master_socket) != identity {
                    return "the daemon's master socket was replaced (daemon restart)";
                }
                if lock(&shared.last_ping).elapsed() > config.ping_timeout {
                    return "no ping from the daemon within ping_timeout";
                }
            }
            _ = check.tick() => {
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
            () = shared.forgotten.notified() => {
                return "the daemon announced this client deleted";
            }
        }
    }
}
