//! A benchmark of the hook runner, run by hand:
//!
//! ```text
//! cargo run --release --example bench                  # the full run, a minute or two
//! cargo run --release --example bench -- --quick       # a few seconds: a smoke test
//! cargo run --release --example bench -- --only receive --events 200000   # one phase
//! ```
//!
//! It plays the daemon's side over real Unix sockets, as the daemon does (one
//! connection per message: connect, write the whole JSON envelope, close; the TLM
//! a JSON string in `data`), and prints five figures against their targets:
//!
//! 1. receive: events per second for events that match no hook, and the time from
//!    connect to the event's hooks decided (p50/p99), the runner in this process;
//!    and the events per second of the real binary as a child process;
//! 2. dispatch: runs per second of a trivial hook (`exec = ["true"]`) at
//!    `max_parallel` P, over the spawn ceiling: `exec::spawn` P at a time;
//! 3. the time from an event's arrival to its hook process started (p50/p99);
//! 4. the resident memory of the real binary, idle and at its peak;
//! 5. the time to match one event with 1, 100 and 10,000 hooks;
//! 6. events per second received from Tracim's own event stream (`source =
//!    "tracim"`, a simulated Tracim, one connection), beside the daemon path's.
//!
//! Each figure is the median of `--reps` repetitions within the run. A missed
//! target is reported, not an error: the exit status is nonzero only when a
//! measurement could not be made.
//!
//! In this process the runner is set up as `tracim-hooks run` sets it up: its own
//! multi-threaded runtime, the service loop on a worker (`tokio::spawn`). The
//! daemon's side sends from a runtime of its own, one thread. "Hooks decided" is
//! the instant the service notes right after `Matcher::select` and the submits
//! (its `event decided` record on the `tracim_hooks::timing` tracing target, which
//! [`timing`] subscribes to; the arrival-to-spawn figures come from the
//! supervisor's `run spawned` record there). The child process is the `tracim-hooks` binary,
//! built into `target/bench-runner` (see [`runner_binary`]) unless `--bin` is
//! given. The share of CPU time the hypervisor stole is shown for each phase: on a
//! shared host it, not the load average, tells a noisy run.
//!
//! Flags: `--events N` `--dispatch N` `--parallel P` `--latency N` `--reps R`
//! `--senders S` `--hooks 1,100,10000` `--match-ms MS` `--bin PATH` `--no-child`
//! `--only receive,dispatch,child,matching` (one phase, e.g. under `perf`) `--quick`.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use tracim_daemon_sdk::protocol::{Envelope, Event, Message};
use tracim_daemon_sdk::sim::{self, SimDaemon, SimOptions};
use tracim_hooks::config::Config;
use tracim_hooks::exec::{self, Limits, Spec};
use tracim_hooks::hook::Hook;
use tracim_hooks::matcher::{
    CONTENT_TYPES as SUBTYPES, ENTITIES, Matcher, OPERATIONS, known_event_types,
};
use tracim_hooks::notify::Notifier;
use tracim_hooks::service::{Control, Handle, Service};
use tracim_hooks::supervisor::{Settings, Supervisor, hook_spec};

const TARGET_RECEIVE_EPS: f64 = 50_000.0;
const TARGET_DISPATCH_RATIO: f64 = 0.9;
const TARGET_SPAWN_P99: Duration = Duration::from_millis(2);
const TARGET_IDLE_RSS_KIB: u64 = 8 * 1024;
const TARGET_AFTER_HUGE_KIB: u64 = 16 * 1024;
const TARGET_IDLE_WAKEUPS: f64 = 1.0;
const TARGET_CHECK_200K: Duration = Duration::from_secs(5);
const TARGET_JOURNAL_RATIO: f64 = 0.9;
const TARGET_MATCH: Duration = Duration::from_micros(5);

mod child;
mod daemon;
mod dispatch;
mod events;
mod inproc;
mod matching;
mod opts;
mod receive;
mod report;
mod smaps;
mod stats;
mod timing;
mod tracim;

use child::*;
use daemon::*;
use dispatch::*;
use events::*;
use inproc::*;
use matching::*;
use opts::*;
use receive::*;
use report::*;
use smaps::*;
use stats::*;
use tracim::*;

