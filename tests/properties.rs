//! Properties of the two places where other people's bytes are taken apart: the
//! message decoder and the environment flattener.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tracim_daemon_sdk::protocol::{Envelope, Event, Message};
use tracim_daemon_sdk::sim::event_message;
use tracim_hooks::env::{MAX_VARIABLE, event_vars};

// ---------------------------------------------------------------------------
// Reproducible runs

/// The config of each property: `cases` runs (unless `PROPTEST_CASES` says
/// otherwise), failures saved to `tests/properties.proptest-regressions` (kept
/// in git, and replayed first on every run), and a seed said on every run, so
/// that a failure seen once can be replayed: `PROPTEST_RNG_SEED=<seed> cargo
/// test --test properties <name>`.
fn config(cases: u32) -> ProptestConfig {
    use proptest::test_runner::{FileFailurePersistence, RngSeed};
    use std::hash::{BuildHasher, RandomState};
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        // RandomState is seeded from the OS: a fresh seed each run.
        RngSeed::Random => RandomState::new().hash_one(std::process::id()),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    // Shown with the test's output when it fails.
    eprintln!(
        "proptest: {} cases, seed {seed} (replay: PROPTEST_RNG_SEED={seed})",
        config.cases
    );
    config
}

// ---------------------------------------------------------------------------
// Strategies

/// Object keys: plain, arbitrary Unicode (NUL, `=`, non-ASCII included), and
/// names that collide with the runner's own variables or with each other.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_]{1,10}",
        2 => any::<String>(),
        1 => prop::sample::select(vec![
            "omitted", "hook_name", "entity_type", "core_event_type", "sub_type",
            "daemon_user_id", "event_id", "fields", "a-b", "a_b", "A.B", "é", "",
            "0", "=", "\u{0}",
        ])
        .prop_map(str::to_owned),
    ]
}

/// String values: short arbitrary ones, ones with NULs, and long runs of one
/// character (up to 150 K characters, several bytes each at times).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => any::<String>(),
        2 => "[a\\x00=\n]{0,12}",
        1 => (any::<char>(), 0usize..150_000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The text of a TLM that decodes: the known keys with their types, any
/// `fields`, and unknown top-level keys of any value.
fn tlm_text() -> impl Strategy<Value = String> {
    (
        any::<u64>(),
        prop_oneof![3 => "[a-z_]{1,12}(\\.[a-z_]{1,10}){0,3}", 1 => any::<String>()],
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::btree_map(key(), json_value(), 0..8),
        prop::collection::btree_map(
            prop_oneof![
                1 => key(),
                1 => prop::sample::select(vec![
                    "omitted",
                    "omitted",
                    "hook_name",
                    "entity_type",
                    "daemon_user_id",
                    "fields_x",
                ])
                .prop_map(str::to_owned),
            ]
            .prop_filter("not a known key", |k| {
                !["event_id", "event_type", "created", "read", "fields"].contains(&k.as_str())
            }),
            json_value(),
            0..3,
        ),
    )
        .prop_map(|(id, event_type, created, read, fields, extra)| {
            let mut tlm = Map::new();
            tlm.insert("event_id".into(), id.into());
            tlm.insert("event_type".into(), event_type.into());
            tlm.insert("created".into(), created.into());
            tlm.insert("read".into(), read.into());
            tlm.insert("fields".into(), Value::Object(fields.into_iter().collect()));
            for (k, v) in extra {
                tlm.insert(k, v);
            }
            Value::Object(tlm).to_string()
        })
}

const KINDS: [&str; 14] = [
    "daemon_client_add",
    "daemon_client_delete",
    "daemon_ping",
    "daemon_pong",
    "daemon_ack",
    "daemon_get_clients",
    "daemon_clients",
    "daemon_get_account_info",
    "daemon_account_info",
    "daemon_tracim_event",
    "daemon_client_added",
    "daemon_client_deleted",
    "daemon_do_request",
    "client_add",
];

/// `data` of every wrong shape: any value, any value's text as a string, a TLM
/// with one key of the wrong type, or a TLM's text cut short.
fn data() -> impl Strategy<Value = Value> {
    let wrong_tlm = (
        prop::sample::select(vec!["event_id", "event_type", "created", "read", "fields"]),
        json_value(),
    )
        .prop_map(|(k, v)| {
            let mut tlm = json!({"event_id": 1, "event_type": "a.b", "fields": {}});
            tlm[k] = v;
            Value::String(tlm.to_string())
        });
    prop_oneof![
        3 => json_value(),
        2 => json_value().prop_map(|v| Value::String(v.to_string())),
        2 => wrong_tlm,
        1 => (tlm_text(), any::<prop::sample::Index>()).prop_map(|(t, i)| {
            let mut cut = i.index(t.len().max(1));
            while !t.is_char_boundary(cut) {
                cut -= 1;
            }
            Value::String(t[..cut].to_owned())
        }),
        1 => Just(json!({"path": "/c", "pid": "1"})),
    ]
}

/// Envelopes of the right outline with anything inside, keys sometimes left
/// out or of the wrong type.
fn envelope_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::option::of(
            prop_oneof![4 => "/[a-z/]{0,20}".prop_map(Value::from), 1 => json_value()],
        ),
        prop::option::of(prop_oneof![
            6 => prop::sample::select(KINDS.to_vec()).prop_map(Value::from),
            1 => json_value(),
        ]),
        prop::option::of(data()),
    )
        .prop_map(|(path, kind, data)| {
            let mut map = Map::new();
            if let Some(p) = path {
                map.insert("path".into(), p);
            }
            if let Some(k) = kind {
                map.insert("type".into(), k);
            }
            if let Some(d) = data {
                map.insert("data".into(), d);
            }
            Value::Object(map).to_string().into_bytes()
        })
}

