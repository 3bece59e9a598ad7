//! The simulator is as strict as Tracim, checked with raw HTTP over loopback TCP (no
//! client of ours in between): what it refuses, and the exact bytes of a stream's start.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracim_daemon_sdk::tracim::sim::{Endpoint, TracimSim};

/// Sends a raw request; returns the status and what arrived until `until` appears in the
/// answer or the server closes.
async fn raw(sim: &TracimSim, request: String, until: &str) -> (u16, String) {
    let mut socket = TcpStream::connect(sim.addr()).await.expect("connect");
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 65536];
        loop {
            let n = socket.read(&mut buf).await.expect("read");
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&answer).contains(until) {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("an answer in time");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn get(path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: tracim\r\n{headers}\r\n")
}

fn post_login(body: &str) -> String {
    format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const BASIC: &str = "Authorization: Basic aG9va3M6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ==\r\n";

#[tokio::test]
async fn refuses_what_tracim_refuses() {
    let sim = sim().await;
    let stream = "/api/users/1/live_messages";
    let cases = [
        (get(stream, BASIC), 400, "no Accept: text/event-stream"),
        (
            get(stream, &format!("{BASIC}Accept: application/json\r\n")),
            400,
            "wrong Accept",
        ),
        (
            get(stream, "Accept: text/event-stream\r\n"),
            401,
            "not authenticated",
        ),
        (
            get(
                "/api/users/2/live_messages",
                &format!("{BASIC}Accept: text/event-stream\r\n"),
            ),
            403,
            "someone else's",
        ),
        (
            get(
                &format!("{stream}?after_event_id=x"),
                &format!("{BASIC}Accept: text/event-stream\r\n"),
            ),
            400,
            "bad after_event_id",
        ),
        (
            get("/api/users/1/messages", ""),
            401,
            "history not authenticated",
        ),
        (
            get("/api/users/1/messages?after_event_id=3", BASIC),
            400,
            "history has no after_event_id",
        ),
        (get("/api/users/1/messages?count=0", BASIC), 400, "count 0"),
        (
            get("/api/users/1/messages?page_token=garbage", BASIC),
            400,
            "bad page token",
        ),
        (
            get("/api/auth/whoami", "Cookie: session_key=forged\r\n"),
            401,
            "unknown session",
        ),
        (
            get(
                "/api/auth/whoami",
                "Tracim-Api-Key: wrong\r\nTracim-Api-Login: hooks\r\n",
            ),
            401,
            "wrong API key",
        ),
        (
            get(
                "/api/auth/whoami",
                "Authorization: Basic aG9va3M6bm9wZQ==\r\n",
            ),
            401,
            "wrong password",
        ),
        (get("/api/auth/login", ""), 404, "login is a POST"),
        (
            post_login(r#"{"password":"x"}"#),
            400,
            "login without a user",
        ),
        (
            post_login(r#"{"username":"hooks","password":"nope"}"#),
            403,
            "wrong password at login",
        ),
        (post_login("not json"), 400, "login body not JSON"),
    ];
    for (request, status, why) in cases {
        let (got, text) = raw(&sim, request, "\u{0}").await;
        assert_eq!(got, status, "{why}: {text}");
    }
    assert_eq!(sim.open_streams(USER), 0);
    assert!(sim.requests(Endpoint::Stream) >= 5);
}

#[tokio::test]
async fn a_stream_starts_as_tracims_with_a_bare_unordered_backlog() {
    let sim = sim().await;
    let before = sim.publish(USER, "user.modified");
    let ids: Vec<u64> = (0..40)
        .map(|_| sim.publish(USER, "content.created.comment"))
        .collect();
    sim.set_keep_alive(Duration::from_millis(20));
    let request = get(
        &format!("/api/users/1/live_messages?after_event_id={before}"),
        &format!("{BASIC}Accept: text/event-stream\r\n"),
    );
    // The first keep-alive comes after the whole first body.
    let (status, text) = raw(&sim, request, "event: keep-alive").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Content-Type: text/event-stream\r\n"));
    assert!(text.contains("Transfer-Encoding: chunked\r\n"));
    let body_start = text
        .find(":Tracim Live Messages for user 1\n\nevent: stream-open\ndata:\n\n")
        .expect("stream head");
    let backlog = &text[body_start..];
    assert!(
        !backlog.contains("event: message"),
        "the backlog has no event lines"
    );
    // Bare `data:` blocks, no space after the colon, as Tracim writes them.
    let order: Vec<u64> = backlog
        .split("\n\ndata:")
        .skip(1)
        .filter_map(|block| block.split('\n').next())
        .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .filter_map(|tlm| tlm["event_id"].as_u64())
        .collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ids);
    assert_ne!(order, ids, "shuffled");
}

#[tokio::test]
async fn after_event_id_0_sends_no_backlog_as_in_tracims_code() {
    let sim = sim().await;
    sim.set_keep_alive(Duration::from_millis(20));
    sim.publish(USER, "content.created.comment");
    let request = get(
        "/api/users/1/live_messages?after_event_id=0",
        &format!("{BASIC}Accept: text/event-stream\r\n"),
    );
    let (status, text) = raw(&sim, request, "event: keep-alive").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("event: stream-open") && !text.contains("\"event_id\""),
        "{text}"
    );
}

#[tokio::test]
async fn history_pages_newest_first_with_tokens() {
    let sim = sim().await;
    let ids: Vec<u64> = (0..5)
        .map(|_| sim.publish(USER, "reaction.created"))
        .collect();
    let (status, text) = raw(&sim, get("/api/users/1/messages?count=2", BASIC), "\u{0}").await;
    assert_eq!(status, 200);
    let body: serde_json::Value =
        serde_json::from_str(&text[text.find("\r\n\r\n").expect("body") + 4..]).expect("json");
    let page: Vec<u64> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["event_id"].as_u64())
        .collect();
    assert_eq!(page, vec![ids[4], ids[3]]);
    assert_eq!(
        (body["has_next"].as_bool(), body["per_page"].as_u64()),
        (Some(true), Some(2))
    );
    let token = body["next_page_token"].as_str().expect("token").to_string();
    let encoded: String = url_encode(&token);
    let (_, text) = raw(
        &sim,
        get(
            &format!("/api/users/1/messages?count=2&page_token={encoded}"),
            BASIC,
        ),
        "\u{0}",
    )
    .await;
    let body: serde_json::Value =
        serde_json::from_str(&text[text.find("\r\n\r\n").expect("body") + 4..]).expect("json");
    let page: Vec<u64> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["event_id"].as_u64())
        .collect();
    assert_eq!(page, vec![ids[2], ids[1]]);
    assert_eq!(body["has_previous"].as_bool(), Some(true));
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
