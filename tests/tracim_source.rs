//! `source = "tracim"` (issue 18): the real binary reading the simulated Tracim's
//! live stream over real TCP, with no daemon: large events in 1-byte writes, a
//! thousand in one write, a hundred cuts while 2,000 events flow, silence, a
//! logout, `stream-error`, wrong credentials; every event runs exactly once.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tracim::*;
use common::*;
use tracim_daemon_sdk::tracim::sim::{Endpoint, Split, TracimSim};

const LONG: Duration = Duration::from_secs(120);

/// A hook that only appends `rec ID` to `out/runs`: cheap enough for thousands.
fn light_hook(out: &Path) -> String {
    format!(
        "[[hook]]\nname = \"rec\"\non = \"*\"\nenv = {{ OUT = \"{}\" }}\nrun = 'echo \"rec $TRACIM_EVENT_ID\" >> \"$OUT/runs\"'\n",
        out.display()
    )
}

/// hooks.toml with `source = "tracim"`, no `[daemon]`, the place's journal.
fn config(place: &Place, sim: &TracimSim, tracim_extra: &str, hooks: &str) -> PathBuf {
    place.write_raw_config(&format!(
        "source = \"tracim\"\n[journal]\npath = \"{}\"\n{}\n{hooks}",
        journal_file(place).display(),
        tracim_table(place, sim, tracim_extra),
    ))
}

/// A runner on the place's config, its stream open.
async fn streaming(place: &Place, sim: &TracimSim) -> Runner {
    let runner = place.runner();
    assert!(
        runner.wait_log("tracim-hooks running", LONG).await,
        "{}",
        runner.log()
    );
    assert!(
        sim.wait_streams(TRACIM_USER, 1, LONG).await,
        "no stream:\n{}",
        runner.log()
    );
    runner
}

async fn wait_ran(out: &Path, ids: &[u64], runner: &Runner) {
    let ok = wait_for(LONG, || {
        let runs = runs_by_id(out);
        ids.iter().all(|id| runs.contains_key(id))
    })
    .await;
    let runs = runs_by_id(out);
    let missing: Vec<_> = ids.iter().filter(|id| !runs.contains_key(id)).collect();
    assert!(ok, "never ran: {missing:?}\nlog:\n{}", runner.log());
}

fn assert_each_once(out: &Path, ids: &[u64], runner: &Runner) {
    let runs = runs_by_id(out);
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "ran more than once: {twice:?}\n{}",
        runner.log()
    );
    let expected: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
    let ran: std::collections::BTreeSet<u64> = runs.keys().copied().collect();
    assert_eq!(ran, expected, "log:\n{}", runner.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_note_in_one_byte_writes_and_a_thousand_events_in_one_write_run_once() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let out = place.out();
    config(&place, &tracim, "", &recording_hook("rec", "\"*\"", &out));
    let runner = streaming(&place, &tracim).await;
    assert!(
        runner
            .log()
            .contains("empty journal: Tracim's newest event id")
    );

    // 300 KB of note, every byte its own write and its own HTTP chunk (the SDK's
    // own tests take 5 MB through the same parser).
    tracim.set_split(Split::Every(1));
    tracim.close_streams(TRACIM_USER);
    assert!(tracim.wait_streams(TRACIM_USER, 1, LONG).await);
    let body = "<p>été 日本 ✅ ".repeat(300_000 / 20);
    let mut text = String::new();
    let big = tracim.publish_with(TRACIM_USER, |id| {
        text = tlm_text(id).replace(
            &format!("\"file {id}\""),
            &serde_json::to_string(&body).unwrap_or_default(),
        );
        text.clone()
    });
    wait_ran(&out, &[big], &runner).await;
    let stdin = std::fs::read_to_string(out.join(format!("rec.{big}.stdin"))).unwrap();
    // Exactly as Tracim sent it, and a newline, as from the daemon.
    assert_eq!(stdin.len(), text.len() + 1);
    assert_eq!(stdin, format!("{text}\n"));

    // A thousand events while the runner is away: the backlog, in one write.
    tracim.set_split(Split::Whole);
    tracim.go_down().await;
    let thousand: Vec<u64> = (0..1000).map(|_| publish(&tracim)).collect();
    tracim.come_back().await.unwrap();
    wait_ran(&out, &thousand, &runner).await;
    let mut all = vec![big];
    all.extend(&thousand);
    assert_each_once(&out, &all, &runner);
}

