//! The events `test` reads: files or stdin in every shape a user may have
//! (a TLM, a whole daemon message, JSON lines), and the bundled samples.

use std::io::Read;
use std::path::Path;

use tracim_daemon_sdk::protocol::{DecodeError, Envelope, Event, Message};

/// One event read by `test`, with where it came from.
#[derive(Debug)]
pub(super) struct Input {
    pub(super) origin: String,
    pub(super) event: Event,
}

/// Reads events from a file's text: one JSON document (a TLM, or a whole
/// daemon_tracim_event message), or JSON lines of them. Returns the events that
/// could be read and a message for each that could not.
pub(super) fn parse_inputs(name: &str, text: &str) -> (Vec<Input>, Vec<String>) {
    let whole = text.trim();
    if whole.is_empty() {
        return (Vec::new(), vec![format!("{name}: no event in it")]);
    }
    let syntax = match serde_json::from_str::<serde::de::IgnoredAny>(whole) {
        Ok(_) => {
            return match parse_one(whole) {
                Ok(event) => (
                    vec![Input {
                        origin: name.to_owned(),
                        event,
                    }],
                    Vec::new(),
                ),
                Err(e) => (Vec::new(), vec![format!("{name}: {e}")]),
            };
        }
        Err(e) => e,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let json_lines = lines.clone().count() > 1
        && lines
            .next()
            .is_some_and(|(_, l)| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok());
    if !json_lines {
        // One document with a mistake: point at it.
        return (
            Vec::new(),
            vec![format!(
                "{name}:{}:{}: not JSON: {}",
                syntax.line(),
                syntax.column(),
                json_message(&syntax)
            )],
        );
    }
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_one(line.trim()) {
            Ok(event) => inputs.push(Input {
                origin: format!("{name}:{}", index + 1),
                event,
            }),
            Err(e) => errors.push(format!("{name}:{}: {e}", index + 1)),
        }
    }
    (inputs, errors)
}

/// serde_json's message without its " at line L column C" (said elsewhere).
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// One document: a TLM, or a daemon message that carries one.
fn parse_one(text: &str) -> Result<Event, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("not JSON: {} (column {})", json_message(&e), e.column()))?;
    let is_envelope = value.get("type").is_some() && value.get("event_type").is_none();
    if !is_envelope {
        return Event::from_text(text).map_err(|e| match e {
            DecodeError::Tlm(e) => format!("not a Tracim event: {}", json_message(&e)),
            other => other.to_string(),
        });
    }
    match Envelope::decode(text.as_bytes())
        .map_err(|e| e.to_string())?
        .message
    {
        Message::TracimEvent(event) => Ok(event),
        other => Err(format!(
            "a `{}` message, not daemon_tracim_event",
            other.kind()
        )),
    }
}

pub(super) fn read_input(file: &Path) -> Result<(String, String), String> {
    if file == Path::new("-") {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            eprintln!("reading events from stdin, Ctrl-D to end (or give files, or --sample TYPE)");
        }
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(("stdin".into(), text));
    }
    std::fs::read_to_string(file)
        .map(|text| (file.display().to_string(), text))
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// Shows a long value in part, saying how long it is.
pub(super) fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// The bundled sample of a type, or all of them.
pub(super) fn samples(name: &str) -> Result<Vec<Input>, String> {
    let chosen: Vec<&(&str, &str)> = crate::samples::SAMPLES
        .iter()
        .filter(|(event_type, _)| name == "all" || *event_type == name)
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = crate::samples::SAMPLES.iter().map(|(t, _)| *t).collect();
        return Err(format!(
            "no sample `{name}`; there are: all, {}",
            names.join(", ")
        ));
    }
    chosen
        .into_iter()
        .map(|(event_type, text)| {
            Event::from_text(*text)
                .map(|event| Input {
                    origin: format!("sample {event_type}"),
                    event,
                })
                .map_err(|e| format!("sample {event_type}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_in_every_shape() {
        let tlm = r#"{"event_id":1,"event_type":"a.b","fields":{}}"#;
        let ids = |(inputs, errors): (Vec<Input>, Vec<String>)| {
            assert!(errors.is_empty(), "{errors:?}");
            inputs.iter().map(|i| i.event.id()).collect::<Vec<_>>()
        };
        assert_eq!(ids(parse_inputs("f", &format!("{tlm}\n"))), [1]);
        let lines = format!(
            "{tlm}\n\n{}\n",
            tlm.replace("\"event_id\":1", "\"event_id\":2")
        );
        let (two, _) = parse_inputs("f", &lines);
        assert_eq!(two[1].origin, "f:3");
        let wire =
            include_str!("../../crates/tracim-daemon-sdk/tests/fixtures/wire/tracim_event.json");
        assert_eq!(ids(parse_inputs("w", wire)), [2]);
        let pretty = include_str!("../samples/content.created.file.json");
        assert_eq!(ids(parse_inputs("p", pretty)), [107]);

        // JSON lines: good lines are kept, a bad one is named.
        let (good, bad) = parse_inputs("b", &format!("{tlm}\n{{\"event_id\":1}}\nnope\n"));
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(
            bad[0],
            "b:2: not a Tracim event: missing field `event_type`"
        );
        assert!(
            bad[1].starts_with("b:3: not JSON: expected ident"),
            "{bad:?}"
        );

        // One pretty document with a mistake: one error, where it is.
        let broken = pretty.replace(
            "\"label\": \"Q3 report.pdf\",",
            "\"label\": \"Q3 report.pdf\"",
        );
        let (none, err) = parse_inputs("x.json", &broken);
        assert!(none.is_empty());
        assert_eq!(err.len(), 1, "{err:?}");
        assert!(
            err[0].starts_with("x.json:24:7: not JSON: expected `,` or `}`"),
            "{err:?}"
        );

        let (_, ping) = parse_inputs(
            "p",
            include_str!("../../crates/tracim-daemon-sdk/tests/fixtures/wire/ping.json"),
        );
        assert!(ping[0].contains("daemon_ping"), "{ping:?}");
        let (_, empty) = parse_inputs("e", "  \n");
        assert_eq!(empty, ["e: no event in it"]);
    }

    #[test]
    fn samples_by_type_or_all() {
        assert_eq!(samples("mention.created").unwrap()[0].event.id(), 112);
        assert_eq!(samples("all").unwrap().len(), 18);
        assert!(samples("nope").unwrap_err().contains("mention.created"));
    }

    #[test]
    fn shorten_keeps_char_boundaries() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééé", 3), "é… (6 bytes in all)");
    }
}
