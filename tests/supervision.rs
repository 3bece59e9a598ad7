//! Hook supervision with real processes: process groups and timeouts, the
//! parallel limit and the queue, `serial` and `latest` modes, output logging and
//! its caps, run records, retries, and shutdown.
//!
//! The supervisor is driven in-process; its logs are captured by a tracing layer
//! installed once for this test binary, and each test tells its records apart by
//! hook names of its own. Durations are short (tens to hundreds of ms); bounds on
//! elapsed times are strict below and generous above.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use common::{Place, lines, wait_for};
use tokio::sync::mpsc::UnboundedReceiver;
use tracim_daemon_sdk::protocol::Event;
use tracim_hooks::config::Config;
use tracim_hooks::exec::{Exit, MAX_LINE, MAX_RUN_OUTPUT};
use tracim_hooks::hook::Hook;
use tracim_hooks::supervisor::{Refused, RunReport, Settings, Supervisor};
use tracing_subscriber::layer::SubscriberExt;

/// Upper bound for anything that should be quick; only reached when something hangs.
const HANG: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Log capture.

/// One captured log event of the crate.
#[derive(Debug, Clone)]
struct Log {
    level: tracing::Level,
    message: String,
    fields: BTreeMap<&'static str, String>,
}

impl Log {
    fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

static LOGS: Mutex<Vec<Log>> = Mutex::new(Vec::new());

struct Capture;

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<&'static str, String>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields.insert(field.name(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.insert(field.name(), format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        if !meta.target().starts_with("tracim_hooks") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        LOGS.lock().unwrap_or_else(|p| p.into_inner()).push(Log {
            level: *meta.level(),
            message: fields.message,
            fields: fields.fields,
        });
    }
}

/// Installs the capturing subscriber (once for the whole test binary).
fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
    });
}

/// The captured records naming this hook, in the order they were logged.
fn logs_of(hook: &str) -> Vec<Log> {
    LOGS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|l| l.get("hook") == Some(hook))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// Configs, events, runs.

/// A config of `[defaults]` lines and hooks.
fn config(defaults: &str, hooks: &[String]) -> Config {
    let text = format!("[defaults]\n{defaults}\n{}", hooks.concat());
    Config::parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A `[[hook]]` on every event, with `OUT` pointing at `out`, extra settings,
/// and a shell script.
fn hook(name: &str, out: &Path, extra: &str, script: &str) -> String {
    assert!(!script.contains("'''"));
    format!(
        "\n[[hook]]\nname = \"{name}\"\non = \"*\"\nenv = {{ OUT = \"{}\" }}\n{extra}\nrun = '''\n{script}\n'''\n",
        out.display()
    )
}

fn event(id: u64) -> Event {
    Event::from_text(format!(
        r#"{{"event_id":{id},"event_type":"content.created.comment","fields":{{"content":{{"label":"x"}}}}}}"#
    ))
    .unwrap()
}

fn supervisor(config: &Config) -> Supervisor {
    Supervisor::new(Settings::from(&config.defaults))
}

fn the_hook(config: &Config, name: &str) -> Arc<Hook> {
    config.hook(name).unwrap().clone()
}

async fn idle(supervisor: &Supervisor) {
    tokio::time::timeout(HANG, supervisor.wait_idle())
        .await
        .unwrap_or_else(|_| panic!("not idle after {HANG:?}: {:?}", supervisor.load()));
}

/// Receives `n` reports (waiting for each), then checks no more is there.
async fn reports(rx: &mut UnboundedReceiver<RunReport>, n: usize) -> Vec<RunReport> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(HANG, rx.recv()).await {
            Ok(Some(report)) => got.push(report),
            _ => panic!("{} of {n} reports came: {got:#?}", got.len()),
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    if let Ok(extra) = rx.try_recv() {
        panic!("a report more than the {n} expected: {extra:#?}\nbefore it: {got:#?}");
    }
    got
}

fn numbers(path: &Path) -> Vec<u64> {
    lines(path)
        .iter()
        .map(|l| l.trim().parse().unwrap_or_else(|_| panic!("{l:?}")))
        .collect()
}

/// Waits for a file holding one number per line to hold at least `n`, and reads it.
async fn wait_numbers(path: &Path, n: usize) -> Vec<u64> {
    let complete =
        || lines(path).len() >= n && std::fs::read_to_string(path).unwrap().ends_with('\n');
    assert!(
        wait_for(HANG, complete).await,
        "{} never held {n} lines",
        path.display()
    );
    numbers(path)
}

// ---------------------------------------------------------------------------
// Processes.

/// Whether no process (zombies included) is left in the group, as `kill(-pgid, 0)` tells.
fn group_gone(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Processes whose process group is `pgid`, as /proc shows them: (pid, state),
/// zombies (`Z`) included.
fn group_members(pgid: i32) -> Vec<(i32, char)> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if rest.len() > 2 && rest[2].parse::<i32>() == Ok(pgid) {
            members.push((pid, rest[0].chars().next().unwrap_or('?')));
        }
    }
    members
}

