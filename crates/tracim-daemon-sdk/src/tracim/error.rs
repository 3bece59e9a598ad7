//! Errors of the Tracim client and of its live stream; none of them carries a secret.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong talking to Tracim.
#[derive(Debug, thiserror::Error)]
pub enum TracimError {
    /// The configured URL is not a usable http(s) URL.
    #[error("invalid Tracim URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The `ca_file` could not be read or holds no certificate.
    #[error("cannot use CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot set up the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
    /// No answer: connection refused, DNS, TLS, reset, or a timeout.
    #[error("Tracim is unreachable ({what}): {source}")]
    Unreachable {
        /// The request that failed.
        what: &'static str,
        /// The transport error (it names the URL, never a credential).
        #[source]
        source: reqwest::Error,
    },
    /// `POST /api/auth/login` refused the user name/email and password.
    #[error(
        "Tracim refused the login of {login:?} (HTTP {status}): wrong user name, email or password, or the account is disabled"
    )]
    LoginRefused {
        /// Who tried.
        login: String,
        /// The HTTP status (Tracim answers 403, older versions 400).
        status: u16,
    },
    /// A request was refused with 401 even with fresh credentials.
    #[error("Tracim refused the {kind} credentials of {login:?} (HTTP 401) for {what}")]
    Unauthorized {
        /// "session", "API key" or "basic".
        kind: &'static str,
        /// Who tried.
        login: String,
        /// The request that was refused.
        what: &'static str,
    },
    /// Any other unexpected status (5xx, 403, 404…).
    #[error("Tracim answered HTTP {status} to {what}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The request.
        what: &'static str,
        /// The status code.
        status: u16,
        /// Tracim's own error message, when its body had one.
        message: Option<String>,
    },
    /// An answer that does not follow Tracim's API.
    #[error("unexpected answer from Tracim to {what}: {reason}")]
    Protocol {
        /// The request.
        what: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

impl TracimError {
    /// True for a 5xx answer (Tracim or its proxy in trouble: worth retrying later).
    pub fn is_server_error(&self) -> bool {
        matches!(self, TracimError::Status { status, .. } if *status >= 500)
    }

    /// True when the credentials were refused (retrying with the same ones is pointless
    /// until someone fixes them).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            TracimError::LoginRefused { .. } | TracimError::Unauthorized { .. }
        )
    }
}

/// Why a live stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamEnd {
    /// The server ended the response (after `stream-error`, a logout, a restart…).
    #[error("Tracim closed the event stream")]
    Closed,
    /// Nothing at all arrived for this long: the stream is taken as dead.
    #[error("Tracim's event stream was silent for {0:?} (no message, no keep-alive)")]
    Silent(Duration),
    /// One event grew past the size limit; the stream cannot be trusted past it.
    #[error("an event of Tracim's stream exceeds {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("Tracim's event stream broke: {0}")]
    Transport(#[source] reqwest::Error),
    /// Bytes that are not an event stream (invalid UTF-8, a line the grammar refuses).
    #[error("Tracim's event stream is unreadable: {0}")]
    Unreadable(String),
}
