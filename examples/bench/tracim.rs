//! Phase 6: events per second received from Tracim's own event stream
//! (`source = "tracim"`), one connection, many events, beside the daemon path's rate
//! of phase 1. The simulated Tracim runs on the sender's runtime; the runner in this
//! process as `tracim-hooks run` sets it up, with a hook that matches nothing.

use std::os::unix::fs::PermissionsExt;

use tracim_daemon_sdk::tracim::sim::{SimConfig, TracimSim};

use crate::*;

/// Events per second, the median of `--reps` runs of `--events` live events each.
pub(crate) async fn bench_tracim(opts: &Opts, tlms: &[String], dir: &Path) -> Result<f64, String> {
    let sim_config = SimConfig::default();
    let user = sim_config.users[0].clone();
    let sim = daemon_side()
        .spawn(async move { TracimSim::start(sim_config).await })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("simulated Tracim: {e}"))?;
    let sim = Arc::new(sim);
    let password = dir.join("tracim-password");
    std::fs::write(&password, format!("{}\n", user.password)).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let path = dir.join("tracim.toml");
    let text = format!(
        "source = \"tracim\"\n[journal]\npath = \"{}\"\n[tracim]\nurl = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n{NEVER_HOOK}",
        dir.join("tracim-journal.db").display(),
        sim.url(),
        user.username,
        password.display()
    );
    let config = Config::parse(&path, &text).map_err(|e| e.to_string())?;
    let service = Service::start(path, config, Notifier::disabled())
        .await
        .map_err(|e| e.to_string())?;
    let handle = service.handle();
    let (controls, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(service.run(rx));
    if !sim
        .wait_streams(user.user_id, 1, Duration::from_secs(10))
        .await
    {
        return Err("the in-process runner did not open the stream".into());
    }
    let mut rates = Vec::new();
    for _ in 0..opts.reps {
        let before = handle.events_received();
        let n = opts.events as u64;
        let started = Instant::now();
        let publisher = sim.clone();
        // Tracim writes each TLM on one `data:` line: the fixtures are pretty-printed.
        let tlms: Vec<String> = tlms
            .iter()
            .filter_map(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            .map(|v| v.to_string())
            .collect();
        let user_id = user.user_id;
        daemon_side().spawn(async move {
            for i in 0..n {
                let tlm = &tlms[i as usize % tlms.len()];
                publisher.publish_with(user_id, |id| with_id(tlm, id));
                if i % 256 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let done = wait_until(
            || handle.events_received() >= before + n,
            Duration::from_secs(120),
        )
        .await
        .ok_or("not every event came through the Tracim stream within 120 s")?;
        rates.push(n as f64 / (done - started).as_secs_f64());
    }
    let _ = controls.send(Control::Shutdown);
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}
