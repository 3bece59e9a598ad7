//! Hook supervision with real processes: process groups and timeouts
//! ([`groups`]), the parallel limit, the queue, `serial` and `latest` modes
//! ([`limits`]), output logging and its caps ([`output`]), run records and
//! retries ([`retries`]), and shutdown ([`shutdown`]).
//!
//! The supervisor is driven in-process; its logs are captured by a tracing layer
//! installed once for this test binary (`common::logs`), and each test tells its
//! records apart by hook names of its own. Durations are short (tens to hundreds
//! of ms); bounds on elapsed times are strict below and generous above. The
//! scheduling alone is also tested on paused time, through a fake launcher, in
//! src/supervisor/tests.rs.

#[path = "../common/mod.rs"]
mod common;

mod groups;
mod limits;
mod output;
mod retries;
mod shutdown;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{HANG, lines, procfs, wait_for};
use tokio::sync::mpsc::UnboundedReceiver;
use tracim_daemon_sdk::protocol::Event;
use tracim_hooks::config::Config;
use tracim_hooks::hook::Hook;
use tracim_hooks::supervisor::{RunReport, Settings, Supervisor};

// ---------------------------------------------------------------------------
// Configs, events, runs.

/// A config of `[defaults]` lines and hooks.
fn config(defaults: &str, hooks: &[String]) -> Config {
    let text = format!("[defaults]\n{defaults}\n{}", hooks.concat());
    Config::parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A `[[hook]]` on every event, with `OUT` pointing at `out`, extra settings,
/// and a shell script.
fn hook(name: &str, out: &Path, extra: &str, script: &str) -> String {
    assert!(!script.contains("'''"));
    format!(
        "\n[[hook]]\nname = \"{name}\"\non = \"*\"\nenv = {{ OUT = \"{}\" }}\n{extra}\nrun = '''\n{script}\n'''\n",
        out.display()
    )
}

fn event(id: u64) -> Event {
    Event::from_text(format!(
        r#"{{"event_id":{id},"event_type":"content.created.comment","fields":{{"content":{{"label":"x"}}}}}}"#
    ))
    .unwrap()
}

fn supervisor(config: &Config) -> Supervisor {
    Supervisor::new(Settings::from(&config.defaults))
}

fn the_hook(config: &Config, name: &str) -> Arc<Hook> {
    config.hook(name).unwrap().clone()
}

async fn idle(supervisor: &Supervisor) {
    tokio::time::timeout(HANG, supervisor.wait_idle())
        .await
        .unwrap_or_else(|_| panic!("not idle after {HANG:?}: {:?}", supervisor.load()));
}

/// Receives `n` reports (waiting for each), then checks no more is there.
async fn reports(rx: &mut UnboundedReceiver<RunReport>, n: usize) -> Vec<RunReport> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(HANG, rx.recv()).await {
            Ok(Some(report)) => got.push(report),
            _ => panic!("{} of {n} reports came: {got:#?}", got.len()),
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    if let Ok(extra) = rx.try_recv() {
        panic!("a report more than the {n} expected: {extra:#?}\nbefore it: {got:#?}");
    }
    got
}

fn numbers(path: &Path) -> Vec<u64> {
    lines(path)
        .iter()
        .map(|l| l.trim().parse().unwrap_or_else(|_| panic!("{l:?}")))
        .collect()
}

/// Waits for a file holding one number per line to hold at least `n`, and reads it.
async fn wait_numbers(path: &Path, n: usize) -> Vec<u64> {
    let complete =
        || lines(path).len() >= n && std::fs::read_to_string(path).unwrap().ends_with('\n');
    assert!(
        wait_for(HANG, complete).await,
        "{} never held {n} lines",
        path.display()
    );
    numbers(path)
}

struct Cleanup(Vec<i32>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for pgid in &self.0 {
                // SAFETY: kill with a negative pid signals a process group.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
    }
}

/// Asserts that nothing of the group is left: no process, no zombie, and none
/// of `pids` (which may have left the group's reach by double-forking).
fn assert_all_gone(pgid: i32, pids: &[i32]) {
    let members = procfs::group_members(pgid);
    assert!(
        members.is_empty(),
        "group {pgid} still has (pid, state): {members:?}"
    );
    assert!(
        procfs::group_gone(pgid),
        "kill(-{pgid}, 0) still finds the group"
    );
    for &pid in pids {
        assert_eq!(
            procfs::process_state(pid),
            None,
            "pid {pid} of group {pgid} still exists (a zombie if Z)"
        );
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}
