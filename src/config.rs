//! hooks.toml: its schema, where it is found, and validation into a ready [`Config`].
//!
//! Every mistake is reported as `file:line:column: message`, naming the hook when it
//! lies inside one, and all mistakes of a file are reported at once, so that a user
//! fixes them in one pass.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::matcher::{Condition, Matcher, PatternError};
use crate::paths;
use tracim_daemon_sdk::client::ClientConfig;

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "TRACIM_HOOKS_CONFIG";

/// The commented example config, also what `init` writes and `demo` runs.
pub const EXAMPLE: &str = include_str!("../config/hooks.toml");

/// Largest `env_budget`: a run's `TRACIM_*` variables stay well within the
/// kernel's limit on argv and environment together.
const MAX_ENV_BUDGET: usize = 1024 * 1024;

/// Longest path a Unix socket address can hold (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A loaded, validated configuration. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The `[daemon]` table: how to reach the daemon.
    pub daemon: ClientConfig,
    /// Settings for the whole runner, and defaults for the hooks.
    pub defaults: Defaults,
    /// The hooks, in file order.
    pub hooks: Vec<Arc<Hook>>,
    /// All `on` patterns and `where` conditions, compiled once.
    pub matcher: Matcher,
}

/// How a hook's output is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// Each line logged with the hook, the event id and the stream.
    Log,
    /// The runner's own stdout and stderr.
    Inherit,
    /// Discarded.
    Null,
}

/// How runs of one hook relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Runs of the hook overlap freely (within `max_parallel`).
    Parallel,
    /// One run at a time, in the order events arrived.
    Serial,
    /// One run at a time; while one runs only the newest waiting event is kept.
    Latest,
}

/// Case sensitivity of `where` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Case {
    /// `Engineering` is not `engineering`.
    Sensitive,
    /// It is.
    Insensitive,
}

/// The `[defaults]` table, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// The argv a `run` string is appended to.
    pub shell: Vec<String>,
    /// Default run time limit.
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub kill_after: Duration,
    /// Runs at once, over all hooks.
    pub max_parallel: usize,
    /// Runs waiting for a slot, over all hooks.
    pub queue_limit: usize,
    /// Total size of a run's `TRACIM_*` variables.
    pub env_budget: usize,
    /// How long running hooks may finish at shutdown.
    pub shutdown_grace: Duration,
    /// Default output handling.
    pub output: Output,
    /// Default number of retries of a failed run.
    pub retries: u32,
    /// Default first delay before a retry.
    pub retry_delay: Duration,
    /// Default for skipping events caused by the daemon's own account.
    pub skip_own: bool,
}

/// What a hook runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `run`: a script handed unchanged to the shell.
    Shell {
        /// The shell's argv, e.g. `["/bin/sh", "-c"]`.
        shell: Vec<String>,
        /// The script, appended as the last argument.
        script: String,
    },
    /// `exec`: an argv run directly.
    Exec(Vec<String>),
}

impl Command {
    /// The full argv to execute.
    pub fn argv(&self) -> Vec<&str> {
        match self {
            Command::Shell { shell, script } => shell
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(script.as_str()))
                .collect(),
            Command::Exec(argv) => argv.iter().map(String::as_str).collect(),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Shell { script, .. } => write!(f, "run: {script}"),
            Command::Exec(argv) => write!(f, "exec: {argv:?}"),
        }
    }
}