// ---------------------------------------------------------------------------
// The decoder

/// What every decoded message must satisfy: an event's text is a TLM, and the
/// message survives encoding and decoding again unchanged.
fn check_decoded(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(envelope) = Envelope::decode(bytes) else {
        return Ok(());
    };
    if let Message::TracimEvent(event) = &envelope.message {
        let tlm: Value = serde_json::from_str(event.raw())
            .map_err(|e| TestCaseError::fail(format!("raw TLM is not JSON: {e}")))?;
        prop_assert_eq!(tlm["event_id"].as_u64(), Some(event.id()));
        prop_assert_eq!(tlm["event_type"].as_str(), Some(event.event_type()));
    }
    let again = Envelope::decode(&envelope.encode())
        .map_err(|e| TestCaseError::fail(format!("re-encoded message does not decode: {e}")))?;
    prop_assert_eq!(again, envelope);
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_decoded(&bytes)?;
    }

    #[test]
    fn decoding_json_like_soup_never_panics(text in "[{}\\[\\]\":,0-9a-z_\\\\ .-]{0,300}") {
        check_decoded(text.as_bytes())?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn decoding_envelopes_of_wrong_shapes_never_panics(bytes in envelope_bytes()) {
        check_decoded(&bytes)?;
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn a_byte_cut_or_flipped_in_an_event_never_panics(
        tlm in tlm_text(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let bytes = event_message(Path::new("/m"), &tlm);
        let i = at.index(bytes.len());
        check_decoded(&bytes[..i])?;
        let mut flipped = bytes.clone();
        flipped[i] = byte;
        check_decoded(&flipped)?;
    }

    #[test]
    fn every_event_as_the_daemon_sends_it_decodes_to_its_own_text(tlm in tlm_text()) {
        let bytes = event_message(Path::new("/home/u/.config/TracimDaemon/master.sock"), &tlm);
        let envelope = Envelope::decode(&bytes)
            .map_err(|e| TestCaseError::fail(format!("{e}: {tlm}")))?;
        prop_assert_eq!(&envelope.path, "/home/u/.config/TracimDaemon/master.sock");
        let Message::TracimEvent(event) = envelope.message else {
            return Err(TestCaseError::fail("not an event"));
        };
        prop_assert_eq!(event.raw(), tlm.as_str());
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [200, 10_000, 1_000_000] {
        let open = "[".repeat(depth);
        let close = "]".repeat(depth);
        let cases = [
            format!("{open}{close}"),
            format!(r#"{{"path":"/m","type":"daemon_do_request","data":{open}{close}}}"#),
            format!(r#"{{"path":"/m","type":"daemon_clients","data":{open}{close}}}"#),
            format!(
                r#"{{"path":"/m","type":"daemon_tracim_event","data":{{"event_id":1,"event_type":"a","fields":{{"x":{open}{close}}}}}}}"#
            ),
            format!(
                r#"{{"path":"/m","type":"daemon_tracim_event","data":"{{\"event_id\":1,\"event_type\":\"a\",\"fields\":{{\"x\":{open}{close}}}}}"}}"#
            ),
        ];
        for case in &cases {
            assert!(
                Envelope::decode(case.as_bytes()).is_err(),
                "depth {depth} decoded: {}…",
                &case[..80.min(case.len())]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The flattener

fn is_variable_name(name: &str) -> bool {
    name.starts_with("TRACIM_")
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn flattened_variables_are_always_fit_for_exec(
        tlm in tlm_text(),
        hook_name in prop_oneof![3 => "[a-z-]{1,12}", 1 => any::<String>()],
        user_id in prop_oneof![3 => "[0-9]{0,4}", 1 => any::<String>()],
        budget in prop_oneof![
            1 => 0usize..64,
            3 => 0usize..600_000,
            1 => Just(tracim_hooks::env::DEFAULT_BUDGET),
        ],
    ) {
        let event = Event::from_text(tlm.clone())
            .map_err(|e| TestCaseError::fail(format!("{e}: {tlm}")))?;
        let vars = event_vars(&event, &hook_name, &user_id, budget);
        let mut total = 0usize;
        for (name, value) in &vars.vars {
            prop_assert!(is_variable_name(name), "bad name {:?}", name);
            prop_assert!(!value.contains('\0'), "{} holds a NUL", name);
            // NAME=VALUE, its NUL aside, under the kernel's 128 KiB.
            prop_assert!(
                name.len() + 1 + value.len() < MAX_VARIABLE,
                "{} is {} bytes", name, value.len()
            );
            if name != "TRACIM_OMITTED" {
                total += name.len() + value.len() + 2;
            }
        }
        prop_assert!(total <= budget, "{} bytes over a budget of {}", total, budget);
        for name in &vars.omitted {
            prop_assert!(is_variable_name(name), "bad omitted name {:?}", name);
        }
    }

    #[test]
    fn tracim_omitted_is_the_runners_word_alone(
        tlm in tlm_text(),
        // Tracim may add any top-level key, `omitted` too.
        own_omitted in prop::option::of(scalar()),
        budget in prop_oneof![1 => 0usize..2_000, 2 => Just(tracim_hooks::env::DEFAULT_BUDGET)],
    ) {
        let mut tlm: Value = serde_json::from_str(&tlm).unwrap();
        if let Some(v) = own_omitted {
            tlm["omitted"] = v;
        }
        let tlm = tlm.to_string();
        let event = Event::from_text(tlm.clone())
            .map_err(|e| TestCaseError::fail(format!("{e}: {tlm}")))?;
        let vars = event_vars(&event, "h", "1", budget);
        let mut names: Vec<&str> = vars.vars.iter().map(|(k, _)| k.as_str()).collect();
        let listed: Vec<&str> = vars
            .vars
            .iter()
            .filter(|(k, _)| k == "TRACIM_OMITTED")
            .map(|(_, v)| v.as_str())
            .collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        prop_assert_eq!(names.len(), count, "a variable is set twice");
        if vars.omitted.is_empty() {
            prop_assert!(listed.is_empty(), "TRACIM_OMITTED={:?} while nothing was omitted", listed);
        } else {
            prop_assert_eq!(listed.len(), 1);
            let said: Vec<&str> = listed[0].split(' ').filter(|n| *n != "...").collect();
            prop_assert!(!said.is_empty());
            for name in said {
                prop_assert!(vars.omitted.iter().any(|o| o == name), "{} listed, not omitted", name);
                prop_assert!(vars.vars.iter().all(|(k, _)| k != name), "{} listed and set", name);
            }
        }
    }
}

#[test]
fn an_event_key_cannot_pose_as_the_runners_omitted_list() {
    // Nothing is too big, yet the event itself carries `omitted`.
    let event = Event::from_text(
        r#"{"event_id":1,"event_type":"a.b","fields":{},"omitted":"TRACIM_FIELDS_AUTHOR_USER_ID"}"#,
    )
    .unwrap();
    let vars = event_vars(&event, "h", "1", tracim_hooks::env::DEFAULT_BUDGET);
    assert!(vars.omitted.is_empty());
    let set: Vec<&(String, String)> = vars
        .vars
        .iter()
        .filter(|(k, _)| k == "TRACIM_OMITTED")
        .collect();
    assert!(
        set.is_empty(),
        "TRACIM_OMITTED set from the event's own key: {set:?}"
    );
}
