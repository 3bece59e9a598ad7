//! Reading the secrets `[tracim]` names: a password or API key file, or the daemon's
//! config.json. Each is refused unless it is a regular file owned by this user that
//! neither group nor others may read or write; no error ever holds a secret's text.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tracim_daemon_sdk::tracim::{Credentials, Login, Secret, TracimConfig};

use super::{TracimLogin, TracimSettings};
use crate::paths::{OpenError, open_regular, read_at_most};

/// Far more than a password, a key or the daemon's config holds.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Why the credentials of `[tracim]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file cannot be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not safe to hold a secret, or not a file at all.
    #[error("{}: {message}", path.display())]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The file is empty, or not what it should be (never quoting it).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The client's config for `[tracim]`: the URL, and credentials read from their files.
pub fn client_config(settings: &TracimSettings) -> Result<TracimConfig, SecretError> {
    let (url, credentials) = match &settings.login {
        TracimLogin::Password {
            login,
            password_file,
        } => (
            settings.url.clone(),
            Credentials::Session {
                login: login.clone(),
                password: read_secret(password_file)?,
            },
        ),
        TracimLogin::ApiKey { login, key_file } => (
            settings.url.clone(),
            Credentials::ApiKey {
                login: login.clone(),
                key: read_secret(key_file)?,
            },
        ),
        TracimLogin::DaemonConfig { path } => {
            let (url, credentials) = daemon_config(path)?;
            (settings.url.clone().or(Some(url)), credentials)
        }
    };
    let url = url.unwrap_or_default();
    let mut config = TracimConfig::new(url, credentials);
    config.ca_file = settings.ca_file.clone();
    Ok(config)
}

/// The first line of a secret file, without its line end.
pub fn read_secret(path: &Path) -> Result<Secret, SecretError> {
    let text = read_private(path)?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(SecretError::Invalid {
            path: path.to_path_buf(),
            message: "is empty: write the secret on its first line".into(),
        });
    }
    Ok(Secret::new(line))
}

/// `{"tracim": {"url", "username" | "mail", "password"}}`, the daemon's config.json.
fn daemon_config(path: &Path) -> Result<(String, Credentials), SecretError> {
    #[derive(Deserialize)]
    struct File {
        tracim: Tracim,
    }
    #[derive(Deserialize)]
    struct Tracim {
        url: String,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        mail: Option<String>,
        password: String,
    }
    let text = read_private(path)?;
    let invalid = |message: String| SecretError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    // serde's messages may quote a value, and a value here may be the password:
    // only the position is told.
    let file: File = serde_json::from_str(&text).map_err(|e| {
        invalid(format!(
            "is not the daemon's config (JSON with tracim.url, tracim.username or tracim.mail, tracim.password): error at line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    let login = match (file.tracim.username, file.tracim.mail) {
        (Some(name), _) if !name.is_empty() => Login::Username(name),
        (_, Some(mail)) if !mail.is_empty() => Login::Email(mail),
        _ => {
            return Err(invalid(
                "has neither tracim.username nor tracim.mail".into(),
            ));
        }
    };
    if file.tracim.password.is_empty() {
        return Err(invalid("has an empty tracim.password".into()));
    }
    Ok((
        file.tracim.url,
        Credentials::Session {
            login,
            password: Secret::new(file.tracim.password),
        },
    ))
}

/// Opens one file, checks it (regular, this user's, private) and reads it whole.
fn read_private(path: &Path) -> Result<String, SecretError> {
    let read_error = |source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    };
    let unsafe_file = |message: String| SecretError::Unsafe {
        path: path.to_path_buf(),
        message,
    };
    let (file, meta) = open_regular(path).map_err(|e| match e {
        OpenError::Io(source) => read_error(source),
        OpenError::NotRegular(what) => unsafe_file(format!("is {what}, not a regular file")),
    })?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_file(format!(
            "holds a secret but is owned by uid {}, not by you (uid {me}). Fix: chown {me} '{}'",
            meta.uid(),
            path.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_file(format!(
            "holds a secret but group or others have access to it (mode {:o}). Fix: chmod 600 '{}'",
            meta.mode() & 0o7777,
            path.display()
        )));
    }
    let too_large = || unsafe_file(format!("is {} bytes: too large for a secret", meta.len()));
    if meta.len() > MAX_SECRET_FILE {
        return Err(too_large());
    }
    let text = read_at_most(file, MAX_SECRET_FILE)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => SecretError::Invalid {
                path: path.to_path_buf(),
                message: "is not UTF-8 text".into(),
            },
            _ => read_error(e),
        })?
        .ok_or_else(too_large)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "pw", "hunter2-secret\r\nignored\n", 0o600);
        assert_eq!(read_secret(&path).unwrap().expose(), "hunter2-secret");
        let empty = write(dir.path(), "empty", "\n", 0o600);
        assert!(matches!(
            read_secret(&empty),
            Err(SecretError::Invalid { .. })
        ));
    }

    #[test]
    fn readable_by_others_or_not_a_file_is_refused_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o620] {
            let path = write(dir.path(), "pw", "hunter2-secret\n", mode);
            let err = read_secret(&path).unwrap_err().to_string();
            assert!(
                err.contains("chmod 600") && !err.contains("hunter2"),
                "{err}"
            );
        }
        let err = read_secret(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
    }

    #[test]
    fn the_daemon_config_gives_url_and_login_but_errors_never_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(
            dir.path(),
            "config.json",
            r#"{"tracim": {"url": "https://t.example.org/api", "mail": "me@example.org", "password": "hunter2-secret"}, "socket_path": "/x"}"#,
            0o600,
        );
        let (url, creds) = daemon_config(&good).unwrap();
        assert_eq!(url, "https://t.example.org/api");
        assert_eq!(creds.login(), "me@example.org");
        assert!(!format!("{creds:?}").contains("hunter2"));
        let bad = write(
            dir.path(),
            "bad.json",
            r#"{"tracim": {"url": "https://t.example.org/api", "username": "me", "password": ["hunter2-secret"]}}"#,
            0o600,
        );
        let err = daemon_config(&bad).unwrap_err().to_string();
        assert!(err.contains("line 1") && !err.contains("hunter2"), "{err}");
        let open = write(dir.path(), "open.json", "{}", 0o644);
        assert!(matches!(
            daemon_config(&open),
            Err(SecretError::Unsafe { .. })
        ));
    }
}