/// A small deterministic generator: the cut points are random but reproducible.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_cuts_while_two_thousand_events_flow_lose_nothing_and_double_nothing() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let out = place.out();
    config(&place, &tracim, "", &light_hook(&out));
    let runner = streaming(&place, &tracim).await;
    let mut rng = Lcg(18);
    let mut ids = Vec::new();
    let mut cuts = 0;
    let mut next_cut = rng.below(30);
    // At least 2,000 events and exactly 100 cuts, each hitting an open stream.
    while cuts < 100 || ids.len() < 2000 {
        if cuts < 100 && ids.len() as u64 >= next_cut {
            assert!(
                tracim.wait_streams(TRACIM_USER, 1, LONG).await,
                "{}",
                runner.log()
            );
            let opened = tracim.requests(Endpoint::Stream);
            // A clean end, or a connection dropped after some bytes, mid-event
            // wherever that falls.
            let hit = if rng.below(3) == 0 {
                tracim.close_streams(TRACIM_USER)
            } else {
                tracim.cut_streams_after(TRACIM_USER, 1 + rng.below(3000) as usize)
            };
            assert!(hit >= 1);
            cuts += 1;
            // Events keep flowing until the runner is back on a new stream.
            let back = wait_for(LONG, || {
                ids.push(publish(&tracim));
                tracim.requests(Endpoint::Stream) > opened
            })
            .await;
            assert!(back, "no new stream after cut {cuts}:\n{}", runner.log());
            next_cut = ids.len() as u64 + 1 + rng.below(30);
        } else {
            ids.push(publish(&tracim));
        }
    }
    wait_ran(&out, &ids, &runner).await;
    // Let what may still come twice come, then look.
    tracim.close_streams(TRACIM_USER);
    let last = publish(&tracim);
    ids.push(last);
    wait_ran(&out, &[last], &runner).await;
    assert_each_once(&out, &ids, &runner);
    assert!(
        count(&runner.log(), "Tracim's event stream ended") >= cuts,
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_left_after_stream_timeout_and_reopened() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    tracim.set_keep_alive(Duration::from_secs(3600));
    let out = place.out();
    config(
        &place,
        &tracim,
        "stream_timeout = \"1s\"",
        &light_hook(&out),
    );
    let runner = streaming(&place, &tracim).await;
    assert!(
        runner.wait_log("silent for 1s", LONG).await,
        "{}",
        runner.log()
    );
    assert!(wait_for(LONG, || tracim.requests(Endpoint::Stream) >= 2).await);
    let id = publish(&tracim);
    wait_ran(&out, &[id], &runner).await;
    assert_each_once(&out, &[id], &runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_logout_the_runner_logs_in_again_and_misses_nothing() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let out = place.out();
    config(&place, &tracim, "", &light_hook(&out));
    let runner = streaming(&place, &tracim).await;
    let first = publish(&tracim);
    wait_ran(&out, &[first], &runner).await;
    let logins = tracim.requests(Endpoint::Login);

    // Logged out everywhere: the session is gone and Tracim closes the streams.
    tracim.expire_sessions(TRACIM_USER);
    tracim.close_streams(TRACIM_USER);
    let during = publish(&tracim);
    assert!(
        runner
            .wait_log("Tracim refused the session (401): logging in again", LONG)
            .await,
        "{}",
        runner.log()
    );
    assert!(wait_for(LONG, || tracim.requests(Endpoint::Login) > logins).await);
    let after = publish(&tracim);
    wait_ran(&out, &[during, after], &runner).await;
    assert_each_once(&out, &[first, during, after], &runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_error_backs_off_longer_then_resumes() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let out = place.out();
    config(&place, &tracim, "", &light_hook(&out));
    let runner = streaming(&place, &tracim).await;
    let first = publish(&tracim);
    wait_ran(&out, &[first], &runner).await;
    let opened = tracim.requests(Endpoint::Stream);
    tracim.stream_error(TRACIM_USER);
    assert!(
        runner
            .wait_log("Tracim sent stream-error (too many users online)", LONG)
            .await,
        "{}",
        runner.log()
    );
    let during = publish(&tracim);
    wait_ran(&out, &[during], &runner).await;
    assert!(tracim.requests(Endpoint::Stream) > opened);
    assert!(
        runner.log().contains("resuming after event id") && runner.log().contains("in 2.0s"),
        "not the longer backoff:\n{}",
        runner.log()
    );
    assert_each_once(&out, &[first, during], &runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_say_so_once_keep_retrying_and_status_tells_why() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let wrong = secret_file(&place, "wrong", "not-the-password-xyzzy", 0o600);
    let config = place.write_raw_config(&format!(
        "source = \"tracim\"\n[journal]\npath = \"{}\"\n[tracim]\nurl = \"{}\"\nusername = \"hooks\"\npassword_file = \"{}\"\n",
        journal_file(&place).display(),
        tracim.url(),
        wrong.display()
    ));
    // Ready at once: readiness waits for Tracim no more than for the daemon.
    let runner = place.runner();
    assert!(
        runner.wait_log("tracim-hooks running", LONG).await,
        "{}",
        runner.log()
    );
    assert!(
        wait_for(LONG, || tracim.requests(Endpoint::Login) >= 3).await,
        "{}",
        runner.log()
    );
    let log = runner.log();
    assert_eq!(
        count(&log, "Tracim refused the login of \"hooks\""),
        1,
        "{log}"
    );
    assert!(!log.contains("xyzzy"), "{log}");
    let ran = Cli::with_config(&config, &["status"]).run_blocking().await;
    assert!(
        ran.stdout.contains(&format!(
            "not connected to Tracim at {}: Tracim refused the login",
            tracim.url()
        )),
        "{}",
        ran.both()
    );
    let ran = Cli::check(&config).arg("--online").run_blocking().await;
    assert_eq!(ran.code(), Some(1));
    assert!(ran.stderr.contains("cannot log in"), "{}", ran.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_journal_and_status_says_streaming() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let out = place.out();
    let config = config(&place, &tracim, "", &light_hook(&out));
    let mut runner = streaming(&place, &tracim).await;
    let first = publish(&tracim);
    wait_ran(&out, &[first], &runner).await;
    let ran = Cli::with_config(&config, &["status"]).run_blocking().await;
    let line = format!("streaming from Tracim at {} as Hooks Bot", tracim.url());
    assert!(ran.stdout.contains(&line), "no `{line}`:\n{}", ran.both());
    runner.signal(libc::SIGTERM);
    assert!(runner.wait_exit(LONG).await.success());

    let missed: Vec<u64> = (0..5).map(|_| publish(&tracim)).collect();
    let runner = streaming(&place, &tracim).await;
    wait_ran(&out, &missed, &runner).await;
    let mut all = vec![first];
    all.extend(&missed);
    assert_each_once(&out, &all, &runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_in_the_middle_of_its_unordered_backlog_loses_nothing() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let out = place.out();
    config(&place, &tracim, "", &light_hook(&out));
    let runner = streaming(&place, &tracim).await;
    let first = publish(&tracim);
    wait_ran(&out, &[first], &runner).await;

    // 400 events while the runner is away; Tracim sends them back shuffled, byte by
    // byte, and goes down again once part of them came.
    tracim.go_down().await;
    let backlog: Vec<u64> = (0..400).map(|_| publish(&tracim)).collect();
    tracim.set_split(Split::Every(1));
    tracim.come_back().await.unwrap();
    assert!(
        wait_for(LONG, || count(&runner.log(), "event received") > 10).await,
        "{}",
        runner.log()
    );
    tracim.go_down().await;
    let received = count(&runner.log(), "event received");
    tracim.set_split(Split::Whole);
    tracim.come_back().await.unwrap();
    let mut all = vec![first];
    all.extend(&backlog);
    wait_ran(&out, &all, &runner).await;
    assert_each_once(&out, &all, &runner);
    assert!(
        received < 401,
        "the cut came after the whole backlog: the test proved nothing"
    );
}
