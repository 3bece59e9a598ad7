//! The live stream read by the client from the simulator over loopback TCP: huge events
//! in 1-byte writes, many events in one write, the unordered backlog without `event:`
//! lines, keep-alives, `stream-error`, silence, cuts, size limit, logout, re-login.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use tracim_daemon_sdk::tracim::sim::{Endpoint, SimConfig, Split};
use tracim_daemon_sdk::tracim::{StreamEnd, StreamItem, StreamOptions};

fn options() -> StreamOptions {
    StreamOptions {
        silence_timeout: PATIENCE,
        ..StreamOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mb_event_in_1_byte_writes_arrives_whole() {
    let sim = sim_with(SimConfig {
        split: Split::Every(1),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim, session(&sim));
    let mut stream = client
        .open_stream(USER, None, options())
        .await
        .expect("stream");
    assert_eq!(next(&mut stream).await.expect("open"), StreamItem::Open);
    assert!(sim.wait_streams(USER, 1, PATIENCE).await);
    let note = "é<p>x</p>".repeat(5 * 1024 * 1024 / 10);
    let mut sent = String::new();
    let id = sim.publish_with(USER, |id| {
        sent = format!("{{\"event_id\": {id}, \"event_type\": \"content.created.html-document\", \"fields\": {{\"content\": {{\"raw_content\": \"{note}\"}}}}}}");
        sent.clone()
    });
    assert!(sent.len() > 5_000_000);
    // 5 million HTTP chunks, each its own write, through debug builds of tokio and hyper:
    // 137 s were seen on the shared 2-core box under a load of 8, so the wait is long.
    let arrived = tokio::time::timeout(Duration::from_secs(900), stream.next()).await;
    match arrived.expect("the 5 MB event within 15 minutes") {
        Ok(StreamItem::Message {
            event,
            backlog: false,
        }) => {
            assert_eq!(event.event_id, id);
            assert!(
                event.tlm == sent,
                "the text differs: {} bytes, not {}",
                event.tlm.len(),
                sent.len()
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_thousand_events_in_one_write_come_as_an_unordered_backlog() {
    let sim = sim().await;
    let before = sim.publish(USER, "user.modified");
    let ids: Vec<u64> = (0..1000)
        .map(|_| sim.publish(USER, "content.created.comment"))
        .collect();
    let client = client(&sim, session(&sim));
    let mut stream = client
        .open_stream(USER, Some(before), options())
        .await
        .expect("stream");
    assert_eq!(next(&mut stream).await.expect("open"), StreamItem::Open);
    let got = message_ids(&mut stream, 1000).await;
    assert!(
        got.iter().all(|(_, backlog)| *backlog),
        "the backlog has no event lines"
    );
    let got: Vec<u64> = got.into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        got.iter().copied().collect::<HashSet<_>>(),
        ids.iter().copied().collect::<HashSet<_>>()
    );
    assert_ne!(got, ids, "the simulator shuffles the backlog as Tracim may");
    // Live ones follow, marked as such.
    assert!(sim.wait_streams(USER, 1, PATIENCE).await);
    let live = sim.publish(USER, "content.modified.html-document");
    assert_eq!(message_ids(&mut stream, 1).await, vec![(live, false)]);
}

#[tokio::test]
async fn random_splits_of_a_busy_stream_lose_nothing() {
    let sim = sim_with(SimConfig {
        split: Split::Random { max: 13 },
        ..SimConfig::default()
    })
    .await;
    let before = sim.publish(USER, "user.modified");
    let backlog: Vec<u64> = (0..50)
        .map(|_| sim.publish(USER, "mention.created"))
        .collect();
    let client = client(&sim, session(&sim));
    let mut stream = client
        .open_stream(USER, Some(before), options())
        .await
        .expect("stream");
    assert!(sim.wait_streams(USER, 1, PATIENCE).await);
    let live: Vec<u64> = (0..200)
        .map(|_| sim.publish(USER, "content.created.comment"))
        .collect();
    let got = message_ids(&mut stream, 250).await;
    let (old, new): (Vec<_>, Vec<_>) = got.into_iter().partition(|(_, backlog)| *backlog);
    assert_eq!(
        old.iter().map(|(id, _)| *id).collect::<HashSet<_>>(),
        backlog.into_iter().collect::<HashSet<_>>()
    );
    assert_eq!(new.into_iter().map(|(id, _)| id).collect::<Vec<_>>(), live);
}

#[tokio::test]
async fn keep_alives_arrive() {
    let sim = sim_with(SimConfig {
        keep_alive: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim, session(&sim));
    let mut stream = client
        .open_stream(USER, None, options())
        .await
        .expect("stream");
    assert_eq!(next(&mut stream).await.expect("open"), StreamItem::Open);
    assert_eq!(
        next(&mut stream).await.expect("keep-alive"),
        StreamItem::KeepAlive
    );
    assert_eq!(
        next(&mut stream).await.expect("keep-alive"),
        StreamItem::KeepAlive
    );
}

#[tokio::test]
async fn stream_error_then_close() {
    let sim = sim().await;
    let client = client(&sim, session(&sim));
    let mut stream = client
        .open_stream(USER, None, options())
        .await
        .expect("stream");
    assert_eq!(next(&mut stream).await.expect("open"), StreamItem::Open);
    assert!(sim.wait_streams(USER, 1, PATIENCE).await);
    assert_eq!(sim.stream_error(USER), 1);
    assert!(matches!(
        next(&mut stream).await,
        Ok(StreamItem::StreamError { .. })
    ));
    assert!(matches!(next(&mut stream).await, Err(StreamEnd::Closed)));
    assert!(
        matches!(next(&mut stream).await, Err(StreamEnd::Closed)),
        "stays over"
    );
}

#[tokio::test]
async fn a_silent_stream_times_out() {
    let sim = sim_with(SimConfig {
        keep_alive: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim, session(&sim));
    let quick = StreamOptions {
        silence_timeout: Duration::from_millis(300),
        ..StreamOptions::default()
    };
    let mut stream = client.open_stream(USER, None, quick).await.expect("stream");
    assert_eq!(next(&mut stream).await.expect("open"), StreamItem::Open);
    match next(&mut stream).await {
        Err(StreamEnd::Silent(d)) => assert_eq!(d, Duration::from_millis(300)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_cut_mid_event_is_a_broken_stream_not_a_message() {
    let sim = sim().await;
    let client = client(&sim, session(&sim));
    let mut stream = client
        .open_stream(USER, None, options())
        .await
        .expect("stream");
    assert_eq!(next(&mut stream).await.expect("open"), StreamItem::Open);
    assert!(sim.wait_streams(USER, 1, PATIENCE).await);
    assert_eq!(sim.cut_streams_after(USER, 40), 1);
    sim.publish(USER, "content.created.comment");
    match next(&mut stream).await {
        Err(StreamEnd::Transport(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_event_past_the_limit_ends_the_stream() {
    let sim = sim_with(SimConfig {
        split: Split::Every(100),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim, session(&sim));
    let small = StreamOptions {
        max_event_size: 2000,
        ..options()
    };
    let mut stream = client.open_stream(USER, None, small).await.expect("stream");
    assert_eq!(next(&mut stream).await.expect("open"), StreamItem::Open);
    assert!(sim.wait_streams(USER, 1, PATIENCE).await);
    let fits = sim.publish(USER, "content.created.comment");
    sim.publish_with(USER, |id| {
        format!(
            "{{\"event_id\": {id}, \"raw_content\": \"{}\"}}",
            "x".repeat(5000)
        )
    });
    assert_eq!(message_ids(&mut stream, 1).await, vec![(fits, false)]);
    assert!(matches!(
        next(&mut stream).await,
        Err(StreamEnd::TooLarge { limit: 2000 })
    ));
}

#[tokio::test]
async fn a_logout_anywhere_closes_every_stream_and_an_expired_session_logs_in_again() {
    let sim = sim().await;
    let reader = client(&sim, session(&sim));
    let mut one = reader
        .open_stream(USER, None, options())
        .await
        .expect("stream");
    let mut two = reader
        .open_stream(USER, None, options())
        .await
        .expect("stream");
    assert!(sim.wait_streams(USER, 2, PATIENCE).await);
    let elsewhere = client(&sim, session(&sim));
    elsewhere.logout().await.expect("logout");
    for stream in [&mut one, &mut two] {
        assert_eq!(next(stream).await.expect("open"), StreamItem::Open);
        assert!(matches!(next(stream).await, Err(StreamEnd::Closed)));
    }
    // The reader's own session is gone too: the stream's request gets 401, logs in again.
    sim.expire_sessions(USER);
    let logins = sim.requests(Endpoint::Login);
    let mut three = reader
        .open_stream(USER, None, options())
        .await
        .expect("stream after re-login");
    assert_eq!(next(&mut three).await.expect("open"), StreamItem::Open);
    assert_eq!(sim.requests(Endpoint::Login), logins + 1);
}
