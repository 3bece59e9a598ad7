//! The environment a hook gets: the event flattened into `TRACIM_*` variables,
//! kept within a size budget so that exec never fails with E2BIG.
//!
//! One rule names every variable: `TRACIM_` + the JSON path joined with `_`,
//! upper-cased, every character outside `[A-Z0-9_]` made `_`. Array elements take
//! their index as a path part.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher as _;

use foldhash::fast::RandomState;

use tracim_daemon_sdk::protocol::{Event, Lookup};

/// The kernel refuses any single `NAME=value` string of 128 KiB or more
/// (`MAX_ARG_STRLEN`, counting its NUL).
pub const MAX_VARIABLE: usize = 128 * 1024;

/// Default for the total size of the `TRACIM_*` variables (`env_budget`).
pub const DEFAULT_BUDGET: usize = 256 * 1024;

/// How many variables a run's environment is first sized for.
const EXPECTED_VARIABLES: usize = 64;

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

/// Turns a path part into its variable-name form: upper-case ASCII, digits and `_`.
fn push_name_part(name: &mut String, part: &str) {
    name.extend(part.chars().map(|c| match c.to_ascii_uppercase() {
        c @ ('A'..='Z' | '0'..='9' | '_') => c,
        _ => '_',
    }));
}

/// The top-level keys every hook can count on, set (empty when absent) and first.
const ALWAYS: [&str; 4] = ["event_id", "event_type", "created", "read"];

/// Every scalar of the event as (`TRACIM_…` name, text), in the event's order,
/// straight from its text as received: nothing of it is copied on the way, and a
/// number is the very text the daemon sent.
pub fn for_each_scalar(event: &Event, mut f: impl FnMut(&str, Cow<'_, str>)) {
    // The top level read once, for the keys that come first and for the walk.
    let top = event.top_level();
    let mut name = String::with_capacity(64);
    for key in ALWAYS {
        let text = match top.as_ref().and_then(|top| top.lookup(key)) {
            Some(Lookup::Scalar(text)) => text,
            _ => Cow::Borrowed(""),
        };
        name.clear();
        name.push_str("TRACIM_");
        push_name_part(&mut name, key);
        f(&name, text);
    }
    event.for_each_scalar(|path, text| {
        if let [key] = path
            && ALWAYS.contains(&key.as_ref())
        {
            return;
        }
        name.clear();
        name.push_str("TRACIM");
        for part in path {
            name.push('_');
            push_name_part(&mut name, part);
        }
        f(&name, text);
    });
}

/// The `TRACIM_*` variables of one run, and what the budget left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventVars {
    /// Variables in the order they are set; `TRACIM_OMITTED` is among them when
    /// anything was left out.
    pub vars: Vec<(String, String)>,
    /// The names left out (too large, past the budget, or holding a NUL byte),
    /// as far as `TRACIM_OMITTED` lists them.
    pub omitted: Vec<String>,
    /// How many were left out in all (a name past the list, left out by two
    /// paths, counts twice: past the list names are not kept).
    pub omitted_count: usize,
}

/// Builds the variables of one run within the budget as the scalars come, so
/// that a huge event costs time but never more memory than the budget.
struct Builder {
    budget: usize,
    total: usize,
    vars: Vec<(String, String)>,
    /// Where each variable set so far is in `vars`, by the hash of its name: a
    /// copy of each name as a key was a tenth of building a run's environment.
    /// Hashed with foldhash rather than SipHash, which was a sixth of it: the
    /// hashes are seeded per process, and the budget bounds how many there are.
    index: HashMap<u64, usize, RandomState>,
    hasher: RandomState,
    omitted: Vec<String>,
    /// The names in `omitted`, to take one out again when a later path sets
    /// it, or not to list it twice. Bounded like the list itself.
    listed: HashSet<String, RandomState>,
    omitted_list_len: usize,
    omitted_count: usize,
}

impl Builder {
    /// Sized for a usual event (the samples flatten to 10 to 45 scalars, and five
    /// variables are the runner's), so that most runs never grow these.
    fn new(budget: usize) -> Builder {
        Builder {
            budget,
            total: 0,
            vars: Vec::with_capacity(EXPECTED_VARIABLES),
            index: HashMap::with_capacity_and_hasher(EXPECTED_VARIABLES, RandomState::default()),
            hasher: RandomState::default(),
            omitted: Vec::new(),
            listed: HashSet::default(),
            omitted_list_len: 0,
            omitted_count: 0,
        }
    }

    /// Where `name` is in `vars`, if it was set.
    fn find(&self, name: &str) -> Option<usize> {
        match self.index.get(&self.hasher.hash_one(name)) {
            Some(&i) if self.vars[i].0 == name => Some(i),
            // Another name of the same hash (one chance in 2^64) holds the entry.
            Some(_) => self.vars.iter().position(|(n, _)| n == name),
            None => None,
        }
    }

