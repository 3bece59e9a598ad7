//! Validation: walks the spanned TOML document so that each section and each hook
//! is checked on its own, and collects every problem with its position.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use tracim_daemon_sdk::client::ClientConfig;

use super::duration::{HumanDuration, NonZeroDuration};
use super::schema::{
    DAEMON_KEYS, DEFAULTS_KEYS, JOURNAL_KEYS, RawDaemon, RawDefaults, RawJournal, RawTracim,
    TRACIM_KEYS,
};
use super::{Config, Problem};
use crate::hook::Defaults;
use crate::journal::{self, JournalSettings};
use crate::paths;
use crate::source::Source;

/// Longest path a Unix socket address can hold (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

pub(super) struct Parser<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
    /// Byte offset of each line's start, so positions are found by bisection:
    /// counting from the top for each of 10,000 hooks made loading quadratic.
    line_starts: Vec<usize>,
    pub(super) problems: Vec<Problem>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str) -> Self {
        Parser {
            path,
            text,
            line_starts: line_starts(text),
            problems: Vec::new(),
        }
    }

    pub(super) fn problem(
        &mut self,
        span: Range<usize>,
        hook: Option<&str>,
        message: impl Into<String>,
    ) {
        let (line, column) = self.line_column(span.start);
        self.problems.push(Problem {
            path: self.path.to_path_buf(),
            line,
            column,
            hook: hook.map(str::to_owned),
            message: message.into(),
        });
    }

    /// Text that will reach exec (argv, environment, directory) can hold no NUL
    /// and no single string the kernel refuses; say so at load, not at every run.
    pub(super) fn exec_text(
        &mut self,
        span: Range<usize>,
        hook: Option<&str>,
        what: &str,
        text: &str,
    ) -> bool {
        if text.contains('\0') {
            self.problem(
                span,
                hook,
                format!("{what} holds a NUL byte, which no program can be given"),
            );
            false
        } else if text.len() + 1 >= crate::env::MAX_VARIABLE {
            self.problem(
                span,
                hook,
                format!(
                    "{what} is {} bytes: the kernel refuses strings of 128 KiB or more",
                    text.len()
                ),
            );
            false
        } else {
            true
        }
    }

    pub(super) fn toml_error(
        &mut self,
        error: toml::de::Error,
        hook: Option<&str>,
        fallback: Range<usize>,
    ) {
        let span = error.span().unwrap_or(fallback);
        let message = error.message().trim().to_owned();
        self.problem(span, hook, message);
    }

    /// Reports and removes the keys a table does not know, all of them.
    pub(super) fn prune_unknown_keys(
        &mut self,
        table: &mut DeTable<'a>,
        known: &[&str],
        what: &str,
        hook: Option<&str>,
    ) {
        let unknown: Vec<_> = table
            .keys()
            .filter(|k| !known.contains(&k.get_ref().as_ref()))
            .cloned()
            .collect();
        for key in unknown {
            let expected = known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.problem(
                key.span(),
                hook,
                format!(
                    "unknown key `{}` in {what}, expected one of {expected}",
                    key.get_ref()
                ),
            );
            table.remove(&key);
        }
    }

    fn section<T: Default + for<'de> Deserialize<'de>>(
        &mut self,
        value: Option<Spanned<DeValue<'a>>>,
        known: &[&str],
        what: &str,
    ) -> Option<T> {
        let Some(value) = value else {
            return Some(T::default());
        };
        let span = value.span();
        let value = match value.into_inner() {
            DeValue::Table(mut table) => {
                self.prune_unknown_keys(&mut table, known, what, None);
                Spanned::new(span.clone(), DeValue::Table(table))
            }
            other => Spanned::new(span.clone(), other),
        };
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.toml_error(e, None, span);
                None
            }
        }
    }

    pub(super) fn parse(&mut self) -> Option<Config> {
        let document = match DeTable::parse(self.text) {
            Ok(doc) => doc,
            Err(e) => {
                self.toml_error(e, None, 0..0);
                return None;
            }
        };
        let mut daemon = None;
        let mut defaults = None;
        let mut journal = None;
        let mut tracim = None;
        let mut source = None;
        let mut daemon_span = None;
        let mut hook_items = Vec::new();
        for (key, value) in document.into_inner() {
            match key.get_ref().as_ref() {
                "daemon" => {
                    daemon_span = Some(key.span());
                    daemon = Some(value)
                }
                "tracim" => tracim = Some(value),
                "source" => source = Some(value),
                "defaults" => defaults = Some(value),
                "journal" => journal = Some(value),
                "hook" => match value.into_inner() {
                    DeValue::Array(items) => hook_items = items.to_vec(),
                    _ => self.problem(
                        key.span(),
                        None,
                        "`hook` must be an array of tables: write [[hook]]",
                    ),
                },
                other => self.problem(
                    key.span(),
                    None,
                    format!(
                        "unknown section `{other}`, expected one of `source`, `daemon`, `tracim`, `defaults`, `journal`, `hook`"
                    ),
                ),
            }
        }
        let daemon: Option<RawDaemon> = self.section(daemon, DAEMON_KEYS, "[daemon]");
        let defaults: Option<RawDefaults> = self.section(defaults, DEFAULTS_KEYS, "[defaults]");
        let log_window = daemon
            .as_ref()
            .and_then(|d| d.log_window)
            .map_or(super::LOG_WINDOW, |w| w.0);
        let daemon = daemon.and_then(|d| self.daemon(d));
        let defaults = defaults.and_then(|d| self.defaults(d));
        let journal: Option<RawJournal> = self.section(journal, JOURNAL_KEYS, "[journal]");
        let journal = journal.and_then(|j| self.journal(j));

        let mut hooks = Vec::new();
        let mut names = HashMap::new();
        let fallback_defaults = Defaults::default();
        for item in hook_items {
            // Hooks are checked even when [defaults] is broken, so that every
            // mistake shows at once; such a config is refused anyway.
            let hook_defaults = defaults.as_ref().unwrap_or(&fallback_defaults);
            if let Some(hook) = self.hook(item, hook_defaults, &mut names) {
                hooks.push(hook);
            }
        }
        let hooks = self.link_failure_hooks(hooks, &names);
        let (source, source_span) = self.source(source);
        let tracim = match tracim {
            Some(value) => {
                let span = value.span();
                let raw: Option<RawTracim> = self.section(Some(value), TRACIM_KEYS, "[tracim]");
                // Outer `None`: a mistake (reported); inner `None`: no table.
                raw.and_then(|raw| self.tracim(raw, span)).map(Some)
            }
            None => Some(None),
        };
        if source == Some(Source::Tracim) {
            if tracim.as_ref().is_some_and(Option::is_none) {
                self.problem(
                    source_span.clone(),
                    None,
                    "source = \"tracim\" needs a [tracim] table: its url and how to log in",
                );
            }
            if let Some(span) = daemon_span {
                self.problem(
                    span,
                    None,
                    "[daemon] has no use with source = \"tracim\" (the runner reads Tracim's stream itself, no daemon): remove the table, or set source = \"daemon\"",
                );
            }
        }
        let (daemon, defaults, journal) = (daemon?, defaults?, journal?);
        let (source, tracim) = (source?, tracim?);
        Some(Config {
            path: self.path.to_path_buf(),
            source,
            tracim,
            daemon,
            log_window,
            defaults,
            hooks,
            journal,
        })
    }

    /// The top-level `source`: `"daemon"` unless given.
    fn source(&mut self, value: Option<Spanned<DeValue<'_>>>) -> (Option<Source>, Range<usize>) {
        let Some(value) = value else {
            return (Some(Source::Daemon), 0..0);
        };
        let span = value.span();
        let source = match value.into_inner() {
            DeValue::String(s) if s == "daemon" => Some(Source::Daemon),
            DeValue::String(s) if s == "tracim" => Some(Source::Tracim),
            _ => {
                self.problem(
                    span.clone(),
                    None,
                    "source must be \"daemon\" (through the TracimDaemon, the default) or \"tracim\" (Tracim's own event stream)",
                );
                None
            }
        };
        (source, span)
    }

    fn socket_path(
        &mut self,
        value: Option<Spanned<String>>,
        default: PathBuf,
        what: &str,
    ) -> Option<PathBuf> {
        let (path, span) = match value {
            None => (default, 0..0),
            Some(v) => {
                let span = v.span();
                match paths::expand(v.get_ref()) {
                    Ok(p) => (p, span),
                    Err(e) => {
                        self.problem(span, None, format!("{what}: {e}"));
                        return None;
                    }
                }
            }
        };
        if !path.is_absolute() {
            self.problem(
                span,
                None,
                format!("{what} must be an absolute path, got `{}`", path.display()),
            );
            return None;
        }
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            self.problem(
                span,
                None,
                format!(
                    "{what} `{}` is longer than the {MAX_SOCKET_PATH} bytes a socket path can hold",
                    path.display()
                ),
            );
            return None;
        }
        Some(path)
    }

    fn daemon(&mut self, raw: RawDaemon) -> Option<ClientConfig> {
        let master = self.socket_path(
            raw.master_socket,
            paths::default_master_socket(),
            "master_socket",
        );
        let socket = self.socket_path(raw.socket, paths::default_client_socket(), "socket");
        let max_message = match raw.max_message {
            Some(v) if *v.get_ref() < 4096 => {
                self.problem(v.span(), None, "max_message must be at least 4096 bytes");
                None
            }
            Some(v) => Some(usize::try_from(*v.get_ref()).ok()),
            None => Some(None),
        };
        let defaults = ClientConfig::new(master?, socket?);
        let d = |v: Option<NonZeroDuration>, default: Duration| v.map_or(default, |d| d.0);
        Some(ClientConfig {
            max_message: max_message?.unwrap_or(defaults.max_message),
            read_timeout: d(raw.read_timeout, defaults.read_timeout),
            ping_interval: d(raw.ping_interval, defaults.ping_interval),
            ping_timeout: d(raw.ping_timeout, defaults.ping_timeout),
            check_interval: d(raw.check_interval, defaults.check_interval),
            watch_interval: d(raw.watch_interval, defaults.watch_interval),
            retry_max: d(raw.retry_max, defaults.retry_max),
            ..defaults
        })
    }

    fn positive(
        &mut self,
        value: Option<Spanned<u64>>,
        default: usize,
        what: &str,
    ) -> Option<usize> {
        match value {
            None => Some(default),
            Some(v) if *v.get_ref() == 0 => {
                self.problem(v.span(), None, format!("{what} must be at least 1"));
                None
            }
            Some(v) => Some(usize::try_from(*v.get_ref()).unwrap_or(usize::MAX)),
        }
    }

    fn defaults(&mut self, raw: RawDefaults) -> Option<Defaults> {
        let shell = match raw.shell {
            Some(s) if s.get_ref().is_empty() => {
                self.problem(
                    s.span(),
                    None,
                    "shell must name a program, like [\"/bin/sh\", \"-c\"]",
                );
                None
            }
            Some(s) if s.get_ref().iter().any(|arg| arg.contains('\0')) => {
                self.problem(
                    s.span(),
                    None,
                    "shell holds a NUL byte, which no program can be given",
                );
                None
            }
            Some(s) => Some(s.into_inner()),
            None => Some(Defaults::SHELL.map(String::from).to_vec()),
        };
        let max_parallel = self.positive(raw.max_parallel, Defaults::MAX_PARALLEL, "max_parallel");
        let queue_limit = self.positive(raw.queue_limit, Defaults::QUEUE_LIMIT, "queue_limit");
        let env_budget = match raw.env_budget {
            // Past this, with argv and the runner's own environment, exec could
            // fail with E2BIG (the kernel allows about 2 MiB in all).
            Some(v) if *v.get_ref() > Defaults::MAX_ENV_BUDGET as u64 => {
                self.problem(
                    v.span(),
                    None,
                    format!(
                        "env_budget must be at most {} bytes (1 MiB)",
                        Defaults::MAX_ENV_BUDGET
                    ),
                );
                None
            }
            other => self.positive(other, Defaults::ENV_BUDGET, "env_budget"),
        };
        let d = |v: Option<HumanDuration>, default: Duration| v.map_or(default, |d| d.0);
        Some(Defaults {
            shell: shell?,
            timeout: raw.timeout.map_or(Defaults::TIMEOUT, |t| t.0),
            kill_after: d(raw.kill_after, Defaults::KILL_AFTER),
            max_parallel: max_parallel?,
            queue_limit: queue_limit?,
            env_budget: env_budget?,
            shutdown_grace: d(raw.shutdown_grace, Defaults::SHUTDOWN_GRACE),
            output: raw.output.unwrap_or(Defaults::OUTPUT),
            retries: raw.retries.unwrap_or(Defaults::RETRIES),
            retry_delay: d(raw.retry_delay, Defaults::RETRY_DELAY),
            skip_own: raw.skip_own.unwrap_or(Defaults::SKIP_OWN),
        })
    }
}