/// The state letter of a process, or `None` when it is gone (reaped).
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    stat[close + 1..].split_whitespace().next()?.chars().next()
}

/// Kills the groups of a failed test, so that a failure leaves no sleeper behind.
struct Cleanup(Vec<i32>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for pgid in &self.0 {
                // SAFETY: kill with a negative pid signals a process group.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
    }
}

/// Asserts that nothing of the group is left: no process, no zombie, and none
/// of `pids` (which may have left the group's reach by double-forking).
fn assert_all_gone(pgid: i32, pids: &[i32]) {
    let members = group_members(pgid);
    assert!(
        members.is_empty(),
        "group {pgid} still has (pid, state): {members:?}"
    );
    assert!(group_gone(pgid), "kill(-{pgid}, 0) still finds the group");
    for &pid in pids {
        assert_eq!(
            process_state(pid),
            None,
            "pid {pid} of group {pgid} still exists (a zombie if Z)"
        );
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

// ---------------------------------------------------------------------------
// 1. Timeouts kill the whole group, double-forked processes included.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_a_double_forking_group_and_reaps_everything() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    // The shell waits on a sleeper; two more sleepers double-fork out of the
    // shell's reach (their parent exits at once), and one of those ignores SIGTERM,
    // so only SIGKILL ends it.
    let forker = r#"
echo $$ > "$OUT/pgid"
sleep 1000 &
echo $! >> "$OUT/pids"
( sleep 1000 & echo $! >> "$OUT/pids" )
( trap '' TERM; sleep 1000 & echo $! >> "$OUT/pids" )
echo up > "$OUT/ready"
wait
"#;
    let config = config(
        "kill_after = \"300ms\"",
        &[
            hook(
                "t1-forker",
                &out,
                "timeout = \"500ms\"\noutput = \"null\"",
                forker,
            ),
            // The issue's own example.
            hook(
                "t1-plain",
                &out,
                "timeout = \"1s\"",
                "echo $$ > \"$OUT/pgid2\"; sleep 1000 & sleep 1000",
            ),
        ],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    let start = Instant::now();
    supervisor
        .submit(the_hook(&config, "t1-forker"), event(11), "".into())
        .unwrap();
    supervisor
        .submit(the_hook(&config, "t1-plain"), event(12), "".into())
        .unwrap();

    let pgid = wait_numbers(&out.join("pgid"), 1).await[0] as i32;
    let pgid2 = wait_numbers(&out.join("pgid2"), 1).await[0] as i32;
    let mut cleanup = Cleanup(vec![pgid, pgid2]);
    assert!(wait_for(HANG, || out.join("ready").exists()).await);
    let pids: Vec<i32> = numbers(&out.join("pids"))
        .into_iter()
        .map(|p| p as i32)
        .collect();
    cleanup.0.extend(&pids);
    assert_eq!(pids.len(), 3);
    // Before the timeout, every sleeper runs, in the hook's group.
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "the hook took too long to start"
    );
    for &pid in &pids {
        assert!(
            matches!(process_state(pid), Some(s) if s != 'Z'),
            "sleeper {pid} is not running"
        );
    }
    let members = group_members(pgid);
    assert!(members.len() >= 4, "group {pgid}: {members:?}");
    // Each run has a group of its own.
    assert_ne!(pgid, pgid2);
    assert_ne!(pgid, std::process::id() as i32);

    let got = reports(&mut rx, 2).await;
    idle(&supervisor).await;
    let elapsed = start.elapsed();
    assert_all_gone(pgid, &pids);
    assert_all_gone(pgid2, &[]);
    // timeout + kill_after for the slower hook (1 s + 300 ms), plus slack.
    assert!(
        elapsed < Duration::from_millis(1300 + 700),
        "took {} ms",
        millis(elapsed)
    );

    let forker = got.iter().find(|r| r.hook == "t1-forker").unwrap();
    let outcome = forker.result.as_ref().unwrap();
    assert!(outcome.timed_out, "{forker:?}");
    assert!(!outcome.success());
    assert_eq!(outcome.exit, Exit::Signal(libc::SIGTERM));
    // SIGKILL was needed for the sleeper that ignores SIGTERM: it comes at
    // timeout + kill_after (500 + 300 ms), not before; 500 ms of slack after.
    assert!(
        outcome.duration >= Duration::from_millis(800),
        "{outcome:?}"
    );
    assert!(
        outcome.duration < Duration::from_millis(800 + 500),
        "{outcome:?}"
    );

    let plain = got.iter().find(|r| r.hook == "t1-plain").unwrap();
    let outcome = plain.result.as_ref().unwrap();
    assert!(outcome.timed_out);
    assert!(outcome.duration >= Duration::from_secs(1), "{outcome:?}");
    assert!(
        outcome.duration < Duration::from_millis(1300 + 600),
        "{outcome:?}"
    );

    let stats = supervisor.stats();
    assert_eq!(stats.timed_out, 2);
    assert_eq!(stats.failed, 2);
    assert_eq!(stats.succeeded, 0);

    // The run record: one line, with the hook, the event, the duration, how it
    // ended and that it timed out.
    let records: Vec<Log> = logs_of("t1-forker")
        .into_iter()
        .filter(|l| l.get("duration_ms").is_some())
        .collect();
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record.get("event_id"), Some("11"));
    assert_eq!(record.get("timed_out"), Some("true"));
    assert!(
        record.get("exit").unwrap().contains("signal 15"),
        "{record:?}"
    );
    let ms: u64 = record.get("duration_ms").unwrap().parse().unwrap();
    assert!(ms >= 500, "{record:?}");
}

