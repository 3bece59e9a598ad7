//! Credentials for Tracim, and the secrets in them that never reach a log.

use std::fmt;

/// A password, API key or session key: its `Debug` and `Display` show `***`, so a
/// secret cannot leak through a log line, an error or a `{:?}` of a config.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Who logs in: Tracim accepts a user name or an email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Login {
    /// A Tracim user name.
    Username(String),
    /// The user's email address.
    Email(String),
}

impl Login {
    /// The user name or email, as typed.
    pub fn as_str(&self) -> &str {
        match self {
            Login::Username(name) | Login::Email(name) => name,
        }
    }

    /// The field of `POST /api/auth/login` this login goes in.
    pub(crate) fn field(&self) -> &'static str {
        match self {
            Login::Username(_) => "username",
            Login::Email(_) => "email",
        }
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the client proves who it is.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// `POST /api/auth/login`, then the `session_key` cookie; logs in again once when a
    /// request is refused with 401 (the session expired or someone logged out).
    Session {
        /// User name or email.
        login: Login,
        /// The account's password.
        password: Secret,
    },
    /// `Tracim-Api-Key` and `Tracim-Api-Login` on every request (the server's `api.key`).
    ApiKey {
        /// User name or email of the account to act as.
        login: String,
        /// The server's API key.
        key: Secret,
    },
    /// HTTP Basic on every request.
    Basic {
        /// User name or email.
        login: String,
        /// The account's password.
        password: Secret,
    },
}

impl Credentials {
    /// The login these credentials name, for messages (never the secret).
    pub fn login(&self) -> &str {
        match self {
            Credentials::Session { login, .. } => login.as_str(),
            Credentials::ApiKey { login, .. } | Credentials::Basic { login, .. } => login,
        }
    }

    /// A short name of the way, for messages: "session", "API key" or "basic".
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::Session { .. } => "session",
            Credentials::ApiKey { .. } => "API key",
            Credentials::Basic { .. } => "basic",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_or_display() {
        let creds = Credentials::Session {
            login: Login::Email("hooks@example.org".into()),
            password: Secret::new("hunter2-very-secret"),
        };
        let shown = format!(
            "{creds:?} {} {}",
            Secret::new("hunter2-very-secret"),
            creds.login()
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("hooks@example.org"));
        let key = Credentials::ApiKey {
            login: "hooks".into(),
            key: Secret::new("k3y-s3cret"),
        };
        assert!(!format!("{key:?}").contains("k3y"));
    }
}
