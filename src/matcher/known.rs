//! The event types Tracim sends today, and which `on` patterns match none of
//! them: `check` warns of those, since a typo such as `mentions.created` would
//! otherwise go unnoticed.
//!
//! Each glob is tested against the hundred-odd known types, never the other way
//! round. Globset's `GlobSet` over all the patterns compiled one regex per glob
//! that ends in a literal `.suffix` (most of them) and determinized each one
//! fully: 13 s for 200,000 globs. Here a glob whose literal beginning and end no
//! type has is unknown without a regex; the others' regexes (the very ones
//! globset matches with, from `Glob::regex`) go into one lazy DFA per chunk,
//! which builds only the states that the known types walk through.

use std::collections::{HashMap, HashSet};

use regex_automata::hybrid::dfa::DFA;
use regex_automata::nfa::thompson::{self, NFA, WhichCaptures, pikevm::PikeVM};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, PatternSet};

use super::{GLOB_SYNTAX, compile, split_negation};
use crate::hook::Case;

/// Tracim's entity types (see "The TracimDaemon protocol" in the README).
pub const ENTITIES: [&str; 10] = [
    "user",
    "workspace",
    "workspace_member",
    "content",
    "mention",
    "reaction",
    "workspace_subscription",
    "tag",
    "content_tag",
    "user_call",
];
/// Tracim's operations, the second part of an event type.
pub const OPERATIONS: [&str; 6] = [
    "created",
    "modified",
    "deleted",
    "undeleted",
    "moved",
    "copied",
];
/// Content types, the sub type of `content.*` events.
pub const CONTENT_TYPES: [&str; 7] = [
    "html-document",
    "file",
    "folder",
    "thread",
    "comment",
    "kanban",
    "todo",
];

/// The event types Tracim sends today. Tracim adds types over versions, so this
/// only serves warnings, never refusals.
pub fn known_event_types() -> Vec<String> {
    let mut types = Vec::new();
    for entity in ENTITIES {
        for operation in OPERATIONS {
            types.push(format!("{entity}.{operation}"));
            if entity == "content" {
                types.extend(
                    CONTENT_TYPES
                        .iter()
                        .map(|sub| format!("{entity}.{operation}.{sub}")),
                );
            }
        }
    }
    types
}

/// Globs per lazy DFA. Its states are sets of the chunk's NFA states: a larger
/// chunk makes each state costlier, a smaller one makes more DFAs. CPU time
/// measured on 200,000 globs that all need their regex: 4.2 s with chunks of
/// 64, 4.0 s with 256, 4.2 s with 1,024, 4.4 s with 4,096, 7.8 s with 16,384.
const CHUNK: usize = 512;

/// The `on` patterns (their `!` aside) that match no event type Tracim sends
/// today, as `(index in patterns, pattern)`, in the order given.
pub fn unknown_type_patterns<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
) -> Vec<(usize, &'a str)> {
    let patterns: Vec<&str> = patterns.into_iter().collect();
    let known = known_event_types();
    let known_set: HashSet<&str> = known.iter().map(String::as_str).collect();
    let mut matched = vec![false; patterns.len()];
    // Each distinct glob once (hooks often share one), as the regex globset
    // matches it with; a pattern with no glob syntax is a type, looked up.
    let mut slots: HashMap<&str, usize> = HashMap::new();
    let mut regexes: Vec<String> = Vec::new();
    let mut users: Vec<Vec<usize>> = Vec::new();
    for (index, pattern) in patterns.iter().enumerate() {
        let glob = split_negation(pattern).1;
        if !glob.contains(GLOB_SYNTAX) {
            matched[index] = known_set.contains(glob);
            continue;
        }
        if !could_match_one_of(glob, &known) {
            continue;
        }
        if let Some(&slot) = slots.get(glob) {
            users[slot].push(index);
            continue;
        }
        // One that does not compile was refused at load; it matches nothing here.
        let Ok(compiled) = compile(glob, Case::Sensitive) else {
            continue;
        };
        slots.insert(glob, regexes.len());
        regexes.push(compiled.regex().to_owned());
        users.push(vec![index]);
    }
    for (chunk, regexes) in regexes.chunks(CHUNK).enumerate() {
        for hit in known_hits(regexes, &known) {
            for &index in &users[chunk * CHUNK + hit] {
                matched[index] = true;
            }
        }
    }
    patterns
        .into_iter()
        .enumerate()
        .filter(|(index, _)| !matched[*index])
        .collect()
}

