//! `run`: the service, with SIGHUP for reload and SIGTERM/SIGINT for a clean stop.

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::Failure;
use crate::config::Config;
use crate::notify::Notifier;
use crate::service::{Control, Service};

/// `run`: the service, with SIGHUP for reload and SIGTERM/SIGINT for a clean stop.
pub(super) async fn run(path: PathBuf) -> Result<(), Failure> {
    // A long-running service gives huge buffers back; one-shot commands (a
    // `check` of 200,000 hooks) keep glibc's faster defaults.
    crate::memory::give_back_large_buffers();
    let config = Config::load(&path)?;
    let (tx, controls) = mpsc::unbounded_channel();
    let signals = [
        (SignalKind::hangup(), Control::Reload),
        (SignalKind::terminate(), Control::Shutdown),
        (SignalKind::interrupt(), Control::Shutdown),
    ];
    for (kind, control) in signals {
        let mut stream =
            signal(kind).map_err(|e| Failure::new(format!("cannot handle signals: {e}")))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(control).is_err() {
                    return;
                }
            }
        });
    }
    let service = Service::start(path, config, Notifier::from_env())
        .await
        .map_err(|e| Failure::new(e.to_string()))?;
    // On a worker thread, not the main thread that block_on runs on: handing
    // events over between workers is cheaper than waking the main thread.
    tokio::spawn(service.run(controls))
        .await
        .map_err(|e| Failure::new(format!("the runner stopped unexpectedly: {e}")))
}