/// SIGKILL comes `kill_after` after the SIGTERM, not `kill_after` after the
/// leader finally exits: a leader that takes its time to die on SIGTERM must not
/// give a SIGTERM-proof process of its group more time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_comes_kill_after_the_sigterm_even_when_the_leader_dies_slowly() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    // The stubborn child ignores SIGTERM; the shell takes 500 ms to exit on it.
    let script = r#"
echo $$ > "$OUT/pgid"
( trap '' TERM; exec sleep 1000 ) &
echo $! > "$OUT/stubborn"
trap 'sleep 0.5; exit 7' TERM
sleep 1000 &
wait
"#;
    let config = config(
        "",
        &[hook(
            "t1-slow-leader",
            &out,
            "timeout = \"200ms\"\nkill_after = \"600ms\"\noutput = \"null\"",
            script,
        )],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    let start = Instant::now();
    supervisor
        .submit(the_hook(&config, "t1-slow-leader"), event(13), "".into())
        .unwrap();
    let pgid = wait_numbers(&out.join("pgid"), 1).await[0] as i32;
    let stubborn = wait_numbers(&out.join("stubborn"), 1).await[0] as i32;
    let _cleanup = Cleanup(vec![pgid, stubborn]);

    let report = reports(&mut rx, 1).await.remove(0);
    idle(&supervisor).await;
    let elapsed = start.elapsed();
    assert_all_gone(pgid, &[stubborn]);
    let outcome = report.result.unwrap();
    assert!(outcome.timed_out);
    // The leader exited by itself 500 ms after its SIGTERM.
    assert_eq!(outcome.exit, Exit::Code(7));
    // SIGTERM at 200 ms, SIGKILL at 200 + 600 = 800 ms; 300 ms of slack.
    // (Were SIGKILL counted from the leader's exit, it would come at ~1300 ms.)
    assert!(
        elapsed < Duration::from_millis(800 + 300),
        "the group lived {} ms: more than timeout + kill_after (800 ms)",
        millis(elapsed)
    );
}

// ---------------------------------------------------------------------------
// 2. max_parallel.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_is_never_exceeded_over_all_hooks() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let script = r#"
echo "$(date +%s%N) 1" >> "$OUT/spans"
sleep 0.1
echo "$(date +%s%N) -1" >> "$OUT/spans"
"#;
    let config = config(
        "max_parallel = 3",
        &[
            hook("t2-a", &out, "", script),
            hook("t2-b", &out, "", script),
        ],
    );
    let supervisor = supervisor(&config);
    let (a, b) = (the_hook(&config, "t2-a"), the_hook(&config, "t2-b"));
    for id in 0..8 {
        supervisor
            .submit(a.clone(), event(200 + id), "".into())
            .unwrap();
        supervisor
            .submit(b.clone(), event(300 + id), "".into())
            .unwrap();
    }
    // What the supervisor counts, sampled while it works.
    let mut most_running = 0;
    let deadline = Instant::now() + HANG;
    loop {
        let (running, queued) = supervisor.load();
        assert!(running <= 3, "{running} runs at once");
        most_running = most_running.max(running);
        if running == 0 && queued == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never idle");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    idle(&supervisor).await;
    assert_eq!(most_running, 3);

    // What the processes saw.
    let mut marks: Vec<(u128, i32)> = lines(&out.join("spans"))
        .iter()
        .map(|l| {
            let (time, delta) = l.split_once(' ').unwrap();
            (time.parse().unwrap(), delta.parse().unwrap())
        })
        .collect();
    assert_eq!(marks.len(), 32, "16 runs, a start and an end each");
    // At equal times an end counts before a start.
    marks.sort();
    let mut now = 0;
    let mut overlap = 0;
    for (_, delta) in &marks {
        now += delta;
        overlap = overlap.max(now);
    }
    assert_eq!(now, 0);
    assert!(overlap <= 3, "{overlap} hooks ran at once: {marks:?}");
    assert_eq!(overlap, 3, "the limit was never even reached: {marks:?}");
    let stats = supervisor.stats();
    assert_eq!((stats.started, stats.succeeded), (16, 16));
}

