//! The Tracim HTTP client: one `reqwest` client (rustls: the system's roots plus an
//! optional private CA), a timeout on every request, and the three ways Tracim accepts
//! credentials; a cookie session logs in again once when a request gets 401.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, HeaderValue, SET_COOKIE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use super::auth::{Credentials, Login, Secret};
use super::error::TracimError;
use super::stream::{LiveStream, StreamOptions};

mod history;

pub use history::{CatchUp, CatchUpLimits, HistoryPage, Skipped};

/// Where Tracim is and how to log in.
#[derive(Clone, Debug)]
pub struct TracimConfig {
    /// The API's base URL, as in the daemon's config: `https://host/api`.
    pub url: String,
    /// How to authenticate.
    pub credentials: Credentials,
    /// A PEM file of extra CA certificates, trusted on top of the system's.
    pub ca_file: Option<PathBuf>,
    /// The longest any request may take, answer included (not the live stream's body,
    /// whose silence has its own limit in [`StreamOptions`]).
    pub request_timeout: Duration,
    /// The longest a TCP+TLS connection may take to set up.
    pub connect_timeout: Duration,
}

impl TracimConfig {
    /// A config with the default timeouts (30 s per request, 10 s to connect).
    pub fn new(url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            url: url.into(),
            credentials,
            ca_file: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Who the credentials belong to (`GET /api/auth/whoami`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Whoami {
    /// The account's user id (the one in `/api/users/{id}/…`).
    pub user_id: u64,
    /// Its display name.
    pub public_name: String,
    /// Its user name, when it has one.
    #[serde(default)]
    pub username: Option<String>,
}

/// A Tracim client; cheap to clone (clones share the session).
#[derive(Clone, Debug)]
pub struct TracimClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// The API base without its trailing slash.
    base: String,
    credentials: Credentials,
    request_timeout: Duration,
    session: Mutex<Session>,
    /// Serializes logins, so requests refused together log in once.
    login_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Session {
    key: Option<Secret>,
    /// Bumped at every login: a request refused with an older session need not log in
    /// again when another request already did.
    generation: u64,
}

/// `session_key`: the cookie Tracim's login sets.
const SESSION_COOKIE: &str = "session_key";

impl TracimClient {
    /// Builds the client; does not contact Tracim (see [`TracimClient::login`]).
    pub fn new(config: TracimConfig) -> Result<Self, TracimError> {
        let base = normalize_base(&config.url)?;
        // The process's TLS provider: ring, unless the program chose another first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("tracim-daemon-sdk/", env!("CARGO_PKG_VERSION")))
            // A redirect is not part of Tracim's API; following one could hand the
            // credentials to another place.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| TracimError::CaFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| TracimError::CaFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(TracimError::CaFile {
                    path: path.clone(),
                    reason: "no PEM certificate in it".into(),
                });
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(TracimError::Setup)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                credentials: config.credentials,
                request_timeout: config.request_timeout,
                session: Mutex::new(Session::default()),
                login_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The API base URL in use (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Checks the credentials and says whose they are: a session logs in afresh
    /// (`POST /api/auth/login`); API key and Basic ask `GET /api/auth/whoami`.
    pub async fn login(&self) -> Result<Whoami, TracimError> {
        match &self.inner.credentials {
            Credentials::Session { login, password } => {
                let _one_at_a_time = self.inner.login_lock.lock().await;
                self.post_login(login, password).await
            }
            _ => self.whoami().await,
        }
    }

    /// `POST /api/auth/logout`: ends the session (a cookie session logs in again on its
    /// next request). Tracim closes every live stream of the user, wherever it is open.
    pub async fn logout(&self) -> Result<(), TracimError> {
        let what = "POST /api/auth/logout";
        let response = self
            .send(what, Method::POST, "/auth/logout", &[], true)
            .await?;
        check_status(what, response).await?;
        self.session().key = None;
        Ok(())
    }

    /// `GET /api/auth/whoami`.
    pub async fn whoami(&self) -> Result<Whoami, TracimError> {
        let what = "GET /api/auth/whoami";
        let response = self
            .send(what, Method::GET, "/auth/whoami", &[], true)
            .await?;
        read_json(what, response).await
    }

    /// The newest event id of the user's history, `None` when it is empty.
    pub async fn newest_event_id(&self, user_id: u64) -> Result<Option<u64>, TracimError> {
        let page = self.history_page(user_id, 1, None).await?;
        Ok(page.items.first().map(|e| e.event_id))
    }

    /// Opens `GET /api/users/{user_id}/live_messages` with `Accept: text/event-stream`.
    /// With `after_event_id`, Tracim first sends every message after that id (unordered,
    /// without `event:` lines), then the live ones. Tracim's code sends no backlog for 0,
    /// the value it takes when the parameter is absent.
    pub async fn open_stream(
        &self,
        user_id: u64,
        after_event_id: Option<u64>,
        options: StreamOptions,
    ) -> Result<LiveStream, TracimError> {
        let what = "GET /api/users/{id}/live_messages";
        let path = format!("/users/{user_id}/live_messages");
        let query: Vec<(&str, String)> = after_event_id
            .map(|id| ("after_event_id", id.to_string()))
            .into_iter()
            .collect();
        // Only the answer's head is bounded by the request timeout here: the body is the
        // stream itself, bounded by the silence timeout instead.
        let response = tokio::time::timeout(
            self.inner.request_timeout,
            self.send(what, Method::GET, &path, &query, false),
        )
        .await
        .map_err(|_| TracimError::Protocol {
            what,
            reason: format!("no answer within {:?}", self.inner.request_timeout),
        })??;
        let response = check_status(what, response).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            return Err(TracimError::Protocol {
                what,
                reason: format!("content type {content_type:?}, not text/event-stream"),
            });
        }
        Ok(LiveStream::new(response, options))
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // A panic while holding this lock leaves a consistent `Session`: take it over.
        self.inner
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends a request with the credentials; with a session, logs in first if needed and
    /// again once on 401. The answer's status is not checked except for 401.
    pub(crate) async fn send(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        bounded: bool,
    ) -> Result<Response, TracimError> {
        let mut url =
            reqwest::Url::parse(&format!("{}{}", self.inner.base, path)).map_err(|e| {
                TracimError::BadUrl {
                    url: self.inner.base.clone(),
                    reason: e.to_string(),
                }
            })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let build = || {
            let mut request = self.inner.http.request(method.clone(), url.clone());
            if bounded {
                request = request.timeout(self.inner.request_timeout);
            }
            if !bounded {
                request = request.header(ACCEPT, "text/event-stream");
            } else {
                request = request.header(ACCEPT, "application/json");
            }
            request
        };
        let is_session = matches!(self.inner.credentials, Credentials::Session { .. });
        if is_session {
            // Read under the lock, used after it: the guard must not live across an await.
            let (has_key, generation) = {
                let session = self.session();
                (session.key.is_some(), session.generation)
            };
            if !has_key {
                self.log_in_unless_done(generation).await?;
            }
        }
        let (response, generation) = self.send_once(what, build()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        if is_session {
            // The session expired or someone logged out: log in again, once.
            tracing::info!(what, "Tracim refused the session (401): logging in again");
            self.log_in_unless_done(generation).await?;
            let (response, _) = self.send_once(what, build()).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
        }
        Err(TracimError::Unauthorized {
            kind: self.inner.credentials.kind(),
            login: self.inner.credentials.login().to_string(),
            what,
        })
    }

    async fn send_once(
        &self,
        what: &'static str,
        request: RequestBuilder,
    ) -> Result<(Response, u64), TracimError> {
        let (request, generation) = self.authorize(request);
        let response = request
            .send()
            .await
            .map_err(|source| TracimError::Unreachable { what, source })?;
        self.take_session_cookie(&response);
        Ok((response, generation))
    }

    /// Adds the credentials; marks them sensitive so no HTTP layer logs them.
    fn authorize(&self, request: RequestBuilder) -> (RequestBuilder, u64) {
        match &self.inner.credentials {
            Credentials::Session { .. } => {
                let session = self.session();
                let request = match &session.key {
                    Some(key) => match sensitive(&format!("{SESSION_COOKIE}={}", key.expose())) {
                        Some(value) => request.header(COOKIE, value),
                        None => request,
                    },
                    None => request,
                };
                (request, session.generation)
            }
            Credentials::ApiKey { login, key } => {
                let mut request = request;
                if let Some(value) = sensitive(key.expose()) {
                    request = request.header("Tracim-Api-Key", value);
                }
                (request.header("Tracim-Api-Login", login.as_str()), 0)
            }
            Credentials::Basic { login, password } => {
                (request.basic_auth(login, Some(password.expose())), 0)
            }
        }
    }

    /// Tracim renews the session cookie past half its life: keep the newest.
    fn take_session_cookie(&self, response: &Response) {
        if !matches!(self.inner.credentials, Credentials::Session { .. }) {
            return;
        }
        if let Some(key) = session_cookie(response) {
            self.session().key = Some(key);
        }
    }

    /// Logs in unless another task did since the session of generation `seen` was used.
    async fn log_in_unless_done(&self, seen: u64) -> Result<(), TracimError> {
        let _one_at_a_time = self.inner.login_lock.lock().await;
        {
            let session = self.session();
            if session.generation != seen && session.key.is_some() {
                return Ok(());
            }
        }
        match &self.inner.credentials {
            Credentials::Session { login, password } => {
                self.post_login(login, password).await.map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// `POST /api/auth/login`; the caller holds `login_lock`.
    async fn post_login(&self, login: &Login, password: &Secret) -> Result<Whoami, TracimError> {
        let what = "POST /api/auth/login";
        let body =
            serde_json::json!({ login.field(): login.as_str(), "password": password.expose() });
        let response = self
            .inner
            .http
            .post(format!("{}/auth/login", self.inner.base))
            .timeout(self.inner.request_timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|source| TracimError::Unreachable { what, source })?;
        let status = response.status();
        if matches!(status.as_u16(), 400 | 401 | 403) {
            return Err(TracimError::LoginRefused {
                login: login.to_string(),
                status: status.as_u16(),
            });
        }
        let key = session_cookie(&response);
        let whoami: Whoami = read_json(what, response).await?;
        let Some(key) = key else {
            return Err(TracimError::Protocol {
                what,
                reason: format!("no {SESSION_COOKIE} cookie in the answer"),
            });
        };
        let mut session = self.session();
        session.key = Some(key);
        session.generation += 1;
        tracing::debug!(user_id = whoami.user_id, "logged in to Tracim");
        Ok(whoami)
    }
}

/// `url` must be http(s); the result has no trailing slash.
fn normalize_base(url: &str) -> Result<String, TracimError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| TracimError::BadUrl {
        url: url.into(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TracimError::BadUrl {
            url: url.into(),
            reason: "not http or https".into(),
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Credentials in the URL would end up in error messages: refuse them there.
        return Err(TracimError::BadUrl {
            url: "(redacted: it holds credentials)".into(),
            reason: "credentials belong in the config, not the URL".into(),
        });
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(TracimError::BadUrl {
            url: url.into(),
            reason: "a query or fragment has no place in the API's base URL".into(),
        });
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The `session_key` of the answer's `Set-Cookie` headers. Read by hand rather than by a
/// cookie jar: the key is a secret (kept in a [`Secret`]), and the client must know
/// whether it has a session at all.
fn session_cookie(response: &Response) -> Option<Secret> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .find_map(|header| {
            let pair = header.to_str().ok()?.split(';').next()?;
            let (name, value) = pair.split_once('=')?;
            (name.trim() == SESSION_COOKIE && !value.trim().is_empty())
                .then(|| Secret::new(value.trim()))
        })
}

/// Turns any status but 2xx into an error, with Tracim's own message when it sent one.
pub(crate) async fn check_status(
    what: &'static str,
    response: Response,
) -> Result<Response, TracimError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    #[derive(Deserialize)]
    struct TracimErrorBody {
        message: Option<String>,
    }
    let message = match response.bytes().await {
        Ok(body) => serde_json::from_slice::<TracimErrorBody>(&body)
            .ok()
            .and_then(|b| b.message),
        Err(_) => None,
    };
    Err(TracimError::Status {
        what,
        status: status.as_u16(),
        message,
    })
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    response: Response,
) -> Result<T, TracimError> {
    let response = check_status(what, response).await?;
    let body = response
        .bytes()
        .await
        .map_err(|source| TracimError::Unreachable { what, source })?;
    serde_json::from_slice(&body).map_err(|e| TracimError::Protocol {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            normalize_base("https://t.example.org/api/").ok().as_deref(),
            Some("https://t.example.org/api")
        );
        assert_eq!(
            normalize_base("http://127.0.0.1:8080/api").ok().as_deref(),
            Some("http://127.0.0.1:8080/api")
        );
        assert!(normalize_base("ftp://t.example.org/api").is_err());
        assert!(normalize_base("not a url").is_err());
        let err = normalize_base("https://bob:hunter2@t.example.org/api")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("credentials") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
