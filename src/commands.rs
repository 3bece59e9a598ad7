//! The subcommands: `run`, `check`, `test`, `init` (and `demo`, in its own module).
//!
//! Each returns `Ok(())` or a [`Failure`] whose lines `main` prints before exiting 1.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::cli::{Cli, Command};
use crate::config::{self, Config, ConfigError};
use crate::env::event_vars;
use crate::matcher::Verdict;
use crate::notify::Notifier;
use crate::protocol::{Envelope, Event, Message};
use crate::service::{Control, Service};
use crate::supervisor::{Settings, Supervisor};

/// Why a command failed: lines for stderr.
#[derive(Debug)]
pub struct Failure {
    /// What to print, one line each.
    pub lines: Vec<String>,
}

impl Failure {
    fn new(line: impl Into<String>) -> Self {
        Failure {
            lines: vec![line.into()],
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure { lines: e.lines() }
    }
}

/// Runs the command the command line asks for.
pub async fn execute(cli: Cli) -> Result<(), Failure> {
    let path = config::locate(cli.config.as_deref());
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(path).await,
        Command::Check => check(&path),
        Command::Test {
            run,
            user_id,
            files,
        } => test(&path, &files, run, &user_id).await,
        Command::Demo => {
            let config = match cli.config {
                Some(path) => Some(Config::load(&path)?),
                None => None,
            };
            crate::demo::demo(config).await
        }
        Command::Init { force } => init(&path, force),
    }
}

/// `run`: the service, with SIGHUP for reload and SIGTERM/SIGINT for a clean stop.
async fn run(path: PathBuf) -> Result<(), Failure> {
    let config = Config::load(&path)?;
    let (tx, controls) = mpsc::unbounded_channel();
    let signals = [
        (SignalKind::hangup(), Control::Reload),
        (SignalKind::terminate(), Control::Shutdown),
        (SignalKind::interrupt(), Control::Shutdown),
    ];
    for (kind, control) in signals {
        let mut stream =
            signal(kind).map_err(|e| Failure::new(format!("cannot handle signals: {e}")))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(control).is_err() {
                    return;
                }
            }
        });
    }
    let service = Service::start(path, config, Notifier::from_env())
        .await
        .map_err(|e| Failure::new(e.to_string()))?;
    // On a worker thread, not the main thread that block_on runs on: handing
    // events over between workers is cheaper than waking the main thread.
    tokio::spawn(service.run(controls))
        .await
        .map_err(|e| Failure::new(format!("the runner stopped unexpectedly: {e}")))
}