// ---------------------------------------------------------------------------
// 3. serial.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_hook_runs_200_events_one_at_a_time_in_arrival_order() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "max_parallel = 8",
        &[hook(
            "t3-serial",
            &out,
            "mode = \"serial\"\noutput = \"null\"",
            r#"echo "start $TRACIM_EVENT_ID" >> "$OUT/log"; echo "end $TRACIM_EVENT_ID" >> "$OUT/log""#,
        )],
    );
    let supervisor = supervisor(&config);
    let serial = the_hook(&config, "t3-serial");
    // Arrival order is not id order: ids are a permutation of 1000..1200.
    let ids: Vec<u64> = (0..200u64).map(|i| 1000 + (i * 37) % 200).collect();
    for &id in &ids {
        supervisor
            .submit(serial.clone(), event(id), "".into())
            .unwrap();
    }
    // All but the first wait in the hook's lane.
    let (running, queued) = supervisor.load();
    assert!(running <= 1, "{running} runs of a serial hook at once");
    assert!(queued >= 190, "{queued} waiting");
    idle(&supervisor).await;

    let expected: Vec<String> = ids
        .iter()
        .flat_map(|id| [format!("start {id}"), format!("end {id}")])
        .collect();
    let got = lines(&out.join("log"));
    assert_eq!(got.len(), 400);
    if let Some(i) = (0..400).find(|&i| got[i] != expected[i]) {
        panic!(
            "line {i}: {:?} where {:?} was due; around it: {:?}",
            got[i],
            expected[i],
            &got[i.saturating_sub(3)..(i + 3).min(400)]
        );
    }
    let stats = supervisor.stats();
    assert_eq!((stats.started, stats.succeeded), (200, 200));
}

// ---------------------------------------------------------------------------
// 4. latest.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_hook_runs_the_first_and_the_newest_of_a_burst() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[hook(
            "t4-latest",
            &out,
            "mode = \"latest\"",
            r#"echo "$TRACIM_EVENT_ID" >> "$OUT/ran"; sleep 0.3"#,
        )],
    );
    let supervisor = supervisor(&config);
    let latest = the_hook(&config, "t4-latest");
    for id in 1..=10 {
        supervisor
            .submit(latest.clone(), event(id), "".into())
            .unwrap();
    }
    // One runs, one waits.
    assert_eq!(supervisor.load(), (1, 1));
    idle(&supervisor).await;
    assert_eq!(numbers(&out.join("ran")), [1, 10]);
    let stats = supervisor.stats();
    assert_eq!(stats.coalesced, 8);
    assert_eq!(stats.started, 2);

    // Each skipped event is logged, with the hook and its id.
    let skipped: Vec<String> = logs_of("t4-latest")
        .iter()
        .filter(|l| l.message.contains("skipped"))
        .map(|l| l.get("event_id").unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (2..=9).map(|id: u64| id.to_string()).collect();
    assert_eq!(skipped, expected);

    // The lane is free again: the next event runs.
    supervisor
        .submit(latest.clone(), event(11), "".into())
        .unwrap();
    idle(&supervisor).await;
    assert_eq!(numbers(&out.join("ran")), [1, 10, 11]);
    assert_eq!(supervisor.stats().coalesced, 8);
}

