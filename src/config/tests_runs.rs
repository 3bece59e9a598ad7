//! Tests of `key`, `debounce`, `exec` placeholders and `on_failure` in hooks.toml.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::hook::Debounce;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("hooks.toml"), text)
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.lines(),
    }
}

fn assert_errors(text: &str, expect: &[&str]) {
    let errs = errors(text);
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    for (err, want) in errs.iter().zip(expect) {
        assert!(err.starts_with(want), "{err}\nwanted: {want}");
    }
}

#[test]
fn key_and_debounce_resolve_with_their_default() {
    let text = r#"
[[hook]]
name = "backup"
on = "content.modified.html-document"
key = "fields.content.content_id"
mode = "latest"
debounce = "10s"
exec = ["backup-note", "--id={fields.content.content_id}"]

[[hook]]
name = "sync"
on = "content.*"
key = "fields.workspace.workspace_id"
debounce = "2s"
debounce_max = "5s"
exec = ["sync"]
"#;
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let [backup, sync] = &config.hooks[..] else {
        panic!()
    };
    assert_eq!(backup.key.as_deref(), Some("fields.content.content_id"));
    assert_eq!(
        backup.debounce,
        Some(Debounce {
            wait: Duration::from_secs(10),
            max: Duration::from_secs(100),
        })
    );
    assert_eq!(
        sync.debounce,
        Some(Debounce {
            wait: Duration::from_secs(2),
            max: Duration::from_secs(5),
        })
    );
}

#[test]
fn key_and_debounce_mistakes_point_at_their_place() {
    assert_errors(
        "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nkey = \"fields.content.content_id\"\n",
        &[
            "hooks.toml:5:7: hook `a`: `key` groups runs by a field: it needs mode = \"serial\" or \"latest\", or a `debounce`",
        ],
    );
    assert_errors(
        "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nmode = \"serial\"\nkey = \"fields..id\"\n",
        &["hooks.toml:6:7: hook `a`: bad `key` path `fields..id`"],
    );
    assert_errors(
        "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\ndebounce = \"10s\"\ndebounce_max = \"5s\"\n",
        &["hooks.toml:6:16: hook `a`: `debounce_max` must be at least `debounce`"],
    );
    assert_errors(
        "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\ndebounce_max = \"5s\"\n",
        &["hooks.toml:5:16: hook `a`: `debounce_max` bounds a `debounce`"],
    );
    assert_errors(
        "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\ndebounce = \"0s\"\n",
        &["hooks.toml:5:12: hook `a`: this duration must be more than 0"],
    );
}

#[test]
fn unbalanced_braces_are_refused_at_the_brace() {
    // Line 5: exec = ["cp", "{fields.content.label", "x}y", '{}', "\t{ok}}"]
    let text = "[[hook]]\nname = \"a\"\non = \"x\"\n\nexec = [\"cp\", \"{fields.content.label\", \"x}y\", '{}', \"\\t{{ok}\"]\n";
    assert_errors(
        text,
        &[
            "hooks.toml:5:16: hook `a`: a `{` opens a placeholder that is never closed",
            "hooks.toml:5:42: hook `a`: a `}` closes no placeholder",
            "hooks.toml:5:48: hook `a`: empty placeholder `{}`",
            "hooks.toml:5:60: hook `a`: a `}` closes no placeholder",
        ],
    );
    // Over several lines, in a multi-line string.
    let text =
        "[[hook]]\nname = \"a\"\non = \"x\"\nexec = [\n  \"cp\",\n  \"\"\"a\nb {c\"\"\",\n]\n";
    assert_errors(
        text,
        &["hooks.toml:7:3: hook `a`: a `{` opens a placeholder that is never closed"],
    );
    assert_errors(
        "[[hook]]\nname = \"a\"\non = \"x\"\nexec = [\"{fields.program}\", \"x\"]\n",
        &["hooks.toml:4:9: hook `a`: the program cannot come from the event"],
    );
    // Braces in a `run` script are the shell's.
    parse("[[hook]]\nname = \"a\"\non = \"x\"\nrun = 'f() { echo \"${X}\"; }; f'\n").unwrap();
}

#[test]
fn on_failure_names_hooks_without_cycles() {
    let text = r#"
[[hook]]
name = "backup"
on = "content.*"
exec = ["backup"]
on_failure = ["notify", "mail"]

[[hook]]
name = "notify"
on = []
exec = ["notify-send", "{fields.content.label}"]
on_failure = ["mail"]

[[hook]]
name = "mail"
on = []
run = "mail -s failed me"
"#;
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let names = |h: &Hook| -> Vec<String> { h.on_failure.iter().map(|f| f.name.clone()).collect() };
    let backup = config.hook("backup").unwrap();
    assert_eq!(names(backup), ["notify", "mail"]);
    assert_eq!(names(&backup.on_failure[0]), ["mail"]);
    assert!(config.hook("mail").unwrap().on.is_empty());
    let order: Vec<&str> = config.hooks.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(order, ["backup", "notify", "mail"], "file order kept");

    let text = r#"
[[hook]]
name = "a"
on = "x"
run = "true"
on_failure = ["b", "nobody"]

[[hook]]
name = "b"
on = []
run = "true"
on_failure = ["c"]

[[hook]]
name = "c"
on = []
run = "true"
on_failure = ["a"]

[[hook]]
name = "self"
on = []
run = "true"
on_failure = ["self"]
"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs.iter().any(|e| e
            .starts_with("hooks.toml:18:15: hook `c`: on_failure makes a cycle: a → b → c → a")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e
            .starts_with("hooks.toml:24:15: hook `self`: on_failure makes a cycle: self → self")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with(
            "hooks.toml:6:20: hook `a`: on_failure names `nobody`, but no hook has that name"
        )),
        "{errs:#?}"
    );
}
