//! The simulator's endpoints, with Tracim's checks: authentication (cookie, API key
//! headers, Basic), personal access, the live stream's `Accept`, query parameters.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use base64::Engine;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::http::{Answer, Request, read_request, write_raw};
use super::sse::{self, Open};
use super::state::{State, StreamHandle};
use super::{Endpoint, Shared, SimUser};

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                let _ = socket.set_nodelay(true);
                tokio::spawn(connection(socket, shared.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "simulated Tracim: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn connection(socket: TcpStream, shared: Arc<Shared>) {
    let mut epoch = shared.epoch.subscribe();
    epoch.borrow_and_update();
    tokio::select! {
        _ = epoch.changed() => {}
        result = serve(socket, &shared) => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "simulated Tracim: connection ended");
            }
        }
    }
}

enum Reply {
    Answer(Answer),
    Stream(Open),
}

/// One request per connection: every answer says `Connection: close`.
async fn serve(socket: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (mut reader, mut writer) = socket.into_split();
    let Some(request) = read_request(&mut reader).await? else {
        return Ok(());
    };
    let (reply, split, mut rng) = {
        let mut state = shared.state();
        let reply = route(&request, &mut state);
        let seed: u64 = state.rng.random();
        (
            reply,
            state.config.split.clone(),
            StdRng::seed_from_u64(seed),
        )
    };
    match reply {
        Reply::Answer(answer) => {
            write_raw(&mut writer, &answer.bytes(), &split, &mut rng).await?;
            tokio::io::AsyncWriteExt::shutdown(&mut writer).await
        }
        Reply::Stream(open) => sse::serve(reader, writer, open, shared, split, rng).await,
    }
}

fn route(request: &Request, state: &mut State) -> Reply {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let endpoint = match segments.as_slice() {
        ["api", "auth", "login"] => Endpoint::Login,
        ["api", "auth", "logout"] => Endpoint::Logout,
        ["api", "auth", "whoami"] => Endpoint::Whoami,
        ["api", "users", _, "messages"] => Endpoint::History,
        ["api", "users", _, "live_messages"] => Endpoint::Stream,
        _ => Endpoint::Other,
    };
    state.count(endpoint);
    if state.fail_next > 0 && state.fail_only.is_none_or(|only| only == endpoint) {
        state.fail_next -= 1;
        let status = state.fail_status;
        return Reply::Answer(Answer {
            status,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: format!(
                "<html><body><h1>{status}</h1>The server is not available.</body></html>"
            )
            .into_bytes(),
        });
    }
    let method = request.method.as_str();
    let answer = match (endpoint, method) {
        (Endpoint::Login, "POST") => login(request, state),
        (Endpoint::Logout, "POST" | "GET") => logout(request, state),
        (Endpoint::Whoami, "GET") => match authenticate(request, state) {
            Some(user) => Answer::json(200, user_json(&user)),
            None => not_authenticated(),
        },
        (Endpoint::History, "GET") => with_personal_access(request, state, &segments, history),
        (Endpoint::Stream, "GET") => {
            return match personal_user(request, state, &segments) {
                Ok(user_id) => open_stream(request, state, user_id),
                Err(answer) => Reply::Answer(answer),
            };
        }
        _ => Answer::error(404, "not found"),
    };
    Reply::Answer(answer)
}

fn not_authenticated() -> Answer {
    Answer::error(401, "You are not authenticated")
}

/// The account the request authenticates as, trying Tracim's ways in turn.
fn authenticate(request: &Request, state: &State) -> Option<SimUser> {
    if let Some(cookies) = request.header("cookie") {
        for pair in cookies.split(';') {
            if let Some(("session_key", key)) = pair.trim().split_once('=') {
                if let Some(user) = state.sessions.get(key).and_then(|id| state.user(*id)) {
                    return Some(user.clone());
                }
            }
        }
    }
    if let (Some(key), Some(login)) = (
        request.header("tracim-api-key"),
        request.header("tracim-api-login"),
    ) {
        if state
            .config
            .api_key
            .as_deref()
            .is_some_and(|expected| expected == key)
        {
            if let Some(user) = state.user_by_login(login) {
                return Some(user.clone());
            }
        }
    }
    if let Some(basic) = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (login, password) = decoded.split_once(':')?;
        let user = state.user_by_login(login)?;
        if user.password == password {
            return Some(user.clone());
        }
    }
    None
}

/// The path's user, when the request authenticates as that very user (Tracim's
/// `has_personal_access`, less the admin's rights).
fn personal_user(request: &Request, state: &State, segments: &[&str]) -> Result<u64, Answer> {
    let user = authenticate(request, state).ok_or_else(not_authenticated)?;
    let path_user: u64 = segments
        .get(2)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Answer::error(404, "not found"))?;
    if path_user != user.user_id {
        return Err(Answer::error(403, "Insufficient rights"));
    }
    Ok(user.user_id)
}

fn with_personal_access(
    request: &Request,
    state: &mut State,
    segments: &[&str],
    handler: fn(&Request, &mut State, u64) -> Answer,
) -> Answer {
    match personal_user(request, state, segments) {
        Ok(user_id) => handler(request, state, user_id),
        Err(answer) => answer,
    }
}

fn user_json(user: &SimUser) -> String {
    serde_json::json!({
        "user_id": user.user_id,
        "username": user.username,
        "email": user.email,
        "public_name": user.public_name,
        "profile": "users",
        "is_active": true,
        "is_deleted": false,
        "lang": "en",
        "timezone": "",
        "auth_type": "internal",
    })
    .to_string()
}

