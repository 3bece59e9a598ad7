//! Validation of what shapes a hook's runs beyond its command: `key`,
//! `debounce` and `debounce_max`, and the placeholders of `exec` elements
//! (refused with the line and column of the offending brace).

use std::ops::Range;

use toml::Spanned;

use super::duration::NonZeroDuration;
use super::validate::Parser;
use crate::hook::{Debounce, Defaults, Mode};
use crate::placeholder;

impl Parser<'_> {
    /// `key`: a dotted path; it groups runs, so it needs `serial`, `latest` or a
    /// `debounce` to mean anything. `None` after a problem.
    pub(super) fn key(
        &mut self,
        key: Option<Spanned<String>>,
        mode: Mode,
        debounced: bool,
        hook: Option<&str>,
    ) -> Option<Option<String>> {
        let Some(key) = key else {
            return Some(None);
        };
        let path = key.get_ref();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            self.problem(
                key.span(),
                hook,
                format!(
                    "bad `key` path `{path}`: a dotted path like \"fields.content.content_id\""
                ),
            );
            return None;
        }
        if mode == Mode::Parallel && !debounced {
            self.problem(
                key.span(),
                hook,
                "`key` groups runs by a field: it needs mode = \"serial\" or \"latest\", or a `debounce`",
            );
            return None;
        }
        Some(Some(key.into_inner()))
    }

    /// `debounce` and `debounce_max` (default [`Defaults::DEBOUNCE_MAX_FACTOR`]
    /// times `debounce`). `None` after a problem.
    pub(super) fn debounce(
        &mut self,
        wait: Option<Spanned<NonZeroDuration>>,
        max: Option<Spanned<NonZeroDuration>>,
        hook: Option<&str>,
    ) -> Option<Option<Debounce>> {
        match (wait, max) {
            (None, None) => Some(None),
            (None, Some(max)) => {
                self.problem(
                    max.span(),
                    hook,
                    "`debounce_max` bounds a `debounce`: give `debounce` too",
                );
                None
            }
            (Some(wait), max) => {
                let wait_time = wait.get_ref().0;
                let max_time = match &max {
                    Some(max) => max.get_ref().0,
                    None => wait_time.saturating_mul(Defaults::DEBOUNCE_MAX_FACTOR),
                };
                if max_time < wait_time {
                    let span = max.map_or(wait.span(), |m| m.span());
                    self.problem(span, hook, "`debounce_max` must be at least `debounce`");
                    return None;
                }
                Some(Some(Debounce {
                    wait: wait_time,
                    max: max_time,
                }))
            }
        }
    }

    /// The placeholders of one `exec` element: balanced braces, dotted paths,
    /// and none in the program itself (what runs must not come from an event).
    pub(super) fn exec_placeholders(
        &mut self,
        element: &Spanned<String>,
        program: bool,
        hook: Option<&str>,
    ) -> bool {
        let text = element.get_ref();
        match placeholder::parse(text) {
            Err(e) => {
                let at = self.offset_in_literal(element.span(), text, e.offset);
                self.problem(at, hook, e.message);
                false
            }
            Ok(_) if program && placeholder::has_fields(text) => {
                self.problem(
                    element.span(),
                    hook,
                    "the program cannot come from the event: placeholders go in the arguments",
                );
                false
            }
            Ok(_) => true,
        }
    }

    /// Where in the file the brace at `offset` of a string's value is: the same
    /// brace among the literal's braces (escapes change other offsets, and TOML
    /// has no escape for a brace but `\u`); the literal's start if the braces
    /// do not line up.
    fn offset_in_literal(&self, span: Range<usize>, value: &str, offset: usize) -> Range<usize> {
        let is_brace = |c: char| c == '{' || c == '}';
        let nth = value[..offset].chars().filter(|&c| is_brace(c)).count();
        let literal = self.text.get(span.clone()).unwrap_or("");
        let braces: Vec<usize> = literal
            .char_indices()
            .filter(|&(_, c)| is_brace(c))
            .map(|(i, _)| i)
            .collect();
        if braces.len() == value.chars().filter(|&c| is_brace(c)).count()
            && let Some(at) = braces.get(nth)
        {
            let at = span.start + at;
            return at..at + 1;
        }
        span
    }
}
