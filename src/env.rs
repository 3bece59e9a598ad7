//! The environment a hook gets: the event flattened into `TRACIM_*` variables,
//! kept within a size budget so that exec never fails with E2BIG.
//!
//! One rule names every variable: `TRACIM_` + the JSON path joined with `_`,
//! upper-cased, every character outside `[A-Z0-9_]` made `_`. Array elements take
//! their index as a path part.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;

use crate::protocol::Event;

/// The kernel refuses any single `NAME=value` string of 128 KiB or more
/// (`MAX_ARG_STRLEN`, counting its NUL).
pub const MAX_VARIABLE: usize = 128 * 1024;

/// Default for the total size of the `TRACIM_*` variables (`env_budget`).
pub const DEFAULT_BUDGET: usize = 256 * 1024;

/// The variable listing what the budget left out.
pub const OMITTED: &str = "TRACIM_OMITTED";

/// `TRACIM_OMITTED` itself stays well under the per-variable limit, however many
/// names it would list.
const MAX_OMITTED_LIST: usize = 32 * 1024;

/// Variables of the runner's own environment that belong to the runner's service
/// manager, not to the hooks: passing them on would let a hook speak for the runner.
pub const STRIPPED_FROM_HOOKS: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// The text of a scalar as a variable holds it: strings as they are, numbers as
/// JSON text, `true`/`false`, null as empty. Objects and arrays have none.
pub fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null => Some(Cow::Borrowed("")),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Turns a path part into its variable-name form: upper-case ASCII, digits and `_`.
fn push_name_part(name: &mut String, part: &str) {
    name.extend(part.chars().map(|c| match c.to_ascii_uppercase() {
        c @ ('A'..='Z' | '0'..='9' | '_') => c,
        _ => '_',
    }));
}

/// Every scalar of the value under `prefix`, in document order.
pub fn flatten_into(prefix: &mut String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let len = prefix.len();
                prefix.push('_');
                push_name_part(prefix, key);
                flatten_into(prefix, child, out);
                prefix.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let len = prefix.len();
                prefix.push('_');
                prefix.push_str(&index.to_string());
                flatten_into(prefix, child, out);
                prefix.truncate(len);
            }
        }
        scalar => {
            if let Some(text) = scalar_text(scalar) {
                out.push((prefix.clone(), text.into_owned()));
            }
        }
    }
}

/// Every scalar of the event as `(TRACIM_…, text)`, in the event's order.
pub fn flatten_event(event: &Event) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut prefix = String::from("TRACIM");
    flatten_into(&mut prefix, &event.tlm().to_value(), &mut out);
    out
}

/// The variable-name form of a dotted path, as [`flatten_event`] names it.
pub fn variable_name(dotted_path: &str) -> String {
    let mut name = String::from("TRACIM");
    for part in dotted_path.split('.') {
        name.push('_');
        push_name_part(&mut name, part);
    }
    name
}

/// The `TRACIM_*` variables of one run, and what the budget left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventVars {
    /// Variables in the order they are set; `TRACIM_OMITTED` is among them when
    /// anything was left out.
    pub vars: Vec<(String, String)>,
    /// Names left out (too large, past the budget, or holding a NUL byte).
    pub omitted: Vec<String>,
}

/// The `TRACIM_*` variables a hook gets for an event.
///
/// The named variables (`TRACIM_ENTITY_TYPE`, `TRACIM_HOOK_NAME`, …) come first and
/// win over a flattened variable of the same name; of two flattened paths that give
/// one name, the later wins. Then each variable over [`MAX_VARIABLE`], and every one
/// once the total would pass `budget`, is left out and listed in `TRACIM_OMITTED`.
pub fn event_vars(
    event: &Event,
    hook_name: &str,
    daemon_user_id: &str,
    budget: usize,
) -> EventVars {
    let (entity, operation, sub) = event.event_type_parts();
    let named = [
        ("TRACIM_ENTITY_TYPE", entity),
        ("TRACIM_CORE_EVENT_TYPE", operation),
        ("TRACIM_SUB_TYPE", sub),
        ("TRACIM_HOOK_NAME", hook_name),
        ("TRACIM_DAEMON_USER_ID", daemon_user_id),
    ];
    let mut candidates: Vec<(String, String)> = named
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut index: HashMap<String, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    for (name, value) in flatten_event(event) {
        match index.get(&name) {
            // The named variables and `TRACIM_OMITTED` are the runner's word alone.
            _ if name == OMITTED => {}
            Some(&i) if i < named.len() => {}
            Some(&i) => candidates[i].1 = value,
            None => {
                index.insert(name.clone(), candidates.len());
                candidates.push((name, value));
            }
        }
    }

    let mut result = EventVars::default();
    let mut total = 0usize;
    for (name, value) in candidates {
        // name=value\0
        let size = name.len() + value.len() + 2;
        if size >= MAX_VARIABLE || total + size > budget || value.contains('\0') {
            result.omitted.push(name);
            continue;
        }
        total += size;
        result.vars.push((name, value));
    }
    if !result.omitted.is_empty() {
        result
            .vars
            .push((OMITTED.to_owned(), omitted_list(&result.omitted)));
    }
    result
}

