//! Catching up through Tracim's history endpoint: paging down across many pages returns
//! exactly the events after an id, in id order, within `max` and `window`, with what was
//! skipped counted and its id range given.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use tracim_daemon_sdk::tracim::CatchUpLimits;
use tracim_daemon_sdk::tracim::sim::{SimConfig, SimUser, Split};

fn no_limits(page_size: u32) -> CatchUpLimits {
    CatchUpLimits {
        max: usize::MAX,
        window: None,
        page_size,
    }
}

fn two_users() -> SimConfig {
    let mut config = SimConfig::default();
    config.users.push(SimUser {
        user_id: 2,
        username: "other".into(),
        email: "other@example.org".into(),
        public_name: "Other".into(),
        password: "other password".into(),
    });
    config
}

#[tokio::test]
async fn pages_down_to_the_known_id_and_returns_exactly_what_follows_in_order() {
    let sim = sim_with(SimConfig {
        split: Split::Random { max: 97 },
        ..two_users()
    })
    .await;
    let mut mine = Vec::new();
    for i in 0..300u64 {
        // Gaps: other users' events and skipped ids take numbers of the global sequence.
        if i % 3 == 0 {
            sim.publish(2, "content.created.html-document");
        }
        if i % 7 == 0 {
            sim.skip_ids(5);
        }
        mine.push(sim.publish(USER, "content.created.comment"));
    }
    let client = client(&sim, session(&sim));
    let after = mine[41];
    let catch_up = client
        .events_after(USER, after, &no_limits(7))
        .await
        .expect("catch-up");
    let got: Vec<u64> = catch_up.events.iter().map(|e| e.event_id).collect();
    assert_eq!(got, mine[42..].to_vec());
    assert!(catch_up.reached_known);
    assert_eq!(catch_up.skipped, None);
    // 258 events at 7 a page: the page holding `after` is the 37th.
    assert_eq!(catch_up.pages, 37);
    // The text is Tracim's, untouched: the same bytes as one page of the history shows.
    let newest = client.history_page(USER, 1, None).await.expect("page");
    assert_eq!(catch_up.events.last(), newest.items.first());
    assert!(
        catch_up
            .events
            .iter()
            .all(|e| e.tlm.contains(&format!("\"event_id\":{},", e.event_id)))
    );
}

#[tokio::test]
async fn max_keeps_the_newest_and_reports_the_rest() {
    let sim = sim().await;
    let ids: Vec<u64> = (0..50)
        .map(|_| sim.publish(USER, "mention.created"))
        .collect();
    let client = client(&sim, session(&sim));
    let limits = CatchUpLimits {
        max: 20,
        window: None,
        page_size: 9,
    };
    let catch_up = client
        .events_after(USER, ids[4], &limits)
        .await
        .expect("catch-up");
    let got: Vec<u64> = catch_up.events.iter().map(|e| e.event_id).collect();
    assert_eq!(got, ids[30..].to_vec());
    let skipped = catch_up.skipped.expect("something skipped");
    assert_eq!(
        (skipped.count, skipped.over_max, skipped.too_old),
        (25, 25, 0)
    );
    assert_eq!((skipped.first_id, skipped.last_id), (ids[5], ids[29]));
    assert!(catch_up.reached_known);
}

#[tokio::test]
async fn window_skips_the_old_ones_and_reports_them() {
    let sim = sim().await;
    let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 24 * 3600);
    let start = sim.publish(USER, "user.modified");
    let old: Vec<u64> = (0..12)
        .map(|_| sim.publish_at(USER, "content.modified.todo", ten_days_ago))
        .collect();
    let new: Vec<u64> = (0..5)
        .map(|_| sim.publish(USER, "content.created.thread"))
        .collect();
    let client = client(&sim, session(&sim));
    let limits = CatchUpLimits {
        max: 1000,
        window: Some(Duration::from_secs(7 * 24 * 3600)),
        page_size: 4,
    };
    let catch_up = client
        .events_after(USER, start, &limits)
        .await
        .expect("catch-up");
    let got: Vec<u64> = catch_up.events.iter().map(|e| e.event_id).collect();
    assert_eq!(got, new);
    let skipped = catch_up.skipped.expect("old ones skipped");
    assert_eq!(
        (skipped.count, skipped.too_old, skipped.over_max),
        (12, 12, 0)
    );
    assert_eq!((skipped.first_id, skipped.last_id), (old[0], old[11]));
    // Both limits at once: the newest 3 kept, 2 over max, 12 too old.
    let limits = CatchUpLimits { max: 3, ..limits };
    let catch_up = client
        .events_after(USER, start, &limits)
        .await
        .expect("catch-up");
    assert_eq!(
        catch_up
            .events
            .iter()
            .map(|e| e.event_id)
            .collect::<Vec<_>>(),
        new[2..].to_vec()
    );
    let skipped = catch_up.skipped.expect("skipped");
    assert_eq!(
        (skipped.count, skipped.too_old, skipped.over_max),
        (14, 12, 2)
    );
    assert_eq!((skipped.first_id, skipped.last_id), (old[0], new[1]));
}

#[tokio::test]
async fn nothing_new_is_one_page_and_a_lost_start_is_reported() {
    let sim = sim().await;
    let client = client(&sim, session(&sim));
    assert_eq!(client.newest_event_id(USER).await.expect("newest"), None);
    let ids: Vec<u64> = (0..30)
        .map(|_| sim.publish(USER, "reaction.created"))
        .collect();
    assert_eq!(
        client.newest_event_id(USER).await.expect("newest"),
        ids.last().copied()
    );
    let nothing = client
        .events_after(USER, ids[29], &no_limits(10))
        .await
        .expect("catch-up");
    assert!(nothing.events.is_empty() && nothing.reached_known && nothing.skipped.is_none());
    assert_eq!(nothing.pages, 1);
    // An id from before the history began: everything comes, and the caller is told the
    // history ended before reaching it.
    let all = client
        .events_after(USER, 5, &no_limits(8))
        .await
        .expect("catch-up");
    assert_eq!(all.events.len(), 30);
    assert!(!all.reached_known);
}