/// The figures, or the error noted for the end (the other phases still run).
fn measured<T>(errors: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

async fn run(opts: Opts) -> Result<(), String> {
    let temp = tempfile::Builder::new()
        .prefix("thb")
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?;
    let dir = temp.path();
    let fixtures = fixtures()?;
    // The mention first: the child's sentinel and dispatch events are made from it.
    let mut tlms: Vec<String> = fixtures.iter().map(|f| f.1.clone()).collect();
    if let Some(i) = fixtures.iter().position(|f| f.0 == "mention.created") {
        tlms.swap(0, i);
    }
    println!("tracim-hooks bench: {}", machine());
    println!(
        "  {} events x {} reps, {} senders; dispatch {} runs at max_parallel {}; \
         {} latency samples; {} TLM fixtures{}",
        opts.events,
        opts.reps,
        opts.senders,
        opts.dispatch,
        opts.parallel,
        opts.latency,
        tlms.len(),
        if opts.quick { " (--quick)" } else { "" }
    );
    let mut phases = Phases::new();
    let mut errors = Vec::new();

    let receive = if opts.runs("receive") {
        phases.start("receive", "1 receive path, runner in this process");
        measured(&mut errors, bench_receive(&opts, &tlms, dir).await)
    } else {
        None
    };
    let dispatch = if opts.runs("dispatch") {
        phases.start("dispatch", "2-3 dispatch, spawn ceiling, arrival -> spawn");
        measured(&mut errors, bench_dispatch(&opts, &tlms, dir).await)
    } else {
        None
    };
    let child = if opts.child && opts.runs("child") {
        phases.start(
            "child",
            "4 tracim-hooks run as a child process: memory, receive, dispatch",
        );
        measured(&mut errors, bench_child(&opts, &tlms, dir).await)
    } else {
        None
    };
    let (matching, checks) = if opts.runs("matching") {
        phases.start("matching", "5 matching, and `check` on many hooks");
        (
            measured(&mut errors, bench_matching(&opts, &tlms, dir)).unwrap_or_default(),
            measured(&mut errors, bench_check(&opts, dir)).unwrap_or_default(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let tracim = if opts.runs("tracim") {
        phases.start(
            "tracim",
            "6 receive from Tracim's event stream, runner in this process",
        );
        measured(&mut errors, bench_tracim(&opts, &tlms, dir).await)
    } else {
        None
    };
    phases.end();
    eprintln!("bench: [{:6.1?}] done", phases.clock.elapsed());
    report(
        &opts,
        receive.as_ref(),
        dispatch.as_ref(),
        child.as_ref(),
        &matching,
        &checks,
    );
    if let Some(eps) = tracim {
        let beside = receive
            .as_ref()
            .map(|r| format!("; the daemon path (1): {:.0} events/s", median(&r.eps)))
            .unwrap_or_default();
        println!("  6 tracim stream: {eps:.0} events/s received, one connection{beside}");
    }
    println!(
        "  machine: CPU time stolen by the hypervisor during {} (high = noisy neighbours, slow \
         figures); load average at the end {}",
        list(&phases.steal, |(name, share)| match share {
            Some(share) => format!("{name} {:.1}%", share * 100.0),
            None => format!("{name} n/a"),
        }),
        load_average()
    );
    match errors.is_empty() {
        true => Ok(()),
        false => Err(errors.join("\n")),
    }
}

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // The runner's warnings and errors only, as a bench should see none; and
    // its timing records, for the figures.
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        use tracing_subscriber::{Layer as _, filter};
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_filter(filter::LevelFilter::WARN),
            )
            .with(timing::Layer.with_filter(
                filter::Targets::new().with_target(timing::TARGET, tracing::Level::TRACE),
            ))
            .init();
    }
    // The runner's, as `tracim-hooks run` has it: multi-threaded, one worker per
    // CPU; and the daemon's side, one thread.
    let runtimes = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .and_then(|runner| {
            let daemon = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("daemon-side")
                .enable_all()
                .build()?;
            Ok((runner, daemon))
        });
    let runtime = match runtimes {
        Ok((runner, daemon)) => {
            let _ = DAEMON_SIDE.set(daemon);
            runner
        }
        Err(e) => {
            eprintln!("bench: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
