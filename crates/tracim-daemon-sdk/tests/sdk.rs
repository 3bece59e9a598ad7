//! A client written against the SDK alone talks to
//! the simulated daemon.

mod common;

use std::time::Duration;

use common::*;
use tracim_daemon_sdk::client::{Client, ClientConfig, ClientState};
use tracim_daemon_sdk::protocol::{Envelope, Message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_registers_asks_and_receives() {
    let place = Place::new();
    let sim = place.sim(NO_PINGS).await;
    let mut config = ClientConfig::new(place.master(), place.socket());
    config.watch_interval = Duration::from_millis(50);
    let (mut client, mut incoming) = Client::start(config).await.unwrap();
    let mut state = client.state();
    tokio::time::timeout(
        SHORT,
        state.wait_for(|s| matches!(s, ClientState::Registered { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(client.user_id().as_deref(), Some("1"));

    let clients = client.clients(SHORT).await.unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].path, place.socket().to_string_lossy());
    assert_eq!(clients[0].pid, std::process::id().to_string());
    assert_eq!(client.account_info(SHORT).await.unwrap().user_id, "1");

    // Every message comes through the stream, typed; a ping is answered by the
    // client itself, and our own ping is answered by the daemon.
    let socket = place.socket().to_string_lossy().into_owned();
    let ping = Envelope::new(place.master().to_string_lossy(), Message::Ping).encode();
    send_raw(&place.socket(), &ping).await.unwrap();
    assert!(
        sim.wait_until(SHORT, |s| s
            .received_of("daemon_pong")
            .iter()
            .any(|(_, e)| e.path == socket))
            .await,
        "the client did not answer the daemon's ping"
    );
    client.ping().await.unwrap();
    sim.send_event(&fixture("content.modified.html-document.json"))
        .await;
    let mut kinds = Vec::new();
    let mut note_len = 0;
    while !(kinds.contains(&"daemon_pong".to_owned()) && note_len > 0) {
        let delivery = tokio::time::timeout(SHORT, incoming.recv_message())
            .await
            .unwrap()
            .unwrap();
        if let Message::TracimEvent(event) = &delivery.envelope.message {
            note_len = event.raw().len();
            assert_eq!(event.tlm().event_id, 106);
            assert_eq!(event.tlm().fields["workspace"]["label"], "Engineering");
        }
        kinds.push(delivery.envelope.message.kind().to_owned());
    }
    assert!(note_len > 20_000);
    assert!(kinds.contains(&"daemon_ping".to_owned()), "{kinds:?}");
    assert!(
        kinds.contains(&"daemon_account_info".to_owned()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"daemon_client_added".to_owned()),
        "{kinds:?}"
    );

    client.shutdown().await;
    assert_eq!(*client.state().borrow(), ClientState::Stopped);
    assert!(sim.wait_until(SHORT, |s| s.clients().is_empty()).await);
    assert!(!place.socket().exists());
    // The stream ends once the client is gone.
    drop(client);
    assert!(
        tokio::time::timeout(SHORT, async { while incoming.recv().await.is_some() {} })
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_stops_and_frees_its_socket() {
    let place = Place::new();
    let (client, _incoming) = Client::start(ClientConfig::new(place.master(), place.socket()))
        .await
        .unwrap();
    assert!(place.socket().exists());
    drop(client);
    assert!(!place.socket().exists());
    // The path is free for the next client at once.
    let (_again, _) = Client::start(ClientConfig::new(place.master(), place.socket()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_socket_path_is_refused() {
    let err = Client::start(ClientConfig::new("/m.sock", "relative.sock"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");
}
