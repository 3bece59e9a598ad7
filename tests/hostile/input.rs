//! Malformed, oversized, silent and trickling input, and floods: each is
//! logged by kind (rate-limited), and the next valid event still runs.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};
use tracim_daemon_sdk::protocol::{Envelope, Message};
use tracim_daemon_sdk::sim::event_message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_logged_by_kind_and_the_next_event_still_runs() {
    let place = Place::new();
    let out = place.out();
    place.write_config_with(
        "read_timeout = \"1s\"",
        &recording_hook("all", "\"*\"", &out),
    );
    let runner = place.started_runner().await;
    let master = place.master().to_string_lossy().into_owned();
    let event_with_data = |data: Value| {
        json!({"path": master, "type": "daemon_tracim_event", "data": data})
            .to_string()
            .into_bytes()
    };
    let tlm_text = |v: Value| Value::String(v.to_string());
    let whole = valid_event(&place, 999);
    let mut invalid_utf8 = valid_event(&place, 998);
    let at = invalid_utf8.len() / 2;
    invalid_utf8.splice(at..at, [0xff, 0xfe, 0xc3]);
    let nested: Vec<u8> = [
        &b"{\"path\":\"/m\",\"type\":\"x\",\"data\":"[..],
        &[b'['; 100_000],
    ]
    .concat();

    const MALFORMED: &str = "malformed message: ";
    const BAD_DATA: &str = "message with bad data: ";
    const BAD_TLM: &str = "malformed Tracim event: ";
    const NOT_UTF8: &str = "message not in UTF-8: ";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"garbage }{ bytes".to_vec(), MALFORMED),
        (
            "empty (a probe: debug, not a warning)",
            Vec::new(),
            "DEBUG empty connection",
        ),
        (
            "truncated JSON",
            whole[..whole.len() / 2].to_vec(),
            MALFORMED,
        ),
        ("a JSON array", b"[1,2,3]".to_vec(), MALFORMED),
        ("100000 nested arrays", nested, MALFORMED),
        ("data a number", event_with_data(json!(5)), BAD_DATA),
        ("data an array", event_with_data(json!([1, 2])), BAD_DATA),
        (
            "no data",
            json!({"path": master, "type": "daemon_tracim_event"})
                .to_string()
                .into_bytes(),
            BAD_DATA,
        ),
        (
            "event_type missing",
            event_with_data(tlm_text(json!({"event_id": 1, "fields": {}}))),
            BAD_TLM,
        ),
        (
            "event_type not a string",
            event_with_data(tlm_text(
                json!({"event_id": 1, "event_type": 7, "fields": {}}),
            )),
            BAD_TLM,
        ),
        (
            "fields an array",
            event_with_data(tlm_text(
                json!({"event_id": 1, "event_type": "a.b", "fields": []}),
            )),
            BAD_TLM,
        ),
        (
            "the TLM string not JSON",
            event_with_data(json!("not json {")),
            BAD_TLM,
        ),
        (
            "event_id negative",
            event_with_data(tlm_text(
                json!({"event_id": -1, "event_type": "a.b", "fields": {}}),
            )),
            BAD_TLM,
        ),
        ("binary", vec![0x00, 0xff, 0x80, 0xc3, 0x28, 0x01], NOT_UTF8),
        ("invalid UTF-8 inside an event", invalid_utf8, NOT_UTF8),
    ];
    let mut expected_runs = Vec::new();
    for (i, (what, bytes, kind)) in cases.into_iter().enumerate() {
        let before = count(&runner.log(), kind);
        send_lossy(&place.socket(), &bytes).await;
        assert!(
            wait_for(SHORT, || count(&runner.log(), kind) == before + 1).await,
            "{what}: no `{kind}` line logged:\n{}",
            runner.log()
        );
        let id = 100 + i as u64;
        send_raw(&place.socket(), &valid_event(&place, id))
            .await
            .unwrap();
        let line = format!("all {id}");
        expect_run(&out, &line, &runner).await;
        expected_runs.push(line);
        assert!(procfs::alive(runner.pid()), "{what}: the runner died");
    }
    // Only the valid events ran, each once, and in order.
    assert_eq!(lines(&out.join("runs")), expected_runs);
    let log = runner.log();
    assert!(!log.contains("panicked"), "{log}");
    for kind in [MALFORMED, BAD_DATA, BAD_TLM, NOT_UTF8] {
        assert!(count(&log, kind) <= 5, "{kind}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_logs_five_lines_then_a_summary_after_the_window() {
    const KIND: &str = "malformed message: ";
    let place = Place::new();
    let out = place.out();
    place.write_config_with("log_window = \"1s\"", &recording_hook("all", "\"*\"", &out));
    let runner = place.started_runner().await;
    let flood_started = Instant::now();
    for i in 0..50 {
        send_lossy(&place.socket(), format!("garbage {i}").as_bytes()).await;
    }
    send_raw(&place.socket(), &valid_event(&place, 1))
        .await
        .unwrap();
    expect_run(&out, "all 1", &runner).await;
    // Connections are handed on in the order they came: the event ran, so
    // every garbage message before it was read and judged.
    let log = runner.log();
    assert_eq!(count(&log, KIND), 5, "{log}");
    assert!(!log.contains("more not logged"), "{log}");

    // After the limiter's window (1 s here) it says how many were left out,
    // and the next complaint of the kind is logged again.
    let window = Duration::from_secs(1);
    tokio::time::sleep(
        (window + Duration::from_millis(300)).saturating_sub(flood_started.elapsed()),
    )
    .await;
    send_lossy(&place.socket(), b"one more").await;
    assert!(
        runner
            .wait_log("malformed message: 45 more not logged", SHORT)
            .await,
        "{}",
        runner.log()
    );
    assert!(
        wait_for(SHORT, || count(&runner.log(), "(8 bytes)") == 1).await,
        "the complaint after the window is logged itself:\n{}",
        runner.log()
    );
    send_raw(&place.socket(), &valid_event(&place, 2))
        .await
        .unwrap();
    expect_run(&out, "all 2", &runner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_message_is_dropped_and_the_next_one_runs() {
    let place = Place::new();
    let out = place.out();
    place.write_config_with(
        "max_message = 4096\nread_timeout = \"1s\"",
        &recording_hook("all", "\"*\"", &out),
    );
    let runner = place.started_runner().await;

    // An event of exactly 4096 bytes is taken.
    let padded = |id: u64, pad: usize| {
        event_message(
            &place.master(),
            &tlm(id, "content.created.file", json!({"pad": "x".repeat(pad)})),
        )
    };
    let base = padded(1, 0).len();
    let exact = padded(1, 4096 - base);
    assert_eq!(exact.len(), 4096);
    send_raw(&place.socket(), &exact).await.unwrap();
    expect_run(&out, "all 1", &runner).await;

    // One byte more is not; nor is 100 KB.
    let over = padded(2, 4097 - base);
    assert_eq!(over.len(), 4097);
    send_lossy(&place.socket(), &over).await;
    assert!(
        runner
            .wait_log("message over max_message dropped", SHORT)
            .await,
        "{}",
        runner.log()
    );
    let huge = padded(3, 100 * 1024);
    send_lossy(&place.socket(), &huge).await;
    assert!(
        wait_for(SHORT, || count(
            &runner.log(),
            "message over max_message dropped"
        ) == 2)
        .await,
        "{}",
        runner.log()
    );
    send_raw(&place.socket(), &valid_event(&place, 4))
        .await
        .unwrap();
    expect_run(&out, "all 4", &runner).await;
    all_dispatched_runs_ended(&runner).await;
    assert_eq!(lines(&out.join("runs")), ["all 1", "all 4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_peers_block_nobody_and_are_cut_at_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let place = Place::new();
    let out = place.out();
    place.write_config_with(
        "read_timeout = \"2s\"",
        &recording_hook("all", "\"*\"", &out),
    );
    let runner = place.started_runner().await;

    // A peer that connects and never writes, and one that writes a byte every
    // 100 ms and never ends.
    let mut idle = tokio::net::UnixStream::connect(place.socket())
        .await
        .unwrap();
    let connected = Instant::now();
    let trickle_bytes = valid_event(&place, 77);
    let socket = place.socket();
    let trickler = tokio::spawn(async move {
        let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
        let started = Instant::now();
        for b in trickle_bytes.iter().take(200) {
            if stream.write_all(&[*b]).await.is_err() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    });

    // Meanwhile a valid event goes through at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = Instant::now();
    send_raw(&place.socket(), &valid_event(&place, 1))
        .await
        .unwrap();
    expect_run(&out, "all 1", &runner).await;
    let took = sent.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "a valid event took {took:?} while a silent peer was connected"
    );

    // The silent peer is hung up on at read_timeout.
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(SHORT, idle.read(&mut buf))
        .await
        .expect("the silent peer was never hung up on");
    let after = connected.elapsed();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(4),
        "silent peer hung up on after {after:?}"
    );
    // The trickling one too: the timeout is for the whole message, not per byte.
    let cut = tokio::time::timeout(SHORT, trickler)
        .await
        .unwrap()
        .unwrap();
    let cut = cut.expect("the trickling peer was never hung up on");
    assert!(cut < Duration::from_secs(5), "trickler cut after {cut:?}");
    assert!(
        runner
            .wait_log("connection timed out before its message ended", SHORT)
            .await,
        "{}",
        runner.log()
    );
    assert!(
        count(
            &runner.log(),
            "connection timed out before its message ended"
        ) >= 2
    );

    send_raw(&place.socket(), &valid_event(&place, 2))
        .await
        .unwrap();
    expect_run(&out, "all 2", &runner).await;
    assert_eq!(lines(&out.join("runs")), ["all 1", "all 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_connections_at_once_leave_the_runner_well_and_small() {
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;
    const N: usize = 2000;
    let place = Place::new();
    let out = place.out();
    place.write_config_with(
        "read_timeout = \"2s\"",
        &recording_hook("files", "\"content.*\"", &out),
    );
    let runner = place.started_runner().await;
    let pid = runner.pid();
    let rss_before = procfs::status_kb(pid, "VmRSS");

    // Every connection opens first, then all write at once: garbage, invalid
    // UTF-8, valid events no hook takes, and pings (whose pongs go nowhere).
    let master = place.master();
    let ping = Envelope::new(master.to_string_lossy(), Message::Ping).encode();
    let other_event = event_message(&master, &tlm(5, "user.modified", json!({})));
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let bytes = match i % 4 {
            0 => format!("garbage {i}").into_bytes(),
            1 => vec![0xff; 16],
            2 => other_event.clone(),
            _ => ping.clone(),
        };
        let socket = place.socket();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::UnixStream::connect(&socket).await;
            barrier.wait().await;
            let mut stream = stream?;
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        }));
    }
    let mut ok = 0;
    let mut errors = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert_eq!(ok, N, "failed: {:?}", &errors[..errors.len().min(5)]);

    // A valid event right after runs its hook.
    let sent = Instant::now();
    send_raw(&place.socket(), &valid_event(&place, 4242))
        .await
        .unwrap();
    expect_run(&out, "files 4242", &runner).await;
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} after the flood"
    );
    assert!(procfs::alive(pid));
    let rss_after = procfs::status_kb(pid, "VmRSS");
    let peak = procfs::status_kb(pid, "VmHWM");
    eprintln!("RSS {rss_before} kB before, {rss_after} kB after, peak {peak} kB; {took:?}");
    assert!(
        peak < rss_before + 16 * 1024 && rss_after < rss_before + 16 * 1024,
        "RSS {rss_before} kB before, {rss_after} kB after, peak {peak} kB"
    );
    let log = runner.log();
    assert!(count(&log, "malformed message: ") <= 5, "{log}");
    assert!(count(&log, "message not in UTF-8: ") <= 5, "{log}");
    assert_eq!(lines(&out.join("runs")), ["files 4242"]);
}