/// Space-separated names, cut with a final `...` before it could grow too large.
fn omitted_list(names: &[String]) -> String {
    let mut list = String::new();
    for name in names {
        if list.len() + name.len() + 4 > MAX_OMITTED_LIST {
            list.push_str(" ...");
            break;
        }
        if !list.is_empty() {
            list.push(' ');
        }
        list.push_str(name);
    }
    list
}

/// The runner's own environment as hooks inherit it: everything but the service
/// manager's variables and any `TRACIM_*` (the runner's `TRACIM_HOOKS_LOG`, say).
pub fn inherited() -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    use std::os::unix::ffi::OsStrExt;
    std::env::vars_os()
        .filter(|(name, _)| !STRIPPED_FROM_HOOKS.iter().any(|s| name == s))
        // TRACIM_* belongs to the event: none of the runner's own may pose as it.
        .filter(|(name, _)| !name.as_bytes().starts_with(b"TRACIM_"))
        .collect()
}

/// Whether a name can be set in an environment: not empty, no `=`, no NUL.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Event {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        Event::from_text(std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn get<'a>(vars: &'a EventVars, name: &str) -> Option<&'a str> {
        vars.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn flattening_rule_on_a_file_event() {
        let vars = event_vars(
            &fixture("content.created.file.json"),
            "h",
            "1",
            DEFAULT_BUDGET,
        );
        assert_eq!(get(&vars, "TRACIM_EVENT_ID"), Some("107"));
        assert_eq!(
            get(&vars, "TRACIM_EVENT_TYPE"),
            Some("content.created.file")
        );
        assert_eq!(
            get(&vars, "TRACIM_CREATED"),
            Some("2026-11-26T10:00:00.511Z")
        );
        assert_eq!(get(&vars, "TRACIM_READ"), Some(""));
        assert_eq!(get(&vars, "TRACIM_FIELDS_AUTHOR_USERNAME"), Some("jdoe"));
        assert_eq!(get(&vars, "TRACIM_FIELDS_AUTHOR_IS_ACTIVE"), Some("true"));
        assert_eq!(
            get(&vars, "TRACIM_FIELDS_CONTENT_LABEL"),
            Some("Q3 report.pdf")
        );
        assert_eq!(get(&vars, "TRACIM_FIELDS_CONTENT_SIZE"), Some("48213"));
        assert_eq!(get(&vars, "TRACIM_ENTITY_TYPE"), Some("content"));
        assert_eq!(get(&vars, "TRACIM_CORE_EVENT_TYPE"), Some("created"));
        assert_eq!(get(&vars, "TRACIM_SUB_TYPE"), Some("file"));
        assert_eq!(get(&vars, "TRACIM_HOOK_NAME"), Some("h"));
        assert_eq!(get(&vars, "TRACIM_DAEMON_USER_ID"), Some("1"));
        assert_eq!(get(&vars, "TRACIM_OMITTED"), None);
        // An empty array yields nothing.
        assert!(
            !vars
                .vars
                .iter()
                .any(|(k, _)| k.starts_with("TRACIM_FIELDS_CONTENT_SUB_CONTENT_TYPES"))
        );
    }

    #[test]
    fn flattening_rule_holds_on_every_sample() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            count += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let event = Event::from_text(text.clone()).unwrap();
            let vars = event_vars(&event, "h", "", DEFAULT_BUDGET);
            assert!(vars.omitted.is_empty(), "{path:?}");
            // Every scalar of the document appears under its rule name.
            let value: Value = serde_json::from_str(&text).unwrap();
            let mut expected = Vec::new();
            walk(&value, "TRACIM".into(), &mut expected);
            for (name, text) in expected {
                assert_eq!(get(&vars, &name), Some(text.as_str()), "{path:?} {name}");
            }
            for (name, _) in &vars.vars {
                assert!(
                    name.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                    "{name}"
                );
            }
        }
        assert_eq!(count, 18);

        // An independent statement of the rule, to check the real one against.
        fn walk(v: &Value, name: String, out: &mut Vec<(String, String)>) {
            match v {
                Value::Object(m) => {
                    for (k, c) in m {
                        let part: String = k
                            .to_uppercase()
                            .chars()
                            .map(|c| {
                                if c.is_ascii_alphanumeric() || c == '_' {
                                    c
                                } else {
                                    '_'
                                }
                            })
                            .collect();
                        walk(c, format!("{name}_{part}"), out);
                    }
                }
                Value::Array(a) => {
                    for (i, c) in a.iter().enumerate() {
                        walk(c, format!("{name}_{i}"), out);
                    }
                }
                Value::String(s) => out.push((name, s.clone())),
                Value::Null => out.push((name, String::new())),
                other => out.push((name, other.to_string())),
            }
        }
    }

    #[test]
    fn arrays_take_their_index() {
        let event = Event::from_text(
            r#"{"event_id":1,"event_type":"content.created","fields":{"content":{"sub_content_types":["file","thread"],"é-x":1}}}"#,
        )
        .unwrap();
        let vars = event_vars(&event, "h", "", DEFAULT_BUDGET);
        assert_eq!(
            get(&vars, "TRACIM_FIELDS_CONTENT_SUB_CONTENT_TYPES_0"),
            Some("file")
        );
        assert_eq!(
            get(&vars, "TRACIM_FIELDS_CONTENT_SUB_CONTENT_TYPES_1"),
            Some("thread")
        );
        assert_eq!(get(&vars, "TRACIM_FIELDS_CONTENT___X"), Some("1"));
        assert_eq!(get(&vars, "TRACIM_SUB_TYPE"), Some(""));
    }

    #[test]
    fn named_variables_win() {
        let event = Event::from_text(
            r#"{"event_id":1,"event_type":"a.b.c","fields":{},"hook_name":"evil","entity_type":"x"}"#,
        )
        .unwrap();
        let vars = event_vars(&event, "mine", "", DEFAULT_BUDGET);
        assert_eq!(get(&vars, "TRACIM_HOOK_NAME"), Some("mine"));
        assert_eq!(get(&vars, "TRACIM_ENTITY_TYPE"), Some("a"));
        assert_eq!(
            vars.vars
                .iter()
                .filter(|(k, _)| k == "TRACIM_HOOK_NAME")
                .count(),
            1
        );
    }

    #[test]
    fn a_300_kb_field_is_omitted_and_listed() {
        let big = "x".repeat(300 * 1024);
        let event = Event::from_text(format!(
            r#"{{"event_id":1,"event_type":"a.b","fields":{{"content":{{"raw_content":"{big}","label":"small"}}}}}}"#
        ))
        .unwrap();
        let vars = event_vars(&event, "h", "", DEFAULT_BUDGET);
        assert_eq!(get(&vars, "TRACIM_FIELDS_CONTENT_RAW_CONTENT"), None);
        assert_eq!(get(&vars, "TRACIM_FIELDS_CONTENT_LABEL"), Some("small"));
        assert_eq!(
            get(&vars, "TRACIM_OMITTED"),
            Some("TRACIM_FIELDS_CONTENT_RAW_CONTENT")
        );
    }

    #[test]
    fn the_total_budget_holds() {
        let fields: Vec<String> = (0..20_000)
            .map(|i| format!(r#""f{i}":"{}""#, "v".repeat(50)))
            .collect();
        let event = Event::from_text(format!(
            r#"{{"event_id":1,"event_type":"a.b","fields":{{{}}}}}"#,
            fields.join(",")
        ))
        .unwrap();
        let vars = event_vars(&event, "h", "", DEFAULT_BUDGET);
        let total: usize = vars
            .vars
            .iter()
            .filter(|(k, _)| k != "TRACIM_OMITTED")
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum();
        assert!(total <= DEFAULT_BUDGET, "{total}");
        assert!(!vars.omitted.is_empty());
        let omitted = get(&vars, "TRACIM_OMITTED").unwrap();
        assert!(omitted.len() <= MAX_OMITTED_LIST, "{}", omitted.len());
        assert!(omitted.ends_with(" ..."));
    }

    #[test]
    fn nul_bytes_are_omitted() {
        let event =
            Event::from_text(r#"{"event_id":1,"event_type":"a.b","fields":{"x":"a\u0000b"}}"#)
                .unwrap();
        let vars = event_vars(&event, "h", "", DEFAULT_BUDGET);
        assert_eq!(get(&vars, "TRACIM_FIELDS_X"), None);
        assert_eq!(get(&vars, "TRACIM_OMITTED"), Some("TRACIM_FIELDS_X"));
    }

    #[test]
    fn variable_names_of_paths() {
        assert_eq!(
            variable_name("fields.author.user_id"),
            "TRACIM_FIELDS_AUTHOR_USER_ID"
        );
        assert_eq!(
            variable_name("fields.content.sub_content_types.0"),
            "TRACIM_FIELDS_CONTENT_SUB_CONTENT_TYPES_0"
        );
        assert!(is_valid_name("A_B"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("A=B"));
        assert!(!is_valid_name("A\0"));
    }
}