// ---------------------------------------------------------------------------
// 5. queue_limit.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_logs_and_counts_and_the_queue_is_fifo() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let script = r#"echo "$TRACIM_EVENT_ID" >> "$OUT/ran"; if [ "$TRACIM_EVENT_ID" = 1 ]; then sleep 0.3; fi"#;
    let config = config(
        "max_parallel = 1\nqueue_limit = 3",
        &[
            hook("t5-queue", &out, "", script),
            hook("t5-other", &out, "", script),
        ],
    );
    let supervisor = supervisor(&config);
    let (queue, other) = (the_hook(&config, "t5-queue"), the_hook(&config, "t5-other"));
    for id in 1..=4 {
        supervisor
            .submit(queue.clone(), event(id), "".into())
            .unwrap();
    }
    assert_eq!(supervisor.load(), (1, 3));
    assert_eq!(
        supervisor.submit(queue.clone(), event(5), "".into()),
        Err(Refused::QueueFull(3))
    );
    // The limit is over all hooks.
    assert_eq!(
        supervisor.submit(other.clone(), event(6), "".into()),
        Err(Refused::QueueFull(3))
    );
    assert_eq!(supervisor.stats().refused, 2);

    idle(&supervisor).await;
    assert_eq!(numbers(&out.join("ran")), [1, 2, 3, 4]);
    // Room again.
    supervisor
        .submit(other.clone(), event(7), "".into())
        .unwrap();
    idle(&supervisor).await;
    assert_eq!(numbers(&out.join("ran")), [1, 2, 3, 4, 7]);
    let stats = supervisor.stats();
    assert_eq!((stats.refused, stats.started), (2, 5));

    // Each refusal is an error naming the hook and the event.
    for (hook, id) in [("t5-queue", "5"), ("t5-other", "6")] {
        let refusals: Vec<Log> = logs_of(hook)
            .into_iter()
            .filter(|l| l.level == tracing::Level::ERROR)
            .collect();
        assert_eq!(refusals.len(), 1, "{hook}: {refusals:#?}");
        assert_eq!(refusals[0].get("event_id"), Some(id));
        assert!(refusals[0].message.contains("refused"), "{refusals:?}");
    }
}

// ---------------------------------------------------------------------------
// 6. output.

fn stream_lines(hook: &str, stream: &str) -> Vec<Log> {
    logs_of(hook)
        .into_iter()
        .filter(|l| l.get("stream") == Some(stream))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_lines_are_logged_and_a_long_line_is_cut() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[
            hook(
                "t6-lines",
                &out,
                "",
                r#"
echo "plain line from $TRACIM_EVENT_ID"
echo "to stderr" >&2
head -c 5000 /dev/zero | tr '\0' a
echo
printf 'no newline at the end'
"#,
            ),
            hook(
                "t6-null",
                &out,
                "output = \"null\"",
                "echo secret; echo secret >&2",
            ),
        ],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    supervisor
        .submit(the_hook(&config, "t6-lines"), event(61), "".into())
        .unwrap();
    supervisor
        .submit(the_hook(&config, "t6-null"), event(62), "".into())
        .unwrap();
    let got = reports(&mut rx, 2).await;
    idle(&supervisor).await;
    assert!(got.iter().all(|r| r.result.as_ref().unwrap().success()));

    let stdout = stream_lines("t6-lines", "stdout");
    let texts: Vec<&str> = stdout.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[0], "plain line from 61");
    let cut = format!("{} [line cut at {MAX_LINE} bytes]", "a".repeat(MAX_LINE));
    assert_eq!(texts[1], cut);
    assert_eq!(texts[2], "no newline at the end");
    assert!(stdout.iter().all(|l| l.get("event_id") == Some("61")));
    let stderr = stream_lines("t6-lines", "stderr");
    assert_eq!(stderr.len(), 1);
    assert_eq!(stderr[0].message, "to stderr");
    assert_eq!(stderr[0].get("event_id"), Some("61"));

    // The run record of a success.
    let records: Vec<Log> = logs_of("t6-lines")
        .into_iter()
        .filter(|l| l.get("duration_ms").is_some())
        .collect();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].get("event_id"), Some("61"));
    assert_eq!(records[0].get("exit"), Some("exit code 0"));
    assert_eq!(records[0].get("timed_out"), Some("false"));

    // output = "null": nothing of it logged, but the run is recorded.
    assert!(logs_of("t6-null").iter().all(|l| l.get("stream").is_none()));
    assert!(
        logs_of("t6-null")
            .iter()
            .any(|l| l.get("duration_ms").is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_logged_output_is_capped_at_64_kib_and_says_so() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[hook(
            "t6-cap",
            &out,
            "",
            // 100 lines of 999 bytes on stdout, 20 short ones on stderr after them.
            r#"
line=$(printf '%0999d' 0)
yes "$line" | head -n 100
i=0; while [ $i -lt 20 ]; do echo "late $i" >&2; i=$((i+1)); done
"#,
        )],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    supervisor
        .submit(the_hook(&config, "t6-cap"), event(63), "".into())
        .unwrap();
    let report = reports(&mut rx, 1).await.remove(0);
    idle(&supervisor).await;
    assert!(report.result.unwrap().success());

    let logs = logs_of("t6-cap");
    let output: Vec<&Log> = logs.iter().filter(|l| l.get("stream").is_some()).collect();
    // The hook's own lines (the note about the cap is a warning).
    let logged: usize = output
        .iter()
        .filter(|l| l.level == tracing::Level::INFO)
        .map(|l| l.message.len())
        .sum();
    assert!(logged <= MAX_RUN_OUTPUT, "{logged} bytes of output logged");
    assert!(
        logged >= MAX_RUN_OUTPUT - 1000,
        "only {logged} bytes logged"
    );
    assert!(output.len() < 100, "{} lines logged", output.len());
    assert!(output.iter().all(|l| l.get("event_id") == Some("63")));
    let notes: Vec<&Log> = output
        .iter()
        .copied()
        .filter(|l| l.message.contains("64 KiB"))
        .collect();
    assert_eq!(
        notes.len(),
        1,
        "one note that output was capped: {notes:#?}"
    );
    assert_eq!(notes[0].level, tracing::Level::WARN);
    // Nothing of the stream after the cap.
    assert!(
        !output.iter().any(|l| l.message.starts_with("late ")),
        "stderr lines after the cap were logged"
    );
}

/// Empty lines count too: once the cap is reached nothing more is logged,
/// not an empty record (and a cap note) per blank line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cap_holds_for_empty_lines_too() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[hook(
            "t6-blank",
            &out,
            "",
            r#"
line=$(printf '%0999d' 0)
yes "$line" | head -n 70
yes '' | head -n 200
"#,
        )],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    supervisor
        .submit(the_hook(&config, "t6-blank"), event(64), "".into())
        .unwrap();
    reports(&mut rx, 1).await;
    idle(&supervisor).await;

    let logs = logs_of("t6-blank");
    let output: Vec<&Log> = logs.iter().filter(|l| l.get("stream").is_some()).collect();
    let notes = output
        .iter()
        .filter(|l| l.message.contains("64 KiB"))
        .count();
    let blank = output.iter().filter(|l| l.message.is_empty()).count();
    assert_eq!(
        (notes, blank),
        (1, 0),
        "after the 64 KiB cap: {notes} cap notes and {blank} empty lines logged"
    );
    assert!(output.len() <= 70, "{} records of output", output.len());
}

