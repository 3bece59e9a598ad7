//! The subcommands: `run`, `check`, `test`, `init` (and `demo`, in its own module).
//!
//! Each returns `Ok(())` or a [`Failure`] whose lines `main` prints before exiting 1.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::cli::{Cli, Command, TestArgs};
use crate::config::{self, Config, ConfigError};
use crate::env::event_vars;
use crate::matcher::Verdict;
use crate::notify::Notifier;
use crate::service::{Control, Service};
use crate::supervisor::{Settings, Supervisor};
use tracim_daemon_sdk::protocol::{DecodeError, Envelope, Event, Message};

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
        let mut lines = e.lines();
        if let ConfigError::Read { source, .. } = &e
            && source.kind() == std::io::ErrorKind::NotFound
        {
            lines.push("No config yet? `tracim-hooks init` writes a commented one there.".into());
        }
        Failure { lines }
    }
}

/// Runs the command the command line asks for.
pub async fn execute(cli: Cli) -> Result<(), Failure> {
    let path = config::locate(cli.config.as_deref());
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(path).await,
        Command::Check => check(&path),
        Command::Test(args) => test(&path, args).await,
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
    if count == 0 {
        let _ = writeln!(out, "warning: no [[hook]]: nothing will run");
    }
    for hook in &config.hooks {
        let _ = writeln!(out, "hook `{}` (line {})", hook.name, hook.line);
        let _ = writeln!(out, "  on:      {}", hook.on.join(", "));
        let case = if hook.where_case == config::Case::Insensitive {
            " (any case)"
        } else {
            ""
        };
        for condition in &hook.conditions {
            let globs: Vec<&str> = condition.globs().collect();
            let _ = writeln!(out, "  where:   {} = {globs:?}{case}", condition.path());
        }
        match &hook.command {
            config::Command::Shell { shell, script } => {
                let _ = writeln!(out, "  run:     {script}");
                let _ = writeln!(out, "  shell:   {shell:?}");
            }
            config::Command::Exec(argv) => {
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
        for pattern in &hook.on {
            if !crate::matcher::matches_a_known_type(pattern) {
                let _ = writeln!(
                    out,
                    "  warning: `{pattern}` matches no event type Tracim sends today"
                );
            }
        }
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
    println!(
        "  3. Try it on an event:    tracim-hooks test --sample mention.created   (or --sample all)"
    );
    println!(
        "     All hooks, all samples, through a simulated daemon: tracim-hooks demo --config {}",
        path.display()
    );
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
#[derive(Debug)]
struct Input {
    origin: String,
    event: Event,
}

/// Reads events from a file's text: one JSON document (a TLM, or a whole
/// daemon_tracim_event message), or JSON lines of them. Returns the events that
/// could be read and a message for each that could not.
fn parse_inputs(name: &str, text: &str) -> (Vec<Input>, Vec<String>) {
    let whole = text.trim();
    if whole.is_empty() {
        return (Vec::new(), vec![format!("{name}: no event in it")]);
    }
    let syntax = match serde_json::from_str::<serde::de::IgnoredAny>(whole) {
        Ok(_) => {
            return match parse_one(whole) {
                Ok(event) => (
                    vec![Input {
                        origin: name.to_owned(),
                        event,
                    }],
                    Vec::new(),
                ),
                Err(e) => (Vec::new(), vec![format!("{name}: {e}")]),
            };
        }
        Err(e) => e,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let json_lines = lines.clone().count() > 1
        && lines
            .next()
            .is_some_and(|(_, l)| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok());
    if !json_lines {
        // One document with a mistake: point at it.
        return (
            Vec::new(),
            vec![format!(
                "{name}:{}:{}: not JSON: {}",
                syntax.line(),
                syntax.column(),
                json_message(&syntax)
            )],
        );
    }
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_one(line.trim()) {
            Ok(event) => inputs.push(Input {
                origin: format!("{name}:{}", index + 1),
                event,
            }),
            Err(e) => errors.push(format!("{name}:{}: {e}", index + 1)),
        }
    }
    (inputs, errors)
}

/// serde_json's message without its " at line L column C" (said elsewhere).
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// One document: a TLM, or a daemon message that carries one.
fn parse_one(text: &str) -> Result<Event, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("not JSON: {} (column {})", json_message(&e), e.column()))?;
    let is_envelope = value.get("type").is_some() && value.get("event_type").is_none();
    if !is_envelope {
        return Event::from_text(text).map_err(|e| match e {
            DecodeError::Tlm(e) => format!("not a Tracim event: {}", json_message(&e)),
            other => other.to_string(),
        });
    }
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
}

fn read_input(file: &Path) -> Result<(String, String), String> {
    if file == Path::new("-") {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            eprintln!("reading events from stdin, Ctrl-D to end (or give files, or --sample TYPE)");
        }
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
async fn test(path: &Path, args: TestArgs) -> Result<(), Failure> {
    let config = Config::load(path)?;
    let mut problems = Vec::new();
    let mut inputs = Vec::new();
    for name in &args.sample {
        match samples(name) {
            Ok(found) => inputs.extend(found),
            Err(e) => problems.push(e),
        }
    }
    let stdin = [PathBuf::from("-")];
    let files = match (&args.files[..], &args.sample[..]) {
        ([], []) => &stdin[..],
        (files, _) => files,
    };
    for file in files {
        match read_input(file) {
            Ok((name, text)) => {
                let (found, errors) = parse_inputs(&name, &text);
                inputs.extend(found);
                problems.extend(errors);
            }
            Err(e) => problems.push(e),
        }
    }

    let supervisor = Supervisor::new(Settings::from(&config.defaults));
    let mut reports = supervisor.reports();
    let user_id: Arc<str> = args.user_id.unwrap_or_default().into();
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
            if args.run {
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
    if args.run {
        supervisor.wait_idle().await;
        let mut out = std::io::stdout().lock();
        while let Ok(report) = reports.try_recv() {
            let status = report.status();
            let _ = writeln!(
                out,
                "ran {} for event {}: {status}",
                report.hook, report.event_id
            );
            if !report.success() && !report.will_retry {
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

/// The bundled sample of a type, or all of them.
fn samples(name: &str) -> Result<Vec<Input>, String> {
    let chosen: Vec<&(&str, &str)> = crate::samples::SAMPLES
        .iter()
        .filter(|(event_type, _)| name == "all" || *event_type == name)
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = crate::samples::SAMPLES.iter().map(|(t, _)| *t).collect();
        return Err(format!(
            "no sample `{name}`; there are: all, {}",
            names.join(", ")
        ));
    }
    chosen
        .into_iter()
        .map(|(event_type, text)| {
            Event::from_text(*text)
                .map(|event| Input {
                    origin: format!("sample {event_type}"),
                    event,
                })
                .map_err(|e| format!("sample {event_type}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_in_every_shape() {
        let tlm = r#"{"event_id":1,"event_type":"a.b","fields":{}}"#;
        let ids = |(inputs, errors): (Vec<Input>, Vec<String>)| {
            assert!(errors.is_empty(), "{errors:?}");
            inputs.iter().map(|i| i.event.id()).collect::<Vec<_>>()
        };
        assert_eq!(ids(parse_inputs("f", &format!("{tlm}\n"))), [1]);
        let lines = format!(
            "{tlm}\n\n{}\n",
            tlm.replace("\"event_id\":1", "\"event_id\":2")
        );
        let (two, _) = parse_inputs("f", &lines);
        assert_eq!(two[1].origin, "f:3");
        let wire =
            include_str!("../crates/tracim-daemon-sdk/tests/fixtures/wire/tracim_event.json");
        assert_eq!(ids(parse_inputs("w", wire)), [2]);
        let pretty = include_str!("samples/content.created.file.json");
        assert_eq!(ids(parse_inputs("p", pretty)), [107]);

        // JSON lines: good lines are kept, a bad one is named.
        let (good, bad) = parse_inputs("b", &format!("{tlm}\n{{\"event_id\":1}}\nnope\n"));
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(
            bad[0],
            "b:2: not a Tracim event: missing field `event_type`"
        );
        assert!(
            bad[1].starts_with("b:3: not JSON: expected ident"),
            "{bad:?}"
        );

        // One pretty document with a mistake: one error, where it is.
        let broken = pretty.replace(
            "\"label\": \"Q3 report.pdf\",",
            "\"label\": \"Q3 report.pdf\"",
        );
        let (none, err) = parse_inputs("x.json", &broken);
        assert!(none.is_empty());
        assert_eq!(err.len(), 1, "{err:?}");
        assert!(
            err[0].starts_with("x.json:24:7: not JSON: expected `,` or `}`"),
            "{err:?}"
        );

        let (_, ping) = parse_inputs(
            "p",
            include_str!("../crates/tracim-daemon-sdk/tests/fixtures/wire/ping.json"),
        );
        assert!(ping[0].contains("daemon_ping"), "{ping:?}");
        let (_, empty) = parse_inputs("e", "  \n");
        assert_eq!(empty, ["e: no event in it"]);
    }

    #[test]
    fn samples_by_type_or_all() {
        assert_eq!(samples("mention.created").unwrap()[0].event.id(), 112);
        assert_eq!(samples("all").unwrap().len(), 18);
        assert!(samples("nope").unwrap_err().contains("mention.created"));
    }

    #[test]
    fn shorten_keeps_char_boundaries() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééé", 3), "é… (6 bytes in all)");
    }
}
