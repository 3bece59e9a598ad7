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
//! 5. the time to match one event with 1, 100 and 10,000 hooks.
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
use tracim_hooks::matcher::{CONTENT_TYPES as SUBTYPES, ENTITIES, Matcher, OPERATIONS};
use tracim_hooks::notify::Notifier;
use tracim_hooks::service::{Control, Handle, Service};
use tracim_hooks::supervisor::{Settings, Supervisor, hook_spec};

const TARGET_RECEIVE_EPS: f64 = 50_000.0;
const TARGET_DISPATCH_RATIO: f64 = 0.9;
const TARGET_SPAWN_P99: Duration = Duration::from_millis(2);
const TARGET_IDLE_RSS_KIB: u64 = 8 * 1024;
const TARGET_MATCH: Duration = Duration::from_micros(5);

// ---------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    events: usize,
    dispatch: usize,
    parallel: usize,
    latency: usize,
    reps: usize,
    senders: usize,
    hooks: Vec<usize>,
    match_time: Duration,
    child: bool,
    bin: Option<PathBuf>,
    quick: bool,
    only: Vec<String>,
}

const PHASES: [&str; 4] = ["receive", "dispatch", "child", "matching"];

const USAGE: &str = "usage: cargo run --release --example bench -- [--quick] [--events N] \
[--dispatch N] [--parallel P] [--latency N] [--reps R] [--senders S] [--hooks 1,100,10000] \
[--match-ms MS] [--bin PATH] [--no-child] [--only receive,dispatch,child,matching]";

impl Opts {
    /// The options, or `None` when only the usage was asked for.
    fn parse() -> Result<Option<Opts>, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut opts = Opts {
            events: if quick { 2_000 } else { 50_000 },
            dispatch: if quick { 200 } else { 5_000 },
            parallel: 8,
            latency: if quick { 20 } else { 500 },
            reps: if quick { 1 } else { 3 },
            senders: 4,
            hooks: if quick {
                vec![1, 100, 1_000]
            } else {
                vec![1, 100, 10_000]
            },
            match_time: Duration::from_millis(if quick { 20 } else { 300 }),
            child: true,
            bin: None,
            quick,
            only: Vec::new(),
        };
        let number = |name: &str, text: &str| {
            text.replace('_', "")
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}: not a positive number: {text}"))
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || {
                it.next()
                    .map(String::as_str)
                    .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--quick" => {}
                "--no-child" => opts.child = false,
                "--events" => opts.events = number(arg, value()?)?,
                "--dispatch" => opts.dispatch = number(arg, value()?)?,
                "--parallel" => opts.parallel = number(arg, value()?)?,
                "--latency" => opts.latency = number(arg, value()?)?,
                "--reps" => opts.reps = number(arg, value()?)?,
                "--senders" => opts.senders = number(arg, value()?)?,
                "--match-ms" => {
                    opts.match_time = Duration::from_millis(number(arg, value()?)? as u64)
                }
                "--hooks" => {
                    opts.hooks = value()?
                        .split(',')
                        .map(|n| number(arg, n))
                        .collect::<Result<_, _>>()?
                }
                "--bin" => opts.bin = Some(PathBuf::from(value()?)),
                "--only" => {
                    opts.only = value()?.split(',').map(str::to_owned).collect();
                    if let Some(bad) = opts.only.iter().find(|p| !PHASES.contains(&p.as_str())) {
                        return Err(format!("--only: unknown phase `{bad}` (one of {PHASES:?})"));
                    }
                }
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        Ok(Some(opts))
    }

    fn runs(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }
}

// ---------------------------------------------------------------------------
// Statistics, formatting, /proc

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn median_duration(values: &[Duration]) -> Option<Duration> {
    let m = median(&values.iter().map(Duration::as_secs_f64).collect::<Vec<_>>());
    m.is_finite().then(|| Duration::from_secs_f64(m))
}

/// p50, p99 and the maximum of a set of samples (nearest rank).
#[derive(Debug, Clone, Copy, Default)]
struct Spread {
    p50: Option<Duration>,
    p99: Option<Duration>,
    max: Option<Duration>,
}

fn spread(mut samples: Vec<Duration>) -> Spread {
    samples.sort_unstable();
    let rank = |p: f64| {
        let r = (p / 100.0 * samples.len() as f64).ceil() as usize;
        samples.get(r.clamp(1, samples.len().max(1)) - 1).copied()
    };
    Spread {
        p50: rank(50.0),
        p99: rank(99.0),
        max: samples.last().copied(),
    }
}

/// The median over repetitions of each percentile.
fn median_spread(reps: &[Spread]) -> Spread {
    let of = |f: fn(&Spread) -> Option<Duration>| {
        median_duration(&reps.iter().filter_map(f).collect::<Vec<_>>())
    };
    Spread {
        p50: of(|s| s.p50),
        p99: of(|s| s.p99),
        max: of(|s| s.max),
    }
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{x:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn dur(d: Option<Duration>) -> String {
    match d {
        None => "n/a".into(),
        Some(d) if d < Duration::from_micros(10) => format!("{:.2} µs", d.as_secs_f64() * 1e6),
        Some(d) if d < Duration::from_millis(1) => format!("{:.0} µs", d.as_secs_f64() * 1e6),
        Some(d) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
    }
}

fn p50_p99(s: Spread) -> String {
    format!("{} / {}", dur(s.p50), dur(s.p99))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn list<T>(values: &[T], show: impl Fn(&T) -> String) -> String {
    values.iter().map(show).collect::<Vec<_>>().join(", ")
}

/// A `VmRSS`/`VmHWM` line of a process's status, in KiB.
fn proc_status(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// User + system CPU time of a process.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime: fields 14 and 15, the 12th and 13th after the comm.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// CPU time used between two readings, per event.
fn cpu_per(before: Option<Duration>, after: Option<Duration>, n: usize) -> Option<Duration> {
    Some(after?.saturating_sub(before?) / n.max(1) as u32)
}

/// CPU time stolen by the hypervisor, and all CPU time, in ticks since boot.
fn steal_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map_while(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    Some((*ticks.get(7)?, ticks.iter().take(8).sum()))
}

fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU".into(), |(_, m)| m.trim().to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {}", kernel.trim())
}

// ---------------------------------------------------------------------------
// Events and messages

/// The TLM fixtures of the tests: (name, text).
fn fixtures() -> Result<Vec<(String, String)>, String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/samples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{dir}: {e}"))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let name = path.file_stem().unwrap_or_default().to_string_lossy();
            out.push((name.into_owned(), text));
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(format!("no TLM fixtures in {dir}"));
    }
    Ok(out)
}