impl Parser<'_> {
    /// The `[journal]` table; what it leaves out is `journal::defaults`.
    fn journal(&mut self, raw: RawJournal) -> Option<JournalSettings> {
        let path = match raw.path {
            None => Some(journal::defaults::path()),
            Some(v) => match paths::expand(v.get_ref()) {
                Ok(p) if p.is_absolute() => Some(p),
                Ok(p) => {
                    self.problem(
                        v.span(),
                        None,
                        format!(
                            "journal path must be an absolute path (or start with `~`), got `{}`",
                            p.display()
                        ),
                    );
                    None
                }
                Err(e) => {
                    self.problem(v.span(), None, format!("journal path: {e}"));
                    None
                }
            },
        };
        let max_events = match raw.max_events {
            Some(v) if *v.get_ref() == 0 => {
                self.problem(v.span(), None, "max_events must be at least 1");
                None
            }
            Some(v) => Some(*v.get_ref()),
            None => Some(journal::defaults::MAX_EVENTS),
        };
        Some(JournalSettings {
            enabled: raw.enabled.unwrap_or(journal::defaults::ENABLED),
            path: path?,
            retention: raw.retention.map_or(journal::defaults::RETENTION, |d| d.0),
            max_events: max_events?,
            sync: raw.sync.unwrap_or(journal::defaults::SYNC),
        })
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

impl Parser<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }
}