/// `check`: validate, then list what the config will do.
fn check(path: &Path) -> Result<(), Failure> {
    let config = Config::load(path)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}: ok, {} hooks", path.display(), config.hooks.len());
    let _ = writeln!(
        out,
        "  master socket: {}",
        config.daemon.master_socket.display()
    );
    let _ = writeln!(out, "  own socket:    {}", config.daemon.socket.display());
    for hook in &config.hooks {
        let _ = writeln!(out, "hook `{}` (line {})", hook.name, hook.line);
        let _ = writeln!(out, "  on:      {}", hook.on.join(", "));
        for condition in &hook.conditions {
            let globs: Vec<&str> = condition.globs().collect();
            let _ = writeln!(
                out,
                "  where:   {} = {globs:?}{}",
                condition.path(),
                if hook.where_case == config::Case::Insensitive {
                    " (any case)"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(out, "  {}", hook.command);
        let _ = writeln!(
            out,
            "  timeout: {:?} (then SIGKILL after {:?}), mode: {:?}, output: {:?}, retries: {}{}",
            hook.timeout,
            hook.kill_after,
            hook.mode,
            hook.output,
            hook.retries,
            if hook.skip_own { ", skip_own" } else { "" }
        );
    }
    Ok(())
}

/// `init`: write the example config, never over an existing one unless forced.
fn init(path: &Path, force: bool) -> Result<(), Failure> {
    if path.exists() && !force {
        return Err(Failure::new(format!(
            "{} already exists; keep it, or overwrite it with `tracim-hooks init --force`",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", parent.display())))?;
    }
    write_private(path, config::EXAMPLE)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    println!("Wrote {}", path.display());
    println!();
    println!("Next steps:");
    println!(
        "  1. Edit it: each [[hook]] names event types (`on`) and a command (`run` or `exec`)."
    );
    println!("  2. Check it:              tracim-hooks check");
    println!("  3. Try it on an event:    tracim-hooks test event.json   (or: tracim-hooks demo)");
    println!(
        "  4. Run it as a service:   see \"Running as a systemd user service\" in the README."
    );
    Ok(())
}

/// Writes a file only its owner can write (the loader refuses anything wider).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.write_all(text.as_bytes())
}

/// One event read by `test`, with where it came from.
struct Input {
    origin: String,
    event: Event,
}

/// Reads events from a file's text: one JSON TLM, a daemon_tracim_event
/// message, or JSON lines of either.
fn parse_inputs(name: &str, text: &str) -> Result<Vec<Input>, Vec<String>> {
    let whole = text.trim();
    if let Ok(event) = parse_one(whole) {
        return Ok(vec![Input {
            origin: name.to_owned(),
            event,
        }]);
    }
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_one(line) {
            Ok(event) => inputs.push(Input {
                origin: format!("{name}:{}", number + 1),
                event,
            }),
            Err(e) => errors.push(format!("{name}:{}: cannot read an event: {e}", number + 1)),
        }
    }
    if errors.is_empty() && !inputs.is_empty() {
        Ok(inputs)
    } else if inputs.is_empty() && errors.is_empty() {
        Err(vec![format!("{name}: no event in it")])
    } else {
        Err(errors)
    }
}

fn parse_one(text: &str) -> Result<Event, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if value.get("type").is_some() && value.get("event_type").is_none() {
        match Envelope::decode(text.as_bytes())
            .map_err(|e| e.to_string())?
            .message
        {
            Message::TracimEvent(event) => Ok(event),
            other => Err(format!(
                "a `{}` message, not daemon_tracim_event",
                other.kind()
            )),
        }
    } else {
        Event::from_text(text).map_err(|e| e.to_string())
    }
}

fn read_input(file: &Path) -> Result<(String, String), String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(("stdin".into(), text));
    }
    std::fs::read_to_string(file)
        .map(|text| (file.display().to_string(), text))
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// Shows a long value in part, saying how long it is.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// `test`: which hooks each event runs and why the others do not; without `--run`
/// what a hook would get, with `--run` the real runs under the same supervision
/// as the service.
async fn test(path: &Path, files: &[PathBuf], run: bool, user_id: &str) -> Result<(), Failure> {
    let config = Config::load(path)?;
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    let mut problems = Vec::new();
    let mut inputs = Vec::new();
    for file in files {
        match read_input(file) {
            Ok((name, text)) => match parse_inputs(&name, &text) {
                Ok(found) => inputs.extend(found),
                Err(errors) => problems.extend(errors),
            },
            Err(e) => problems.push(e),
        }
    }

    let supervisor = Supervisor::new(Settings::from(&config.defaults));
    let mut reports = supervisor.reports();
    let user_id: Arc<str> = user_id.into();
    let mut out = std::io::stdout().lock();
    for input in &inputs {
        let event = &input.event;
        let _ = writeln!(
            out,
            "event {} {} ({})",
            event.id(),
            event.event_type(),
            input.origin
        );
        for (hook, verdict) in config.matcher.explain(event, &user_id) {
            if verdict != Verdict::Runs {
                let _ = writeln!(out, "  skip  {}: {verdict}", hook.name);
                continue;
            }
            let _ = writeln!(out, "  RUN   {}", hook.name);
            if run {
                let _ = supervisor.submit(hook, event.clone(), user_id.clone());
                continue;
            }
            let _ = writeln!(out, "        {}", hook.command);
            let vars = event_vars(event, &hook.name, &user_id, config.defaults.env_budget);
            for (name, value) in &vars.vars {
                let _ = writeln!(out, "        {name}={}", shorten(value, 120));
            }
            let _ = writeln!(out, "        stdin: {}", shorten(event.raw(), 300));
        }
    }
    drop(out);
    if run {
        supervisor.wait_idle().await;
        drop(supervisor);
        let mut out = std::io::stdout().lock();
        while let Ok(report) = reports.try_recv() {
            let status = match &report.result {
                Ok(outcome) => format!(
                    "{}{} in {} ms",
                    outcome.exit,
                    if outcome.timed_out {
                        " (timed out)"
                    } else {
                        ""
                    },
                    outcome.duration.as_millis()
                ),
                Err(e) => e.clone(),
            };
            let _ = writeln!(
                out,
                "ran {} for event {}: {status}",
                report.hook, report.event_id
            );
            let failed = !matches!(&report.result, Ok(o) if o.success());
            if failed && !report.will_retry {
                problems.push(format!(
                    "hook `{}` failed for event {}: {status}",
                    report.hook, report.event_id
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure { lines: problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_in_every_shape() {
        let tlm = r#"{"event_id":1,"event_type":"a.b","fields":{}}"#;
        let one = parse_inputs("f", &format!("{tlm}\n")).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(one.len(), 1);
        let lines = format!(
            "{tlm}\n\n{}\n",
            tlm.replace("\"event_id\":1", "\"event_id\":2")
        );
        let two = parse_inputs("f", &lines).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(two.iter().map(|i| i.event.id()).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(two[1].origin, "f:3");
        let wire = include_str!("../tests/fixtures/wire/tracim_event.json");
        let env = parse_inputs("w", wire).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(env[0].event.event_type(), "mention.created");
        let pretty = include_str!("../tests/fixtures/content.created.file.json");
        assert_eq!(
            parse_inputs("p", pretty).unwrap_or_else(|e| panic!("{e:?}"))[0]
                .event
                .id(),
            107
        );
        let bad = parse_inputs("b", "{\"event_id\":1}\nnope\n").err().unwrap();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[1].starts_with("b:2: cannot read an event"));
        let ping = parse_inputs("p", include_str!("../tests/fixtures/wire/ping.json"))
            .err()
            .unwrap();
        assert!(ping[0].contains("daemon_ping"), "{ping:?}");
    }

    #[test]
    fn shorten_keeps_char_boundaries() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééé", 3), "é… (6 bytes in all)");
    }
}