/// Whether some type starts with the glob's literal beginning (before its first
/// special character) and ends with its literal end (after its last one): true
/// of every type it matches, and a test of a microsecond where compiling its
/// regex takes ten. Most globs that match nothing fail it (`mentions.*`,
/// `*.html-documents`), and need no regex at all.
///
/// Written here: globset keeps its parsed tokens to itself. What follows the last
/// `]` or `}` is outside any class or alternation (one left open does not
/// compile); the character after a `\` stands for itself.
fn could_match_one_of(glob: &str, types: &[String]) -> bool {
    const SPECIAL: [char; 8] = ['*', '?', '[', ']', '{', '}', '\\', '/'];
    let first = glob.find(SPECIAL).unwrap_or(glob.len());
    let after_last = glob.rfind(SPECIAL).map_or(0, |i| i + 1).max(first);
    let (head, tail) = (&glob[..first], &glob[after_last..]);
    types
        .iter()
        .any(|t| t.len() >= head.len() + tail.len() && t.starts_with(head) && t.ends_with(tail))
}

/// Which of these regexes match at least one of the types, by index.
fn known_hits(regexes: &[String], types: &[String]) -> Vec<usize> {
    let Some(nfa) = nfa_of(regexes) else {
        // Past the NFA size limit (a chunk of huge alternations): one by one.
        return match regexes {
            [_] => Vec::new(),
            _ => (0..regexes.len())
                .filter(|&i| !known_hits(&regexes[i..=i], types).is_empty())
                .collect(),
        };
    };
    let mut set = PatternSet::new(nfa.pattern_len());
    // The lazy DFA has no reason to quit on these (no quit bytes, no give-up
    // threshold); should it, the PikeVM gives the same answer, only slower.
    if lazy_dfa_hits(&nfa, types, &mut set).is_err() {
        set.clear();
        pike_vm_hits(nfa, types, &mut set);
    }
    set.iter().map(|p| p.as_usize()).collect()
}

