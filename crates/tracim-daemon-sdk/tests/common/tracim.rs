//! Helpers shared by the Tracim client tests: a simulator, clients for each way of
//! logging in, and reading a stream with a generous deadline.

use std::time::Duration;

use tracim_daemon_sdk::tracim::sim::{SimConfig, TracimSim};
use tracim_daemon_sdk::tracim::{
    Credentials, LiveStream, Login, Secret, StreamEnd, StreamItem, TracimClient, TracimConfig,
};

pub const USER: u64 = 1;
pub const PASSWORD: &str = "correct horse battery staple";
pub const API_KEY: &str = "sim-api-key-0123456789";
/// Long enough for a loaded 2-core box; tests wait for positive signs, not for time.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub async fn sim() -> TracimSim {
    sim_with(SimConfig::default()).await
}

pub async fn sim_with(config: SimConfig) -> TracimSim {
    match TracimSim::start(config).await {
        Ok(sim) => sim,
        Err(e) => panic!("simulated Tracim did not start: {e}"),
    }
}

pub fn session(_sim: &TracimSim) -> Credentials {
    Credentials::Session {
        login: Login::Username("hooks".into()),
        password: Secret::new(PASSWORD),
    }
}

pub fn client(sim: &TracimSim, credentials: Credentials) -> TracimClient {
    match TracimClient::new(TracimConfig::new(sim.url(), credentials)) {
        Ok(client) => client,
        Err(e) => panic!("client: {e}"),
    }
}

/// The next item, within `PATIENCE`.
pub async fn next(stream: &mut LiveStream) -> Result<StreamItem, StreamEnd> {
    match tokio::time::timeout(PATIENCE, stream.next()).await {
        Ok(item) => item,
        Err(_) => panic!("no stream item within {PATIENCE:?}"),
    }
}

/// Reads messages until `n` arrived (other items are skipped), returning their ids.
pub async fn message_ids(stream: &mut LiveStream, n: usize) -> Vec<(u64, bool)> {
    let mut ids = Vec::new();
    while ids.len() < n {
        match next(stream).await {
            Ok(StreamItem::Message { event, backlog }) => ids.push((event.event_id, backlog)),
            Ok(_) => {}
            Err(end) => panic!("stream ended after {} of {n} messages: {end}", ids.len()),
        }
    }
    ids
}
