//! `check`: validate the config, then list what it will do.

use std::io::Write;
use std::path::Path;

use tracim_daemon_sdk::client::MasterPath;

use super::Failure;
use crate::config::{self, Config};
use crate::hook::{Case, Command};
use crate::matcher::unknown_type_patterns;

/// `check`: validate, then list what the config will do.
pub(super) fn check(path: &Path) -> Result<(), Failure> {
    let config = Config::load(path)?;
    let d = config::format_duration;
    let mut out = std::io::stdout().lock();
    let count = config.hooks.len();
    let _ = writeln!(
        out,
        "{}: ok, {count} hook{}",
        path.display(),
        if count == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "  master socket: {}",
        config.daemon.master_socket.display()
    );
    let _ = writeln!(out, "  own socket:    {}", config.daemon.socket.display());
    if let there @ MasterPath::Other(_) = MasterPath::of(&config.daemon.master_socket) {
        let _ = writeln!(
            out,
            "warning: master_socket {}: {there}; TracimDaemon cannot listen there",
            config.daemon.master_socket.display()
        );
    }
    if count == 0 {
        let _ = writeln!(out, "warning: no [[hook]]: nothing will run");
    }
    // Patterns that match no known type, by hook, found in one pass over all.
    let owners: Vec<(usize, &str)> = config
        .hooks
        .iter()
        .enumerate()
        .flat_map(|(index, hook)| hook.on.iter().map(move |p| (index, p.as_str())))
        .collect();
    let mut unknown: std::collections::HashMap<usize, Vec<&str>> = Default::default();
    for (at, pattern) in unknown_type_patterns(owners.iter().map(|(_, p)| *p)) {
        unknown.entry(owners[at].0).or_default().push(pattern);
    }
    for (index, hook) in config.hooks.iter().enumerate() {
        let _ = writeln!(out, "hook `{}` (line {})", hook.name, hook.line);
        let _ = writeln!(out, "  on:      {}", hook.on.join(", "));
        let case = if hook.where_case == Case::Insensitive {
            " (any case)"
        } else {
            ""
        };
        for condition in &hook.conditions {
            let _ = writeln!(
                out,
                "  where:   {} = {:?}{case}",
                condition.path, condition.globs
            );
        }
        match &hook.command {
            Command::Shell { shell, script } => {
                let _ = writeln!(out, "  run:     {script}");
                let _ = writeln!(out, "  shell:   {shell:?}");
            }
            Command::Exec(argv) => {
                let _ = writeln!(out, "  exec:    {argv:?}");
            }
        }
        if let Some(cwd) = &hook.cwd {
            let missing = if cwd.is_dir() {
                ""
            } else {
                "   (warning: no such directory now)"
            };
            let _ = writeln!(out, "  cwd:     {}{missing}", cwd.display());
        }
        if !hook.env.is_empty() {
            let names: Vec<&str> = hook.env.iter().map(|(k, _)| k.as_str()).collect();
            let _ = writeln!(out, "  env:     {}", names.join(", "));
        }
        let _ = writeln!(
            out,
            "  limits:  timeout {}, SIGKILL {} later; mode {}; output {}; retries {} (first after {}){}",
            d(hook.timeout),
            d(hook.kill_after),
            format!("{:?}", hook.mode).to_lowercase(),
            format!("{:?}", hook.output).to_lowercase(),
            hook.retries,
            d(hook.retry_delay),
            if hook.skip_own { "; skip_own" } else { "" }
        );
        for line in super::explain::for_check(hook, &config.hooks) {
            let _ = writeln!(out, "  {line}");
        }
        for pattern in unknown.get(&index).into_iter().flatten() {
            let _ = writeln!(
                out,
                "  warning: `{pattern}` matches no event type Tracim sends today"
            );
        }
    }
    Ok(())
}
