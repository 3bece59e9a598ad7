//! `tracim-hooks demo`: the real runner against the simulated daemon, over real
//! Unix sockets in a temporary directory, playing one sample event per Tracim
//! entity type.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Failure;
use crate::config::{self, Config};
use crate::notify::Notifier;
use crate::samples::SAMPLES;
use crate::service::{Control, Service};
use tracim_daemon_sdk::protocol::Event;
use tracim_daemon_sdk::sim::{SimDaemon, SimOptions};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        for attempt in 0..100u32 {
            let dir = base.join(format!(
                "tracim-hooks-demo.{}.{attempt}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free temporary directory name"))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure {
        lines: vec![format!("demo: {what}: {e}")],
    }
}

/// Plays every sample through the simulated daemon to the runner and its hooks
/// (`config`, or the bundled example), prints what ran, and returns once every
/// event was delivered and every hook finished.
pub async fn demo(config: Option<Config>, from_tracim: bool) -> Result<(), Failure> {
    let dir = TempDir::new().map_err(|e| fail("cannot create a temporary directory", e))?;
    let master = dir.path().join("master.sock");
    let socket = dir.path().join("tracim-hooks.sock");
    let mut config = match config {
        Some(config) => config,
        None => Config::parse(Path::new("(bundled example config)"), config::EXAMPLE)?,
    };
    config.daemon.master_socket = master.clone();
    config.daemon.socket = socket.clone();
    // A journal of its own, gone with the directory: the demo's sample events
    // must not land in (or be deduplicated against) the user's real journal.
    config.journal.path = dir.path().join("journal.db");
    let config_path = config.path.clone();
    if from_tracim {
        return tracim_demo(config, &dir).await;
    }

    let sim = SimDaemon::start(&master, SimOptions::default())
        .await
        .map_err(|e| fail("cannot start the simulated daemon", e))?;
    let service = Service::start(config_path, config, Notifier::disabled())
        .await
        .map_err(|e| fail("cannot start the runner", e))?;
    let handle = service.handle();
    let mut reports = handle.supervisor.reports();
    let (controls, rx) = mpsc::unbounded_channel();
    let running = tokio::spawn(service.run(rx));

    if !sim.wait_for_client(&socket, Duration::from_secs(10)).await {
        return Err(fail("the runner did not register", "timed out after 10 s"));
    }
    println!(
        "tracim-hooks demo: simulated TracimDaemon at {}",
        master.display()
    );
    println!(
        "playing {} sample events, one per Tracim entity type\n",
        SAMPLES.len()
    );

    for (_, text) in SAMPLES {
        let delivered = sim.send_event(text).await;
        if delivered.ok != 1 {
            return Err(fail("an event was not delivered", format!("{delivered:?}")));
        }
    }
    // Every event in, and every run out.
    let settle = async {
        while handle.events_received() < SAMPLES.len() as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handle.supervisor.wait_idle().await;
    };
    if tokio::time::timeout(Duration::from_secs(120), settle)
        .await
        .is_err()
    {
        return Err(fail("hooks did not finish", "timed out after 120 s"));
    }
    let _ = controls.send(Control::Shutdown);
    let _ = running.await;

    print_runs(
        &mut reports,
        &SAMPLES
            .iter()
            .map(|(t, text)| {
                (
                    *t,
                    Event::from_text(*text).map(|e| e.id()).unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>(),
    )
}

/// The same samples published on a simulated Tracim, read by the runner from
/// Tracim's own event stream (`source = "tracim"`).
async fn tracim_demo(mut config: Config, dir: &TempDir) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    use tracim_daemon_sdk::tracim::Login;
    use tracim_daemon_sdk::tracim::sim::{SimConfig, TracimSim};

    use crate::source::{Source, TracimLogin, TracimSettings};

    let sim_config = SimConfig::default();
    let user = sim_config.users[0].clone();
    let sim = TracimSim::start(sim_config)
        .await
        .map_err(|e| fail("cannot start the simulated Tracim", e))?;
    let password_file = dir.path().join("tracim-password");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&password_file)
        .map_err(|e| fail("cannot write the password file", e))?;
    writeln!(file, "{}", user.password).map_err(|e| fail("cannot write the password file", e))?;
    config.source = Source::Tracim;
    config.tracim = Some(TracimSettings {
        url: Some(sim.url()),
        login: TracimLogin::Password {
            login: Login::Username(user.username.clone()),
            password_file,
        },
        ca_file: None,
        catch_up_max: TracimSettings::CATCH_UP_MAX,
        catch_up_window: TracimSettings::CATCH_UP_WINDOW,
        stream_timeout: TracimSettings::STREAM_TIMEOUT,
    });
    let config_path = config.path.clone();
    let service = Service::start(config_path, config, Notifier::disabled())
        .await
        .map_err(|e| fail("cannot start the runner", e))?;
    let handle = service.handle();
    let mut reports = handle.supervisor.reports();
    let (controls, rx) = mpsc::unbounded_channel();
    let running = tokio::spawn(service.run(rx));
    if !sim
        .wait_streams(user.user_id, 1, Duration::from_secs(10))
        .await
    {
        return Err(fail(
            "the runner did not open the event stream",
            "timed out after 10 s",
        ));
    }
    println!(
        "tracim-hooks demo: simulated Tracim at {}, read by its event stream",
        sim.url()
    );
    println!(
        "playing {} sample events, one per Tracim entity type\n",
        SAMPLES.len()
    );
    let mut played: Vec<(&str, u64)> = Vec::new();
    for (event_type, text) in SAMPLES {
        // Tracim gives the ids: the sample's own is replaced by the next one.
        let id = sim.publish_with(user.user_id, |id| {
            let mut tlm: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
            tlm["event_id"] = id.into();
            tlm.to_string()
        });
        played.push((event_type, id));
    }
    let settle = async {
        while handle.events_received() < SAMPLES.len() as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handle.supervisor.wait_idle().await;
    };
    if tokio::time::timeout(Duration::from_secs(120), settle)
        .await
        .is_err()
    {
        return Err(fail("hooks did not finish", "timed out after 120 s"));
    }
    let _ = controls.send(Control::Shutdown);
    let _ = running.await;
    print_runs(&mut reports, &played)
}

/// Prints how each event's runs ended; fails when one did.
fn print_runs(
    reports: &mut mpsc::UnboundedReceiver<crate::supervisor::RunReport>,
    played: &[(&str, u64)],
) -> Result<(), Failure> {
    // The last attempt of each run tells how it ended; retries are not new runs.
    let mut finals = Vec::new();
    while let Ok(report) = reports.try_recv() {
        if !report.will_retry {
            finals.push(report);
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out);
    let failed = finals.iter().filter(|r| !r.success()).count();
    for (event_type, id) in played {
        let id = *id;
        let ran: Vec<String> = finals
            .iter()
            .filter(|r| r.event_id == id)
            .map(|r| {
                if r.success() {
                    format!("{} ok", r.hook)
                } else {
                    format!("{} FAILED: {}", r.hook, r.status())
                }
            })
            .collect();
        let ran = if ran.is_empty() {
            "no hook".to_owned()
        } else {
            ran.join(", ")
        };
        let _ = writeln!(out, "  event {id:>3} {event_type:<32} {ran}");
    }
    let _ = writeln!(
        out,
        "\n{} events delivered, {} hook runs, {failed} failed",
        SAMPLES.len(),
        finals.len()
    );
    if failed > 0 {
        return Err(Failure {
            lines: vec![format!("demo: {failed} hook runs failed")],
        });
    }
    Ok(())
}