/// One `[[hook]]`, with every setting resolved against `[defaults]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// Unique name, used in logs and `TRACIM_HOOK_NAME`.
    pub name: String,
    /// The `on` patterns as written (`!` marks an exclusion).
    pub on: Vec<String>,
    /// What to run.
    pub command: Command,
    /// Extra environment, set after the runner's own.
    pub env: Vec<(String, String)>,
    /// Working directory, expanded.
    pub cwd: Option<PathBuf>,
    /// Run time limit.
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub kill_after: Duration,
    /// How runs of this hook relate.
    pub mode: Mode,
    /// Output handling.
    pub output: Output,
    /// Retries of a failed or timed-out run.
    pub retries: u32,
    /// First delay before a retry, doubling each time.
    pub retry_delay: Duration,
    /// Skip events whose author is the daemon's own account.
    pub skip_own: bool,
    /// `where` conditions, all of which must hold.
    pub conditions: Vec<Condition>,
    /// Case sensitivity of the conditions.
    pub where_case: Case,
    /// Line of the hook in its file, for messages.
    pub line: usize,
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is writable by others or owned by someone else: whoever can write
    /// it decides what runs as this user.
    #[error("{}: {message}", path.display())]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The file has mistakes; every one is listed.
    #[error("{}", Problems(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Each mistake, in file order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// One line per problem, as `file:line:col: message`.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { problems, .. } => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => vec![other.to_string()],
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// One mistake in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The hook it is in, if any.
    pub hook: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.column)?;
        if let Some(hook) = &self.hook {
            write!(f, "hook `{hook}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Where the config is: `--config`, else `$TRACIM_HOOKS_CONFIG`, else
/// `hooks.toml` in the user's config dir.
pub fn locate(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    paths::config_dir().join("hooks.toml")
}

impl Config {
    /// Reads, checks the file's ownership and mode, parses and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        // One open file is checked and read, so it cannot be swapped in between.
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        check_file_safety(path, &file.metadata().map_err(read_error)?)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(read_error)?;
        Config::parse(path, &text)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut parser = Parser {
            path,
            text,
            line_starts: line_starts(text),
            problems: Vec::new(),
        };
        let config = parser.parse();
        match config {
            Some(config) if parser.problems.is_empty() => Ok(config),
            _ => {
                let mut problems = parser.problems;
                problems.sort_by_key(|p| (p.line, p.column));
                Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    problems,
                })
            }
        }
    }

    /// The hook of that name.
    pub fn hook(&self, name: &str) -> Option<&Arc<Hook>> {
        self.hooks.iter().find(|h| h.name == name)
    }
}