fn login(request: &Request, state: &mut State) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        username: Option<String>,
        email: Option<String>,
        password: String,
    }
    let Ok(body) = serde_json::from_slice::<Body>(&request.body) else {
        return Answer::error(400, "Validation error of input data");
    };
    let user = match (&body.username, &body.email) {
        (Some(name), None) => state.config.users.iter().find(|u| &u.username == name),
        (None, Some(email)) => state.config.users.iter().find(|u| &u.email == email),
        _ => return Answer::error(400, "Validation error of input data: username or email"),
    };
    let Some(user) = user.filter(|u| u.password == body.password).cloned() else {
        return Answer::error(403, "Authentication failed");
    };
    let key: String = (0..32)
        .map(|_| format!("{:x}", state.rng.random_range(0..16u8)))
        .collect();
    state.sessions.insert(key.clone(), user.user_id);
    let mut answer = Answer::json(200, user_json(&user));
    answer.headers.push((
        "Set-Cookie".into(),
        format!("session_key={key}; Path=/; HttpOnly; SameSite=Lax"),
    ));
    answer
}

/// Ends the request's session and closes every stream of its user.
fn logout(request: &Request, state: &mut State) -> Answer {
    if let Some(user) = authenticate(request, state) {
        if let Some(cookies) = request.header("cookie") {
            for pair in cookies.split(';') {
                if let Some(("session_key", key)) = pair.trim().split_once('=') {
                    state.sessions.remove(key);
                }
            }
        }
        state.command_streams(user.user_id, || sse::Command::Close);
    }
    let mut answer = Answer {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
    };
    answer.headers.push((
        "Set-Cookie".into(),
        "session_key=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT".into(),
    ));
    answer
}

const HISTORY_PARAMS: &[&str] = &[
    "count",
    "page_token",
    "read_status",
    "include_event_types",
    "exclude_event_types",
    "exclude_author_ids",
    "workspace_ids",
    "related_to_content_ids",
    "include_not_sent",
];

/// Page tokens look like sqlakeyset's (`>i:<id>`): opaque to clients, and in need of
/// URL encoding.
fn token(id: u64) -> String {
    format!(">i:{id}")
}

fn history(request: &Request, state: &mut State, user_id: u64) -> Answer {
    if let Some((name, _)) = request
        .query
        .iter()
        .find(|(n, _)| !HISTORY_PARAMS.contains(&n.as_str()))
    {
        return Answer::error(
            400,
            &format!("Validation error of input data: unknown field {name}"),
        );
    }
    let count: usize = match request.query("count").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return Answer::error(400, "Validation error of input data: count"),
    };
    let below = match request.query("page_token") {
        None => None,
        Some(t) => match t.strip_prefix(">i:").and_then(|id| id.parse::<u64>().ok()) {
            Some(id) => Some(id),
            None => return Answer::error(400, "Validation error of input data: page_token"),
        },
    };
    let mut mine: Vec<_> = state
        .history
        .iter()
        .filter(|m| m.user_id == user_id && below.is_none_or(|b| m.event_id < b))
        .collect();
    mine.sort_unstable_by_key(|m| std::cmp::Reverse(m.event_id));
    let has_next = mine.len() > count;
    mine.truncate(count);
    let items: Vec<&str> = mine.iter().map(|m| &*m.text).collect();
    let next = if has_next {
        mine.last().map(|m| token(m.event_id))
    } else {
        None
    };
    let previous = below.and(mine.first().map(|m| token(m.event_id + 1)));
    let body = format!(
        "{{\"items\": [{}], \"next_page_token\": {}, \"previous_page_token\": {}, \"has_next\": {}, \"has_previous\": {}, \"per_page\": {}}}",
        items.join(", "),
        serde_json::Value::from(next),
        serde_json::Value::from(previous),
        has_next,
        below.is_some(),
        count
    );
    Answer::json(200, body)
}

fn open_stream(request: &Request, state: &mut State, user_id: u64) -> Reply {
    if request.header("accept").map(str::trim) != Some("text/event-stream") {
        return Reply::Answer(Answer::error(
            400,
            "Validation error of input data: accept must be text/event-stream",
        ));
    }
    if let Some((name, _)) = request.query.iter().find(|(n, _)| n != "after_event_id") {
        return Reply::Answer(Answer::error(
            400,
            &format!("Validation error of input data: unknown field {name}"),
        ));
    }
    let after: u64 = match request.query("after_event_id").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return Reply::Answer(Answer::error(
                400,
                "Validation error of input data: after_event_id",
            ));
        }
    };
    let mut first_body =
        format!(":Tracim Live Messages for user {user_id}\n\nevent: stream-open\ndata:\n\n");
    // As Tracim's code: no backlog for 0 (the default); else every message after the id,
    // in no order (its query has no ORDER BY), as bare `data:` blocks.
    if after > 0 {
        let mut backlog: Vec<Arc<str>> = state
            .history
            .iter()
            .filter(|m| m.user_id == user_id && m.event_id > after)
            .map(|m| m.text.clone())
            .collect();
        backlog.shuffle(&mut state.rng);
        for text in backlog {
            first_body.push_str("data:");
            first_body.push_str(&text);
            first_body.push_str("\n\n");
        }
    }
    // Registered under the same lock as the backlog was taken: no event falls between.
    let (tx, rx) = mpsc::unbounded_channel();
    let ready = Arc::new(AtomicBool::new(false));
    let id = state.next_stream;
    state.next_stream += 1;
    state.streams.push(StreamHandle {
        id,
        user_id,
        tx,
        ready: ready.clone(),
    });
    Reply::Stream(Open {
        id,
        first_body,
        rx,
        ready,
        keep_alive: state.config.keep_alive,
    })
}
