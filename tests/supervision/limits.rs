//! The parallel limit over all hooks, `serial` and `latest` lanes, and the
//! queue limit, seen by the processes that ran and by the logs.

use std::time::{Duration, Instant};
use tracim_hooks::supervisor::Refused;

use crate::common::logs::{Log, capture_logs, logs_of};
use crate::common::{HANG, Place, lines};
use crate::*;

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
