//! Which hooks an event triggers: `on` globs over `event_type`, `where` conditions
//! over fields, and `skip_own`.
//!
//! All `on` patterns of all hooks are compiled into one [`GlobSet`] per config load,
//! so matching the type costs the same with 1 hook or 10,000; the `where`
//! conditions are only looked at for hooks whose type matched.

use std::fmt;
use std::sync::Arc;

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use tracim_daemon_sdk::protocol::{Event, Lookup};

use crate::hook::{Case, Hook};

mod known;
pub use known::{CONTENT_TYPES, ENTITIES, OPERATIONS, known_event_types, unknown_type_patterns};

/// A pattern that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub message: String,
}

fn compile(pattern: &str, case: Case) -> Result<Glob, PatternError> {
    let error = |message: String| PatternError {
        pattern: pattern.to_owned(),
        message,
    };
    GlobBuilder::new(pattern)
        .case_insensitive(case == Case::Insensitive)
        .build()
        .map_err(|e| error(format!("bad glob `{pattern}`: {}", e.kind())))
}

/// Splits a leading `!` (an exclusion) from a pattern.
fn split_negation(pattern: &str) -> (bool, &str) {
    match pattern.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    }
}

/// The characters that make a pattern a glob: without any of them it matches one
/// text, itself, and cannot fail to compile.
const GLOB_SYNTAX: [char; 6] = ['*', '?', '[', '{', '}', '\\'];

/// Checks one `on` pattern (with or without its `!`).
pub fn check_type_pattern(pattern: &str) -> Result<(), PatternError> {
    let glob = split_negation(pattern).1;
    if glob.is_empty() {
        return Err(PatternError {
            pattern: pattern.to_owned(),
            message: format!("empty event type pattern `{pattern}`"),
        });
    }
    if !glob.contains(GLOB_SYNTAX) {
        return Ok(());
    }
    compile(glob, Case::Sensitive).map(|_| ())
}

fn check_where_path(path: &str) -> Result<(), PatternError> {
    if path.split('.').any(str::is_empty) {
        return Err(PatternError {
            pattern: path.to_owned(),
            message: format!("bad `where` path `{path}`: parts are separated by single dots"),
        });
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct FieldGlob {
    text: String,
    negated: bool,
    matcher: GlobMatcher,
}

/// One `where` entry: a dotted path and the globs its text must (or, with `!`,
/// must not) match. Of several plain globs one must match; no `!` glob may match.
#[derive(Debug, Clone)]
pub struct Condition {
    path: String,
    globs: Vec<FieldGlob>,
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
            && self.globs.len() == other.globs.len()
            && self.globs.iter().zip(&other.globs).all(|(a, b)| {
                a.text == b.text && a.negated == b.negated && a.matcher.glob() == b.matcher.glob()
            })
    }
}

/// Why a condition did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionFailure {
    /// The path.
    pub path: String,
    /// The globs, as written.
    pub wanted: Vec<String>,
    /// What was found there.
    pub saw: Seen,
}

/// What a `where` path led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Nothing: the field is not in the event.
    Missing,
    /// An object or a list, which has no text to compare.
    Structure(&'static str),
    /// This text.
    Text(String),
}

impl fmt::Display for ConditionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wanted = self.wanted.join("\", \"");
        write!(f, "where {} = [\"{wanted}\"] saw ", self.path)?;
        match &self.saw {
            Seen::Text(text) => write!(f, "{text:?}"),
            Seen::Missing => f.write_str("no such field"),
            Seen::Structure(what) => write!(f, "{what}, which has no text: name a field inside it"),
        }
    }
}

impl Condition {
    /// Compiles a condition; the path must have no empty part.
    pub fn new(path: &str, globs: &[String], case: Case) -> Result<Condition, PatternError> {
        check_where_path(path)?;
        let globs = globs
            .iter()
            .map(|text| {
                let (negated, pattern) = split_negation(text);
                Ok(FieldGlob {
                    text: text.clone(),
                    negated,
                    matcher: compile(pattern, case)?.compile_matcher(),
                })
            })
            .collect::<Result<Vec<_>, PatternError>>()?;
        Ok(Condition {
            path: path.to_owned(),
            globs,
        })
    }