/// Through the binary: `test --run` logs a hook's lines to stderr with the hook
/// and the event, and `output = "inherit"` hands the hook our stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_output_and_inherits_when_asked() {
    let place = Place::new();
    let out = place.out();
    let config = place.write_config(
        &[
            hook(
                "t6-logged",
                &out,
                "",
                r#"echo "logged line $TRACIM_EVENT_ID"; exit 4"#,
            ),
            hook(
                "t6-inherit",
                &out,
                "output = \"inherit\"",
                r#"echo "inherited line $TRACIM_EVENT_ID""#,
            ),
        ]
        .concat(),
    );
    let event_file = place.path().join("event.json");
    std::fs::write(&event_file, event(65).raw()).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::bin())
            .arg("--config")
            .arg(&config)
            .args(["test", "--run"])
            .arg(&event_file)
            .env_remove("TRACIM_HOOKS_LOG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let both = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    // The failing hook fails the command.
    assert!(!output.status.success(), "{both}");
    assert!(stdout.contains("inherited line 65"), "{both}");
    assert!(!stderr.contains("inherited line"), "{both}");
    let logged = stderr
        .lines()
        .find(|l| l.contains("logged line 65"))
        .unwrap_or_else(|| panic!("no logged line: {both}"));
    assert!(logged.contains("t6-logged"), "{logged}");
    assert!(logged.contains("65"), "{logged}");
    assert!(logged.contains("stdout"), "{logged}");
    assert!(!stdout.contains("logged line"), "{both}");
    // The run record, on stderr.
    let record = stderr
        .lines()
        .find(|l| l.contains("t6-logged") && l.contains("duration_ms"))
        .unwrap_or_else(|| panic!("no run record: {both}"));
    assert!(record.contains("exit code 4"), "{record}");
    assert!(record.contains("timed_out=false"), "{record}");
}

// ---------------------------------------------------------------------------
// 7. retries.

