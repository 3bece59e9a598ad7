//! Validation of the `[tracim]` table and of the top-level `source` key: exactly one
//! way to log in, paths expanded, each mistake at its position. The secret files are
//! only named here; `source::secrets` reads them, with their safety checks.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;
use tracim_daemon_sdk::tracim::Login;

use super::schema::RawTracim;
use super::validate::Parser;
use crate::paths;
use crate::source::{TracimLogin, TracimSettings};

impl Parser<'_> {
    /// The `[tracim]` table; `span` is the table's, for what is missing from it.
    pub(super) fn tracim(&mut self, raw: RawTracim, span: Range<usize>) -> Option<TracimSettings> {
        let mut ok = true;
        let url = match raw.url {
            Some(url) => {
                let text = url.get_ref().trim().to_owned();
                if !(text.starts_with("https://") || text.starts_with("http://")) {
                    self.problem(
                        url.span(),
                        None,
                        "[tracim] url must be Tracim's API URL, like \"https://tracim.example.org/api\"",
                    );
                    ok = false;
                }
                Some(text)
            }
            None => None,
        };
        let password_way =
            raw.username.is_some() || raw.email.is_some() || raw.password_file.is_some();
        let key_way = raw.api_login.is_some() || raw.api_key_file.is_some();
        let daemon_way = raw.from_daemon_config.is_some();
        let ways = [password_way, key_way, daemon_way]
            .iter()
            .filter(|w| **w)
            .count();
        if ways != 1 {
            let message = if ways == 0 {
                "[tracim] needs a way to log in: `username` (or `email`) with `password_file`, \
                 `api_login` with `api_key_file`, or `from_daemon_config`"
            } else {
                "[tracim] takes one way to log in: `username`/`email` with `password_file`, \
                 or `api_login` with `api_key_file`, or `from_daemon_config`, not several"
            };
            self.problem(span.clone(), None, message);
            return None;
        }
        let login = if password_way {
            let login = match (raw.username, raw.email) {
                (Some(name), None) => Some(Login::Username(name.into_inner())),
                (None, Some(email)) => Some(Login::Email(email.into_inner())),
                (Some(_), Some(email)) => {
                    self.problem(
                        email.span(),
                        None,
                        "[tracim] takes `username` or `email`, not both",
                    );
                    None
                }
                (None, None) => {
                    self.problem(
                        span.clone(),
                        None,
                        "[tracim] `password_file` needs `username` or `email`",
                    );
                    None
                }
            };
            let file = self.secret_path(
                raw.password_file,
                "password_file",
                &span,
                "`username`/`email`",
            );
            TracimLogin::Password {
                login: login?,
                password_file: file?,
            }
        } else if key_way {
            let login = match raw.api_login {
                Some(login) => Some(login.into_inner()),
                None => {
                    self.problem(span.clone(), None, "[tracim] `api_key_file` needs `api_login` (the user name or email to act as)");
                    None
                }
            };
            let file = self.secret_path(raw.api_key_file, "api_key_file", &span, "`api_login`");
            TracimLogin::ApiKey {
                login: login?,
                key_file: file?,
            }
        } else {
            let path = self.absolute(raw.from_daemon_config?, "from_daemon_config");
            TracimLogin::DaemonConfig { path: path? }
        };
        if url.is_none() && !matches!(login, TracimLogin::DaemonConfig { .. }) {
            self.problem(span.clone(), None, "[tracim] needs `url`, Tracim's API URL (the daemon's config.json has it as tracim.url)");
            ok = false;
        }
        let ca_file = match raw.ca_file {
            Some(path) => Some(self.absolute(path, "ca_file")?),
            None => None,
        };
        let catch_up_max = match raw.catch_up_max {
            None => TracimSettings::CATCH_UP_MAX,
            Some(v) if *v.get_ref() == 0 => {
                self.problem(v.span(), None, "catch_up_max must be at least 1");
                return None;
            }
            Some(v) => usize::try_from(*v.get_ref()).unwrap_or(usize::MAX),
        };
        ok.then_some(TracimSettings {
            url,
            login,
            ca_file,
            catch_up_max,
            catch_up_window: raw
                .catch_up_window
                .map_or(TracimSettings::CATCH_UP_WINDOW, |d| d.0),
            stream_timeout: raw
                .stream_timeout
                .map_or(TracimSettings::STREAM_TIMEOUT, |d| d.0),
        })
    }

    fn secret_path(
        &mut self,
        value: Option<Spanned<String>>,
        what: &str,
        table: &Range<usize>,
        with: &str,
    ) -> Option<PathBuf> {
        match value {
            Some(v) => self.absolute(v, what),
            None => {
                self.problem(
                    table.clone(),
                    None,
                    format!(
                        "[tracim] {with} needs `{what}`, a file holding the secret (mode 0600)"
                    ),
                );
                None
            }
        }
    }

    /// A path that must be absolute after `~`/`$VAR` expansion.
    fn absolute(&mut self, value: Spanned<String>, what: &str) -> Option<PathBuf> {
        match paths::expand(value.get_ref()) {
            Ok(p) if p.is_absolute() => Some(p),
            Ok(p) => {
                self.problem(
                    value.span(),
                    None,
                    format!(
                        "{what} must be an absolute path (or start with `~`), got `{}`",
                        p.display()
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(value.span(), None, format!("{what}: {e}"));
                None
            }
        }
    }
}
