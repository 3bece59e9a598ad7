//! The Tracim client's three ways of logging in, against the simulator over loopback TCP:
//! each works, wrong credentials give a typed error, an expired session logs in again once,
//! and no secret shows in any error or `Debug` output.

mod common;

use common::*;
use tracim_daemon_sdk::tracim::sim::Endpoint;
use tracim_daemon_sdk::tracim::{
    Credentials, Login, Secret, TracimClient, TracimConfig, TracimError,
};

#[tokio::test]
async fn each_way_of_logging_in_says_who() {
    let sim = sim().await;
    let ways = [
        session(&sim),
        Credentials::Session {
            login: Login::Email("hooks@example.org".into()),
            password: Secret::new(PASSWORD),
        },
        Credentials::ApiKey {
            login: "hooks".into(),
            key: Secret::new(API_KEY),
        },
        Credentials::ApiKey {
            login: "hooks@example.org".into(),
            key: Secret::new(API_KEY),
        },
        Credentials::Basic {
            login: "hooks".into(),
            password: Secret::new(PASSWORD),
        },
        Credentials::Basic {
            login: "hooks@example.org".into(),
            password: Secret::new(PASSWORD),
        },
    ];
    for creds in ways {
        let kind = creds.kind();
        let client = client(&sim, creds);
        let me = client
            .login()
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(
            (me.user_id, me.public_name.as_str()),
            (USER, "Hooks Bot"),
            "{kind}"
        );
        let again = client
            .whoami()
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(again, me);
    }
    // Two session logins, nothing else logged in.
    assert_eq!(sim.requests(Endpoint::Login), 2);
    assert_eq!(sim.sessions(USER), 2);
}

#[tokio::test]
async fn wrong_credentials_give_typed_errors_without_the_secret() {
    let sim = sim().await;
    let secret = "WRONG-hunter2";
    let cases = [
        Credentials::Session {
            login: Login::Username("hooks".into()),
            password: Secret::new(secret),
        },
        Credentials::Session {
            login: Login::Username("nobody".into()),
            password: Secret::new(secret),
        },
        Credentials::ApiKey {
            login: "hooks".into(),
            key: Secret::new(secret),
        },
        Credentials::Basic {
            login: "hooks".into(),
            password: Secret::new(secret),
        },
    ];
    for creds in cases {
        let kind = creds.kind();
        let shown = format!("{creds:?}");
        assert!(!shown.contains(secret), "{shown}");
        let client = client(&sim, creds);
        assert!(!format!("{client:?}").contains(secret));
        let err = match client.login().await {
            Ok(me) => panic!("{kind}: logged in as {me:?} with wrong credentials"),
            Err(e) => e,
        };
        assert!(err.is_auth(), "{kind}: {err:?}");
        match (&err, kind) {
            (TracimError::LoginRefused { status: 403, .. }, "session") => {}
            (TracimError::Unauthorized { .. }, "API key" | "basic") => {}
            other => panic!("unexpected error {other:?}"),
        }
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(secret), "secret in {text}");
        }
        assert!(
            err.to_string().contains("hooks") || err.to_string().contains("nobody"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn api_key_refused_when_the_server_has_none() {
    let sim = sim_with(tracim_daemon_sdk::tracim::sim::SimConfig {
        api_key: None,
        ..Default::default()
    })
    .await;
    let client = client(
        &sim,
        Credentials::ApiKey {
            login: "hooks".into(),
            key: Secret::new(API_KEY),
        },
    );
    assert!(matches!(
        client.whoami().await,
        Err(TracimError::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn an_expired_session_logs_in_again_once() {
    let sim = sim().await;
    let client = client(&sim, session(&sim));
    client.whoami().await.expect("first whoami logs in");
    assert_eq!(sim.requests(Endpoint::Login), 1);
    sim.expire_sessions(USER);
    let me = client.whoami().await.expect("logs in again");
    assert_eq!(me.user_id, USER);
    assert_eq!(sim.requests(Endpoint::Login), 2);
    // 401, login, retry: three whoami calls so far (one first, two now).
    assert_eq!(sim.requests(Endpoint::Whoami), 3);
    // A session that keeps working needs no new login.
    client.whoami().await.expect("still logged in");
    assert_eq!(sim.requests(Endpoint::Login), 2);
}

#[tokio::test]
async fn a_login_that_fails_again_is_not_retried_in_a_loop() {
    let sim = sim().await;
    let client = client(&sim, session(&sim));
    client.whoami().await.expect("logged in");
    sim.expire_sessions(USER);
    // The re-login itself is answered 503: one login attempt, a clear error.
    sim.fail_next_on(Endpoint::Login, 5, 503);
    let err = client.whoami().await.expect_err("fails");
    assert!(err.is_server_error(), "{err:?}");
    assert_eq!(sim.requests(Endpoint::Login), 2);
    assert_eq!(sim.requests(Endpoint::Whoami), 2);
    // Once Tracim is fine again, the next request logs in and works.
    sim.fail_next(0, 503);
    assert_eq!(client.whoami().await.expect("recovered").user_id, USER);
    assert_eq!(sim.requests(Endpoint::Login), 3);
}

#[tokio::test]
async fn unreachable_and_5xx_are_told_apart() {
    let sim = sim().await;
    let client = client(&sim, session(&sim));
    sim.fail_next(1, 502);
    match client.login().await {
        Err(e @ TracimError::Status { status: 502, .. }) => assert!(e.is_server_error()),
        other => panic!("{other:?}"),
    }
    sim.go_down().await;
    assert!(matches!(
        client.login().await,
        Err(TracimError::Unreachable { .. })
    ));
    sim.come_back().await.expect("listens again");
    assert_eq!(client.login().await.expect("back").user_id, USER);
}

#[test]
fn bad_urls_and_ca_files_are_refused_clearly() {
    let creds = Credentials::Basic {
        login: "hooks".into(),
        password: Secret::new(PASSWORD),
    };
    let err = TracimClient::new(TracimConfig::new("tracim.example.org/api", creds.clone())).err();
    assert!(matches!(err, Some(TracimError::BadUrl { .. })), "{err:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").expect("write");
    for path in [not_pem, dir.path().join("missing.pem")] {
        let mut config = TracimConfig::new("https://tracim.example.org/api", creds.clone());
        config.ca_file = Some(path.clone());
        let err = TracimClient::new(config).err();
        assert!(
            matches!(err, Some(TracimError::CaFile { .. })),
            "{path:?}: {err:?}"
        );
    }
}
