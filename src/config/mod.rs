//! hooks.toml: where it is found, how it is read, and what it becomes: a ready
//! [`Config`] of plain [`crate::hook`] data.
//!
//! Every mistake is reported as `file:line:column: message`, naming the hook when it
//! lies inside one, and all mistakes of a file are reported at once, so that a user
//! fixes them in one pass.

mod duration;
mod failure_hooks;
pub(crate) mod load;
mod schema;
#[cfg(test)]
mod tests_runs;
mod tracim;
mod validate;
mod validate_hook;
mod validate_runs;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracim_daemon_sdk::client::ClientConfig;

use crate::hook::{Defaults, Hook};
use crate::journal::JournalSettings;
use crate::paths;
use crate::source::{Source, TracimSettings};

pub use duration::{DurationError, format_duration, parse_duration};

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "TRACIM_HOOKS_CONFIG";

/// The commented example config, also what `init` writes and `demo` runs.
pub const EXAMPLE: &str = include_str!("../../config/hooks.toml");

/// The default `log_window`.
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

/// A loaded, validated configuration. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `source`: where events come from.
    pub source: Source,
    /// The `[tracim]` table: Tracim itself, for catch-up and for `source = "tracim"`.
    pub tracim: Option<TracimSettings>,
    /// The `[daemon]` table: how to reach the daemon.
    pub daemon: ClientConfig,
    /// `[daemon] log_window`: complaints about refused input are logged at most
    /// 5 times per kind in this window, then counted.
    pub log_window: Duration,
    /// Settings for the whole runner, and defaults for the hooks.
    pub defaults: Defaults,
    /// The hooks, in file order.
    pub hooks: Vec<Arc<Hook>>,
    /// The `[journal]` table: where events and runs are kept.
    pub journal: JournalSettings,
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
    /// The path cannot be used as a config: not a regular file (a FIFO would hang,
    /// a device never end), too large, writable by others or owned by someone else
    /// (whoever can write it decides what runs as this user).
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
        let text = load::read_checked(path)?;
        Config::parse(path, &text)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut parser = validate::Parser::new(path, text);
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

#[cfg(test)]
mod tests;
