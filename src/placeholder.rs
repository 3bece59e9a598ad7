//! Placeholders in `exec` elements: `{fields.content.label}` becomes that
//! field's text, `{{` and `}}` literal braces. Each element stays one argument
//! whatever the text holds: no shell sees it and nothing splits it into words.
//!
//! Hand-written rather than a template crate: the grammar is three rules, and
//! the crates at hand (format-string and mustache-like engines) bring escaping,
//! filters or expressions that an argv must not have.

use std::borrow::Cow;

use tracim_daemon_sdk::protocol::{Event, Lookup};

use crate::hook::{Command, Hook};

/// One piece of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text as written (braces already unescaped).
    Text(Cow<'a, str>),
    /// A dotted path into the event.
    Field(&'a str),
}

/// What is wrong with an element, and where in it (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Byte offset of the offending brace in the element's text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Splits an element into text and fields.
pub fn parse(element: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = element.char_indices().peekable();
    let flush = |text: &mut String, pieces: &mut Vec<Piece<'_>>| {
        if !text.is_empty() {
            pieces.push(Piece::Text(Cow::Owned(std::mem::take(text))));
        }
    };
    while let Some((at, c)) = rest.next() {
        match c {
            '{' if rest.peek().is_some_and(|&(_, n)| n == '{') => {
                rest.next();
                text.push('{');
            }
            '}' if rest.peek().is_some_and(|&(_, n)| n == '}') => {
                rest.next();
                text.push('}');
            }
            '}' => {
                return Err(TemplateError {
                    offset: at,
                    message: "a `}` closes no placeholder: write `}}` for a literal brace".into(),
                });
            }
            '{' if element[..at].ends_with('$') => {
                return Err(TemplateError {
                    offset: at,
                    message: "`${` is the shell's: placeholders take no `$`; for the shell's own braces write `${{` and `}}`".into(),
                });
            }
            '{' => {
                let Some(len) = element[at + 1..].find(['{', '}']) else {
                    return Err(unclosed(at));
                };
                if element.as_bytes()[at + 1 + len] == b'{' {
                    return Err(unclosed(at));
                }
                let path = &element[at + 1..at + 1 + len];
                check_path(path).map_err(|message| TemplateError {
                    offset: at,
                    message,
                })?;
                flush(&mut text, &mut pieces);
                pieces.push(Piece::Field(path));
                // Past the path and its `}`.
                while rest.peek().is_some_and(|&(i, _)| i <= at + 1 + len) {
                    rest.next();
                }
            }
            c => text.push(c),
        }
    }
    flush(&mut text, &mut pieces);
    Ok(pieces)
}

fn unclosed(at: usize) -> TemplateError {
    TemplateError {
        offset: at,
        message: "a `{` opens a placeholder that is never closed: write `{{` for a literal brace"
            .into(),
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty placeholder `{}`: name a field, like `{fields.content.label}`, or write `{{}}` for literal braces".into());
    }
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    };
    if !path.split('.').all(part_ok) {
        return Err(format!(
            "bad placeholder `{{{path}}}`: a dotted path of field names, like `{{fields.content.label}}`; write `{{{{` and `}}}}` for literal braces"
        ));
    }
    Ok(())
}

/// Whether an element holds at least one placeholder (a valid one).
pub fn has_fields(element: &str) -> bool {
    parse(element).is_ok_and(|p| p.iter().any(|p| matches!(p, Piece::Field(_))))
}

/// A field's text, as its `TRACIM_*` variable has it: a string unescaped, a
/// number exactly as sent, `null` empty. A missing field, an object or a list
/// is empty (no variable holds them); so is text holding a NUL byte, which the
/// environment leaves out too and no argument can carry.
pub fn field_text<'a>(event: &'a Event, path: &str) -> Cow<'a, str> {
    match event.lookup(path) {
        Some(Lookup::Scalar(text)) if !text.contains('\0') => text,
        _ => Cow::Borrowed(""),
    }
}

/// One element with its placeholders replaced. An element that does not parse
/// (only a hook built without `check`'s validation can hold one) is kept as is.
pub fn render(element: &str, event: &Event) -> String {
    let Ok(pieces) = parse(element) else {
        return element.to_owned();
    };
    let mut out = String::with_capacity(element.len());
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(&text),
            Piece::Field(path) => out.push_str(&field_text(event, path)),
        }
    }
    out
}

/// The argv a hook runs for an event: `exec` elements rendered, a `run` script
/// untouched (there the `TRACIM_*` variables are the way).
pub fn argv(hook: &Hook, event: &Event) -> Vec<String> {
    match &hook.command {
        Command::Exec(elements) => elements.iter().map(|e| render(e, event)).collect(),
        command @ Command::Shell { .. } => command.argv().into_iter().map(str::to_owned).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event::from_text(
            r#"{"event_id":7,"event_type":"content.modified.html-document","fields":{"content":{"label":"a {b} \"c\" $(d)\n","content_id":1.50,"parent":null,"tags":[1]}}}"#
                .to_owned(),
        )
        .unwrap()
    }

    #[test]
    fn fields_braces_and_text() {
        let e = event();
        assert_eq!(render("plain", &e), "plain");
        assert_eq!(
            render("--label={fields.content.label}", &e),
            "--label=a {b} \"c\" $(d)\n"
        );
        // Numbers exactly as sent; null, objects, lists and missing fields empty.
        assert_eq!(render("{fields.content.content_id}", &e), "1.50");
        assert_eq!(
            render(
                "[{fields.content.parent}|{fields.content.tags}|{fields.x}|{fields}]",
                &e
            ),
            "[|||]"
        );
        assert_eq!(
            render("{{{event_id}}}-{event_type}", &e),
            "{7}-content.modified.html-document"
        );
        assert_eq!(render("{{}}", &e), "{}");
    }

    #[test]
    fn unbalanced_braces_are_refused_where_they_are() {
        let at = |s: &str| parse(s).map(|_| ()).map_err(|e| e.offset);
        assert_eq!(at("a{b"), Err(1));
        assert_eq!(at("a}b"), Err(1));
        assert_eq!(at("{a{b}}"), Err(0));
        assert_eq!(at("ok {x} then }"), Err(12));
        assert_eq!(at("{}"), Err(0));
        assert_eq!(at("{a..b}"), Err(0));
        assert_eq!(at("{a b}"), Err(0));
        assert_eq!(at("é{"), Err(2));
        // The shell's braces, in a script given to exec, are not placeholders.
        assert_eq!(at("echo ${HOME}"), Err(6));
        assert_eq!(at("echo {a:-0}"), Err(5));
        assert_eq!(at("echo ${{HOME}}"), Ok(()));
        assert_eq!(at("{{x}} {y} {{"), Ok(()));
    }
}