    /// What [`Condition::new`] would refuse, found without compiling the globs'
    /// regexes (globset's `compile_matcher` cannot fail once the glob parsed): a
    /// config load checks every hook, and only the matcher needs them compiled.
    pub fn check_syntax(path: &str, globs: &[String], case: Case) -> Result<(), PatternError> {
        check_where_path(path)?;
        for text in globs {
            compile(split_negation(text).1, case)?;
        }
        Ok(())
    }

    /// The dotted path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The globs as written.
    pub fn globs(&self) -> impl Iterator<Item = &str> {
        self.globs.iter().map(|g| g.text.as_str())
    }

    /// Whether it holds for this event; when not, what was seen.
    pub fn check(&self, event: &Event) -> Result<(), ConditionFailure> {
        let lookup = event.lookup(&self.path);
        let text = lookup.as_ref().and_then(|l| l.scalar_text());
        let mut any_positive = false;
        let mut positive_hit = false;
        let mut negative_hit = false;
        for glob in &self.globs {
            let hit = text.is_some_and(|t| glob.matcher.is_match(t));
            if glob.negated {
                negative_hit |= hit;
            } else {
                any_positive = true;
                positive_hit |= hit;
            }
        }
        if negative_hit || (any_positive && !positive_hit) {
            let saw = match (text, &lookup) {
                (Some(text), _) => Seen::Text(text.to_owned()),
                (None, Some(Lookup::Array)) => Seen::Structure("a list"),
                (None, Some(_)) => Seen::Structure("an object"),
                (None, None) => Seen::Missing,
            };
            Err(ConditionFailure {
                path: self.path.clone(),
                wanted: self.globs().map(str::to_owned).collect(),
                saw,
            })
        } else {
            Ok(())
        }
    }
}

/// What the matcher decided for one hook and one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The hook runs.
    Runs,
    /// No `on` pattern matched the type.
    NoTypeMatch {
        /// The patterns.
        patterns: Vec<String>,
    },
    /// An `!` pattern excluded the type.
    Excluded {
        /// The pattern that excluded it.
        pattern: String,
    },
    /// A `where` condition failed.
    Condition(ConditionFailure),
    /// `skip_own` and the author is the daemon's own account.
    OwnEvent {
        /// That account's user id.
        user_id: String,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Runs => f.write_str("runs"),
            Verdict::NoTypeMatch { patterns } if patterns.is_empty() => {
                f.write_str("on = []: it runs only when a hook it is the on_failure of fails")
            }
            Verdict::NoTypeMatch { patterns } => {
                write!(f, "event type matches none of on = {patterns:?}")
            }
            Verdict::Excluded { pattern } => write!(f, "event type excluded by \"{pattern}\""),
            Verdict::Condition(c) => c.fmt(f),
            Verdict::OwnEvent { user_id } => {
                write!(
                    f,
                    "skip_own: the author is the daemon's own account (user {user_id})"
                )
            }
        }
    }
}

/// The compiled rules of a whole config.
#[derive(Debug, Clone)]
pub struct Matcher {
    set: GlobSet,
    /// For each glob of `set`: its hook and whether it excludes.
    owners: Vec<(usize, bool)>,
    /// Hooks whose `on` has only exclusions: they take every other type.
    exclusion_only: Vec<usize>,
    hooks: Vec<Arc<Hook>>,
    /// Each hook's `where` conditions, compiled, by hook index.
    conditions: Vec<Vec<Condition>>,
}