/// Refuses a config that someone other than this user (or root) could have written.
fn check_file_safety(path: &Path, meta: &std::fs::Metadata) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(ConfigError::Unsafe {
            path: path.to_path_buf(),
            message: format!(
                "owned by uid {}, not by you (uid {me}); whoever owns it decides what runs as you. \
                 Fix: chown {me} '{}'",
                meta.uid(),
                path.display()
            ),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(ConfigError::Unsafe {
            path: path.to_path_buf(),
            message: format!(
                "writable by {} (mode {:o}); whoever can write it decides what runs as you. \
                 Fix: chmod go-w '{}'",
                if meta.mode() & 0o002 != 0 {
                    "others"
                } else {
                    "group"
                },
                meta.mode() & 0o7777,
                path.display()
            ),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Raw schema, as serde reads it.

/// The keys of each table, for reporting every unknown key at once (serde stops
/// at the first); `deny_unknown_fields` stays as the backstop.
const DAEMON_KEYS: &[&str] = &[
    "master_socket",
    "socket",
    "max_message",
    "read_timeout",
    "ping_timeout",
    "check_interval",
    "watch_interval",
    "retry_max",
    "log_window",
];
const DEFAULTS_KEYS: &[&str] = &[
    "shell",
    "timeout",
    "kill_after",
    "max_parallel",
    "queue_limit",
    "env_budget",
    "shutdown_grace",
    "output",
    "retries",
    "retry_delay",
    "skip_own",
];
const HOOK_KEYS: &[&str] = &[
    "name",
    "on",
    "run",
    "exec",
    "where",
    "where_case",
    "skip_own",
    "env",
    "cwd",
    "timeout",
    "kill_after",
    "mode",
    "output",
    "retries",
    "retry_delay",
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    master_socket: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    max_message: Option<Spanned<u64>>,
    read_timeout: Option<NonZeroDuration>,
    ping_timeout: Option<NonZeroDuration>,
    check_interval: Option<NonZeroDuration>,
    watch_interval: Option<NonZeroDuration>,
    retry_max: Option<NonZeroDuration>,
    log_window: Option<NonZeroDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    shell: Option<Spanned<Vec<String>>>,
    timeout: Option<NonZeroDuration>,
    kill_after: Option<HumanDuration>,
    max_parallel: Option<Spanned<u64>>,
    queue_limit: Option<Spanned<u64>>,
    env_budget: Option<Spanned<u64>>,
    shutdown_grace: Option<HumanDuration>,
    output: Option<Output>,
    retries: Option<u32>,
    retry_delay: Option<HumanDuration>,
    skip_own: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    name: Spanned<String>,
    on: Spanned<OneOrMany>,
    run: Option<Spanned<String>>,
    exec: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    env: std::collections::BTreeMap<Spanned<String>, Spanned<String>>,
    cwd: Option<Spanned<String>>,
    timeout: Option<NonZeroDuration>,
    kill_after: Option<HumanDuration>,
    mode: Option<Mode>,
    output: Option<Output>,
    retries: Option<u32>,
    retry_delay: Option<HumanDuration>,
    skip_own: Option<bool>,
    where_case: Option<Case>,
}

/// `on = "x"` or `on = ["x", "y"]`.
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob or a list of globs")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A duration written `"500ms"`, `"30s"`, `"5m"` or `"1h"`.
#[derive(Debug, Clone, Copy)]
struct HumanDuration(Duration);

/// A duration that must not be zero: a time limit, or a period that drives a timer.
#[derive(Debug, Clone, Copy)]
struct NonZeroDuration(Duration);

impl<'de> Deserialize<'de> for NonZeroDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let HumanDuration(duration) = HumanDuration::deserialize(d)?;
        if duration.is_zero() {
            return Err(serde::de::Error::custom(
                "this duration must be more than 0",
            ));
        }
        Ok(NonZeroDuration(duration))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Writes a duration the way hooks.toml takes it: `"500ms"`, `"30s"`, `"5m"`, `"1h"`.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"1h"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        format!(
            "invalid duration `{text}`: write a whole number and a unit, like \"500ms\", \"30s\", \"5m\" or \"1h\""
        )
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    // A year is longer than any time limit needs; beyond it sums could overflow.
    const MAX_MS: u64 = 365 * 24 * 3_600_000;
    match n.checked_mul(unit_ms) {
        Some(ms) if ms <= MAX_MS => Ok(Duration::from_millis(ms)),
        _ => Err(format!("duration `{text}` is too long: at most 365 days")),
    }
}

// ---------------------------------------------------------------------------
// The parser: walks the spanned document so that each section and each hook is
// checked on its own and every problem is collected.

struct Parser<'a> {
    path: &'a Path,
    text: &'a str,
    /// Byte offset of each line's start, so positions are found by bisection:
    /// counting from the top for each of 10,000 hooks made loading quadratic.
    line_starts: Vec<usize>,
    problems: Vec<Problem>,
}

impl<'a> Parser<'a> {
    fn problem(&mut self, span: Range<usize>, hook: Option<&str>, message: impl Into<String>) {
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
    fn exec_text(
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

    fn toml_error(&mut self, error: toml::de::Error, hook: Option<&str>, fallback: Range<usize>) {
        let span = error.span().unwrap_or(fallback);
        let message = error.message().trim().to_owned();
        self.problem(span, hook, message);
    }

    /// Reports and removes the keys a table does not know, all of them.
    fn prune_unknown_keys(
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

    fn parse(&mut self) -> Option<Config> {
        let document = match DeTable::parse(self.text) {
            Ok(doc) => doc,
            Err(e) => {
                self.toml_error(e, None, 0..0);
                return None;
            }
        };
        let mut daemon = None;
        let mut defaults = None;
        let mut hook_items = Vec::new();
        for (key, value) in document.into_inner() {
            match key.get_ref().as_ref() {
                "daemon" => daemon = Some(value),
                "defaults" => defaults = Some(value),
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
                        "unknown section `{other}`, expected one of `daemon`, `defaults`, `hook`"
                    ),
                ),
            }
        }
        let daemon: Option<RawDaemon> = self.section(daemon, DAEMON_KEYS, "[daemon]");
        let defaults: Option<RawDefaults> = self.section(defaults, DEFAULTS_KEYS, "[defaults]");
        let daemon = daemon.and_then(|d| self.daemon(d));
        let defaults = defaults.and_then(|d| self.defaults(d));

        let mut hooks = Vec::new();
        let mut names = HashMap::new();
        let fallback_defaults = Parser::fallback_defaults();
        for item in hook_items {
            // Hooks are checked even when [defaults] is broken, so that every
            // mistake shows at once; such a config is refused anyway.
            let hook_defaults = defaults.as_ref().unwrap_or(&fallback_defaults);
            if let Some(hook) = self.hook(item, hook_defaults, &mut names) {
                hooks.push(Arc::new(hook));
            }
        }
        let (daemon, defaults) = (daemon?, defaults?);
        let matcher = match Matcher::new(&hooks) {
            Ok(m) => m,
            Err(e) => {
                self.problem(0..0, None, e.to_string());
                return None;
            }
        };
        Some(Config {
            path: self.path.to_path_buf(),
            daemon,
            defaults,
            hooks,
            matcher,
        })
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
            ping_timeout: d(raw.ping_timeout, defaults.ping_timeout),
            check_interval: d(raw.check_interval, defaults.check_interval),
            watch_interval: d(raw.watch_interval, defaults.watch_interval),
            retry_max: d(raw.retry_max, defaults.retry_max),
            log_window: d(raw.log_window, defaults.log_window),
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
            None => Some(vec!["/bin/sh".into(), "-c".into()]),
        };
        let max_parallel = self.positive(raw.max_parallel, 8, "max_parallel");
        let queue_limit = self.positive(raw.queue_limit, 10_000, "queue_limit");
        let env_budget = match raw.env_budget {
            // Past this, with argv and the runner's own environment, exec could
            // fail with E2BIG (the kernel allows about 2 MiB in all).
            Some(v) if *v.get_ref() > MAX_ENV_BUDGET as u64 => {
                self.problem(
                    v.span(),
                    None,
                    format!("env_budget must be at most {MAX_ENV_BUDGET} bytes (1 MiB)"),
                );
                None
            }
            other => self.positive(other, crate::env::DEFAULT_BUDGET, "env_budget"),
        };
        let d = |v: Option<HumanDuration>, default: u64| {
            v.map_or(Duration::from_millis(default), |d| d.0)
        };
        Some(Defaults {
            shell: shell?,
            timeout: raw.timeout.map_or(Duration::from_secs(60), |t| t.0),
            kill_after: d(raw.kill_after, 5_000),
            max_parallel: max_parallel?,
            queue_limit: queue_limit?,
            env_budget: env_budget?,
            shutdown_grace: d(raw.shutdown_grace, 10_000),
            output: raw.output.unwrap_or(Output::Log),
            retries: raw.retries.unwrap_or(0),
            retry_delay: d(raw.retry_delay, 1_000),
            skip_own: raw.skip_own.unwrap_or(false),
        })
    }

    fn fallback_defaults() -> Defaults {
        let mut parser = Parser {
            path: Path::new(""),
            text: "",
            line_starts: vec![0],
            problems: Vec::new(),
        };
        parser
            .defaults(RawDefaults::default())
            .unwrap_or_else(|| unreachable!("the built-in defaults are valid"))
    }

    fn hook(
        &mut self,
        item: Spanned<DeValue<'a>>,
        defaults: &Defaults,
        names: &mut HashMap<String, usize>,
    ) -> Option<Hook> {
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
            for arg in exec.get_ref() {
                ok &= self.exec_text(exec.span(), hook_name, "exec", arg);
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
            (None, Some(exec)) => Some(Command::Exec(exec.into_inner())),
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

        let on_span = raw.on.span();
        let on = raw.on.into_inner().0;
        if on.is_empty() {
            self.problem(
                on_span.clone(),
                hook_name,
                "`on` needs at least one event type pattern",
            );
            ok = false;
        }
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

        let where_case = raw.where_case.unwrap_or(Case::Sensitive);
        let mut conditions = Vec::new();
        if let Some(value) = where_value {
            let mut leaves = Vec::new();
            self.where_leaves(String::new(), value, hook_name, &mut leaves);
            for (path, globs, span) in leaves {
                match Condition::new(&path, &globs, where_case) {
                    Ok(c) => conditions.push(c),
                    Err(PatternError { message, .. }) => {
                        self.problem(span, hook_name, message);
                        ok = false;
                    }
                }
            }
        }

        let timeout = raw.timeout.map_or(defaults.timeout, |t| t.0);
        let command = command?;
        if !ok {
            return None;
        }
        Some(Hook {
            name,
            on,
            command,
            env,
            cwd,
            timeout,
            kill_after: raw.kill_after.map_or(defaults.kill_after, |d| d.0),
            mode: raw.mode.unwrap_or(Mode::Parallel),
            output: raw.output.unwrap_or(defaults.output),
            retries: raw.retries.unwrap_or(defaults.retries),
            retry_delay: raw.retry_delay.map_or(defaults.retry_delay, |d| d.0),
            skip_own: raw.skip_own.unwrap_or(defaults.skip_own),
            conditions,
            where_case,
            line,
        })
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

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

impl Parser<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("hooks.toml"), text)
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e.lines(),
        }
    }

    #[test]
    fn the_example_config_is_valid() {
        let config = parse(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.hooks.is_empty());
    }

    #[test]
    fn the_issue_example_parses_with_defaults_resolved() {
        let text = r#"
[daemon]
master_socket = "/tmp/m.sock"
socket = "/tmp/c.sock"

[defaults]
shell = ["/bin/bash", "-c"]
timeout = "60s"

[[hook]]
name = "notify-mention"
on = "mention.created"
run = 'notify-send "Tracim" "$TRACIM_FIELDS_AUTHOR_PUBLIC_NAME mentioned you"'

[[hook]]
name = "backup-notes"
on = ["content.created.html-document", "content.modified.*"]
exec = ["/usr/local/bin/backup-note", "--quiet"]
env = { BACKUP_DIR = "/srv/notes" }
cwd = "/srv"
timeout = "500ms"
"#;
        let config = parse(text).unwrap();
        assert_eq!(config.daemon.master_socket, PathBuf::from("/tmp/m.sock"));
        assert_eq!(config.daemon.max_message, 16 * 1024 * 1024);
        let [a, b] = &config.hooks[..] else { panic!() };
        assert_eq!(
            a.command,
            Command::Shell {
                shell: vec!["/bin/bash".into(), "-c".into()],
                script: r#"notify-send "Tracim" "$TRACIM_FIELDS_AUTHOR_PUBLIC_NAME mentioned you""#
                    .into()
            }
        );
        assert_eq!(a.timeout, Duration::from_secs(60));
        assert_eq!(a.line, 10);
        assert_eq!(b.command.argv(), ["/usr/local/bin/backup-note", "--quiet"]);
        assert_eq!(
            b.env,
            [("BACKUP_DIR".to_string(), "/srv/notes".to_string())]
        );
        assert_eq!(b.timeout, Duration::from_millis(500));
        assert_eq!(b.mode, Mode::Parallel);
        assert_eq!(b.output, Output::Log);
    }

    #[test]
    fn unknown_key_names_line_column_and_hook() {
        let text = "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\ntimeuot = \"1s\"\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("hooks.toml:5:1: hook `a`: unknown key `timeuot` in [[hook]], expected one of `name`"),
            "{errs:?}"
        );
        assert!(errs[0].contains("`where`"), "{errs:?}");
    }

    #[test]
    fn all_unknown_keys_and_the_errors_behind_them_show_at_once() {
        let text = "[defaults]\ntimout = \"1s\"\nmax_paralel = 2\ntimeout = \"0s\"\n\n[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nwher = {}\ntimeout = \"0s\"\n\n[[hook]]\nname = \"a\"\non = \"y\"\nrun = \"true\"\nwhere = { fields.author.user_id = 2 }\ncwd = \"relative/dir\"\n";
        let errs = errors(text);
        let expect = [
            "hooks.toml:2:1: unknown key `timout` in [defaults]",
            "hooks.toml:3:1: unknown key `max_paralel` in [defaults]",
            "hooks.toml:4:11: this duration must be more than 0",
            "hooks.toml:10:1: hook `a`: unknown key `wher` in [[hook]]",
            "hooks.toml:11:11: hook `a`: this duration must be more than 0",
            "hooks.toml:14:1: hook `a`: duplicate hook name: the hook at line 6 has it already",
            "hooks.toml:17:35: hook `a`: `where` values must be a glob or a list of globs: write the value as text, like \"2\"",
            "hooks.toml:18:7: hook `a`: cwd must be an absolute path",
        ];
        assert_eq!(errs.len(), expect.len(), "{errs:#?}");
        for (err, want) in errs.iter().zip(expect) {
            assert!(err.starts_with(want), "{err}\nwanted: {want}");
        }
    }

    #[test]
    fn every_hook_error_is_reported_at_once() {
        let text = r#"
[[hook]]
name = "both"
on = "x"
run = "true"
exec = ["true"]

[[hook]]
name = "neither"
on = "x"

[[hook]]
name = "badglob"
on = ["content.*", "a[b"]
run = "true"

[[hook]]
name = "both"
on = "y"
run = "true"
"#;
        let errs = errors(text);
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("hooks.toml:5:7: hook `both`: give either")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("hooks.toml:9:8: hook `neither`: missing `run`")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("hooks.toml:14:6: hook `badglob`:") && e.contains("a[b")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("hooks.toml:18:1: hook `both`: duplicate hook name")),
            "{errs:#?}"
        );
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let errs = errors("[defaults]\ntimeout = \"ten seconds\"\n");
        assert!(
            errs[0].starts_with("hooks.toml:2:11: invalid duration `ten seconds`"),
            "{errs:?}"
        );
        let errs = errors("[defaults]\nmax_parallel = 0\n");
        assert!(
            errs[0].starts_with("hooks.toml:2:16: max_parallel must be at least 1"),
            "{errs:?}"
        );
        let errs = errors("[daemon]\nsocket = \"relative.sock\"\n");
        assert!(
            errs[0].starts_with("hooks.toml:2:10: socket must be an absolute path"),
            "{errs:?}"
        );
        let errs = errors("[bogus]\n");
        assert!(
            errs[0].starts_with("hooks.toml:1:2: unknown section `bogus`"),
            "{errs:?}"
        );
        let errs =
            errors("[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nmode = \"sometimes\"\n");
        assert!(
            errs[0].starts_with("hooks.toml:5:8: hook `a`: unknown variant `sometimes`"),
            "{errs:?}"
        );
        let errs = errors(
            "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nenv = { \"A=B\" = \"1\" }\n",
        );
        assert!(
            errs[0].starts_with("hooks.toml:5:9: hook `a`: invalid environment variable name"),
            "{errs:?}"
        );
        let errs = errors(
            "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nwhere = { \"fields.x\" = 3 }\n",
        );
        assert!(
            errs[0].starts_with("hooks.toml:5:24: hook `a`: `where` values must be"),
            "{errs:?}"
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let errs = errors("[[hook]]\nname = \"a\nrun = 1\n");
        assert!(errs[0].starts_with("hooks.toml:2:"), "{errs:?}");
    }

    #[test]
    fn where_accepts_quoted_and_dotted_keys() {
        let text = r#"
[[hook]]
name = "a"
on = "content.*"
run = "true"
where = { "fields.workspace.label" = "Eng*", fields.author.username = ["!bot", "!jdoe"] }
"#;
        let config = parse(text).unwrap();
        let paths: Vec<&str> = config.hooks[0]
            .conditions
            .iter()
            .map(|c| c.path())
            .collect();
        assert_eq!(paths, ["fields.workspace.label", "fields.author.username"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(
            parse_duration("99999999999999999h")
                .unwrap_err()
                .contains("too long")
        );
        assert!(parse_duration("365d").is_err());
        assert!(parse_duration("8760h").is_ok());
        for text in ["0s", "500ms", "1500ms", "30s", "5m", "90s", "1h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn line_columns_count_characters() {
        let at = |text: &str, offset| {
            let parser = Parser {
                path: Path::new(""),
                text,
                line_starts: line_starts(text),
                problems: Vec::new(),
            };
            parser.line_column(offset)
        };
        assert_eq!(at("ab\ncé d", 7), (2, 4));
        assert_eq!(at("ab\ncé d", 2), (1, 3));
        assert_eq!(at("ab\ncé d", 3), (2, 1));
        assert_eq!(at("", 0), (1, 1));
    }

    #[test]
    fn unsafe_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hooks.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("writable by group") && err.contains("chmod go-w"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o646)).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("writable by others"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Config::load(&path).unwrap();
    }
}
