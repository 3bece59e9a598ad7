//! The protocol against byte-exact captures of the daemon, and hostile shapes.

use super::*;

const WIRE_EVENT: &[u8] = include_bytes!("../../tests/fixtures/wire/tracim_event.json");

#[test]
fn decodes_every_wire_capture() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wire");
    let expected = [
        ("account_info.json", "daemon_account_info"),
        ("ack.json", "daemon_ack"),
        ("client_added.json", "daemon_client_added"),
        ("client_deleted.json", "daemon_client_deleted"),
        ("clients.json", "daemon_clients"),
        ("ping.json", "daemon_ping"),
        ("pong.json", "daemon_pong"),
        ("tracim_event.json", "daemon_tracim_event"),
    ];
    for (file, kind) in expected {
        let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
        let envelope = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(envelope.message.kind(), kind, "{file}");
        assert_eq!(envelope.path, "/home/user/.config/TracimDaemon/master.sock");
    }
}

#[test]
fn event_string_is_unescaped_once_and_kept_verbatim() {
    let envelope = Envelope::decode(WIRE_EVENT).unwrap();
    let Message::TracimEvent(event) = envelope.message else {
        panic!("not an event")
    };
    assert_eq!(event.id(), 2);
    assert_eq!(event.event_type(), "mention.created");
    // Go's \u003c escapes are undone by the string decoding, and the inner
    // escapes (\" and \u00e9) stay as the TLM's own text.
    assert!(event.raw().contains(r#""raw_content":"<p>hi @hooks</p>""#));
    assert!(event.raw().contains(r#"John \"Q\" Doe \u00e9"#));
    let author = event.lookup("fields.author.public_name").unwrap();
    assert_eq!(author.scalar_text().unwrap(), "John \"Q\" Doe é");
}

#[test]
fn event_as_object_is_taken_too() {
    let bytes = br#"{"path":"/m","type":"daemon_tracim_event","data":{"event_id":5,"event_type":"user.created","fields":{}}}"#;
    let Message::TracimEvent(event) = Envelope::decode(bytes).unwrap().message else {
        panic!()
    };
    assert_eq!(event.id(), 5);
    assert_eq!(
        event.raw(),
        r#"{"event_id":5,"event_type":"user.created","fields":{}}"#
    );
}

#[test]
fn registration_is_encoded_as_the_daemon_expects() {
    let msg = Envelope::new(
        "/run/user/1000/tracim-hooks.sock",
        Message::ClientAdd(ClientInfo {
            path: "/run/user/1000/tracim-hooks.sock".into(),
            pid: "4241".into(),
        }),
    );
    assert_eq!(
        String::from_utf8(msg.encode()).unwrap(),
        r#"{"path":"/run/user/1000/tracim-hooks.sock","type":"daemon_client_add","data":{"path":"/run/user/1000/tracim-hooks.sock","pid":"4241"}}"#
    );
    let ping = Envelope::new("/m", Message::Pong);
    assert_eq!(ping.encode(), br#"{"path":"/m","type":"daemon_pong"}"#);
}

#[test]
fn round_trips_every_kind() {
    let event = Event::from_text(r#"{"event_id":1,"event_type":"a.b","fields":{}}"#).unwrap();
    let info = ClientInfo {
        path: "/p".into(),
        pid: "1".into(),
    };
    let messages = [
        Message::ClientAdd(info.clone()),
        Message::ClientDelete(info.clone()),
        Message::Ping,
        Message::Pong,
        Message::Ack,
        Message::GetClients,
        Message::Clients(vec![info.clone()]),
        Message::GetAccountInfo,
        Message::AccountInfo(AccountInfo {
            user_id: "1".into(),
        }),
        Message::TracimEvent(event),
        Message::ClientAdded(info.clone()),
        Message::ClientDeleted(info),
        Message::Other {
            kind: "daemon_do_request".into(),
            data: Some(serde_json::json!({"x": 1})),
        },
    ];
    for message in messages {
        let envelope = Envelope::new("/m", message);
        assert_eq!(Envelope::decode(&envelope.encode()).unwrap(), envelope);
    }
}

#[test]
fn wrong_shapes_are_errors_not_panics() {
    let cases: &[&[u8]] = &[
        b"",
        b"garbage",
        b"{\"path\":\"/m\",\"type\":\"daemon_tracim_event\",\"data\":\"{\\\"event_id\\\":1,\\\"",
        br#"{"path":"/m","type":"daemon_tracim_event","data":5}"#,
        br#"{"path":"/m","type":"daemon_tracim_event","data":"{\"event_id\":1,\"fields\":{}}"}"#,
        br#"{"path":"/m","type":"daemon_tracim_event","data":"{\"event_id\":1,\"event_type\":7,\"fields\":{}}"}"#,
        br#"{"path":"/m","type":"daemon_tracim_event","data":"{\"event_id\":1,\"event_type\":\"a\",\"fields\":[]}"}"#,
        br#"{"path":"/m","type":"daemon_tracim_event","data":"not json"}"#,
        br#"{"path":"/m","type":"daemon_tracim_event"}"#,
        b"{\"path\":\"/m\",\"type\":\"daemon_ping\",\"x\":\"\xff\xfe\"}",
        br#"{"path":"/m","type":"daemon_client_add","data":{"path":"/c","pid":42}}"#,
        br#"[1,2,3]"#,
    ];
    for case in cases {
        assert!(
            Envelope::decode(case).is_err(),
            "{:?} decoded",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn what_the_arrival_check_accepts_decodes_whole() {
    // Each case says whether it is an event: the check on arrival and the
    // whole decoding must both say so, so that an event taken on arrival
    // never fails to decode later, and the refusals stay refused.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases = [
        (
            r#"{"event_id":1,"event_type":"a.b","fields":{"x":1}}"#.to_owned(),
            true,
        ),
        (
            format!(r#"{{"event_id":1,"event_type":"a.b","fields":{{}},"z":{deep}}}"#),
            false,
        ),
        (
            format!(r#"{{"event_id":1,"event_type":"a.b","fields":{{"x":{deep}}}}}"#),
            false,
        ),
        (
            // Valid JSON, out of f64's range: taken, its text kept (issue 15).
            r#"{"event_id":1,"event_type":"a.b","fields":{},"z":1e400}"#.to_owned(),
            true,
        ),
        (
            r#"{"event_id":1,"event_type":"a.b","fields":{"x":-1e400}}"#.to_owned(),
            true,
        ),
        (
            r#"{"event_id":1,"event_type":"a.b","fields":null}"#.to_owned(),
            false,
        ),
        (
            r#"{"event_id":1,"event_type":"a.b","created":5,"fields":{}}"#.to_owned(),
            false,
        ),
        (
            r#"{"event_id":1,"event_type":"a.b","read":null}"#.to_owned(),
            true,
        ),
        (
            r#"{"event_id":1,"event_id":2,"event_type":"a.b"}"#.to_owned(),
            false,
        ),
        (
            r#"{"event_id":1,"event_type":"a.b","z":1,"z":2}"#.to_owned(),
            true,
        ),
        (r#"{"event_id":1,"event_type":"a.b"}"#.to_owned(), true),
    ];
    for (case, is_event) in cases {
        let arrival = Event::from_text(case.as_str());
        let whole = serde_json::from_str::<Tlm>(&case);
        assert_eq!(
            arrival.is_ok(),
            is_event,
            "on arrival: {case:.80}: {arrival:?}"
        );
        assert_eq!(whole.is_ok(), is_event, "whole: {case:.80}: {whole:?}");
    }
    // A key written with escapes is the same key, on arrival and whole.
    let text = r#"{"event\u005fid":7,"\u0065vent_type":"a.b","fields":{"\u0078":1}}"#;
    assert!(text.contains("\\u005f"));
    let escaped = Event::from_text(text).unwrap();
    assert_eq!(escaped.id(), 7);
    assert_eq!(escaped.event_type(), "a.b");
    assert_eq!(escaped.tlm().fields["x"], 1);
}

#[test]
fn unknown_keys_are_kept() {
    let event =
        Event::from_text(r#"{"event_id":1,"event_type":"a.b","fields":{},"new_key":[1]}"#).unwrap();
    assert_eq!(event.tlm().extra["new_key"], serde_json::json!([1]));
    assert_eq!(event.tlm().event_type_parts(), ("a", "b", ""));
    assert_eq!(event.lookup("new_key.0"), Some(Lookup::Scalar("1".into())));
    assert_eq!(event.lookup("new_key"), Some(Lookup::Array));
    assert_eq!(event.lookup("fields"), Some(Lookup::Object));
}

#[test]
fn lookup_walks_paths() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/content.created.file.json"
    ))
    .unwrap();
    let event = Event::from_text(text).unwrap();
    let text_of = |p: &str| {
        event
            .lookup(p)
            .and_then(|l| l.scalar_text().map(str::to_owned))
    };
    assert_eq!(text_of("event_id").as_deref(), Some("107"));
    assert_eq!(
        text_of("fields.workspace.label").as_deref(),
        Some("Engineering")
    );
    assert_eq!(text_of("fields.content.size").as_deref(), Some("48213"));
    assert_eq!(text_of("fields.author.is_active").as_deref(), Some("true"));
    assert_eq!(text_of("read").as_deref(), Some(""));
    assert_eq!(text_of("fields.content.sub_content_types.0"), None);
    assert_eq!(text_of("fields.nope.x"), None);
    assert_eq!(text_of("fields.content"), None);
}

#[test]
fn numbers_keep_their_json_text_and_none_is_refused() {
    // Whatever the number, hooks and conditions see it as the daemon sent it.
    let text = r#"{"event_id":5,"event_type":"a.b","fields":{"big":123456789012345678901234567890,"negzero":-0,"exp":1E2,"tiny":1e-400,"huge":1e400,"frac":0.1,"int":42,"list":[1.50]}}"#;
    let event = Event::from_text(text.to_owned()).expect("every valid JSON number is taken");
    let text_at = |path: &str| {
        event
            .lookup(path)
            .and_then(|l| l.scalar_text().map(str::to_owned))
    };
    assert_eq!(
        text_at("fields.big").as_deref(),
        Some("123456789012345678901234567890")
    );
    assert_eq!(text_at("fields.negzero").as_deref(), Some("-0"));
    assert_eq!(text_at("fields.exp").as_deref(), Some("1E2"));
    assert_eq!(text_at("fields.tiny").as_deref(), Some("1e-400"));
    assert_eq!(text_at("fields.huge").as_deref(), Some("1e400"));
    assert_eq!(text_at("fields.frac").as_deref(), Some("0.1"));
    assert_eq!(text_at("fields.int").as_deref(), Some("42"));
    assert_eq!(text_at("fields.list.0").as_deref(), Some("1.50"));
    assert_eq!(event.raw(), text);
    // The same through a whole daemon message.
    let wire =
        serde_json::json!({"path": "/m", "type": "daemon_tracim_event", "data": text}).to_string();
    let Message::TracimEvent(event) = Envelope::decode(wire.as_bytes()).unwrap().message else {
        panic!("not an event");
    };
    assert_eq!(
        event
            .lookup("fields.huge")
            .and_then(|l| l.scalar_text().map(str::to_owned))
            .as_deref(),
        Some("1e400")
    );
}

#[test]
fn every_scalar_is_walked_once_in_order_with_its_text() {
    let text = " {\"event_id\" : 12 , \"event_type\":\"content.created.file\",
        \"fields\": {\"a\\\"b\": [1E2, -0, {\"x\": null, \"y\": [[], {}]}, \"t\\u00e9\\n\"],
        \"empty\": {}, \"ok\": true, \"no\":false, \"n\": 1.5e-3,
        \"s\": \"plain\", \"\": \"\"}} ";
    let event = Event::from_text(text.to_owned()).unwrap();
    let mut seen = Vec::new();
    event.for_each_scalar(|path, value| {
        seen.push((path.join("."), value.into_owned()));
    });
    let expected = [
        ("event_id", "12"),
        ("event_type", "content.created.file"),
        ("fields.a\"b.0", "1E2"),
        ("fields.a\"b.1", "-0"),
        ("fields.a\"b.2.x", ""),
        ("fields.a\"b.3", "té\n"),
        ("fields.ok", "true"),
        ("fields.no", "false"),
        ("fields.n", "1.5e-3"),
        ("fields.s", "plain"),
        ("fields.", ""),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, v)| (p.to_string(), v.to_string()))
        .collect();
    assert_eq!(seen, expected);
    // Each scalar's text is what a lookup of its path gives.
    assert_eq!(
        event.lookup("fields.n"),
        Some(Lookup::Scalar("1.5e-3".into()))
    );
}