fn nanos(path: &Path) -> Vec<u128> {
    lines(path).iter().map(|l| l.parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_timed_out_runs_are_retried_with_doubling_delays() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "retry_delay = \"100ms\"",
        &[
            hook(
                "t7-fail",
                &out,
                "retries = 2",
                r#"date +%s%N >> "$OUT/fail"; exit 3"#,
            ),
            hook(
                "t7-slow",
                &out,
                "retries = 1\nretry_delay = \"50ms\"\ntimeout = \"150ms\"\nkill_after = \"100ms\"",
                r#"date +%s%N >> "$OUT/slow"; sleep 10"#,
            ),
            hook(
                "t7-flaky",
                &out,
                "retries = 3\nretry_delay = \"20ms\"",
                r#"date +%s%N >> "$OUT/flaky"; if [ -e "$OUT/flag" ]; then exit 0; fi; : > "$OUT/flag"; exit 1"#,
            ),
        ],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    for (name, id) in [("t7-fail", 71), ("t7-slow", 72), ("t7-flaky", 73)] {
        supervisor
            .submit(the_hook(&config, name), event(id), "".into())
            .unwrap();
    }
    let got = reports(&mut rx, 3 + 2 + 2).await;
    idle(&supervisor).await;

    // Two retries: 100 ms, then 200 ms after the failure.
    let times = nanos(&out.join("fail"));
    assert_eq!(times.len(), 3, "{times:?}");
    let gap = |i: usize| Duration::from_nanos((times[i + 1] - times[i]) as u64);
    assert!(gap(0) >= Duration::from_millis(100), "{:?}", gap(0));
    assert!(gap(0) < Duration::from_millis(100 + 700), "{:?}", gap(0));
    assert!(gap(1) >= Duration::from_millis(200), "{:?}", gap(1));
    assert!(gap(1) < Duration::from_millis(200 + 700), "{:?}", gap(1));
    let fail: Vec<&RunReport> = got.iter().filter(|r| r.hook == "t7-fail").collect();
    assert_eq!(
        fail.iter()
            .map(|r| (r.attempt, r.will_retry))
            .collect::<Vec<_>>(),
        [(1, true), (2, true), (3, false)]
    );
    assert!(
        fail.iter()
            .all(|r| r.result.as_ref().unwrap().exit == Exit::Code(3) && r.event_id == 71)
    );
    let delays: Vec<String> = logs_of("t7-fail")
        .iter()
        .filter_map(|l| l.get("retry_in_ms").map(str::to_owned))
        .collect();
    assert_eq!(delays, ["100", "200"]);

    // A timed-out run is retried too.
    let slow: Vec<&RunReport> = got.iter().filter(|r| r.hook == "t7-slow").collect();
    assert_eq!(slow.len(), 2);
    assert!(slow.iter().all(|r| r.result.as_ref().unwrap().timed_out));
    let times = nanos(&out.join("slow"));
    assert_eq!(times.len(), 2);
    // 150 ms of run, then 50 ms of delay.
    assert!(times[1] - times[0] >= 200_000_000, "{times:?}");

    // A run that succeeds on its second attempt stops there.
    let flaky: Vec<&RunReport> = got.iter().filter(|r| r.hook == "t7-flaky").collect();
    assert_eq!(flaky.len(), 2);
    assert!(flaky[1].result.as_ref().unwrap().success());
    assert!(!flaky[1].will_retry);
    assert_eq!(nanos(&out.join("flaky")).len(), 2);

    let stats = supervisor.stats();
    assert_eq!(stats.started, 7);
    assert_eq!(stats.retried, 2 + 1 + 1);
    assert_eq!(stats.failed, 2);
    assert_eq!(stats.succeeded, 1);
    assert_eq!(stats.timed_out, 2);
}

/// Retries of a `serial` hook keep its lane: the next event waits for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_hooks_retries_come_before_its_next_event() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[hook(
            "t7-serial",
            &out,
            "mode = \"serial\"\nretries = 2\nretry_delay = \"30ms\"",
            r#"echo "$TRACIM_EVENT_ID" >> "$OUT/ran"; [ "$TRACIM_EVENT_ID" != 1 ]"#,
        )],
    );
    let supervisor = supervisor(&config);
    let serial = the_hook(&config, "t7-serial");
    for id in 1..=3 {
        supervisor
            .submit(serial.clone(), event(id), "".into())
            .unwrap();
    }
    idle(&supervisor).await;
    assert_eq!(numbers(&out.join("ran")), [1, 1, 1, 2, 3]);
}

