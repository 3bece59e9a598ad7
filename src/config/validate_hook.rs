//! Validation of one `[[hook]]`: its command, patterns, environment, directory
//! and `where` conditions, resolved against `[defaults]`.

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::failure_hooks::FailureNames;
use super::schema::{HOOK_KEYS, RawHook};
use super::validate::Parser;
use crate::hook::{Command, Defaults, Hook, Where};
use crate::matcher::{Condition, PatternError};
use crate::paths;

impl<'a> Parser<'a> {
    pub(super) fn hook(
        &mut self,
        item: Spanned<DeValue<'a>>,
        defaults: &Defaults,
        names: &mut HashMap<String, usize>,
    ) -> Option<(Hook, FailureNames)> {
        let span = item.span();
        let (line, _) = self.line_column(span.start);
        let DeValue::Table(mut table) = item.into_inner() else {
            self.problem(span, None, "a hook must be a table: write [[hook]]");
            return None;
        };
        let label = table
            .iter()
            .find(|(k, _)| k.get_ref() == "name")
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_owned));
        let label = label.as_deref();
        if let Some(name) = label {
            if let Some(first) = names.get(name) {
                let name_span = table
                    .iter()
                    .find(|(k, _)| k.get_ref() == "name")
                    .map_or(span.clone(), |(k, _)| k.span());
                let message = format!(
                    "duplicate hook name: the hook at line {first} has it already; each hook needs a name of its own"
                );
                self.problem(name_span, label, message);
            } else {
                names.insert(name.to_owned(), line);
            }
        }
        self.prune_unknown_keys(&mut table, HOOK_KEYS, "[[hook]]", label);
        // `where` is walked by hand: its keys are paths that may be written as
        // quoted strings or as TOML's own dotted keys.
        let where_key = table
            .iter()
            .find(|(k, _)| k.get_ref() == "where")
            .map(|(k, _)| k.clone());
        let where_value = where_key.and_then(|k| table.remove(&k));
        let raw = match RawHook::deserialize(ValueDeserializer::from(Spanned::new(
            span.clone(),
            DeValue::Table(table),
        ))) {
            Ok(raw) => raw,
            Err(e) => {
                self.toml_error(e, label, span);
                return None;
            }
        };
        let name = raw.name.get_ref().clone();
        let hook_name = Some(name.as_str());
        let mut ok = true;
        if name.trim().is_empty() {
            self.problem(raw.name.span(), hook_name, "name must not be empty");
            ok = false;
        }

        if let Some(run) = &raw.run {
            ok &= self.exec_text(run.span(), hook_name, "run", run.get_ref());
        }
        if let Some(exec) = &raw.exec {
            for (index, arg) in exec.get_ref().iter().enumerate() {
                ok &= self.exec_text(arg.span(), hook_name, "exec", arg.get_ref());
                ok &= self.exec_placeholders(arg, index == 0, hook_name);
            }
        }
        let command = match (raw.run, raw.exec) {
            (Some(run), None) => Some(Command::Shell {
                shell: defaults.shell.clone(),
                script: run.into_inner(),
            }),
            (None, Some(exec)) if exec.get_ref().is_empty() => {
                self.problem(exec.span(), hook_name, "exec must name a program");
                None
            }
            (None, Some(exec)) => Some(Command::Exec(
                exec.into_inner()
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
            )),
            (Some(run), Some(_)) => {
                self.problem(
                    run.span(),
                    hook_name,
                    "give either `run` (a shell script) or `exec` (an argv), not both",
                );
                None
            }
            (None, None) => {
                self.problem(
                    raw.name.span(),
                    hook_name,
                    "missing `run` (a shell script) or `exec` (an argv)",
                );
                None
            }
        };

        // `on = []` is a hook that runs only as another hook's `on_failure`.
        let on_span = raw.on.span();
        let on = raw.on.into_inner().0;
        for pattern in &on {
            if let Err(e) = crate::matcher::check_type_pattern(pattern) {
                self.problem(on_span.clone(), hook_name, e.to_string());
                ok = false;
            }
        }

        let mut env = Vec::new();
        for (key, value) in raw.env {
            if !self.exec_text(
                value.span(),
                hook_name,
                &format!("env value of {}", key.get_ref()),
                value.get_ref(),
            ) {
                ok = false;
            } else if crate::env::is_valid_name(key.get_ref()) {
                env.push((key.into_inner(), value.into_inner()));
            } else {
                self.problem(key.span(), hook_name, format!("invalid environment variable name {:?}: it must not be empty or hold `=` or a NUL", key.get_ref()));
                ok = false;
            }
        }

        let cwd = match raw.cwd {
            None => None,
            Some(c) if !self.exec_text(c.span(), hook_name, "cwd", c.get_ref()) => {
                ok = false;
                None
            }
            Some(c) => match paths::expand(c.get_ref()) {
                Ok(p) if p.is_relative() => {
                    self.problem(
                        c.span(),
                        hook_name,
                        format!(
                            "cwd must be an absolute path (or start with `~`), got `{}`",
                            p.display()
                        ),
                    );
                    ok = false;
                    None
                }
                Ok(p) => Some(p),
                Err(e) => {
                    self.problem(c.span(), hook_name, format!("cwd: {e}"));
                    ok = false;
                    None
                }
            },
        };

        let where_case = raw.where_case.unwrap_or(Defaults::WHERE_CASE);
        let mut conditions = Vec::new();
        if let Some(value) = where_value {
            let mut leaves = Vec::new();
            self.where_leaves(String::new(), value, hook_name, &mut leaves);
            for (path, globs, span) in leaves {
                // Checked here to report a bad glob at its place; the matcher
                // compiles the conditions it runs.
                match Condition::check_syntax(&path, &globs, where_case) {
                    Ok(()) => conditions.push(Where { path, globs }),
                    Err(PatternError { message, .. }) => {
                        self.problem(span, hook_name, message);
                        ok = false;
                    }
                }
            }
        }

        let mode = raw.mode.unwrap_or(Defaults::MODE);
        let debounce = self.debounce(raw.debounce, raw.debounce_max, hook_name);
        let key = self.key(raw.key, mode, matches!(debounce, Some(Some(_))), hook_name);
        let on_failure = raw.on_failure.map(Spanned::into_inner).unwrap_or_default();

        let timeout = raw.timeout.map_or(defaults.timeout, |t| t.0);
        let command = command?;
        if !ok {
            return None;
        }
        let hook = Hook {
            name,
            on,
            command,
            env,
            cwd,
            timeout,
            kill_after: raw.kill_after.map_or(defaults.kill_after, |d| d.0),
            mode,
            output: raw.output.unwrap_or(defaults.output),
            retries: raw.retries.unwrap_or(defaults.retries),
            retry_delay: raw.retry_delay.map_or(defaults.retry_delay, |d| d.0),
            skip_own: raw.skip_own.unwrap_or(defaults.skip_own),
            rerun_interrupted: raw.rerun_interrupted.unwrap_or(Defaults::RERUN_INTERRUPTED),
            key: key?,
            debounce: debounce?,
            on_failure: Vec::new(),
            conditions,
            where_case,
            line,
        };
        Some((hook, on_failure))
    }

    /// Collects `(dotted path, globs, span)` from a `where` table whose nested
    /// tables are path parts.
    fn where_leaves(
        &mut self,
        prefix: String,
        value: Spanned<DeValue<'a>>,
        hook: Option<&str>,
        out: &mut Vec<(String, Vec<String>, Range<usize>)>,
    ) {
        let span = value.span();
        let expected = "`where` values must be a glob or a list of globs";
        match value.into_inner() {
            DeValue::Table(table) => {
                if table.is_empty() && !prefix.is_empty() {
                    self.problem(span, hook, format!("`where` path `{prefix}` has no glob"));
                }
                for (key, child) in table {
                    let path = if prefix.is_empty() {
                        key.get_ref().to_string()
                    } else {
                        format!("{prefix}.{}", key.get_ref())
                    };
                    self.where_leaves(path, child, hook, out);
                }
            }
            _ if prefix.is_empty() => {
                self.problem(span, hook, "`where` must be a table of paths to globs")
            }
            DeValue::String(s) => out.push((prefix, vec![s.to_string()], span)),
            DeValue::Array(items) => {
                let mut globs = Vec::new();
                for item in items.iter() {
                    match item.get_ref().as_str() {
                        Some(s) => globs.push(s.to_owned()),
                        None => {
                            self.problem(item.span(), hook, expected);
                            return;
                        }
                    }
                }
                if globs.is_empty() {
                    self.problem(
                        span,
                        hook,
                        format!("`where` path `{prefix}` has an empty list of globs"),
                    );
                    return;
                }
                out.push((prefix, globs, span));
            }
            DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => self.problem(
                span.clone(),
                hook,
                format!(
                    "{expected}: write the value as text, like \"{}\"",
                    self.text.get(span.clone()).unwrap_or("...")
                ),
            ),
            _ => self.problem(span, hook, expected),
        }
    }
}