/// The TLM text with its `event_id` number replaced, the rest byte for byte.
fn with_id(tlm: &str, id: u64) -> String {
    let key = "\"event_id\"";
    let at = tlm.find(key).expect("a TLM has an event_id") + key.len();
    let colon = at + tlm[at..].find(':').expect("event_id: value");
    let value = colon + 1 + (tlm[colon + 1..].len() - tlm[colon + 1..].trim_start().len());
    let digits = tlm[value..].bytes().take_while(u8::is_ascii_digit).count();
    format!("{}{id}{}", &tlm[..value], &tlm[value + digits..])
}

/// A TLM of another type, made from a fixture.
fn retyped(tlm: &str, event_type: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(tlm).expect("fixture is JSON");
    value["event_type"] = event_type.into();
    value.to_string()
}

/// A `daemon_tracim_event` message as the daemon sends it, cut around the event
/// id so that each message sent can have an id of its own.
struct Template {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl Template {
    const PLACEHOLDER: u64 = 987_654_321_987_654_321;

    fn new(master: &Path, tlm: &str) -> Template {
        let bytes = sim::event_message(master, &with_id(tlm, Self::PLACEHOLDER));
        let needle = Self::PLACEHOLDER.to_string();
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .expect("placeholder in message");
        let template = Template {
            prefix: bytes[..at].to_vec(),
            suffix: bytes[at + needle.len()..].to_vec(),
        };
        match Envelope::decode(&template.message(42)).map(|e| e.message) {
            Ok(Message::TracimEvent(event)) if event.id() == 42 => template,
            other => panic!("template does not decode as an event: {other:?}"),
        }
    }

    fn message(&self, id: u64) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.prefix.len() + self.suffix.len() + 20);
        bytes.extend_from_slice(&self.prefix);
        let _ = write!(bytes, "{id}");
        bytes.extend_from_slice(&self.suffix);
        bytes
    }
}

fn templates<S: AsRef<str>>(master: &Path, tlms: &[S]) -> Arc<Vec<Template>> {
    Arc::new(
        tlms.iter()
            .map(|t| Template::new(master, t.as_ref()))
            .collect(),
    )
}

/// `n` event ids never used before in this run.
fn fresh_ids(n: usize) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1_000_000);
    NEXT.fetch_add(n as u64 + 1, Ordering::Relaxed)
}

fn decoded_events(tlms: &[String]) -> Vec<Event> {
    tlms.iter()
        .map(|t| Event::from_text(t.as_str()).expect("fixture decodes"))
        .collect()
}

// ---------------------------------------------------------------------------
// The daemon's side: one connection per message

/// Sends one message. A full listen backlog fails the connect (the daemon would
/// lose the message): that is counted, and the message sent again.
async fn send(socket: &Path, bytes: &[u8], backlog_full: &AtomicU64) -> Result<(), String> {
    for _ in 0..10_000 {
        let sent = async {
            let mut stream = UnixStream::connect(socket).await?;
            stream.write_all(bytes).await?;
            stream.shutdown().await
        };
        match sent.await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                backlog_full.fetch_add(1, Ordering::Relaxed);
                // Sleep, not spin: spinning would take the CPU the runner needs.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(format!("cannot send to {}: {e}", socket.display())),
        }
    }
    Err(format!(
        "{}: listen backlog full for 10 s",
        socket.display()
    ))
}

struct Blast {
    started: Instant,
    /// When the connect of message `i` began.
    sent: Vec<Instant>,
    backlog_full: u64,
}

/// The daemon's runtime: one thread of its own, as the daemon is a process of its
/// own. Sharing the runner's runtime would put the senders' tasks in the
/// runner's queues, which `tracim-hooks run` never has to share.
static DAEMON_SIDE: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

fn daemon_side() -> &'static tokio::runtime::Handle {
    DAEMON_SIDE.get().expect("started in main").handle()
}

/// `n` messages from `senders` concurrent tasks on the daemon's runtime, message
/// `i` with id `base + i`. When they outrun the runner, the runner's listen
/// backlog fills, and what is measured includes the time spent queued there.
async fn blast(
    socket: &Path,
    templates: &Arc<Vec<Template>>,
    base: u64,
    n: usize,
    senders: usize,
) -> Result<Blast, String> {
    let backlog_full = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders.min(n))
        .map(|s| {
            let (socket, templates) = (socket.to_path_buf(), templates.clone());
            let backlog_full = backlog_full.clone();
            daemon_side().spawn(async move {
                let mut sent = Vec::with_capacity(n / senders + 1);
                for i in (s..n).step_by(senders) {
                    let bytes = templates[i % templates.len()].message(base + i as u64);
                    let t0 = Instant::now();
                    send(&socket, &bytes, &backlog_full).await?;
                    sent.push((i, t0));
                }
                Ok::<_, String>(sent)
            })
        })
        .collect();
    let mut sent = vec![started; n];
    for task in tasks {
        for (i, t0) in task.await.map_err(|e| e.to_string())?? {
            sent[i] = t0;
        }
    }
    Ok(Blast {
        started,
        sent,
        backlog_full: backlog_full.load(Ordering::Relaxed),
    })
}

