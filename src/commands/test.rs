//! `test`: which hooks events run and with what; with `--run`, run them for real.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Failure;
use super::inputs::{parse_inputs, read_input, samples, shorten};
use crate::cli::TestArgs;
use crate::config::Config;
use crate::env::event_vars;
use crate::matcher::{Matcher, Verdict};
use crate::supervisor::{Settings, Supervisor};

/// `test`: which hooks each event runs and why the others do not; without `--run`
/// what a hook would get, with `--run` the real runs under the same supervision
/// as the service.
pub(super) async fn test(path: &Path, args: TestArgs) -> Result<(), Failure> {
    let config = Config::load(path)?;
    let matcher = Matcher::new(&config.hooks).map_err(|e| Failure::new(e.to_string()))?;
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
        for (hook, verdict) in matcher.explain(event, &user_id) {
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
            for line in super::explain::for_event(&hook, event) {
                let _ = writeln!(out, "        {line}");
            }
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
