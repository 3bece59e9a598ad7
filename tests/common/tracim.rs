//! The simulated Tracim beside the simulated daemon: a password file, a `[tracim]`
//! table for a place, events published on Tracim (and, when a test says so, sent
//! by the daemon too, with the very same text), and counts of what ran.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tracim_daemon_sdk::sim::SimDaemon;
use tracim_daemon_sdk::tracim::sim::{SimConfig, TracimSim};

use super::lines;
use super::place::Place;

/// The simulator's account.
pub const TRACIM_USER: u64 = 1;
pub const TRACIM_PASSWORD: &str = "correct horse battery staple";

pub async fn tracim_sim() -> TracimSim {
    tracim_sim_with(SimConfig::default()).await
}

pub async fn tracim_sim_with(config: SimConfig) -> TracimSim {
    TracimSim::start(config)
        .await
        .unwrap_or_else(|e| panic!("simulated Tracim: {e}"))
}

/// Writes `secret` to a file of the place with `mode`.
pub fn secret_file(place: &Place, name: &str, secret: &str, mode: u32) -> PathBuf {
    let path = place.path().join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A `[tracim]` table logging in as the simulator's user with a password file,
/// then `extra` lines.
pub fn tracim_table(place: &Place, sim: &TracimSim, extra: &str) -> String {
    let password = secret_file(place, "tracim-password", TRACIM_PASSWORD, 0o600);
    format!(
        "[tracim]\nurl = \"{}\"\nusername = \"hooks\"\npassword_file = \"{}\"\n{extra}\n",
        sim.url(),
        password.display()
    )
}

/// The journal's file in the place.
pub fn journal_file(place: &Place) -> PathBuf {
    place.path().join("state").join("journal.db")
}

/// A TLM text for id `id`, created now (a catch-up skips what is older than its
/// window), the way the tests publish them.
pub fn tlm_text(id: u64) -> String {
    serde_json::json!({
        "event_id": id,
        "event_type": "content.created.file",
        "created": rfc3339(std::time::SystemTime::now()),
        "read": null,
        "fields": {"author": {"user_id": 2}, "content": {"label": format!("file {id}")}},
    })
    .to_string()
}

/// `2026-11-27T14:00:00Z`: days to a civil date (Howard Hinnant's algorithm).
pub fn rfc3339(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Publishes an event on Tracim only (the daemon does not see it).
pub fn publish(sim: &TracimSim) -> u64 {
    sim.publish_with(TRACIM_USER, tlm_text)
}

/// Publishes an event on Tracim and has the daemon deliver the same text.
pub async fn publish_both(sim: &TracimSim, daemon: &SimDaemon) -> u64 {
    let id = publish(sim);
    daemon.send_event(&tlm_text(id)).await;
    id
}

/// How many times each event id ran, from a recording hook's `out/runs`.
pub fn runs_by_id(out: &Path) -> BTreeMap<u64, usize> {
    let mut runs = BTreeMap::new();
    for line in lines(&out.join("runs")) {
        if let Some(id) = line.split_whitespace().nth(1).and_then(|w| w.parse().ok()) {
            *runs.entry(id).or_default() += 1;
        }
    }
    runs
}