// ---------------------------------------------------------------------------
// 8. shutdown.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_runs_finish_within_grace_then_kills_and_reports_the_queue() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "max_parallel = 2",
        &[
            hook(
                "t8-stubborn",
                &out,
                "",
                r#"
trap '' TERM
echo $$ > "$OUT/pgid"
sleep 1000 &
( sleep 1000 & echo $! > "$OUT/orphan" )
wait
"#,
            ),
            hook(
                "t8-quick",
                &out,
                "mode = \"serial\"",
                r#"sleep 0.2; echo "$TRACIM_EVENT_ID" >> "$OUT/done""#,
            ),
        ],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    let (stubborn, quick) = (
        the_hook(&config, "t8-stubborn"),
        the_hook(&config, "t8-quick"),
    );
    supervisor
        .submit(stubborn.clone(), event(81), "".into())
        .unwrap();
    supervisor
        .submit(quick.clone(), event(82), "".into())
        .unwrap();
    supervisor
        .submit(quick.clone(), event(83), "".into())
        .unwrap();
    supervisor
        .submit(stubborn.clone(), event(84), "".into())
        .unwrap();
    supervisor
        .submit(quick.clone(), event(85), "".into())
        .unwrap();
    // Running: 81 and 82. Waiting: 84 in the shared queue, 83 and 85 in the
    // serial hook's lane.
    assert_eq!(supervisor.load(), (2, 3));
    let pgid = wait_numbers(&out.join("pgid"), 1).await[0] as i32;
    let orphan = wait_numbers(&out.join("orphan"), 1).await[0] as i32;
    let _cleanup = Cleanup(vec![pgid, orphan]);

    let start = Instant::now();
    let grace = Duration::from_millis(400);
    tokio::time::timeout(HANG, supervisor.shutdown(grace))
        .await
        .expect("shutdown hangs");
    let elapsed = start.elapsed();
    assert!(elapsed >= grace, "{} ms", millis(elapsed));
    assert!(
        elapsed < grace + Duration::from_millis(1500),
        "{} ms",
        millis(elapsed)
    );
    // The running group is gone, its double-forked sleeper included.
    assert_all_gone(pgid, &[orphan]);

    // The quick run finished within the grace; the queued runs never started.
    assert_eq!(numbers(&out.join("done")), [82]);
    let got = reports(&mut rx, 2).await;
    let quick_report = got.iter().find(|r| r.event_id == 82).unwrap();
    let outcome = quick_report.result.as_ref().unwrap();
    assert!(outcome.success() && !outcome.cancelled, "{quick_report:?}");
    let stubborn_report = got.iter().find(|r| r.event_id == 81).unwrap();
    let outcome = stubborn_report.result.as_ref().unwrap();
    assert!(outcome.cancelled, "{stubborn_report:?}");
    assert!(!outcome.success());
    assert!(outcome.duration >= grace);

    let stats = supervisor.stats();
    assert_eq!(stats.never_started, 3);
    assert_eq!(stats.started, 2);
    let mut never: Vec<(String, String)> = ["t8-stubborn", "t8-quick"]
        .iter()
        .flat_map(|hook| logs_of(hook))
        .filter(|l| l.message.contains("never started"))
        .map(|l| {
            (
                l.get("hook").unwrap().to_owned(),
                l.get("event_id").unwrap().to_owned(),
            )
        })
        .collect();
    never.sort();
    assert_eq!(
        never,
        [
            ("t8-quick".to_owned(), "83".to_owned()),
            ("t8-quick".to_owned(), "85".to_owned()),
            ("t8-stubborn".to_owned(), "84".to_owned()),
        ]
    );

    // No more runs are taken.
    assert_eq!(
        supervisor.submit(quick.clone(), event(86), "".into()),
        Err(Refused::ShuttingDown)
    );
    assert_eq!(supervisor.stats().refused, 1);
    // Nothing is left to run: shutdown returned with nothing running or
    // waiting, and only the two runs that were running ever started.
    assert_eq!(supervisor.load(), (0, 0));
    assert_eq!(supervisor.stats().started, 2);
    assert_eq!(numbers(&out.join("done")), [82]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_once_runs_end_and_drops_waiting_retries() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[
            hook(
                "t8-retry",
                &out,
                "retries = 3\nretry_delay = \"10s\"",
                r#"echo "$TRACIM_EVENT_ID" >> "$OUT/retry"; exit 1"#,
            ),
            hook(
                "t8-brief",
                &out,
                "",
                r#"sleep 0.2; echo "$TRACIM_EVENT_ID" >> "$OUT/brief""#,
            ),
        ],
    );
    let supervisor = supervisor(&config);
    supervisor
        .submit(the_hook(&config, "t8-retry"), event(87), "".into())
        .unwrap();
    supervisor
        .submit(the_hook(&config, "t8-brief"), event(88), "".into())
        .unwrap();
    assert!(wait_for(HANG, || supervisor.stats().retried == 1).await);
    let start = Instant::now();
    tokio::time::timeout(HANG, supervisor.shutdown(Duration::from_secs(10)))
        .await
        .expect("shutdown hangs");
    let elapsed = start.elapsed();
    // It waited for the brief run, not for the grace nor the retry delay.
    assert!(
        elapsed < Duration::from_millis(1500),
        "{} ms",
        millis(elapsed)
    );
    assert_eq!(numbers(&out.join("brief")), [88]);
    assert_eq!(numbers(&out.join("retry")), [87]);
    let stats = supervisor.stats();
    assert_eq!(stats.never_started, 1);
    assert_eq!(stats.started, 2);
    assert!(
        logs_of("t8-retry")
            .iter()
            .any(|l| l.message.contains("never started") && l.get("event_id") == Some("87"))
    );
}
