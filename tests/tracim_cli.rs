//! `[tracim]` seen from the command line: `check --online` says as whom it logs in
//! or why it cannot, secret files that others may read are refused by `check` and
//! `run` alike, no secret is ever printed, and `status` shows the link and the last
//! catch-up.

mod common;

use std::time::Duration;

use common::tracim::*;
use common::*;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_says_as_whom_and_the_newest_event_id() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let newest = (0..3).map(|_| publish(&tracim)).last().unwrap_or_default();
    let config = place.write_config(&tracim_table(&place, &tracim, ""));
    let ran = Cli::check(&config).arg("--online").run_blocking().await;
    assert!(ran.success(), "{}", ran.both());
    let line = format!(
        "tracim: logged in to {} as Hooks Bot (user id 1); newest event id: {newest}",
        tracim.url()
    );
    assert!(ran.stdout.contains(&line), "no `{line}`:\n{}", ran.both());
    assert!(
        ran.stdout.contains("login:       hooks (password in"),
        "{}",
        ran.both()
    );
    assert!(!ran.both().contains(TRACIM_PASSWORD), "{}", ran.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_explained_and_never_shown() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let wrong = secret_file(&place, "wrong", "not-the-password-xyzzy", 0o600);
    let config = place.write_config(&format!(
        "[tracim]\nurl = \"{}\"\nusername = \"hooks\"\npassword_file = \"{}\"\n",
        tracim.url(),
        wrong.display()
    ));
    // Offline, nothing is wrong yet.
    assert!(Cli::check(&config).run_blocking().await.success());
    let ran = Cli::check(&config).arg("--online").run_blocking().await;
    assert_eq!(ran.code(), Some(1), "{}", ran.both());
    assert!(
        ran.stderr.contains(&format!(
            "tracim: cannot log in to {}: Tracim refused the login of \"hooks\"",
            tracim.url()
        )),
        "{}",
        ran.both()
    );
    assert!(!ran.both().contains("xyzzy"), "{}", ran.both());

    let key = secret_file(&place, "key", "wrong-key-xyzzy", 0o600);
    let config = place.write_config(&format!(
        "[tracim]\nurl = \"{}\"\napi_login = \"hooks\"\napi_key_file = \"{}\"\n",
        tracim.url(),
        key.display()
    ));
    let ran = Cli::check(&config).arg("--online").run_blocking().await;
    assert_eq!(ran.code(), Some(1), "{}", ran.both());
    assert!(
        ran.stderr
            .contains("refused the API key credentials of \"hooks\" (HTTP 401)"),
        "{}",
        ran.both()
    );
    assert!(!ran.both().contains("xyzzy"), "{}", ran.both());

    let ran = Cli::check(&place.write_config("[tracim]\nurl = \"http://127.0.0.1:9/api\"\nusername = \"hooks\"\npassword_file = \"/nonexistent/pw\"\n"))
        .run_blocking()
        .await;
    assert_eq!(ran.code(), Some(1), "{}", ran.both());
    assert!(
        ran.stderr.contains("/nonexistent/pw: cannot read"),
        "{}",
        ran.both()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_others_may_read_is_refused_by_check_and_run() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let open = secret_file(&place, "pw", TRACIM_PASSWORD, 0o644);
    let config = place.write_config(&format!(
        "[tracim]\nurl = \"{}\"\nemail = \"hooks@example.org\"\npassword_file = \"{}\"\n",
        tracim.url(),
        open.display()
    ));
    let ran = Cli::check(&config).run_blocking().await;
    assert_eq!(ran.code(), Some(1), "{}", ran.both());
    assert!(
        ran.stderr
            .contains("group or others have access to it (mode 644)")
            && ran.stderr.contains("chmod 600"),
        "{}",
        ran.both()
    );
    let mut runner = place.runner();
    assert!(!runner.wait_exit(LONG).await.success());
    assert!(runner.log().contains("chmod 600"), "{}", runner.log());
    assert!(!runner.log().contains(TRACIM_PASSWORD));

    // The daemon's config.json holds a password too: same rule.
    let daemon_config = secret_file(
        &place,
        "config.json",
        &format!(
            r#"{{"tracim": {{"url": "{}", "username": "hooks", "password": "{TRACIM_PASSWORD}"}}}}"#,
            tracim.url()
        ),
        0o640,
    );
    let config = place.write_config(&format!(
        "[tracim]\nfrom_daemon_config = \"{}\"\n",
        daemon_config.display()
    ));
    let ran = Cli::check(&config).arg("--online").run_blocking().await;
    assert_eq!(ran.code(), Some(1), "{}", ran.both());
    assert!(
        ran.stderr
            .contains("config.json: holds a secret but group or others"),
        "{}",
        ran.both()
    );
    std::fs::set_permissions(
        &daemon_config,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let ran = Cli::check(&config).arg("--online").run_blocking().await;
    assert!(ran.success(), "{}", ran.both());
    assert!(
        ran.stdout.contains("as Hooks Bot (user id 1)"),
        "{}",
        ran.both()
    );
    assert!(!ran.both().contains(TRACIM_PASSWORD), "{}", ran.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_tracim_link_and_the_last_catch_up() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let daemon = place.sim(NO_PINGS).await;
    let config = place.write_config(&format!(
        "[journal]\npath = \"{}\"\n{}",
        journal_file(&place).display(),
        tracim_table(&place, &tracim, "")
    ));
    let runner = place.started_runner().await;
    assert!(daemon.wait_for_client(&place.socket(), LONG).await);
    assert!(runner.wait_log("caught up", LONG).await, "{}", runner.log());
    let ran = Cli::with_config(&config, &["status"]).run_blocking().await;
    assert!(ran.success(), "{}", ran.both());
    let line = format!(
        "tracim:  connected: connected to Tracim at {} as Hooks Bot (user 1)",
        tracim.url()
    );
    assert!(ran.stdout.contains(&line), "no `{line}`:\n{}", ran.both());
    assert!(ran.stdout.contains("last catch-up at "), "{}", ran.both());

    tracim.go_down().await;
    daemon.restart().await.unwrap();
    assert!(
        runner.wait_log("Tracim: catching up failed", LONG).await,
        "{}",
        runner.log()
    );
    let ran = Cli::with_config(&config, &["status"]).run_blocking().await;
    assert!(
        ran.stdout
            .contains("tracim:  failing: not connected to Tracim at"),
        "{}",
        ran.both()
    );
    assert!(ran.stdout.contains("is unreachable"), "{}", ran.both());
}
