//! The plain data model at the bottom of the runner: a hook, its command, mode,
//! output and limits, and the `[defaults]` they fall back on. The config produces
//! it; the matcher, the supervisor and exec consume it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

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

/// The `[defaults]` table, resolved. [`Defaults::default`] is the one place where
/// the built-in values are written.
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
    /// Run again, with `TRACIM_REDELIVERED=1`, a run that was going on when the
    /// runner died; when false such a run is recorded as interrupted instead.
    pub rerun_interrupted: bool,
    /// `key`: a dotted path into the event; runs are grouped by its text (a
    /// missing field is the empty text): `serial` and `latest` hold per value,
    /// and so does `debounce`.
    pub key: Option<String>,
    /// `debounce`: wait for the events to settle before a run.
    pub debounce: Option<Debounce>,
    /// `on_failure`: the hooks run for the same event when a run of this one
    /// has failed for good; resolved at load (names exist, no cycle).
    pub on_failure: Vec<Arc<Hook>>,
    /// `where` conditions, all of which must hold.
    pub conditions: Vec<Where>,
    /// Case sensitivity of the conditions.
    pub where_case: Case,
    /// Line of the hook in its file, for messages.
    pub line: usize,
}

/// `debounce` and `debounce_max`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    /// A run starts once no newer event (of its key) came for this long.
    pub wait: Duration,
    /// ... but never later than this after the first event it holds.
    pub max: Duration,
}

/// One `where` entry: a dotted path into the event and the globs its text must
/// (or, with a leading `!`, must not) match. Of several plain globs one must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where {
    /// The dotted path, e.g. `fields.workspace.label`.
    pub path: String,
    /// The globs as written.
    pub globs: Vec<String>,
}

impl Defaults {
    /// The shell a `run` script is handed to.
    pub const SHELL: [&str; 2] = ["/bin/sh", "-c"];
    /// A run's time limit.
    pub const TIMEOUT: Duration = Duration::from_secs(60);
    /// From SIGTERM to SIGKILL.
    pub const KILL_AFTER: Duration = Duration::from_secs(5);
    /// Runs at once, over all hooks.
    pub const MAX_PARALLEL: usize = 8;
    /// Runs waiting for a slot, over all hooks.
    pub const QUEUE_LIMIT: usize = 10_000;
    /// Total size of a run's `TRACIM_*` variables.
    pub const ENV_BUDGET: usize = 256 * 1024;
    /// Largest `env_budget`: with argv and the runner's own environment, exec
    /// must stay within the kernel's limit (about 2 MiB in all).
    pub const MAX_ENV_BUDGET: usize = 1024 * 1024;
    /// How long running hooks may finish at shutdown.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// Output handling.
    pub const OUTPUT: Output = Output::Log;
    /// Retries of a failed run.
    pub const RETRIES: u32 = 0;
    /// First delay before a retry, doubling each time.
    pub const RETRY_DELAY: Duration = Duration::from_secs(1);
    /// Skipping events caused by the daemon's own account.
    pub const SKIP_OWN: bool = false;
    /// How runs of a hook relate (a hook setting with no `[defaults]` entry).
    pub const MODE: Mode = Mode::Parallel;
    /// Case sensitivity of `where` (a hook setting with no `[defaults]` entry).
    pub const WHERE_CASE: Case = Case::Sensitive;
    /// Whether a run interrupted by the runner's death runs again (a hook setting
    /// with no `[defaults]` entry).
    pub const RERUN_INTERRUPTED: bool = true;
    /// `debounce_max` when not given: this many times `debounce`.
    pub const DEBOUNCE_MAX_FACTOR: u32 = 10;
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            shell: Defaults::SHELL.map(String::from).to_vec(),
            timeout: Defaults::TIMEOUT,
            kill_after: Defaults::KILL_AFTER,
            max_parallel: Defaults::MAX_PARALLEL,
            queue_limit: Defaults::QUEUE_LIMIT,
            env_budget: Defaults::ENV_BUDGET,
            shutdown_grace: Defaults::SHUTDOWN_GRACE,
            output: Defaults::OUTPUT,
            retries: Defaults::RETRIES,
            retry_delay: Defaults::RETRY_DELAY,
            skip_own: Defaults::SKIP_OWN,
        }
    }
}