    fn omit(&mut self, name: &str) {
        if self.listed.contains(name) {
            return;
        }
        self.omitted_count += 1;
        if self.omitted_list_len + name.len() < MAX_OMITTED_LIST - 4 {
            self.omitted_list_len += name.len() + 1;
            self.omitted.push(name.to_owned());
            self.listed.insert(name.to_owned());
        }
    }

    /// A name set after all (a later path gave it a value that fits) is no
    /// longer left out. Only listed names can be taken back: past the list,
    /// names are merely counted, as keeping them all would cost memory
    /// without bound; such a count errs on the side of " ...".
    fn unomit(&mut self, name: &str) {
        if self.listed.remove(name) {
            self.omitted.retain(|n| n != name);
            self.omitted_list_len -= name.len() + 1;
            self.omitted_count -= 1;
        }
    }

    /// Sets `name`, or leaves it out when it is too large, holds a NUL, or
    /// would pass the budget. A name set again (two paths giving one name)
    /// takes the later value.
    fn set(&mut self, name: &str, value: Cow<'_, str>) {
        // name=value\0
        let size = name.len() + value.len() + 2;
        let replaced = match self.find(name) {
            Some(i) => {
                let old = &self.vars[i];
                self.total -= old.0.len() + old.1.len() + 2;
                Some(i)
            }
            None => None,
        };
        let fits = size < MAX_VARIABLE && self.total + size <= self.budget && !value.contains('\0');
        match (fits, replaced) {
            (true, Some(i)) => {
                self.total += size;
                self.vars[i].1 = value.into_owned();
            }
            (true, None) => {
                self.total += size;
                self.index
                    .entry(self.hasher.hash_one(name))
                    .or_insert(self.vars.len());
                self.vars.push((name.to_owned(), value.into_owned()));
                // An earlier path may have given this name a value left out.
                self.unomit(name);
            }
            (false, Some(i)) => {
                // The earlier value goes too: a later path gave this name.
                let key = self.hasher.hash_one(name);
                if self.index.get(&key) == Some(&i) {
                    self.index.remove(&key);
                }
                self.vars[i].0.clear();
                self.omit(name);
            }
            (false, None) => self.omit(name),
        }
    }
}

/// The `TRACIM_*` variables a hook gets for an event.
///
/// The named variables (`TRACIM_ENTITY_TYPE`, `TRACIM_HOOK_NAME`, …) come first
/// and win over a flattened variable of the same name, and `TRACIM_OMITTED` is
/// the runner's alone; of two flattened paths that give one name, the later
/// wins. Each variable over [`MAX_VARIABLE`], or holding a NUL, and every one
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
    let mut builder = Builder::new(budget);
    for (name, value) in named {
        builder.set(name, Cow::Borrowed(value));
    }
    for_each_scalar(event, |name, value| {
        let reserved = name == OMITTED || named.iter().any(|(n, _)| *n == name);
        if !reserved {
            builder.set(name, value);
        }
    });
    let mut vars: Vec<(String, String)> = builder
        .vars
        .into_iter()
        .filter(|(name, _)| !name.is_empty())
        .collect();
    if builder.omitted_count > 0 {
        let mut list = builder.omitted.join(" ");
        if builder.omitted.len() < builder.omitted_count {
            list.push_str(" ...");
        }
        vars.push((OMITTED.to_owned(), list));
    }
    EventVars {
        vars,
        omitted: builder.omitted,
        omitted_count: builder.omitted_count,
    }
}