fn lazy_dfa_hits(nfa: &NFA, types: &[String], set: &mut PatternSet) -> Result<(), String> {
    let dfa = DFA::builder()
        .configure(
            DFA::config()
                .match_kind(MatchKind::All)
                .cache_capacity(10 * (1 << 20)),
        )
        .build_from_nfa(nfa.clone())
        .map_err(|e| e.to_string())?;
    let mut cache = dfa.create_cache();
    for t in types {
        dfa.try_which_overlapping_matches(&mut cache, &anchored(t), set)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn pike_vm_hits(nfa: NFA, types: &[String], set: &mut PatternSet) {
    // Building a PikeVM from a built NFA has no failure of its own to report.
    let Ok(vm) = PikeVM::builder()
        .configure(PikeVM::config().match_kind(MatchKind::All))
        .build_from_nfa(nfa)
    else {
        return;
    };
    let mut cache = vm.create_cache();
    for t in types {
        vm.which_overlapping_matches(&mut cache, &anchored(t), set);
    }
}

/// Globset's regexes start with `^`: an anchored search finds the same matches.
fn anchored(text: &str) -> Input<'_> {
    Input::new(text).anchored(Anchored::Yes)
}

/// The NFA of these regexes, compiled as globset compiles them (bytes, not
/// UTF-8; `.` takes a newline too); none past the size limit.
fn nfa_of(regexes: &[String]) -> Option<NFA> {
    thompson::Compiler::new()
        .syntax(syntax::Config::new().utf8(false).dot_matches_new_line(true))
        .configure(
            thompson::Config::new()
                .utf8(false)
                .which_captures(WhichCaptures::None)
                .nfa_size_limit(Some(10 * (1 << 20))),
        )
        .build_many(regexes)
        .ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What globset itself says: the pattern's own matcher over every known type.
    fn unknown_by_globset<'a>(patterns: &[&'a str]) -> Vec<(usize, &'a str)> {
        let known = known_event_types();
        patterns
            .iter()
            .enumerate()
            .filter(|(_, pattern)| {
                let matcher = compile(split_negation(pattern).1, Case::Sensitive)
                    .unwrap()
                    .compile_matcher();
                !known.iter().any(|t| matcher.is_match(t))
            })
            .map(|(index, pattern)| (index, *pattern))
            .collect()
    }

    #[test]
    fn typos_in_types_are_noticed() {
        let patterns = [
            "mention.created",
            "content.*.html-document",
            "!user.*",
            "mentions.created",
            "TAG.created",
        ];
        assert_eq!(
            unknown_type_patterns(patterns),
            [(3, "mentions.created"), (4, "TAG.created")]
        );
        // Every sample's type is known.
        let samples: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/samples"))
                .unwrap()
                .filter_map(|e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    name.strip_suffix(".json").map(str::to_owned)
                })
                .collect();
        assert_eq!(samples.len(), 18);
        assert_eq!(
            unknown_type_patterns(samples.iter().map(String::as_str)),
            []
        );
    }

    #[test]
    fn glob_syntax_as_globset_reads_it() {
        let patterns = [
            "*",
            "**",
            "content.**",
            "!content.*.comment",
            "content.*.comment?",
            "content.created.???",
            "content.created.????",
            "content.[cm]*.html-document",
            "content.[!c]*.file",
            "content.[^c]*.file",
            "[a-z]ser.created",
            "{mention,reaction}.created",
            "{mention,reactions}.created",
            "{mentions,reactions}.created",
            "content.{created,modified}.{html-document,file}",
            "content\\.created\\.file",
            "content\\*",
            "content.created.file*",
            "*.deleted",
            "*.deleted.*",
            "*content_tag*",
            "user_call.*.x",
            "workspace?member.created",
            "Content.*",
            "content.created.file\n",
            "content.created.fil[e]",
            "content.created.fil[]e]",
            "user.created.*",
            "user.created*",
            "**/content.created",
            "x/**/content.created",
            "content/**",
            "content.created/**",
            "mentions.*",
            "*.html-documents",
            "[]]x",
            "[}]",
            "mention\\.created",
            "{mention,tag}.created\\.",
            "user.,created",
            "*a*b*c*",
            "*.file.*",
        ];
        assert_eq!(
            unknown_type_patterns(patterns),
            unknown_by_globset(&patterns)
        );
        let unknown: Vec<&str> = unknown_type_patterns(patterns)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(
            unknown,
            [
                "content.*.comment?",
                "content.created.???",
                "{mentions,reactions}.created",
                "content\\*",
                "user_call.*.x",
                "Content.*",
                "content.created.file\n",
                "user.created.*",
                "x/**/content.created",
                "content/**",
                "content.created/**",
                "mentions.*",
                "*.html-documents",
                "[]]x",
                "[}]",
                "{mention,tag}.created\\.",
                "user.,created",
                "*.file.*",
            ]
        );
    }

    /// Patterns shaped as the benchmark's (distinct suffixes and prefixes, that
    /// match no type) mixed with ones that do, over several chunks: each keeps
    /// its own index, and one written by several hooks is reported for each.
    #[test]
    fn many_chunks_keep_each_pattern_in_place() {
        let mut patterns: Vec<String> = (0..3 * CHUNK + 7)
            .map(|i| match i % 5 {
                0 => format!("content.*.file{i}"),
                1 => format!("{{user,tag}}.created{i}.*"),
                2 => format!("mention.[cm]*{i}"),
                3 => "content.*.file".to_owned(),
                _ => format!("{}.*", ENTITIES[i % ENTITIES.len()]),
            })
            .collect();
        patterns.push("content.*.file0".to_owned());
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let unknown = unknown_type_patterns(patterns.iter().copied());
        assert_eq!(unknown, unknown_by_globset(&patterns));
        // Three shapes in five match nothing, and so does the repeated one.
        let expected = (0..3 * CHUNK + 7).filter(|i| i % 5 < 3).count() + 1;
        assert_eq!(unknown.len(), expected);
        assert_eq!(
            unknown.last(),
            Some(&(patterns.len() - 1, "content.*.file0"))
        );
    }

    #[test]
    fn the_pike_vm_answers_as_the_lazy_dfa() {
        let regexes: Vec<String> = ["content.*", "user.?odified", "x*", "*.file", "{a,tag}.*"]
            .iter()
            .map(|g| compile(g, Case::Sensitive).unwrap().regex().to_owned())
            .collect();
        let types = known_event_types();
        let nfa = nfa_of(&regexes).unwrap();
        let mut lazy = PatternSet::new(nfa.pattern_len());
        lazy_dfa_hits(&nfa, &types, &mut lazy).unwrap();
        let mut pike = PatternSet::new(nfa.pattern_len());
        pike_vm_hits(nfa, &types, &mut pike);
        let hits: Vec<usize> = lazy.iter().map(|p| p.as_usize()).collect();
        assert_eq!(hits, [0, 1, 3, 4]);
        assert_eq!(hits, pike.iter().map(|p| p.as_usize()).collect::<Vec<_>>());
    }

    /// Pieces of event types and of glob syntax, put together at random.
    fn pattern() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "content",
            "user",
            "tag",
            "mention",
            "workspace_member",
            ".",
            "*",
            "?",
            "created",
            "modified",
            "file",
            "html-document",
            "comment",
            "[cm]",
            "[!c]",
            "[a-z]",
            "{a,b}",
            "{created,deleted}",
            "{mention,reaction}",
            "-",
            "_",
            "**",
            "/",
            "\\.",
            "c",
            "e",
            "t",
        ]);
        (any::<bool>(), prop::collection::vec(piece, 1..7)).prop_map(|(negated, pieces)| {
            format!("{}{}", if negated { "!" } else { "" }, pieces.concat())
        })
    }

    proptest! {
        #[test]
        fn agrees_with_globset(patterns in prop::collection::vec(pattern(), 1..40)) {
            let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
            prop_assert_eq!(unknown_type_patterns(patterns.iter().copied()), unknown_by_globset(&patterns));
        }
    }
}
