//! A temporary place for one test: short socket paths, hooks.toml written at
//! once, the simulated daemon, and the recording hook with readers of what it
//! wrote.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracim_daemon_sdk::sim::{SimDaemon, SimOptions};

use super::runner::Runner;

/// A directory for one test, removed at the end. Short paths: socket paths
/// are limited to 107 bytes.
pub struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    pub fn new() -> Place {
        Place {
            dir: tempfile::Builder::new()
                .prefix("th")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn master(&self) -> PathBuf {
        self.path().join("master.sock")
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("hooks.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("hooks.toml")
    }

    /// Where hooks of [`recording_hook`] write.
    pub fn out(&self) -> PathBuf {
        let out = self.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        out
    }

    /// Writes hooks.toml: a `[daemon]` table on this place's sockets with short
    /// intervals and a read_timeout of 1 s, then `rest` (more tables and hooks).
    pub fn write_config(&self, rest: &str) -> PathBuf {
        self.write_config_with("read_timeout = \"1s\"", rest)
    }

    /// Writes hooks.toml: a `[daemon]` table on this place's sockets with short
    /// intervals and the lines of `daemon` (e.g. a read_timeout of its own), then
    /// `rest`.
    pub fn write_config_with(&self, daemon: &str, rest: &str) -> PathBuf {
        let text = format!(
            "[daemon]\nmaster_socket = \"{}\"\nsocket = \"{}\"\nwatch_interval = \"50ms\"\nretry_max = \"300ms\"\n{daemon}\n{rest}",
            self.master().display(),
            self.socket().display(),
        );
        self.write_raw_config(&text)
    }

    /// Replaces hooks.toml at once (write aside, rename), as editors save, so
    /// that a reload never reads a half-written file.
    pub fn write_raw_config(&self, text: &str) -> PathBuf {
        let path = self.config_path();
        let aside = self.path().join(".hooks.toml.new");
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, &path).unwrap();
        path
    }

    pub async fn sim(&self, ping_interval: Duration) -> SimDaemon {
        SimDaemon::start(
            self.master(),
            SimOptions {
                ping_interval,
                ..SimOptions::default()
            },
        )
        .await
        .unwrap()
    }

    /// Starts `tracim-hooks run` on this place's config.
    pub fn runner(&self) -> Runner {
        Runner::start(&self.config_path(), self.path(), &[])
    }

    /// Starts `tracim-hooks run` and waits until its socket takes deliveries.
    pub async fn started_runner(&self) -> Runner {
        let runner = self.runner();
        runner.wait_running(self).await;
        runner
    }
}

/// A hook that writes its stdin and its `TRACIM_*` variables under `out`, one
/// file each per hook and event, and appends its name to `out/runs`.
pub fn recording_hook(name: &str, on: &str, out: &Path) -> String {
    format!(
        r#"
[[hook]]
name = "{name}"
on = {on}
env = {{ OUT = "{out}" }}
run = 'cat > "$OUT/$TRACIM_HOOK_NAME.$TRACIM_EVENT_ID.stdin"; env | grep "^TRACIM_" | sort > "$OUT/$TRACIM_HOOK_NAME.$TRACIM_EVENT_ID.env"; echo "$TRACIM_HOOK_NAME $TRACIM_EVENT_ID" >> "$OUT/runs"'
"#,
        out = out.display()
    )
}

/// Parses a recording hook's env file into (name, value).
pub fn env_file(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The value of `name` in a parsed env file.
pub fn env_get<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
