//! The `[tracim]` table and the top-level `source` key, as plain data.

use std::path::PathBuf;
use std::time::Duration;

/// Where events come from (`source`, a top-level key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Register with the TracimDaemon and take its deliveries (the default).
    #[default]
    Daemon,
    /// Read Tracim's own event stream; no daemon needed.
    Tracim,
}

impl Source {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Daemon => "daemon",
            Source::Tracim => "tracim",
        }
    }
}

/// How the runner logs in to Tracim; the secrets stay in their files until used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TracimLogin {
    /// `username` or `email`, with `password_file`: a cookie session.
    Password {
        /// The user name or email.
        login: tracim_daemon_sdk::tracim::Login,
        /// The file holding the password (one line).
        password_file: PathBuf,
    },
    /// `api_login` with `api_key_file`: Tracim's API key headers.
    ApiKey {
        /// The user name or email to act as.
        login: String,
        /// The file holding the server's API key (one line).
        key_file: PathBuf,
    },
    /// `from_daemon_config`: the URL, login and password of the daemon's config.json.
    DaemonConfig {
        /// The daemon's config.json.
        path: PathBuf,
    },
}

/// The `[tracim]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracimSettings {
    /// The API's base URL; `None` only with `from_daemon_config`, which has one.
    pub url: Option<String>,
    /// How to log in.
    pub login: TracimLogin,
    /// A private CA (PEM), trusted on top of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// At most this many missed events are run by one catch-up (the newest).
    pub catch_up_max: usize,
    /// Missed events older than this are never run.
    pub catch_up_window: Duration,
    /// How long the live stream may stay silent before it is taken as dead.
    pub stream_timeout: Duration,
}

impl TracimSettings {
    /// `catch_up_max` unless given.
    pub const CATCH_UP_MAX: usize = 1000;
    /// `catch_up_window` unless given: a week.
    pub const CATCH_UP_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
    /// `stream_timeout` unless given: as Tracim's own web client.
    pub const STREAM_TIMEOUT: Duration = Duration::from_secs(45);
}