/// The runner's own environment as hooks inherit it: everything but the service
/// manager's variables and any `TRACIM_*` (the runner's `TRACIM_HOOKS_LOG`, say).
pub fn inherited() -> std::sync::Arc<[(std::ffi::OsString, std::ffi::OsString)]> {
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
    use serde_json::Value;

    use super::*;

    fn fixture(name: &str) -> Event {
        let path = format!("{}/src/samples/{name}", env!("CARGO_MANIFEST_DIR"));
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
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/samples");
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
    fn one_variable_over_128_kib_is_omitted_even_within_a_larger_budget() {
        // The budget (1 MiB) leaves room for it: only the per-variable rule can
        // leave it out. One byte less (NAME=value and its NUL at 128 KiB - 1)
        // is passed whole.
        let name = "TRACIM_FIELDS_BIG";
        let fits = MAX_VARIABLE - 1 - name.len() - 2;
        for (len, passed) in [(fits, true), (fits + 1, false), (200 * 1024, false)] {
            let big = "x".repeat(len);
            let event = Event::from_text(format!(
                r#"{{"event_id":1,"event_type":"a.b","fields":{{"big":"{big}","label":"small"}}}}"#
            ))
            .unwrap();
            let vars = event_vars(&event, "h", "", 1024 * 1024);
            assert_eq!(get(&vars, name).is_some(), passed, "{len} bytes");
            assert_eq!(get(&vars, "TRACIM_FIELDS_LABEL"), Some("small"));
            let omitted = if passed { None } else { Some(name) };
            assert_eq!(get(&vars, "TRACIM_OMITTED"), omitted, "{len} bytes");
        }
    }

    #[test]
    fn two_names_of_one_hash_are_both_kept() {
        let mut b = Builder::new(DEFAULT_BUDGET);
        b.set("TRACIM_A", Cow::Borrowed("1"));
        // As if TRACIM_B hashed as TRACIM_A does: its slot holds TRACIM_A's place.
        let taken = b.hasher.hash_one("TRACIM_B");
        b.index.insert(taken, 0);
        assert_eq!(b.find("TRACIM_B"), None);
        b.set("TRACIM_B", Cow::Borrowed("2"));
        b.set("TRACIM_B", Cow::Borrowed("3"));
        assert_eq!(b.find("TRACIM_A"), Some(0));
        assert_eq!(b.find("TRACIM_B"), Some(1));
        let vars: Vec<(&str, &str)> = b
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(vars, [("TRACIM_A", "1"), ("TRACIM_B", "3")]);
        assert_eq!(b.total, "TRACIM_A=1\0".len() + "TRACIM_B=3\0".len());
    }

    #[test]
    fn a_name_left_out_then_set_by_a_later_path_is_not_listed() {
        // `®` and `é` both flatten to `_`: the first value holds a NUL and is
        // left out, the later one is set, so TRACIM_OMITTED must not name it.
        // (Found by the property test: {"®":["\u0000"],"é":[null]}.)
        let event = Event::from_text(
            r#"{"event_id":1,"event_type":"a.b","fields":{},"®":["\u0000"],"é":[null]}"#,
        )
        .unwrap();
        let vars = event_vars(&event, "h", "", DEFAULT_BUDGET);
        assert_eq!(get(&vars, "TRACIM___0"), Some(""));
        assert_eq!(get(&vars, "TRACIM_OMITTED"), None);
        assert!(vars.omitted.is_empty());
        assert_eq!(vars.omitted_count, 0);

        // Set, replaced by a value left out, set again: set, and not listed;
        // another name left out stays listed, once.
        let event = Event::from_text(
            r#"{"event_id":1,"event_type":"a.b","fields":{"a":{"b":"1"},"a-b":"x\u0000","a_b":"3","c":"\u0000","c_":{"":"\u0000"}}}"#,
        )
        .unwrap();
        let vars = event_vars(&event, "h", "", DEFAULT_BUDGET);
        assert_eq!(get(&vars, "TRACIM_FIELDS_A_B"), Some("3"));
        assert_eq!(
            get(&vars, "TRACIM_OMITTED"),
            Some("TRACIM_FIELDS_C TRACIM_FIELDS_C__")
        );
        assert_eq!(vars.omitted_count, 2);
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
    fn later_paths_win_and_a_replaced_variable_still_keeps_to_the_budget() {
        // `fields.a.b` and `fields.a_b` both give TRACIM_FIELDS_A_B; keys come
        // in the order of the event's text, and the later wins.
        let event = Event::from_text(
            r#"{"event_id":1,"event_type":"a.b","fields":{"a":{"b":"first"},"a_b":"second"}}"#,
        )
        .unwrap();
        let vars = event_vars(&event, "h", "", DEFAULT_BUDGET);
        assert_eq!(get(&vars, "TRACIM_FIELDS_A_B"), Some("second"));
        assert_eq!(
            vars.vars
                .iter()
                .filter(|(k, _)| k == "TRACIM_FIELDS_A_B")
                .count(),
            1
        );
        let big = "x".repeat(200 * 1024);
        let event = Event::from_text(format!(
            r#"{{"event_id":1,"event_type":"a.b","fields":{{"a":{{"b":"small"}},"a_b":"{big}"}}}}"#
        ))
        .unwrap();
        let vars = event_vars(&event, "h", "", DEFAULT_BUDGET);
        assert_eq!(get(&vars, "TRACIM_FIELDS_A_B"), None);
        assert_eq!(get(&vars, "TRACIM_OMITTED"), Some("TRACIM_FIELDS_A_B"));
        assert!(vars.vars.iter().all(|(k, _)| !k.is_empty()));
    }

    #[test]
    fn a_flood_of_fields_costs_no_more_memory_than_the_budget() {
        let items: Vec<String> = (0..200_000).map(|i| i.to_string()).collect();
        let event = Event::from_text(format!(
            r#"{{"event_id":1,"event_type":"a.b","fields":{{"list":[{}]}}}}"#,
            items.join(",")
        ))
        .unwrap();
        let vars = event_vars(&event, "h", "", 4096);
        // Every scalar is either set or counted as left out: the 4 top-level
        // ones and the 200,000 items (the 5 named ones and TRACIM_OMITTED aside).
        assert_eq!(vars.omitted_count + (vars.vars.len() - 5 - 1), 4 + 200_000);
        assert!(vars.omitted.len() < 2000, "{}", vars.omitted.len());
        let listed = get(&vars, "TRACIM_OMITTED").unwrap();
        assert!(listed.len() <= MAX_OMITTED_LIST && listed.ends_with(" ..."));
    }

    #[test]
    fn valid_names() {
        assert!(is_valid_name("A_B"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("A=B"));
        assert!(!is_valid_name("A\0"));
    }
}
