//! The runner as a systemd service: readiness notifications, reload on SIGHUP,
//! journald-friendly logs.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// Plays systemd's side of sd_notify: a datagram socket collecting what the
/// runner says.
struct FakeSystemd {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl FakeSystemd {
    fn new(place: &Place) -> (FakeSystemd, String) {
        let path = place.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        (
            FakeSystemd {
                socket,
                seen: Vec::new(),
            },
            path.to_string_lossy().into_owned(),
        )
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }

    /// Waits for a datagram containing `needle` after the first `from` ones;
    /// returns its index.
    async fn wait(&mut self, from: usize, needle: &str) -> usize {
        let deadline = Instant::now() + SHORT;
        loop {
            self.drain();
            if let Some(i) = self.seen.iter().skip(from).position(|m| m.contains(needle)) {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:#?}",
                self.seen
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_sequence_ready_status_reload_stopping() {
    let place = Place::new();
    let (mut systemd, notify_socket) = FakeSystemd::new(&place);
    place.write_config("[[hook]]\nname = \"a\"\non = \"*\"\nrun = \"true\"\n");
    // No daemon yet: READY must not wait for it.
    let mut runner = Runner::start(
        &place.config_path(),
        place.path(),
        &[("NOTIFY_SOCKET", &notify_socket)],
    );
    let ready = systemd.wait(0, "READY=1").await;
    assert!(
        systemd.seen[ready].contains("STATUS=waiting for TracimDaemon at"),
        "{:?}",
        systemd.seen
    );
    assert!(place.socket().exists(), "READY=1 before the socket listens");

    let sim = place.sim(NO_PINGS).await;
    let registered = systemd.wait(ready, "STATUS=registered with").await;
    assert!(systemd.seen[registered].contains(&format!("{}, 1 hooks", place.master().display())));
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);

    runner.signal(libc::SIGHUP);
    let reloading = systemd.wait(registered, "RELOADING=1").await;
    let message = &systemd.seen[reloading];
    let usec: u64 = message
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {message:?}"))
        .parse()
        .unwrap();
    assert!(usec > 0);
    systemd.wait(reloading, "READY=1").await;

    runner.signal(libc::SIGTERM);
    let stopping = systemd.wait(reloading, "STOPPING=1").await;
    assert!(runner.wait_exit(SHORT).await.success());
    assert!(stopping > reloading);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_at_half_the_interval_and_nothing_without_notify_socket() {
    let place = Place::new();
    let (mut systemd, notify_socket) = FakeSystemd::new(&place);
    place.write_config("");
    let _runner = Runner::start(
        &place.config_path(),
        place.path(),
        &[
            ("NOTIFY_SOCKET", &notify_socket),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let first = systemd.wait(0, "WATCHDOG=1").await;
    let start = Instant::now();
    let mut last = first;
    for _ in 0..3 {
        last = systemd.wait(last + 1, "WATCHDOG=1").await;
    }
    // Three more at 100 ms: about 300 ms (generous bounds for a noisy machine).
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Without NOTIFY_SOCKET nothing is sent (and nothing breaks).
    let other = Place::new();
    other.write_config("");
    let runner = other.runner();
    assert!(
        runner.wait_log("tracim-hooks running", SHORT).await,
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_edit_takes_effect_on_sighup_a_broken_one_keeps_the_old_hooks() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    let old = recording_hook("old", "\"*\"", &out);
    place.write_config(&old);
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    sim.send_event(&fixture("tag.created.json")).await;
    assert!(wait_for(SHORT, || lines(&out.join("runs")) == ["old 115"]).await);

    // A valid edit: a new hook runs for the next event.
    place.write_config(&format!(
        "{old}{}",
        recording_hook("new", "\"user.*\"", &out)
    ));
    runner.signal(libc::SIGHUP);
    assert!(
        runner.wait_log("configuration reloaded", SHORT).await,
        "{}",
        runner.log()
    );
    sim.send_event(&fixture("user.created.json")).await;
    assert!(
        wait_for(SHORT, || {
            let mut runs = lines(&out.join("runs"));
            runs.sort();
            runs == ["new 100", "old 100", "old 115"]
        })
        .await,
        "{:?}\n{}",
        lines(&out.join("runs")),
        runner.log()
    );

    // A broken edit: the error is logged with its line, the old hooks keep running.
    place.write_config(&format!("{old}\n[[hook]]\nname = \"bad\"\non = \"*\"\n"));
    runner.signal(libc::SIGHUP);
    assert!(
        runner.wait_log("reload refused", SHORT).await,
        "{}",
        runner.log()
    );
    let log = runner.log();
    let config = place.config_path();
    assert!(
        log.contains(&format!("{}:", config.display()))
            && log.contains("hook `bad`: missing `run`"),
        "{log}"
    );
    // Both hooks of the last good config still run.
    sim.send_event(&fixture("user.modified.json")).await;
    assert!(
        wait_for(SHORT, || {
            let runs = lines(&out.join("runs"));
            runs.contains(&"old 101".to_owned()) && runs.contains(&"new 101".to_owned())
        })
        .await,
        "{:?}",
        lines(&out.join("runs"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_or_run_twice_across_reloads() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    let hook = format!(
        "[[hook]]\nname = \"count\"\non = \"*\"\nrun = 'echo $TRACIM_EVENT_ID >> \"{}/ids\"'\n",
        out.display()
    );
    place.write_config(&hook);
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    let template = fixture("tag.created.json");
    for id in 0..150u32 {
        let text = template.replace("\"event_id\": 115", &format!("\"event_id\": {}", 1000 + id));
        assert_eq!(sim.send_event(&text).await.ok, 1, "{}", runner.log());
        if id % 30 == 10 {
            // The same hooks, written anew, swapped in while events flow. Signals
            // sent closer than the runner takes them merge, so each reload is
            // let through before the next is asked for.
            let reloads = (id / 30) as usize;
            assert!(
                wait_for(SHORT, || runner
                    .log()
                    .matches("configuration reloaded")
                    .count()
                    == reloads)
                .await,
                "{}",
                runner.log()
            );
            place.write_config(&format!("{hook}\n# edit {id}\n"));
            runner.signal(libc::SIGHUP);
        }
    }
    assert!(
        wait_for(SHORT, || lines(&out.join("ids")).len() >= 150).await,
        "{} ids\n{}",
        lines(&out.join("ids")).len(),
        runner.log()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ids: Vec<u32> = lines(&out.join("ids"))
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (1000..1150).collect::<Vec<_>>());
    assert!(
        wait_for(SHORT, || runner
            .log()
            .matches("configuration reloaded")
            .count()
            == 5)
        .await,
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_socket_path_takes_effect_by_registering_again() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    let hook = recording_hook("all", "\"*\"", &out);
    place.write_config(&hook);
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);

    let moved = place.path().join("moved.sock");
    let text = std::fs::read_to_string(place.config_path())
        .unwrap()
        .replace(
            &place.socket().to_string_lossy().into_owned(),
            &moved.to_string_lossy(),
        );
    place.write_raw_config(&text);
    runner.signal(libc::SIGHUP);
    assert!(sim.wait_for_client(&moved, SHORT).await, "{}", runner.log());
    assert!(
        wait_for(SHORT, || sim.clients().len() == 1
            && !place.socket().exists())
        .await,
        "{:?}",
        sim.clients()
    );
    sim.send_event(&fixture("tag.created.json")).await;
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")) == ["all 115"]).await,
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_for_the_journal_and_keep_payloads_below_debug() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    place.write_config(&recording_hook("all", "\"*\"", &out));
    let runner = Runner::start(
        &place.config_path(),
        place.path(),
        &[("JOURNAL_STREAM", "8:12345"), ("TRACIM_HOOKS_LOG", "info")],
    );
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    sim.send_event(&fixture("mention.created.json")).await;
    assert!(
        runner.wait_log("run finished", SHORT).await,
        "{}",
        runner.log()
    );
    let log = runner.log();
    assert!(!log.contains('\u{1b}'), "colour codes in {log}");
    for line in log.lines() {
        assert!(!line.starts_with("20"), "timestamp in {line}");
    }
    // The event's text (its note body) never reaches an info-level log.
    assert!(!log.contains("can you check?"), "{log}");
    assert!(!log.contains("OUT=/"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_master_socket_takes_effect_by_leaving_the_old_daemon() {
    let place = Place::new();
    let out = place.out();
    let first = place.sim(NO_PINGS).await;
    let second_master = place.path().join("second.sock");
    let second = tracim_daemon_sdk::sim::SimDaemon::start(&second_master, Default::default())
        .await
        .unwrap();
    place.write_config(&recording_hook("all", "\"*\"", &out));
    let runner = place.runner();
    assert!(first.wait_for_client(&place.socket(), SHORT).await);

    let text = std::fs::read_to_string(place.config_path())
        .unwrap()
        .replace(
            &place.master().to_string_lossy().into_owned(),
            &second_master.to_string_lossy(),
        );
    place.write_raw_config(&text);
    runner.signal(libc::SIGHUP);
    assert!(
        second.wait_for_client(&place.socket(), SHORT).await,
        "{}",
        runner.log()
    );
    assert!(first.wait_until(SHORT, |s| s.clients().is_empty()).await);
    assert_eq!(first.received_of("daemon_client_delete").len(), 1);
    second.send_event(&fixture("tag.created.json")).await;
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")) == ["all 115"]).await,
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_source_tracim_ready_does_not_wait_and_the_status_line_says_streaming() {
    use common::tracim::*;
    let place = Place::new();
    let (mut systemd, notify_socket) = FakeSystemd::new(&place);
    let tracim = tracim_sim().await;
    tracim.go_down().await;
    place.write_raw_config(&format!(
        "source = \"tracim\"\n[journal]\npath = \"{}\"\n{}[[hook]]\nname = \"a\"\non = \"*\"\nrun = \"true\"\n",
        journal_file(&place).display(),
        tracim_table(&place, &tracim, "")
    ));
    let mut runner = Runner::start(
        &place.config_path(),
        place.path(),
        &[("NOTIFY_SOCKET", &notify_socket)],
    );
    // Tracim is down: ready anyway, and the line says what it waits for.
    let ready = systemd.wait(0, "READY=1").await;
    assert!(
        systemd.seen[ready].contains(&format!("STATUS=connecting to Tracim at {}", tracim.url())),
        "{:?}",
        systemd.seen
    );
    let failing = systemd
        .wait(
            ready,
            &format!("STATUS=not connected to Tracim at {}", tracim.url()),
        )
        .await;
    tracim.come_back().await.unwrap();
    let streaming = systemd
        .wait(
            failing,
            &format!(
                "STATUS=streaming from Tracim at {} as Hooks Bot, 1 hooks",
                tracim.url()
            ),
        )
        .await;
    assert!(streaming > failing);
    runner.signal(libc::SIGTERM);
    assert!(runner.wait_exit(SHORT).await.success());
}