impl Matcher {
    /// Compiles the rules of these hooks (their patterns were checked at load).
    pub fn new(hooks: &[Arc<Hook>]) -> Result<Matcher, PatternError> {
        let mut builder = GlobSetBuilder::new();
        let mut owners = Vec::new();
        let mut exclusion_only = Vec::new();
        let mut conditions = Vec::with_capacity(hooks.len());
        for (index, hook) in hooks.iter().enumerate() {
            conditions.push(
                hook.conditions
                    .iter()
                    .map(|w| Condition::new(&w.path, &w.globs, hook.where_case))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            let mut positives = 0;
            for pattern in &hook.on {
                let (negated, glob) = split_negation(pattern);
                builder.add(compile(glob, Case::Sensitive)?);
                owners.push((index, negated));
                positives += usize::from(!negated);
            }
            // `on = []` takes no event: the hook runs only as a failure hook.
            if positives == 0 && !hook.on.is_empty() {
                exclusion_only.push(index);
            }
        }
        let set = builder.build().map_err(|e| PatternError {
            pattern: String::new(),
            message: e.to_string(),
        })?;
        Ok(Matcher {
            set,
            owners,
            exclusion_only,
            hooks: hooks.to_vec(),
            conditions,
        })
    }

    /// Indices of the hooks whose `on` takes this type, in file order, before
    /// `where` and `skip_own`.
    fn type_matches(&self, event_type: &str) -> Vec<usize> {
        let mut hits: Vec<(usize, bool)> = self
            .set
            .matches(event_type)
            .into_iter()
            .map(|glob| self.owners[glob])
            .collect();
        hits.extend(self.exclusion_only.iter().map(|&hook| (hook, false)));
        hits.sort_unstable();
        let mut selected = Vec::new();
        let mut i = 0;
        while i < hits.len() {
            let hook = hits[i].0;
            let mut excluded = false;
            while i < hits.len() && hits[i].0 == hook {
                excluded |= hits[i].1;
                i += 1;
            }
            if !excluded {
                selected.push(hook);
            }
        }
        selected
    }

    fn decide_rest(&self, index: usize, event: &Event, daemon_user_id: &str) -> Verdict {
        let hook = &self.hooks[index];
        for condition in &self.conditions[index] {
            if let Err(failure) = condition.check(event) {
                return Verdict::Condition(failure);
            }
        }
        if hook.skip_own && !daemon_user_id.is_empty() {
            let author = event.lookup("fields.author.user_id");
            if author.as_ref().and_then(|l| l.scalar_text()) == Some(daemon_user_id) {
                return Verdict::OwnEvent {
                    user_id: daemon_user_id.to_owned(),
                };
            }
        }
        Verdict::Runs
    }

    /// The hooks this event runs, in file order.
    pub fn select(&self, event: &Event, daemon_user_id: &str) -> Vec<Arc<Hook>> {
        self.type_matches(event.event_type())
            .into_iter()
            .filter(|&i| self.decide_rest(i, event, daemon_user_id) == Verdict::Runs)
            .map(|i| self.hooks[i].clone())
            .collect()
    }

    /// The verdict for every hook, in file order, saying why each one that does not
    /// run does not.
    pub fn explain(&self, event: &Event, daemon_user_id: &str) -> Vec<(Arc<Hook>, Verdict)> {
        let selected = self.type_matches(event.event_type());
        self.hooks
            .iter()
            .enumerate()
            .map(|(index, hook)| {
                let verdict = if selected.binary_search(&index).is_ok() {
                    self.decide_rest(index, event, daemon_user_id)
                } else {
                    self.why_not_type(hook, event.event_type())
                };
                (hook.clone(), verdict)
            })
            .collect()
    }

    fn why_not_type(&self, hook: &Hook, event_type: &str) -> Verdict {
        for pattern in &hook.on {
            let (negated, glob) = split_negation(pattern);
            let hit = compile(glob, Case::Sensitive)
                .map(|g| g.compile_matcher().is_match(event_type))
                .unwrap_or(false);
            if negated && hit {
                return Verdict::Excluded {
                    pattern: pattern.clone(),
                };
            }
        }
        Verdict::NoTypeMatch {
            patterns: hook.on.clone(),
        }
    }

    /// Number of hooks.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// Whether there are no hooks.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::Where;

    /// A hook as plain data: `on` patterns, then `where` entries and flags.
    fn hook(name: &str, on: &[&str]) -> Hook {
        Hook {
            on: on.iter().map(|p| (*p).to_owned()).collect(),
            ..Hook::example(name)
        }
    }

    fn when(mut hook: Hook, path: &str, globs: &[&str]) -> Hook {
        hook.conditions.push(Where {
            path: path.into(),
            globs: globs.iter().map(|g| (*g).to_owned()).collect(),
        });
        hook
    }

    fn any_case(hook: Hook) -> Hook {
        Hook {
            where_case: Case::Insensitive,
            ..hook
        }
    }

    fn skip_own(hook: Hook) -> Hook {
        Hook {
            skip_own: true,
            ..hook
        }
    }

    fn matcher(hooks: Vec<Hook>) -> Matcher {
        let hooks: Vec<Arc<Hook>> = hooks.into_iter().map(Arc::new).collect();
        Matcher::new(&hooks).unwrap()
    }

    fn fixture(name: &str) -> Event {
        let path = format!("{}/src/samples/{name}.json", env!("CARGO_MANIFEST_DIR"));
        Event::from_text(std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn names(matcher: &Matcher, event: &Event, user: &str) -> Vec<String> {
        matcher
            .select(event, user)
            .iter()
            .map(|h| h.name.clone())
            .collect()
    }

    #[test]
    fn glob_semantics_over_event_types() {
        let matcher = matcher(vec![
            hook("star", &["content.*"]),
            hook("exact", &["content.created.file"]),
            hook("question", &["user.?odified"]),
            hook("class", &["content.[cm]*.html-document"]),
            hook("alt", &["{mention,reaction}.created"]),
            hook("all", &["*"]),
            hook("except", &["content.*", "!content.*.comment"]),
            hook("only-excl", &["!user.*"]),
        ]);
        let check = |event: &str, expected: &[&str]| {
            assert_eq!(names(&matcher, &fixture(event), ""), expected, "{event}");
        };
        check(
            "content.created.file",
            &["star", "exact", "all", "except", "only-excl"],
        );
        check("content.created.comment", &["star", "all", "only-excl"]);
        check(
            "content.modified.html-document",
            &["star", "class", "all", "except", "only-excl"],
        );
        check("user.modified", &["question", "all"]);
        check("user.created", &["all"]);
        check("mention.created", &["alt", "all", "only-excl"]);
        check("tag.created", &["all", "only-excl"]);
    }

    #[test]
    fn a_hook_with_no_on_pattern_takes_no_event() {
        let matcher = matcher(vec![hook("failures-only", &[]), hook("all", &["*"])]);
        for name in ["content.created.file", "user.created"] {
            let event = fixture(name);
            assert_eq!(names(&matcher, &event, ""), ["all"], "{name}");
            let verdict = &matcher.explain(&event, "")[0].1;
            assert!(verdict.to_string().contains("on_failure"), "{verdict}");
        }
    }

    #[test]
    fn where_operators() {
        let label = "fields.workspace.label";
        let matcher = matcher(vec![
            when(hook("space", &["*"]), label, &["Engineering"]),
            when(hook("space-glob", &["*"]), label, &["Eng*"]),
            when(hook("space-case", &["*"]), label, &["engineering"]),
            any_case(when(hook("space-nocase", &["*"]), label, &["engineering"])),
            when(
                hook("any-of", &["*"]),
                "fields.author.username",
                &["alice", "jdoe"],
            ),
            when(hook("not-me", &["*"]), "fields.author.username", &["!jdoe"]),
            when(
                hook("not-missing", &["*"]),
                "fields.mention.recipient",
                &["!hooks"],
            ),
            when(
                hook("pdf", &["content.created.file"]),
                "fields.content.mimetype",
                &["application/pdf"],
            ),
            when(
                hook("index", &["*"]),
                "fields.content.sub_content_types.0",
                &["*"],
            ),
            when(hook("number", &["*"]), "fields.author.user_id", &["2"]),
            when(hook("bool", &["*"]), "fields.author.is_active", &["true"]),
            when(hook("null", &["*"]), "read", &[""]),
            when(
                when(hook("two-keys", &["*"]), label, &["Engineering"]),
                "fields.content.content_type",
                &["comment"],
            ),
            when(hook("top-level", &["*"]), "event_type", &["mention.*"]),
        ]);
        assert_eq!(
            names(&matcher, &fixture("mention.created"), ""),
            [
                "space",
                "space-glob",
                "space-nocase",
                "any-of",
                "number",
                "bool",
                "null",
                "two-keys",
                "top-level"
            ]
        );
        assert_eq!(
            names(&matcher, &fixture("content.created.file"), ""),
            [
                "space",
                "space-glob",
                "space-nocase",
                "any-of",
                "not-missing",
                "pdf",
                "number",
                "bool",
                "null"
            ]
        );
        // author is null: missing fields match nothing, and `!x` holds.
        assert_eq!(
            names(&matcher, &fixture("user.modified"), ""),
            ["not-me", "not-missing", "null"]
        );
    }

    #[test]
    fn skip_own_compares_the_author_to_the_daemon_account() {
        let matcher = matcher(vec![skip_own(hook("h", &["*"]))]);
        let event = fixture("mention.created"); // author user_id 2
        assert_eq!(names(&matcher, &event, "2"), Vec::<String>::new());
        assert_eq!(names(&matcher, &event, "1"), ["h"]);
        // Until the daemon has said who it is, nothing is skipped.
        assert_eq!(names(&matcher, &event, ""), ["h"]);
    }

    #[test]
    fn explain_says_why() {
        let matcher = matcher(vec![
            hook("a", &["content.*", "!content.*.comment"]),
            hook("b", &["user.*"]),
            when(hook("c", &["*"]), "fields.workspace.label", &["Sales"]),
            when(hook("d", &["*"]), "fields.nope", &["x"]),
            when(hook("d2", &["*"]), "fields.author", &["jdoe"]),
            skip_own(hook("e", &["*"])),
            hook("f", &["*"]),
        ]);
        let verdicts: Vec<String> = matcher
            .explain(&fixture("content.created.comment"), "2")
            .iter()
            .map(|(h, v)| format!("{}: {v}", h.name))
            .collect();
        assert_eq!(
            verdicts,
            [
                "a: event type excluded by \"!content.*.comment\"",
                "b: event type matches none of on = [\"user.*\"]",
                "c: where fields.workspace.label = [\"Sales\"] saw \"Engineering\"",
                "d: where fields.nope = [\"x\"] saw no such field",
                "d2: where fields.author = [\"jdoe\"] saw an object, which has no text: name a field inside it",
                "e: skip_own: the author is the daemon's own account (user 2)",
                "f: runs",
            ]
        );
    }

    #[test]
    fn many_hooks_select_in_file_order() {
        let matcher = matcher(
            (0..500)
                .map(|i| hook(&format!("h{i}"), &[&format!("content.modified.t{i}")]))
                .chain([hook("last", &["content.*"])])
                .collect(),
        );
        let event =
            Event::from_text(r#"{"event_id":1,"event_type":"content.modified.t250","fields":{}}"#)
                .unwrap();
        assert_eq!(names(&matcher, &event, ""), ["h250", "last"]);
    }

    #[test]
    fn bad_where_paths_are_refused() {
        let case = Case::Sensitive;
        for (path, glob) in [("fields..x", "a"), ("fields.x", "a["), ("x", "!a{b,c")] {
            let globs = [glob.to_owned()];
            let refused = Condition::new(path, &globs, case).unwrap_err().message;
            let checked = Condition::check_syntax(path, &globs, case).unwrap_err();
            assert_eq!(checked.message, refused);
        }
        let globs = ["!a*".to_owned(), "[a-c]{x,y}".to_owned()];
        assert!(Condition::new("fields.x", &globs, Case::Insensitive).is_ok());
        assert!(Condition::check_syntax("fields.x", &globs, Case::Insensitive).is_ok());
        assert!(check_type_pattern("!").is_err());
        assert!(check_type_pattern("a{b").is_err());
        assert!(check_type_pattern("a}b").is_err());
        assert!(check_type_pattern("a\\").is_err());
        assert!(check_type_pattern("a]b,c").is_ok());
    }
}