/// Polls `done` every millisecond until it holds; when it was seen to, or `None`.
async fn wait_until(mut done: impl FnMut() -> bool, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return Some(Instant::now());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn config_text(dir: &Path, tag: &str, rest: &str) -> String {
    format!(
        "[daemon]\nmaster_socket = \"{}\"\nsocket = \"{}\"\n\n{rest}",
        dir.join(format!("{tag}-master.sock")).display(),
        dir.join(format!("{tag}.sock")).display()
    )
}

const NEVER_HOOK: &str = "[[hook]]\nname = \"never\"\non = \"nomatch.never\"\nexec = [\"true\"]\n";

fn trivial_hook(parallel: usize) -> String {
    format!(
        "[defaults]\nmax_parallel = {parallel}\nqueue_limit = 100000\n\n\
         [[hook]]\nname = \"trivial\"\non = \"*\"\nexec = [\"true\"]\n"
    )
}

// ---------------------------------------------------------------------------
// The runner in this process

struct Runner {
    _sim: SimDaemon,
    socket: PathBuf,
    master: PathBuf,
    handle: Handle,
    controls: mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl Runner {
    /// Starts a simulated daemon and a runner with `config`, registered with it.
    async fn start(dir: &Path, tag: &str, config: &str) -> Result<Runner, String> {
        let path = dir.join(format!("{tag}.toml"));
        let config =
            Config::parse(&path, &config_text(dir, tag, config)).map_err(|e| e.to_string())?;
        let socket = config.daemon.socket.clone();
        let master = config.daemon.master_socket.clone();
        let sim = SimDaemon::start(&master, SimOptions::default())
            .await
            .map_err(|e| format!("simulated daemon: {e}"))?;
        let service = Service::start(path, config, Notifier::disabled())
            .await
            .map_err(|e| e.to_string())?;
        let handle = service.handle();
        let (controls, rx) = mpsc::unbounded_channel();
        // As `tracim-hooks run` does: the service loop on a runtime worker.
        let task = tokio::spawn(service.run(rx));
        if !sim.wait_for_client(&socket, Duration::from_secs(10)).await {
            return Err("the in-process runner did not register".into());
        }
        Ok(Runner {
            _sim: sim,
            socket,
            master,
            handle,
            controls,
            task,
        })
    }

    /// Takes the decision times of the events with these ids, until all have
    /// come or `timeout` is over.
    async fn decisions(&self, ids: Range<u64>, timeout: Duration) -> Vec<(u64, Instant)> {
        let mut got = Vec::with_capacity((ids.end - ids.start) as usize);
        wait_until(
            || {
                let taken = timing::take_decisions();
                got.extend(taken.into_iter().filter(|(id, _)| ids.contains(id)));
                got.len() as u64 >= ids.end - ids.start
            },
            timeout,
        )
        .await;
        got
    }

    async fn stop(self) -> Result<(), String> {
        let _ = self.controls.send(Control::Shutdown);
        match tokio::time::timeout(Duration::from_secs(20), self.task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the in-process runner failed: {e}")),
            Err(_) => Err("the in-process runner did not stop within 20 s".into()),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. The receive path, runner in this process

#[derive(Default)]
struct Receive {
    eps: Vec<f64>,
    /// Connect to hooks decided, during each blast.
    during: Vec<Spread>,
    /// Connect to hooks decided, one event at a time.
    alone: Spread,
    /// This process's CPU time per event during the blasts: runner and senders.
    cpu_per_event: Vec<Duration>,
    lost: usize,
    backlog_full: u64,
    mean_bytes: usize,
    /// `Envelope::decode` of one message of the mix, one thread.
    decode: Option<Duration>,
}

/// Mean `Envelope::decode` (and drop) time per message of the mix.
fn decode_cost(templates: &[Template], budget: Duration) -> Duration {
    let messages: Vec<Vec<u8>> = templates.iter().map(|t| t.message(7)).collect();
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < budget {
        for m in &messages {
            std::hint::black_box(Envelope::decode(std::hint::black_box(m)).ok());
        }
        n += messages.len() as u32;
    }
    started.elapsed() / n
}

async fn bench_receive(opts: &Opts, tlms: &[String], dir: &Path) -> Result<Receive, String> {
    let runner = Runner::start(dir, "recv", NEVER_HOOK).await?;
    timing::take_decisions();
    let templates = templates(&runner.master, tlms);
    let mut fig = Receive {
        mean_bytes: templates.iter().map(|t| t.message(1).len()).sum::<usize>() / tlms.len(),
        decode: Some(decode_cost(&templates, opts.match_time)),
        ..Receive::default()
    };
    let me = std::process::id();
    let warmup = opts.events.min(2_000);
    let counts = std::iter::once(warmup).chain(std::iter::repeat_n(opts.events, opts.reps));
    for (rep, n) in counts.enumerate() {
        let base = fresh_ids(n);
        let cpu0 = cpu_time(me);
        let blast = blast(&runner.socket, &templates, base, n, opts.senders).await?;
        let timeout = Duration::from_secs(20) + Duration::from_millis(n as u64);
        let decided = runner.decisions(base..base + n as u64, timeout).await;
        let cpu1 = cpu_time(me);
        if rep == 0 {
            continue;
        }
        let mut latencies = Vec::with_capacity(n);
        let mut last = blast.started;
        for (id, at) in decided {
            latencies.push(at.saturating_duration_since(blast.sent[(id - base) as usize]));
            last = last.max(at);
        }
        fig.lost += n - latencies.len();
        fig.backlog_full += blast.backlog_full;
        let elapsed = last.duration_since(blast.started).as_secs_f64();
        fig.eps.push(latencies.len() as f64 / elapsed);
        fig.during.push(spread(latencies));
        fig.cpu_per_event.extend(cpu_per(cpu0, cpu1, n));
    }

    // One at a time, the runner idle in between.
    let backlog = AtomicU64::new(0);
    let base = fresh_ids(opts.latency);
    let mut alone = Vec::with_capacity(opts.latency);
    for i in 0..opts.latency {
        let id = base + i as u64;
        let t0 = Instant::now();
        send(
            &runner.socket,
            &templates[i % templates.len()].message(id),
            &backlog,
        )
        .await?;
        let decided = runner.decisions(id..id + 1, Duration::from_secs(5)).await;
        alone.extend(decided.iter().map(|(_, at)| *at - t0));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    fig.lost += opts.latency - alone.len();
    fig.alone = spread(alone);
    runner.stop().await?;
    Ok(fig)
}

// ---------------------------------------------------------------------------
// 2. Dispatch against the spawn ceiling, and 3. arrival to spawn

#[derive(Default)]
struct Dispatch {
    dispatch: Vec<f64>,
    ceiling: Vec<f64>,
    ratio: Vec<f64>,
    /// Runs going on at once, on average: (dispatch, ceiling) per rep.
    in_flight: Vec<(f64, f64)>,
    /// `hook_spec`, building one run's environment.
    spec_cost: Option<Duration>,
    /// Arrival (end of the connection's read) to process started, via the service.
    service: Spread,
    /// `submit_at(now)` to process started, the supervisor alone.
    supervisor: Spread,
}

/// Runs made, the wall time they took, and the sum of their own durations
/// (spawn to group gone).
#[derive(Debug, Default, Clone, Copy)]
struct Throughput {
    runs: usize,
    wall: Duration,
    busy: Duration,
}

impl Throughput {
    fn new(wall: Duration, runs: &[Duration]) -> Throughput {
        Throughput {
            runs: runs.len(),
            wall,
            busy: runs.iter().sum(),
        }
    }

    fn add(&mut self, other: Throughput) {
        self.runs += other.runs;
        self.wall += other.wall;
        self.busy += other.busy;
    }

    fn rate(&self) -> f64 {
        self.runs as f64 / self.wall.as_secs_f64()
    }

    /// Runs going on at once, on average.
    fn in_flight(&self) -> f64 {
        self.busy.as_secs_f64() / self.wall.as_secs_f64()
    }
}

/// The ceiling: `m` runs of ready-made specs, `p` at a time, each `exec::spawn`
/// on a blocking thread as the supervisor does it, without the supervisor's
/// queue, environment building and bookkeeping.
async fn spawn_ceiling(
    specs: &Arc<Vec<Spec>>,
    limits: Limits,
    m: usize,
    p: usize,
) -> Result<Throughput, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..p)
        .map(|_| {
            let (specs, next) = (specs.clone(), next.clone());
            tokio::spawn(async move {
                let mut runs = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= m {
                        return Ok(runs);
                    }
                    let specs = specs.clone();
                    let spawned =
                        tokio::task::spawn_blocking(move || exec::spawn(&specs[i % specs.len()]));
                    let child = spawned.await.map_err(|e| e.to_string())?;
                    let outcome = child
                        .map_err(|e| e.to_string())?
                        .finish(limits, std::future::pending())
                        .await;
                    if !outcome.success() {
                        return Err(format!("`true` failed: {outcome:?}"));
                    }
                    runs.push(outcome.duration);
                }
            })
        })
        .collect();
    let mut runs = Vec::with_capacity(m);
    for w in workers {
        runs.extend(w.await.map_err(|e| e.to_string())??);
    }
    Ok(Throughput::new(started.elapsed(), &runs))
}

/// `m` runs submitted to a supervisor at once; runs per second until it is idle.
async fn supervisor_dispatch(
    settings: Settings,
    hook: &Arc<Hook>,
    events: &[Event],
    m: usize,
) -> Result<Throughput, String> {
    let supervisor = Supervisor::new(settings);
    let mut reports = supervisor.reports();
    let user: Arc<str> = "1".into();
    let started = Instant::now();
    for i in 0..m {
        let event = events[i % events.len()].clone();
        supervisor
            .submit(hook.clone(), event, user.clone())
            .map_err(|e| format!("run refused: {e}"))?;
    }
    supervisor.wait_idle().await;
    let wall = started.elapsed();
    let stats = supervisor.stats();
    if stats.succeeded != m as u64 {
        return Err(format!("dispatch: {stats:?} for {m} runs"));
    }
    let mut runs = Vec::with_capacity(m);
    while let Ok(report) = reports.try_recv() {
        runs.extend(report.result.ok().map(|o| o.duration));
    }
    Ok(Throughput::new(wall, &runs))
}

async fn bench_dispatch(opts: &Opts, tlms: &[String], dir: &Path) -> Result<Dispatch, String> {
    let (m, p) = (opts.dispatch, opts.parallel);
    let config = Config::parse(
        &dir.join("dispatch.toml"),
        &config_text(dir, "dispatch", &trivial_hook(p)),
    )
    .map_err(|e| e.to_string())?;
    let hook = config.hooks[0].clone();
    let settings = Settings::from(&config.defaults);
    let limits = Limits {
        timeout: hook.timeout,
        kill_after: hook.kill_after,
    };
    let events = decoded_events(tlms);
    let inherited = tracim_hooks::env::inherited();
    let spec = |e: &Event| hook_spec(&hook, e, "1", settings.env_budget, &inherited);
    let started = Instant::now();
    let specs: Vec<Spec> = events.iter().map(spec).collect();
    let mut fig = Dispatch {
        spec_cost: Some(started.elapsed() / events.len() as u32),
        ..Dispatch::default()
    };
    let specs = Arc::new(specs);

    // A warm-up of each, then each rep in ten rounds that alternate the two, so
    // that a drift in the machine's speed weighs on both alike.
    let round = m.div_ceil(10);
    spawn_ceiling(&specs, limits, round, p).await?;
    supervisor_dispatch(settings, &hook, &events, round).await?;
    for _ in 0..opts.reps {
        let (mut ceiling, mut dispatch) = (Throughput::default(), Throughput::default());
        for _ in 0..10 {
            ceiling.add(spawn_ceiling(&specs, limits, round, p).await?);
            dispatch.add(supervisor_dispatch(settings, &hook, &events, round).await?);
        }
        fig.ceiling.push(ceiling.rate());
        fig.dispatch.push(dispatch.rate());
        fig.ratio.push(dispatch.rate() / ceiling.rate());
        fig.in_flight
            .push((dispatch.in_flight(), ceiling.in_flight()));
    }

    // 3. Through the service, one event at a time: arrival is the end of the
    // connection's read (`Delivery::received`), the first runs not recorded.
    let runner = Runner::start(dir, "latency", &trivial_hook(p)).await?;
    let templates = templates(&runner.master, tlms);
    let supervisor = runner.handle.supervisor.clone();
    let backlog = AtomicU64::new(0);
    let base = fresh_ids(opts.latency + 3);
    for i in 0..opts.latency + 3 {
        if i == 3 {
            timing::take_spawn_latency();
        }
        let before = supervisor.stats().started;
        let message = templates[i % templates.len()].message(base + i as u64);
        send(&runner.socket, &message, &backlog).await?;
        let started = || supervisor.stats().started > before;
        if wait_until(started, Duration::from_secs(5)).await.is_none() {
            return Err("latency: a hook run did not start within 5 s".into());
        }
        supervisor.wait_idle().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    fig.service = spread(timing::take_spawn_latency());
    runner.stop().await?;

    // The supervisor alone: submit_at(now).
    let supervisor = Supervisor::new(settings);
    timing::take_spawn_latency();
    let user: Arc<str> = "1".into();
    for i in 0..opts.latency {
        let event = events[i % events.len()].clone();
        supervisor
            .submit_at(hook.clone(), event, user.clone(), Instant::now())
            .map_err(|e| e.to_string())?;
        supervisor.wait_idle().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    fig.supervisor = spread(timing::take_spawn_latency());
    Ok(fig)
}

// ---------------------------------------------------------------------------
// 4. The real binary as a child process: memory, receive and dispatch

#[derive(Default)]
struct ChildProcess {
    rss_idle: Option<u64>,
    hwm_after_receive: Option<u64>,
    hwm_peak: Option<u64>,
    rss_after: Option<u64>,
    eps: Vec<f64>,
    cpu_per_event: Vec<Duration>,
    sender_cpu_per_event: Vec<Duration>,
    /// The sentinel's own time, runner idle; taken off each receive run.
    sentinel: Option<Duration>,
    dispatch: Option<f64>,
    backlog_full: u64,
    failed_runs: u64,
}

/// Counts the lines of a growing log file that hold all the parts of a pattern.
struct LogTail {
    file: std::fs::File,
    partial: Vec<u8>,
    counts: [u64; 3],
}

const SENTINEL_DONE: usize = 0;
const BENCH_DONE: usize = 1;
const RUN_FAILED: usize = 2;
const PATTERNS: [&[&str]; 3] = [
    &["run finished", "hook=sentinel "],
    &["run finished", "hook=bench "],
    &["run failed"],
];

impl LogTail {
    fn new(path: &Path) -> Result<LogTail, String> {
        Ok(LogTail {
            file: std::fs::File::open(path).map_err(|e| e.to_string())?,
            partial: Vec::new(),
            counts: [0; 3],
        })
    }

    fn count(&mut self, pattern: usize) -> u64 {
        let _ = self.file.read_to_end(&mut self.partial);
        if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
            let lines: Vec<u8> = self.partial.drain(..=end).collect();
            for line in String::from_utf8_lossy(&lines).lines() {
                for (count, parts) in self.counts.iter_mut().zip(PATTERNS) {
                    if parts.iter().all(|p| line.contains(p)) {
                        *count += 1;
                    }
                }
            }
        }
        self.counts[pattern]
    }
}

/// The `tracim-hooks` binary of this source tree and build profile.
///
/// It is built into a target directory of its own: the library built for an
/// example (with the dev-dependencies' features) differs from the one built for
/// the binary, and in the shared target directory each build undoes the other,
/// which costs a recompile on every run, both ways.
fn runner_binary(opts: &Opts) -> Result<PathBuf, String> {
    if let Some(bin) = &opts.bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/examples/bench
    let profile_dir = exe.parent().and_then(Path::parent);
    let target = profile_dir
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory (pass --bin PATH)")?
        .join("bench-runner");
    let release = profile_dir.is_some_and(|p| p.ends_with("release"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--bin", "tracim-hooks", "--target-dir"])
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        build.arg("--release");
    }
    eprintln!(
        "bench: building tracim-hooks into {} (a while the first time)",
        target.display()
    );
    let status = build.status().map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err("cannot build the tracim-hooks binary (pass --bin PATH)".into());
    }
    Ok(target
        .join(if release { "release" } else { "debug" })
        .join("tracim-hooks"))
}

/// The real binary, `tracim-hooks run` at its default log level (info), with
/// three hooks: one no event matches, one for dispatch, and a sentinel whose
/// "run finished" line tells that everything sent before it was read.
async fn bench_child(opts: &Opts, tlms: &[String], dir: &Path) -> Result<ChildProcess, String> {
    let bin = runner_binary(opts)?;
    let text = config_text(
        dir,
        "child",
        &format!(
            "[defaults]\nmax_parallel = {}\nqueue_limit = 100000\n\n{NEVER_HOOK}\n\
             [[hook]]\nname = \"bench\"\non = \"bench.dispatch\"\nexec = [\"true\"]\n\n\
             [[hook]]\nname = \"sentinel\"\non = \"bench.sentinel\"\nexec = [\"true\"]\n",
            opts.parallel
        ),
    );
    let config_path = dir.join("child.toml");
    std::fs::write(&config_path, &text).map_err(|e| e.to_string())?;
    let config = Config::parse(&config_path, &text).map_err(|e| e.to_string())?;
    let (master, socket) = (config.daemon.master_socket, config.daemon.socket);
    let sim = SimDaemon::start(&master, SimOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let log_path = dir.join("child.log");
    let log_file = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(&bin)
        .args(["--config", &config_path.to_string_lossy(), "run"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("TRACIM_HOOKS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let pid = child.id();
    let measured = async {
        let mut fig = ChildProcess::default();
        if !sim.wait_for_client(&socket, Duration::from_secs(10)).await {
            return Err("the child runner did not register".to_owned());
        }
        // Idle: the median of five samples, half a second after registration.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut idle = Vec::new();
        for _ in 0..5 {
            idle.extend(proc_status(pid, "VmRSS"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        idle.sort_unstable();
        fig.rss_idle = idle.get(idle.len() / 2).copied();

        let mut tail = LogTail::new(&log_path)?;
        let backlog = AtomicU64::new(0);
        let sentinel = Template::new(&master, &retyped(&tlms[0], "bench.sentinel"));
        let mut sentinels = 0;
        // Sends the sentinel and waits for its run to finish.
        let mut sentinel_run = async |timeout: Duration| {
            send(&socket, &sentinel.message(fresh_ids(1)), &backlog).await?;
            sentinels += 1;
            wait_until(|| tail.count(SENTINEL_DONE) >= sentinels, timeout)
                .await
                .ok_or_else(|| "the sentinel hook did not run".to_owned())
        };
        let mut alone = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            alone.push(sentinel_run(Duration::from_secs(10)).await? - t0);
        }
        fig.sentinel = median_duration(&alone);

        let templates = templates(&master, tlms);
        let warmup = opts.events.min(2_000);
        let counts = std::iter::once(warmup).chain(std::iter::repeat_n(opts.events, opts.reps));
        for (rep, n) in counts.enumerate() {
            let (cpu0, own0) = (cpu_time(pid), cpu_time(std::process::id()));
            let blast = blast(&socket, &templates, fresh_ids(n), n, opts.senders).await?;
            let timeout = Duration::from_secs(20) + Duration::from_millis(n as u64);
            let seen = sentinel_run(timeout).await?;
            let (cpu1, own1) = (cpu_time(pid), cpu_time(std::process::id()));
            if rep == 0 {
                continue;
            }
            let elapsed = (seen - blast.started).saturating_sub(fig.sentinel.unwrap_or_default());
            fig.eps.push(n as f64 / elapsed.as_secs_f64());
            fig.backlog_full += blast.backlog_full;
            fig.cpu_per_event.extend(cpu_per(cpu0, cpu1, n));
            fig.sender_cpu_per_event.extend(cpu_per(own0, own1, n));
        }
        fig.hwm_after_receive = proc_status(pid, "VmHWM");

        // Hook runs through the child: socket, match, spawn, "run finished".
        let m = opts.dispatch;
        let dispatch = templates_of(&master, &retyped(&tlms[0], "bench.dispatch"));
        let blast = blast(&socket, &dispatch, fresh_ids(m), m, opts.senders).await?;
        let timeout = Duration::from_secs(30) + Duration::from_millis(20 * m as u64);
        let seen = wait_until(|| tail.count(BENCH_DONE) >= m as u64, timeout).await;
        fig.dispatch = seen.map(|s| m as f64 / (s - blast.started).as_secs_f64());
        fig.failed_runs = tail.count(RUN_FAILED);
        fig.hwm_peak = proc_status(pid, "VmHWM");
        tokio::time::sleep(Duration::from_millis(500)).await;
        fig.rss_after = proc_status(pid, "VmRSS");
        Ok(fig)
    }
    .await;

    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let exited = wait_until(
        || matches!(child.try_wait(), Ok(Some(_))),
        Duration::from_secs(20),
    );
    if exited.await.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(5)
        .collect();
    if !complaints.is_empty() {
        eprintln!(
            "bench: the child runner logged:\n  {}",
            complaints.join("\n  ")
        );
    }
    measured.map_err(|e| format!("{e}; the child's log: {}", log_path.display()))
}

fn templates_of(master: &Path, tlm: &str) -> Arc<Vec<Template>> {
    templates(master, &[tlm])
}

// ---------------------------------------------------------------------------
// 5. Matching

/// `n` hooks: five hand-written ones that real events take, then a mix of exact
/// types, `content.*`-style prefixes, `{a,b}` alternations, inner `*`, character
/// classes and exclusions, of which one in a hundred takes real events (and then
/// fails a `where` condition, as per-workspace hooks do).
fn matching_hooks(n: usize) -> String {
    let base: [(&str, &str); 5] = [
        (
            "\"content.*\"",
            "where = { \"fields.workspace.label\" = \"Engineering\" }",
        ),
        ("\"mention.created\"", ""),
        ("\"{user,workspace}.*\"", ""),
        ("[\"content.*\", \"!content.*.comment\"]", ""),
        (
            "\"content.{created,modified}.{html-document,file}\"",
            "where = { \"fields.author.username\" = [\"alice\", \"bob\"] }",
        ),
    ];
    let mut text = String::new();
    for i in 0..n {
        let (on, extra) = match base.get(i) {
            Some((on, extra)) => ((*on).to_owned(), (*extra).to_owned()),
            None => synthetic_pattern(i),
        };
        let _ = writeln!(
            text,
            "[[hook]]\nname = \"h{i}\"\non = {on}\nexec = [\"true\"]\n{extra}"
        );
    }
    text
}

fn synthetic_pattern(i: usize) -> (String, String) {
    if i % 100 == 0 {
        let r = i / 100;
        let e = ENTITIES[r % ENTITIES.len()];
        let o = OPERATIONS[(r / ENTITIES.len()) % OPERATIONS.len()];
        return (
            format!("\"{e}.{o}*\""),
            format!("where = {{ \"fields.workspace.label\" = \"Team {i}\" }}"),
        );
    }
    let e = ENTITIES[i % ENTITIES.len()];
    let e2 = ENTITIES[(i + 3) % ENTITIES.len()];
    let o = OPERATIONS[(i / 10) % OPERATIONS.len()];
    let s = SUBTYPES[(i / 60) % SUBTYPES.len()];
    let on = match i % 6 {
        0 => format!("\"{e}.{o}.{s}-{i}\""),
        1 => format!("\"{e}.{o}{i}.*\""),
        2 => format!("\"{{{e},{e2}}}.{o}.{s}{i}\""),
        3 => format!("\"{e}.*.{s}{i}\""),
        4 => format!("\"{e}.[cm]*.{s}{i}\""),
        _ => format!("[\"{e}.{o}{i}.*\", \"!{e}.{o}{i}.comment\"]"),
    };
    (on, String::new())
}

struct Matching {
    hooks: usize,
    parse: Duration,
    per_event: Vec<Duration>,
    selected: f64,
}

fn bench_matching(opts: &Opts, tlms: &[String], dir: &Path) -> Result<Vec<Matching>, String> {
    let events = decoded_events(tlms);
    let mut out = Vec::new();
    for &n in &opts.hooks {
        let text = config_text(dir, "match", &matching_hooks(n));
        let started = Instant::now();
        let config = Config::parse(&dir.join(format!("match{n}.toml")), &text)
            .map_err(|e| format!("{n} hooks: {e}"))?;
        let matcher = &Matcher::new(&config.hooks).map_err(|e| format!("{n} hooks: {e}"))?;
        let parse = started.elapsed();
        let selected = events
            .iter()
            .map(|e| matcher.select(e, "").len())
            .sum::<usize>();
        let mut per_event = Vec::new();
        for _ in 0..opts.reps {
            let started = Instant::now();
            let mut iterations = 0u32;
            while started.elapsed() < opts.match_time {
                for event in &events {
                    std::hint::black_box(matcher.select(std::hint::black_box(event), ""));
                }
                iterations += events.len() as u32;
            }
            per_event.push(started.elapsed() / iterations);
        }
        out.push(Matching {
            hooks: n,
            parse,
            per_event,
            selected: selected as f64 / events.len() as f64,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// The report

/// A line of the table: figure, value, and the target with whether it is met.
struct Row(String, String, Option<(&'static str, Option<bool>)>);

fn print_table(rows: &[Row]) {
    let width = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let w0 = width(|r| r.0.chars().count());
    let w1 = width(|r| r.1.chars().count());
    let w2 = width(|r| r.2.map_or(0, |t| t.0.chars().count()));
    let line = "-".repeat(w0 + w1 + w2 + 11);
    println!(
        "{line}\n{:w0$}  {:>w1$}  {:w2$}  met\n{line}",
        "figure", "value", "target"
    );
    for Row(figure, value, target) in rows {
        let (target, met) = match target {
            None => ("", ""),
            Some((t, Some(true))) => (*t, "yes"),
            Some((t, Some(false))) => (*t, "NO"),
            Some((t, None)) => (*t, "n/a"),
        };
        // `{:w$}` counts chars, so `µ` pads right.
        println!("{figure:w0$}  {value:>w1$}  {target:w2$}  {met}");
    }
    println!("{line}");
}

fn report(
    opts: &Opts,
    receive: Option<&Receive>,
    dispatch: Option<&Dispatch>,
    child: Option<&ChildProcess>,
    matching: &[Matching],
) {
    let mut rows = Vec::new();
    let mut add = |figure: String, value: String, target| rows.push(Row(figure, value, target));
    if let Some(r) = receive {
        let eps = median(&r.eps);
        let lost = if r.lost > 0 {
            format!(" ({} LOST)", r.lost)
        } else {
            String::new()
        };
        add(
            format!(
                "1 receive, no hook matches, in-process (ev/s, {} B avg)",
                r.mean_bytes
            ),
            format!("{}{lost}", thousands(eps)),
            Some((
                ">= 50,000 ev/s",
                Some(eps >= TARGET_RECEIVE_EPS && r.lost == 0),
            )),
        );
        add(
            "  connect -> hooks decided during the blast (queue incl.), p50 / p99".into(),
            p50_p99(median_spread(&r.during)),
            None,
        );
        add(
            "  connect -> hooks decided, one at a time, p50 / p99".into(),
            p50_p99(r.alone),
            None,
        );
    }
    if let Some(c) = child {
        let eps = median(&c.eps);
        add(
            "  receive, child process `tracim-hooks run` (ev/s)".into(),
            thousands(eps),
            Some((">= 50,000 ev/s", Some(eps >= TARGET_RECEIVE_EPS))),
        );
    }
    if let Some(d) = dispatch {
        let ratio = median(&d.ratio);
        add(
            format!(
                "2 dispatch, exec = [\"true\"], P={} (runs/s)",
                opts.parallel
            ),
            thousands(median(&d.dispatch)),
            None,
        );
        add(
            format!("  spawn ceiling, exec::spawn P={} (runs/s)", opts.parallel),
            thousands(median(&d.ceiling)),
            None,
        );
        add(
            "  dispatch / ceiling".into(),
            format!("{ratio:.2}"),
            Some((">= 0.90", Some(ratio >= TARGET_DISPATCH_RATIO))),
        );
        add(
            "3 arrival -> hook started, via the service, p50 / p99".into(),
            p50_p99(d.service),
            Some(("p99 < 2 ms", d.service.p99.map(|p| p < TARGET_SPAWN_P99))),
        );
        add(
            "  submit_at -> hook started, supervisor alone, p50 / p99".into(),
            p50_p99(d.supervisor),
            None,
        );
    }
    if opts.runs("child") {
        let idle = child.and_then(|c| c.rss_idle);
        add(
            "4 RSS idle after start, child process".into(),
            child.map_or("not measured".into(), |_| mib(idle)),
            Some(("< 8 MiB", idle.map(|k| k < TARGET_IDLE_RSS_KIB))),
        );
    }
    if let Some(c) = child {
        add(
            "  peak RSS (VmHWM), after receive / after dispatch".into(),
            format!("{} / {}", mib(c.hwm_after_receive), mib(c.hwm_peak)),
            None,
        );
    }
    for (i, m) in matching.iter().enumerate() {
        let per = median_duration(&m.per_event);
        add(
            format!(
                "{} match, {} hooks (per event; {:.1} hooks selected)",
                if i == 0 { "5" } else { " " },
                thousands(m.hooks as f64),
                m.selected
            ),
            dur(per),
            Some(("< 5 µs", per.map(|p| p < TARGET_MATCH))),
        );
    }
    println!();
    print_table(&rows);

    println!("details:");
    if let Some(r) = receive {
        println!(
            "  receive in-process per rep: {} ev/s; during the blast p50 {}, p99 {}",
            list(&r.eps, |x| thousands(*x)),
            list(&r.during, |s| dur(s.p50)),
            list(&r.during, |s| dur(s.p99)),
        );
        let queued = match r.backlog_full {
            0 => "",
            _ => " (the senders outran the runner: in the blast, connections wait in the backlog)",
        };
        println!(
            "  receive in-process: CPU per event (runner + senders) {}; Envelope::decode {} \
             per message, one thread; listen backlog full {} times{queued}",
            list(&r.cpu_per_event, |d| dur(Some(*d))),
            dur(r.decode),
            r.backlog_full
        );
    }
    if let Some(c) = child {
        println!(
            "  receive child per rep: {} ev/s; CPU per event: runner {}, senders {}; \
             backlog full {} times; sentinel alone {} (taken off)",
            list(&c.eps, |x| thousands(*x)),
            list(&c.cpu_per_event, |d| dur(Some(*d))),
            list(&c.sender_cpu_per_event, |d| dur(Some(*d))),
            c.backlog_full,
            dur(c.sentinel)
        );
        println!(
            "  child: dispatch, socket -> \"run finished\" logged, {} runs/s ({} failed); \
             RSS after the runs {}",
            c.dispatch.map_or("n/a".into(), thousands),
            c.failed_runs,
            mib(c.rss_after)
        );
    }
    if let Some(d) = dispatch {
        println!(
            "  dispatch per rep: {} runs/s; ceiling {} runs/s; ratio {}",
            list(&d.dispatch, |x| thousands(*x)),
            list(&d.ceiling, |x| thousands(*x)),
            list(&d.ratio, |x| format!("{x:.2}"))
        );
        println!(
            "  runs at once on average, dispatch / ceiling: {}; hook_spec {} per run; \
             arrival -> started max: service {}, supervisor {}",
            list(&d.in_flight, |(a, b)| format!("{a:.1} / {b:.1}")),
            dur(d.spec_cost),
            dur(d.service.max),
            dur(d.supervisor.max)
        );
    }
    for m in matching {
        println!(
            "  match {} hooks per rep: {}; Config::parse {}",
            m.hooks,
            list(&m.per_event, |d| dur(Some(*d))),
            dur(Some(m.parse))
        );
    }
}

/// The phases' progress on stderr, and the share of CPU time the hypervisor stole
/// during each: on a shared host, a busy neighbour shows there and not in the
/// load average, and slows everything measured meanwhile.
struct Phases {
    clock: Instant,
    current: Option<(&'static str, Option<(u64, u64)>)>,
    steal: Vec<(&'static str, Option<f64>)>,
}

impl Phases {
    fn new() -> Phases {
        Phases {
            clock: Instant::now(),
            current: None,
            steal: Vec::new(),
        }
    }

    fn start(&mut self, name: &'static str, description: &str) {
        self.end();
        let (at, load) = (self.clock.elapsed(), load_average());
        eprintln!("bench: [{at:6.1?}] load {load} | {description}");
        self.current = Some((name, steal_ticks()));
    }

    fn end(&mut self) {
        if let Some((name, before)) = self.current.take() {
            let share = before
                .zip(steal_ticks())
                .map(|((s0, t0), (s1, t1))| (s1 - s0) as f64 / (t1 - t0).max(1) as f64);
            self.steal.push((name, share));
        }
    }
}

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
    let matching = if opts.runs("matching") {
        phases.start("matching", "5 matching");
        measured(&mut errors, bench_matching(&opts, &tlms, dir)).unwrap_or_default()
    } else {
        Vec::new()
    };
    phases.end();
    eprintln!("bench: [{:6.1?}] done", phases.clock.elapsed());
    report(
        &opts,
        receive.as_ref(),
        dispatch.as_ref(),
        child.as_ref(),
        &matching,
    );
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

/// The runner's timing records (`tracim_hooks::timing`), collected for the figures.
mod timing {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    pub const TARGET: &str = "tracim_hooks::timing";

    static DECISIONS: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    static SPAWNS: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

    fn take<T>(records: &Mutex<Vec<T>>) -> Vec<T> {
        std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// `(event id, when its hooks were decided)` since the last call.
    pub fn take_decisions() -> Vec<(u64, Instant)> {
        take(&DECISIONS)
    }

    /// Arrival-to-spawn delays since the last call.
    pub fn take_spawn_latency() -> Vec<Duration> {
        take(&SPAWNS)
    }

    #[derive(Default)]
    struct Fields {
        event_id: Option<u64>,
        since_arrival_us: Option<u64>,
    }

    impl tracing::field::Visit for Fields {
        fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
            match field.name() {
                "event_id" => self.event_id = Some(value),
                "since_arrival_us" => self.since_arrival_us = Some(value),
                _ => {}
            }
        }
        fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
    }

    pub struct Layer;

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let at = Instant::now();
            let mut fields = Fields::default();
            event.record(&mut fields);
            fn push<T>(records: &Mutex<Vec<T>>, record: T) {
                records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(record)
            }
            match (fields.event_id, fields.since_arrival_us) {
                (_, Some(us)) => push(&SPAWNS, Duration::from_micros(us)),
                (Some(id), None) => push(&DECISIONS, (id, at)),
                (None, None) => {}
            }
        }
    }
}
