//! The raw schema of hooks.toml, as serde reads it, before validation.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::duration::{HumanDuration, NonZeroDuration};
use crate::hook::{Case, Mode, Output};
use crate::journal::SyncMode;

/// The keys of each table, for reporting every unknown key at once (serde stops
/// at the first); `deny_unknown_fields` stays as the backstop.
pub(super) const DAEMON_KEYS: &[&str] = &[
    "master_socket",
    "socket",
    "max_message",
    "read_timeout",
    "ping_interval",
    "ping_timeout",
    "check_interval",
    "watch_interval",
    "retry_max",
    "log_window",
];
pub(super) const DEFAULTS_KEYS: &[&str] = &[
    "shell",
    "timeout",
    "kill_after",
    "max_parallel",
    "queue_limit",
    "env_budget",
    "shutdown_grace",
    "output",
    "retries",
    "retry_delay",
    "skip_own",
];
pub(super) const HOOK_KEYS: &[&str] = &[
    "name",
    "on",
    "run",
    "exec",
    "where",
    "where_case",
    "skip_own",
    "env",
    "cwd",
    "timeout",
    "kill_after",
    "mode",
    "output",
    "retries",
    "retry_delay",
    "rerun_interrupted",
    "key",
    "debounce",
    "debounce_max",
    "on_failure",
];
pub(super) const JOURNAL_KEYS: &[&str] = &["enabled", "path", "retention", "max_events", "sync"];
pub(super) const TRACIM_KEYS: &[&str] = &[
    "url",
    "username",
    "email",
    "password_file",
    "api_login",
    "api_key_file",
    "from_daemon_config",
    "ca_file",
    "catch_up_max",
    "catch_up_window",
    "stream_timeout",
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracim {
    pub(super) url: Option<Spanned<String>>,
    pub(super) username: Option<Spanned<String>>,
    pub(super) email: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<String>>,
    pub(super) api_login: Option<Spanned<String>>,
    pub(super) api_key_file: Option<Spanned<String>>,
    pub(super) from_daemon_config: Option<Spanned<String>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) catch_up_max: Option<Spanned<u64>>,
    pub(super) catch_up_window: Option<NonZeroDuration>,
    pub(super) stream_timeout: Option<NonZeroDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) master_socket: Option<Spanned<String>>,
    pub(super) socket: Option<Spanned<String>>,
    pub(super) max_message: Option<Spanned<u64>>,
    pub(super) read_timeout: Option<NonZeroDuration>,
    pub(super) ping_interval: Option<NonZeroDuration>,
    pub(super) ping_timeout: Option<NonZeroDuration>,
    pub(super) check_interval: Option<NonZeroDuration>,
    pub(super) watch_interval: Option<NonZeroDuration>,
    pub(super) retry_max: Option<NonZeroDuration>,
    pub(super) log_window: Option<NonZeroDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) shell: Option<Spanned<Vec<String>>>,
    pub(super) timeout: Option<NonZeroDuration>,
    pub(super) kill_after: Option<HumanDuration>,
    pub(super) max_parallel: Option<Spanned<u64>>,
    pub(super) queue_limit: Option<Spanned<u64>>,
    pub(super) env_budget: Option<Spanned<u64>>,
    pub(super) shutdown_grace: Option<HumanDuration>,
    pub(super) output: Option<Output>,
    pub(super) retries: Option<u32>,
    pub(super) retry_delay: Option<HumanDuration>,
    pub(super) skip_own: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    pub(super) name: Spanned<String>,
    pub(super) on: Spanned<OneOrMany>,
    pub(super) run: Option<Spanned<String>>,
    pub(super) exec: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) env: std::collections::BTreeMap<Spanned<String>, Spanned<String>>,
    pub(super) cwd: Option<Spanned<String>>,
    pub(super) timeout: Option<NonZeroDuration>,
    pub(super) kill_after: Option<HumanDuration>,
    pub(super) mode: Option<Mode>,
    pub(super) output: Option<Output>,
    pub(super) retries: Option<u32>,
    pub(super) retry_delay: Option<HumanDuration>,
    pub(super) skip_own: Option<bool>,
    pub(super) where_case: Option<Case>,
    pub(super) rerun_interrupted: Option<bool>,
    pub(super) key: Option<Spanned<String>>,
    pub(super) debounce: Option<Spanned<NonZeroDuration>>,
    pub(super) debounce_max: Option<Spanned<NonZeroDuration>>,
    pub(super) on_failure: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJournal {
    pub(super) enabled: Option<bool>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) retention: Option<NonZeroDuration>,
    pub(super) max_events: Option<Spanned<u64>>,
    pub(super) sync: Option<SyncMode>,
}

/// `on = "x"` or `on = ["x", "y"]`.
pub(super) struct OneOrMany(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob or a list of globs")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        d.deserialize_any(Visitor)
    }
}
