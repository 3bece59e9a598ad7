//! The runner in this process, set up as `tracim-hooks run` sets it up.

use crate::*;

pub(crate) struct Runner {
    pub(crate) _sim: SimDaemon,
    pub(crate) socket: PathBuf,
    pub(crate) master: PathBuf,
    pub(crate) handle: Handle,
    pub(crate) controls: mpsc::UnboundedSender<Control>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Runner {
    /// Starts a simulated daemon and a runner with `config`, registered with it.
    pub(crate) async fn start(dir: &Path, tag: &str, config: &str) -> Result<Runner, String> {
        Runner::start_journal(dir, tag, config, true).await
    }

    /// [`Runner::start`] with the journal on or off.
    pub(crate) async fn start_journal(
        dir: &Path,
        tag: &str,
        config: &str,
        journal: bool,
    ) -> Result<Runner, String> {
        let path = dir.join(format!("{tag}.toml"));
        let config = Config::parse(&path, &config_text_journal(dir, tag, config, journal))
            .map_err(|e| e.to_string())?;
        let socket = config.daemon.socket.clone();
        let master = config.daemon.master_socket.clone();
        let sim = SimDaemon::start(&master, SimOptions::default())
            .await
            .map_err(|e| format!("simulated daemon: {e}"))?;
        let service = Service::start(path, config, Notifier::disabled())
            .await
            .map_err(|e| e.to_string())?;
        let handle = service.handle();
        let (controls, rx) = mpsc::unbounded_channel();
        // As `tracim-hooks run` does: the service loop on a runtime worker.
        let task = tokio::spawn(service.run(rx));
        if !sim.wait_for_client(&socket, Duration::from_secs(10)).await {
            return Err("the in-process runner did not register".into());
        }
        Ok(Runner {
            _sim: sim,
            socket,
            master,
            handle,
            controls,
            task,
        })
    }

    /// Takes the decision times of the events with these ids, until all have
    /// come or `timeout` is over.
    pub(crate) async fn decisions(
        &self,
        ids: Range<u64>,
        timeout: Duration,
    ) -> Vec<(u64, Instant)> {
        let mut got = Vec::with_capacity((ids.end - ids.start) as usize);
        wait_until(
            || {
                let taken = timing::take_decisions();
                got.extend(taken.into_iter().filter(|(id, _)| ids.contains(id)));
                got.len() as u64 >= ids.end - ids.start
            },
            timeout,
        )
        .await;
        got
    }

    pub(crate) async fn stop(self) -> Result<(), String> {
        let _ = self.controls.send(Control::Shutdown);
        match tokio::time::timeout(Duration::from_secs(20), self.task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the in-process runner failed: {e}")),
            Err(_) => Err("the in-process runner did not stop within 20 s".into()),
        }
    }
}
