//! The daemon link, over real sockets: the runner binary against the simulated
//! daemon.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tracim_daemon_sdk::protocol::{Envelope, Message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_bytes_are_what_the_daemon_expects() {
    let place = Place::new();
    let sim = place.sim(NO_PINGS).await;
    place.write_config("");
    let runner = place.runner();
    assert!(
        sim.wait_for_client(&place.socket(), SHORT).await,
        "{}",
        runner.log()
    );

    let adds = sim.received_of("daemon_client_add");
    let first = sim
        .received()
        .into_iter()
        .find(|r| r.bytes.windows(17).any(|w| w == b"daemon_client_add"))
        .unwrap();
    let socket = place.socket().to_string_lossy().into_owned();
    let expected = format!(
        r#"{{"path":"{socket}","type":"daemon_client_add","data":{{"path":"{socket}","pid":"{}"}}}}"#,
        runner.pid()
    );
    assert_eq!(String::from_utf8(first.bytes).unwrap(), expected);
    assert_eq!(adds.len(), 1);
    // The daemon lists us with our pid as a string.
    assert_eq!(sim.clients()[0].pid, runner.pid().to_string());
    assert!(runner.wait_log("registered with TracimDaemon", SHORT).await);
    assert!(
        runner.log().contains("user_id=\"1\"") || runner.log().contains("user_id=1"),
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_reaches_its_hooks_the_large_note_whole() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    place.write_config(
        &[
            recording_hook("all", "\"*\"", &out),
            recording_hook("notes", "\"content.*.html-document\"", &out),
        ]
        .concat(),
    );
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    let samples = all_fixtures();
    for (_, text) in &samples {
        assert_eq!(sim.send_event(text).await.ok, 1);
    }
    let expected_runs = samples.len() + 2;
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")).len() == expected_runs).await,
        "runs: {:?}\n{}",
        lines(&out.join("runs")),
        runner.log()
    );
    for (name, text) in &samples {
        let event: serde_json::Value = serde_json::from_str(text).unwrap();
        let id = &event["event_id"];
        let stdin = std::fs::read(out.join(format!("all.{id}.stdin"))).unwrap();
        assert_eq!(stdin, format!("{text}\n").as_bytes(), "{name}");
    }
    // The 23 KB note, through the notes hook too.
    let note = fixture("content.modified.html-document.json");
    assert!(note.len() > 20_000);
    assert_eq!(
        std::fs::read(out.join("notes.106.stdin")).unwrap(),
        format!("{note}\n").as_bytes()
    );
    let env = std::fs::read_to_string(out.join("notes.106.env")).unwrap();
    assert!(
        env.contains("TRACIM_FIELDS_CONTENT_RAW_CONTENT=<p>Long note text."),
        "{env}"
    );
    assert!(env.contains("TRACIM_DAEMON_USER_ID=1\n"), "{env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pong_is_fast_while_every_slot_is_busy() {
    let place = Place::new();
    let sim = place.sim(NO_PINGS).await;
    place.write_config(
        r#"
[defaults]
max_parallel = 2
shutdown_grace = "100ms"

[[hook]]
name = "slow"
on = "*"
run = "sleep 30"
"#,
    );
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    // Fill both slots and queue more.
    let event = fixture("mention.created.json");
    for id in 0..20 {
        sim.send_event(&event.replace("\"event_id\": 112", &format!("\"event_id\": {}", 500 + id)))
            .await;
    }
    // Both slots taken, the rest queued.
    assert!(
        wait_for(SHORT, || runner.log().matches("run started").count() == 2).await,
        "{}",
        runner.log()
    );
    let ping = Envelope::new(place.master().to_string_lossy(), Message::Ping).encode();
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let before = sim.received_of("daemon_pong").len();
        let sent = Instant::now();
        send_raw(&place.socket(), &ping).await.unwrap();
        assert!(
            sim.wait_until(SHORT, |s| s.received_of("daemon_pong").len() > before)
                .await
        );
        let (at, _) = sim.received_of("daemon_pong")[before];
        worst = worst.max(at.duration_since(sent));
    }
    assert!(worst < Duration::from_millis(100), "slowest pong {worst:?}");
    assert_eq!(
        runner.log().matches("run started").count(),
        2,
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_gets_us_back_and_events_flow_again() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    place.write_config(&recording_hook("all", "\"*\"", &out));
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);

    sim.restart().await.unwrap();
    assert!(sim.clients().is_empty());
    let restarted = Instant::now();
    assert!(
        sim.wait_for_client(&place.socket(), Duration::from_secs(5))
            .await,
        "{}",
        runner.log()
    );
    let took = restarted.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "re-registered after {took:?}"
    );
    assert_eq!(sim.send_event(&fixture("tag.created.json")).await.ok, 1);
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")) == ["all 115"]).await,
        "{}",
        runner.log()
    );
    assert!(runner.log().contains("daemon restart"), "{}", runner.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_starts_later_is_waited_for() {
    let place = Place::new();
    let out = place.out();
    place.write_config(&recording_hook("all", "\"*\"", &out));
    let runner = place.runner();
    assert!(
        runner.wait_log("waiting for TracimDaemon", SHORT).await,
        "{}",
        runner.log()
    );
    // Several attempts fail meanwhile; the waiting is said once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let sim = place.sim(NO_PINGS).await;
    assert!(
        sim.wait_for_client(&place.socket(), Duration::from_secs(5))
            .await,
        "{}",
        runner.log()
    );
    assert_eq!(
        runner.log().matches("waiting for TracimDaemon").count(),
        1,
        "{}",
        runner.log()
    );
    assert_eq!(sim.send_event(&fixture("tag.created.json")).await.ok, 1);
    assert!(wait_for(SHORT, || lines(&out.join("runs")) == ["all 115"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_and_being_forgotten_both_lead_to_registering_again() {
    let place = Place::new();
    let sim = place.sim(Duration::from_millis(200)).await;
    place.write_config("ping_timeout = \"800ms\"\ncheck_interval = \"300ms\"\n");
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);

    // Pings keep us registered: 12 pings answered (2.4 s at least, three
    // ping_timeouts) and we registered once and stay listed. Were a ping not
    // to reset the timer, we would have registered again twice by then.
    let pongs = sim.received_of("daemon_pong").len();
    assert!(
        sim.wait_until(SHORT, |s| s.received_of("daemon_pong").len() >= pongs + 12)
            .await,
        "{}",
        runner.log()
    );
    assert_eq!(sim.clients().len(), 1, "{}", runner.log());
    assert_eq!(
        sim.received_of("daemon_client_add").len(),
        1,
        "{}",
        runner.log()
    );
    assert!(
        !runner.log().contains("no ping from the daemon"),
        "{}",
        runner.log()
    );

    // The daemon drops us silently: the client check notices.
    sim.forget(&place.socket().to_string_lossy());
    assert!(
        sim.wait_for_client(&place.socket(), Duration::from_secs(3))
            .await,
        "{}",
        runner.log()
    );
    assert!(
        runner.log().contains("no longer lists this client"),
        "{}",
        runner.log()
    );

    // Pings stop: after ping_timeout we register again.
    sim.set_pinging(false);
    let adds = sim.received_of("daemon_client_add").len();
    assert!(
        sim.wait_until(Duration::from_secs(3), |s| s
            .received_of("daemon_client_add")
            .len()
            > adds)
            .await,
        "{}",
        runner.log()
    );
    assert!(
        runner.log().contains("no ping from the daemon"),
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_unregisters_and_removes_the_socket() {
    let place = Place::new();
    let sim = place.sim(NO_PINGS).await;
    place.write_config("");
    let mut runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    runner.signal(libc::SIGTERM);
    let status = runner.wait_exit(SHORT).await;
    assert!(status.success(), "{status:?}\n{}", runner.log());
    let deletes = sim.received_of("daemon_client_delete");
    assert_eq!(deletes.len(), 1, "{}", runner.log());
    let Message::ClientDelete(info) = &deletes[0].1.message else {
        unreachable!()
    };
    assert_eq!(info.path, place.socket().to_string_lossy());
    assert_eq!(info.pid, runner.pid().to_string());
    assert!(sim.clients().is_empty());
    assert!(!place.socket().exists());

    // SIGINT does the same.
    let mut runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    runner.signal(libc::SIGINT);
    assert!(runner.wait_exit(SHORT).await.success());
    assert!(!place.socket().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_is_refused_and_a_stale_socket_replaced() {
    let place = Place::new();
    let sim = place.sim(NO_PINGS).await;
    place.write_config("");
    let first = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    let mut second = place.runner();
    let status = second.wait_exit(SHORT).await;
    assert_eq!(status.code(), Some(1));
    assert!(
        second.log().contains("another instance is running"),
        "{}",
        second.log()
    );
    drop(first); // SIGKILL: the socket file stays behind, stale.
    assert!(place.socket().exists());
    let third = place.runner();
    assert!(
        third.wait_log("registered with TracimDaemon", SHORT).await,
        "{}",
        third.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_the_users_alone() {
    use std::os::unix::fs::PermissionsExt;
    let place = Place::new();
    place.write_config("");
    let runner = place.runner();
    assert!(
        wait_for(SHORT, || place.socket().exists()).await,
        "{}",
        runner.log()
    );
    let mode = std::fs::metadata(place.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_hooks_in_the_order_the_daemon_sent_them() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    place.write_config(&format!(
        "[[hook]]\nname = \"ordered\"\non = \"*\"\nmode = \"serial\"\nrun = 'echo $TRACIM_EVENT_ID >> \"{}/ids\"'\n",
        out.display()
    ));
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    // Large and small events mixed: a small one's read finishes before a large
    // one's if nothing keeps them in order.
    let big = fixture("content.modified.html-document.json");
    let small = fixture("tag.created.json");
    let mut sent = Vec::new();
    for i in 0..40u32 {
        let id = 2000 + i;
        let text = if i % 2 == 0 {
            big.replace("\"event_id\": 106", &format!("\"event_id\": {id}"))
        } else {
            small.replace("\"event_id\": 115", &format!("\"event_id\": {id}"))
        };
        assert_eq!(sim.send_event(&text).await.ok, 1);
        sent.push(id.to_string());
    }
    assert!(
        wait_for(SHORT, || lines(&out.join("ids")).len() == sent.len()).await,
        "{}",
        runner.log()
    );
    assert_eq!(lines(&out.join("ids")), sent);
}
