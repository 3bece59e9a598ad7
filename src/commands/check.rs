//! `check`: validate the config, then list what it will do.

use std::io::Write;
use std::path::Path;

use tracim_daemon_sdk::client::MasterPath;

use tracim_daemon_sdk::tracim::TracimClient;

use super::Failure;
use crate::config::{self, Config};
use crate::hook::{Case, Command};
use crate::matcher::unknown_type_patterns;
use crate::source::{Source, TracimLogin, TracimSettings, secrets};

/// `check [--online]`: validate, then list what the config will do; with
/// `--online`, log in to Tracim too.
pub(super) async fn check(path: &Path, online: bool) -> Result<(), Failure> {
    let config = Config::load(path)?;
    list(path, &config)?;
    if online {
        match &config.tracim {
            Some(settings) => online_check(settings).await?,
            None => println!("--online: no [tracim] table, nothing to log in to"),
        }
    }
    Ok(())
}

/// What `[tracim]` says, and whether its secrets can be read (never shown).
fn list_tracim(out: &mut impl Write, config: &Config) -> Result<(), Failure> {
    let _ = writeln!(out, "  source:        {}", config.source.as_str());
    let Some(t) = &config.tracim else {
        return Ok(());
    };
    let tracim = secrets::client_config(t).map_err(|e| Failure::new(format!("[tracim]: {e}")))?;
    let _ = writeln!(out, "  tracim:        {}", tracim.url);
    let how = match &t.login {
        TracimLogin::Password { password_file, .. } => {
            format!("password in {}", password_file.display())
        }
        TracimLogin::ApiKey { key_file, .. } => format!("API key in {}", key_file.display()),
        TracimLogin::DaemonConfig { path } => format!("the daemon's {}", path.display()),
    };
    let _ = writeln!(
        out,
        "    login:       {} ({how})",
        tracim.credentials.login()
    );
    if let Some(ca) = &t.ca_file {
        let _ = writeln!(out, "    ca_file:     {}", ca.display());
    }
    let _ = writeln!(
        out,
        "    catch-up:    at most {} events, none older than {}",
        t.catch_up_max,
        config::format_duration(t.catch_up_window)
    );
    if config.source == Source::Tracim {
        let _ = writeln!(
            out,
            "    stream:      silent for {} = dead",
            config::format_duration(t.stream_timeout)
        );
    }
    Ok(())
}

/// Logs in and says as whom, and Tracim's newest event id; or why not.
async fn online_check(settings: &TracimSettings) -> Result<(), Failure> {
    let config =
        secrets::client_config(settings).map_err(|e| Failure::new(format!("[tracim]: {e}")))?;
    let url = config.url.clone();
    let client = TracimClient::new(config)
        .map_err(|e| Failure::new(format!("tracim: cannot use {url}: {e}")))?;
    let who = client
        .login()
        .await
        .map_err(|e| Failure::new(format!("tracim: cannot log in to {url}: {e}")))?;
    let newest = client.newest_event_id(who.user_id).await.map_err(|e| {
        Failure::new(format!(
            "tracim: logged in to {url} as {} (user id {}), but cannot read the event history: {e}",
            who.public_name, who.user_id
        ))
    })?;
    let newest = newest.map_or_else(|| "none yet".to_owned(), |id| id.to_string());
    println!(
        "tracim: logged in to {url} as {} (user id {}); newest event id: {newest}",
        who.public_name, who.user_id
    );
    Ok(())
}

/// Lists what the config will do.
fn list(path: &Path, config: &Config) -> Result<(), Failure> {
    let d = config::format_duration;
    // Buffered: stdout alone flushes at every line, a write(2) each, which
    // for 200,000 hooks was a tenth of the time.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let count = config.hooks.len();
    let _ = writeln!(
        out,
        "{}: ok, {count} hook{}",
        path.display(),
        if count == 1 { "" } else { "s" }
    );
    let daemon = config.source == Source::Daemon;
    if daemon {
        let _ = writeln!(
            out,
            "  master socket: {}",
            config.daemon.master_socket.display()
        );
        let _ = writeln!(out, "  own socket:    {}", config.daemon.socket.display());
    }
    list_tracim(&mut out, config)?;
    if let (true, there @ MasterPath::Other(_)) =
        (daemon, MasterPath::of(&config.daemon.master_socket))
    {
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
    let _ = out.flush();
    Ok(())
}
