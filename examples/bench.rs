//! A reproducible benchmark of the hook runner, run by hand:
//!
//! ```text
//! cargo run --release --example bench
//! cargo run --release --example bench -- --events 50000 --dispatch 5000 --parallel 8
//! cargo run --release --example bench -- --quick        # tiny counts: a smoke test
//! ```
//!
//! It plays the daemon's side over real Unix sockets, as the daemon does (one
//! connection per message: connect, write the whole JSON envelope, close; the TLM
//! as a JSON string in `data`), and reports in one run:
//!
//! 1. the receive path: events per second for events that match no hook, and the
//!    time from connect to the match decided (p50/p99), against the runner in this
//!    process, and the throughput against the real binary as a child process;
//! 2. dispatch: hook runs per second of a trivial hook (`exec = ["true"]`) at
//!    `max_parallel` P, beside the spawn ceiling (`exec::spawn` P at a time) of the
//!    same run;
//! 3. the latency from event arrival to hook process started, runner idle;
//! 4. the resident memory of the real binary, idle and at its peak;
//! 5. the time to match one event with 1, 100 and 10,000 hooks.
//!
//! Each figure is the median of `--reps` repetitions made inside the run.
//!
//! Flags: `--events N` `--dispatch N` `--parallel P` `--latency N` `--reps R`
//! `--senders S` `--hooks 1,100,10000` `--match-ms MS` `--bin PATH` `--no-child`
//! `--only receive,dispatch,child,matching` (for profiling one phase) `--quick`.
//!
//! "Match decided" is seen through the runner's own `debug!` line "event received",
//! logged right after `Matcher::select`: a tracing layer here records the instant
//! it fires, by event id. Nothing else of the debug output is enabled.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use tracim_hooks::config::Config;
use tracim_hooks::exec::{self, Limits, Spec};
use tracim_hooks::notify::Notifier;
use tracim_hooks::protocol::{Envelope, Event, Message};
use tracim_hooks::service::{Control, Handle, Service};
use tracim_hooks::sim::{self, SimDaemon, SimOptions};
use tracim_hooks::supervisor::{Settings, Supervisor};

const TARGET_RECEIVE_EPS: f64 = 50_000.0;
const TARGET_DISPATCH_RATIO: f64 = 0.9;
const TARGET_SPAWN_P99: Duration = Duration::from_millis(2);
const TARGET_IDLE_RSS_KIB: u64 = 8 * 1024;
const TARGET_MATCH_10K: Duration = Duration::from_micros(5);

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
    fn parse() -> Result<Opts, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut opts = if quick {
            Opts {
                events: 2_000,
                dispatch: 200,
                parallel: 8,
                latency: 20,
                reps: 1,
                senders: 4,
                hooks: vec![1, 100, 1_000],
                match_time: Duration::from_millis(20),
                child: true,
                bin: None,
                quick,
                only: Vec::new(),
            }
        } else {
            Opts {
                events: 50_000,
                dispatch: 5_000,
                parallel: 8,
                latency: 500,
                reps: 3,
                senders: 4,
                hooks: vec![1, 100, 10_000],
                match_time: Duration::from_millis(300),
                child: true,
                bin: None,
                quick,
                only: Vec::new(),
            }
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
            };
            let number = |name: &str, text: String| {
                text.replace('_', "")
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}: not a positive number: {text}"))
            };
            match arg.as_str() {
                "--quick" => {}
                "--no-child" => opts.child = false,
                "--events" => opts.events = number(arg, value(arg)?)?,
                "--dispatch" => opts.dispatch = number(arg, value(arg)?)?,
                "--parallel" => opts.parallel = number(arg, value(arg)?)?,
                "--latency" => opts.latency = number(arg, value(arg)?)?,
                "--reps" => opts.reps = number(arg, value(arg)?)?,
                "--senders" => opts.senders = number(arg, value(arg)?)?,
                "--match-ms" => {
                    opts.match_time = Duration::from_millis(number(arg, value(arg)?)? as u64)
                }
                "--hooks" => {
                    opts.hooks = value(arg)?
                        .split(',')
                        .map(|n| number(arg, n.to_owned()))
                        .collect::<Result<_, _>>()?
                }
                "--bin" => opts.bin = Some(PathBuf::from(value(arg)?)),
                "--only" => {
                    opts.only = value(arg)?.split(',').map(str::to_owned).collect();
                    if let Some(bad) = opts.only.iter().find(|p| !PHASES.contains(&p.as_str())) {
                        return Err(format!("--only: unknown phase `{bad}` (one of {PHASES:?})"));
                    }
                }
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        Ok(opts)
    }

    fn runs(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }
}

// ---------------------------------------------------------------------------
// Statistics and formatting

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn median_duration(values: &[Duration]) -> Option<Duration> {
    let secs: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
    let m = median(&secs);
    m.is_finite().then(|| Duration::from_secs_f64(m))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", x);
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

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn list<T>(values: &[T], show: impl Fn(&T) -> String) -> String {
    values.iter().map(show).collect::<Vec<_>>().join(", ")
}

/// `VmRSS`/`VmHWM`... of a process, in KiB.
fn proc_status(pid: Option<u32>, key: &str) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".into(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU".into(), |(_, m)| m.trim().to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpus} CPUs ({model}), Linux {}, load average at start {}",
        kernel.trim(),
        load.join(" ")
    )
}

// ---------------------------------------------------------------------------
// "Match decided": the runner's debug line after `Matcher::select`, timed by id.

struct MatchLog {
    epoch: Instant,
    base: AtomicU64,
    /// Nanoseconds since `epoch` + 1 of each event's match; 0 = not yet.
    times: Vec<AtomicU64>,
}

static MATCH_LOG: OnceLock<MatchLog> = OnceLock::new();
static MATCH_SEEN: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicU64 = AtomicU64::new(1_000_000);

fn match_log() -> &'static MatchLog {
    MATCH_LOG.get().expect("tracing installed first")
}

impl MatchLog {
    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Event ids `base..base + n`, recorded from now on.
    fn arm(&self, n: usize) -> u64 {
        let base = NEXT_ID.fetch_add(n as u64 + 1, Ordering::Relaxed);
        for t in &self.times {
            t.store(0, Ordering::Relaxed);
        }
        self.base.store(base, Ordering::Release);
        base
    }

    fn record(&self, id: u64, at: Instant) {
        MATCH_SEEN.store(true, Ordering::Relaxed);
        let base = self.base.load(Ordering::Acquire);
        if let Some(slot) = id
            .checked_sub(base)
            .and_then(|i| self.times.get(i as usize))
        {
            slot.store(self.nanos(at) + 1, Ordering::Release);
        }
    }

    fn get(&self, index: usize) -> Option<u64> {
        match self.times.get(index)?.load(Ordering::Acquire) {
            0 => None,
            t => Some(t - 1),
        }
    }
}

struct MatchRecorder;

impl<S: tracing::Subscriber> Layer<S> for MatchRecorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let now = Instant::now();
        struct Id(Option<u64>);
        impl tracing::field::Visit for Id {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "event_id" {
                    self.0 = Some(value);
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut id = Id(None);
        event.record(&mut id);
        if let (Some(id), Some(log)) = (id.0, MATCH_LOG.get()) {
            log.record(id, now);
        }
    }
}

fn install_tracing(capacity: usize) {
    let _ = MATCH_LOG.set(MatchLog {
        epoch: Instant::now(),
        base: AtomicU64::new(u64::MAX),
        times: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
    });
    // Only the service's per-event line (it carries `event_id` and `hooks`).
    let decided = filter_fn(|m| {
        m.is_event()
            && *m.level() == tracing::Level::DEBUG
            && m.target().starts_with("tracim_hooks::service")
            && m.fields().field("event_id").is_some()
            && m.fields().field("hooks").is_some()
    })
    .with_max_level_hint(LevelFilter::DEBUG);
    let warnings = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(LevelFilter::WARN);
    let _ = tracing_subscriber::registry()
        .with(MatchRecorder.with_filter(decided))
        .with(warnings)
        .try_init();
}

// ---------------------------------------------------------------------------
// Events and messages

struct Fixture {
    name: String,
    text: String,
}

fn fixtures() -> Result<Vec<Fixture>, String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{dir}: {e}"))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let name = path.file_stem().unwrap_or_default().to_string_lossy();
            out.push(Fixture {
                name: name.into_owned(),
                text,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
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

/// A `daemon_tracim_event` message as the daemon sends it, cut around the event
/// id so that each message sent has an id of its own.
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
        // The message decodes, with the id put in.
        match Envelope::decode(&template.message(42)).map(|e| e.message) {
            Ok(Message::TracimEvent(event)) if event.id() == 42 => {}
            other => panic!("template does not decode as an event: {other:?}"),
        }
        template
    }

    fn message(&self, id: u64) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.prefix.len() + self.suffix.len() + 20);
        bytes.extend_from_slice(&self.prefix);
        let _ = write!(bytes, "{id}");
        bytes.extend_from_slice(&self.suffix);
        bytes
    }

    fn len(&self) -> usize {
        self.prefix.len() + self.suffix.len() + 7
    }
}

fn templates(master: &Path, tlms: &[String]) -> Arc<Vec<Template>> {
    Arc::new(tlms.iter().map(|t| Template::new(master, t)).collect())
}

/// A TLM of another type, made from a fixture.
fn retyped(tlm: &str, event_type: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(tlm).expect("fixture is JSON");
    value["event_type"] = event_type.into();
    value.to_string()
}

// ---------------------------------------------------------------------------
// The daemon's side: one connection per message.

async fn send_once(socket: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut stream = UnixStream::connect(socket).await?;
    stream.write_all(bytes).await?;
    stream.shutdown().await
}

/// Sends one message. A full listen backlog fails the connect (the daemon would
/// lose the message): it is counted and tried again.
async fn send(socket: &Path, bytes: &[u8], backlog_full: &AtomicU64) {
    let mut tries = 0u32;
    loop {
        match send_once(socket, bytes).await {
            Ok(()) => return,
            Err(e)
                if tries < 100_000
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
            {
                // Sleep, not spin: spinning would take the CPU the runner needs.
                backlog_full.fetch_add(1, Ordering::Relaxed);
                tries += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("cannot send to {}: {e}", socket.display()),
        }
    }
}

struct Blast {
    /// For each message (by index): when its connect began.
    sent: Vec<Instant>,
    backlog_full: u64,
    started: Instant,
}

/// `n` messages from `senders` concurrent tasks, message `i` with id `base + i`.
async fn blast(
    socket: &Path,
    templates: &Arc<Vec<Template>>,
    base: u64,
    n: usize,
    senders: usize,
) -> Blast {
    let backlog_full = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders.min(n) {
        let socket = socket.to_path_buf();
        let templates = templates.clone();
        let backlog_full = backlog_full.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::with_capacity(n / senders + 1);
            for i in (s..n).step_by(senders) {
                let bytes = templates[i % templates.len()].message(base + i as u64);
                let t0 = Instant::now();
                send(&socket, &bytes, &backlog_full).await;
                sent.push((i, t0));
            }
            sent
        }));
    }
    let mut sent = vec![started; n];
    for task in tasks {
        for (i, t0) in task.await.expect("sender task") {
            sent[i] = t0;
        }
    }
    Blast {
        sent,
        backlog_full: backlog_full.load(Ordering::Relaxed),
        started,
    }
}

/// Polls `count` until it reaches `target`; the instant it was seen, or `None`.
async fn wait_count(
    mut count: impl FnMut() -> u64,
    target: u64,
    timeout: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if count() >= target {
            return Some(Instant::now());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn daemon_table(dir: &Path, tag: &str) -> String {
    format!(
        "[daemon]\nmaster_socket = \"{}\"\nsocket = \"{}\"\n",
        dir.join(format!("{tag}-master.sock")).display(),
        dir.join(format!("{tag}.sock")).display()
    )
}

/// An in-process runner registered with a simulated daemon.
struct Runner {
    _sim: SimDaemon,
    socket: PathBuf,
    master: PathBuf,
    handle: Handle,
    controls: mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl Runner {
    async fn start(dir: &Path, tag: &str, text: &str) -> Result<Runner, String> {
        let path = dir.join(format!("{tag}.toml"));
        let config = Config::parse(&path, text).map_err(|e| e.to_string())?;
        let socket = config.daemon.socket.clone();
        let master = config.daemon.master_socket.clone();
        let sim = SimDaemon::start(&master, SimOptions::default())
            .await
            .map_err(|e| format!("sim daemon: {e}"))?;
        let service = Service::start(path, config, Notifier::disabled())
            .await
            .map_err(|e| e.to_string())?;
        let handle = service.handle();
        let (controls, rx) = mpsc::unbounded_channel();
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

    async fn stop(self) {
        let _ = self.controls.send(Control::Shutdown);
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
}

// ---------------------------------------------------------------------------
// 1. Receive path

#[derive(Default)]
struct ReceiveFigures {
    eps: Vec<f64>,
    p50: Vec<Duration>,
    p99: Vec<Duration>,
    idle_p50: Option<Duration>,
    idle_p99: Option<Duration>,
    latency_source: &'static str,
    backlog_full: u64,
    lost: u64,
    mean_bytes: usize,
    rss_idle: Option<u64>,
}

async fn bench_receive(opts: &Opts, tlms: &[String], dir: &Path) -> Result<ReceiveFigures, String> {
    let text = format!(
        "{}[[hook]]\nname = \"never\"\non = \"nomatch.never\"\nexec = [\"true\"]\n",
        daemon_table(dir, "recv")
    );
    let runner = Runner::start(dir, "recv", &text).await?;
    let mut fig = ReceiveFigures {
        rss_idle: proc_status(None, "VmRSS"),
        latency_source: "runner's debug line after select()",
        ..ReceiveFigures::default()
    };
    let templates = templates(&runner.master, tlms);
    fig.mean_bytes = templates.iter().map(Template::len).sum::<usize>() / templates.len();
    let log = match_log();
    let handle = runner.handle.clone();

    let warmup = opts.events.min(2_000);
    for (rep, n) in std::iter::once(warmup)
        .chain(std::iter::repeat_n(opts.events, opts.reps))
        .enumerate()
    {
        let base = log.arm(n);
        let before = handle.events_received();
        let blast = blast(&runner.socket, &templates, base, n, opts.senders).await;
        let timeout = Duration::from_secs(20) + Duration::from_millis(n as u64);
        let seen = wait_count(|| handle.events_received(), before + n as u64, timeout).await;
        let got = handle.events_received() - before;
        if rep == 0 {
            continue;
        }
        fig.backlog_full += blast.backlog_full;
        fig.lost += n as u64 - got.min(n as u64);
        // The last match decided ends the run; without the debug line, the poll.
        let mut latencies = Vec::with_capacity(n);
        let mut last = None::<u64>;
        for (i, sent) in blast.sent.iter().enumerate() {
            if let Some(t) = log.get(i) {
                latencies.push(Duration::from_nanos(t.saturating_sub(log.nanos(*sent))));
                last = Some(last.map_or(t, |l| l.max(t)));
            }
        }
        let end = match (last, seen) {
            (Some(t), _) if latencies.len() == n => log.epoch + Duration::from_nanos(t),
            (_, Some(seen)) => seen,
            _ => Instant::now(),
        };
        fig.eps
            .push(got as f64 / end.duration_since(blast.started).as_secs_f64());
        latencies.sort_unstable();
        if let (Some(p50), Some(p99)) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0))
        {
            fig.p50.push(p50);
            fig.p99.push(p99);
        }
    }

    // One at a time, the runner idle in between.
    let k = opts.latency;
    let base = log.arm(k);
    let mut idle = Vec::with_capacity(k);
    let counter = !MATCH_SEEN.load(Ordering::Relaxed);
    if counter {
        fig.latency_source = "events_received() counter (no debug line seen)";
    }
    let backlog = AtomicU64::new(0);
    for i in 0..k {
        let bytes = templates[i % templates.len()].message(base + i as u64);
        let before = handle.events_received();
        let t0 = Instant::now();
        send(&runner.socket, &bytes, &backlog).await;
        if counter {
            // Spin: the sleep granularity (1 ms) would hide the figure.
            while handle.events_received() == before && t0.elapsed() < Duration::from_secs(5) {
                tokio::task::yield_now().await;
            }
            idle.push(t0.elapsed());
        } else {
            let seen = wait_count(
                || u64::from(log.get(i).is_some()),
                1,
                Duration::from_secs(5),
            )
            .await;
            if seen.is_some()
                && let Some(t) = log.get(i)
            {
                idle.push(Duration::from_nanos(t.saturating_sub(log.nanos(t0))));
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    idle.sort_unstable();
    fig.idle_p50 = percentile(&idle, 50.0);
    fig.idle_p99 = percentile(&idle, 99.0);
    runner.stop().await;
    Ok(fig)
}

// ---------------------------------------------------------------------------
// 2. Dispatch, and 3. arrival to spawn

#[derive(Default)]
struct DispatchFigures {
    dispatch: Vec<f64>,
    ceiling: Vec<f64>,
    ratio: Vec<f64>,
    spec_cost: Option<Duration>,
    service_p50: Option<Duration>,
    service_p99: Option<Duration>,
    service_max: Option<Duration>,
    direct_p50: Option<Duration>,
    direct_p99: Option<Duration>,
    direct_max: Option<Duration>,
}

fn trivial_hook_config(dir: &Path, tag: &str, parallel: usize, queue: usize) -> String {
    format!(
        "{}[defaults]\nmax_parallel = {parallel}\nqueue_limit = {queue}\n\n\
         [[hook]]\nname = \"trivial\"\non = \"*\"\nexec = [\"true\"]\n",
        daemon_table(dir, tag)
    )
}

/// `m` runs of prepared specs, `p` at a time, straight through `exec::spawn`.
async fn spawn_ceiling(specs: &Arc<Vec<Spec>>, limits: Limits, m: usize, p: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..p)
        .map(|_| {
            let (specs, next) = (specs.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= m {
                        return;
                    }
                    let child = exec::spawn(&specs[i % specs.len()]).expect("spawn true");
                    let outcome = child.finish(limits, std::future::pending()).await;
                    assert!(outcome.success(), "true failed: {outcome:?}");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("spawn worker");
    }
    m as f64 / started.elapsed().as_secs_f64()
}

/// `m` runs submitted to a supervisor at once; runs per second until idle.
async fn dispatch_once(
    settings: Settings,
    hook: &Arc<tracim_hooks::config::Hook>,
    events: &[Event],
    m: usize,
) -> Result<f64, String> {
    let supervisor = Supervisor::new(settings);
    let user: Arc<str> = "1".into();
    let started = Instant::now();
    for i in 0..m {
        supervisor
            .submit(hook.clone(), events[i % events.len()].clone(), user.clone())
            .map_err(|e| format!("run refused: {e}"))?;
    }
    supervisor.wait_idle().await;
    let rate = m as f64 / started.elapsed().as_secs_f64();
    let stats = supervisor.stats();
    if stats.succeeded != m as u64 {
        return Err(format!("dispatch: {stats:?} for {m} runs"));
    }
    Ok(rate)
}

fn sorted_latencies(
    mut v: Vec<Duration>,
) -> (Option<Duration>, Option<Duration>, Option<Duration>) {
    v.sort_unstable();
    (
        percentile(&v, 50.0),
        percentile(&v, 99.0),
        v.last().copied(),
    )
}

async fn bench_dispatch(
    opts: &Opts,
    tlms: &[String],
    dir: &Path,
) -> Result<DispatchFigures, String> {
    let p = opts.parallel;
    let m = opts.dispatch;
    let text = trivial_hook_config(dir, "disp", p, (2 * m).max(10_000));
    let config = Config::parse(&dir.join("disp.toml"), &text).map_err(|e| e.to_string())?;
    let hook = config.hooks[0].clone();
    let settings = Settings::from(&config.defaults);
    let events: Vec<Event> = tlms
        .iter()
        .map(|t| Event::from_text(t.as_str()).expect("fixture decodes"))
        .collect();
    let inherited = tracim_hooks::env::inherited();
    let started = Instant::now();
    let rounds = 20;
    let mut specs = Vec::new();
    for _ in 0..rounds {
        specs = events
            .iter()
            .map(|e| exec::hook_spec(&hook, e, "1", settings.env_budget, &inherited))
            .collect();
    }
    let mut fig = DispatchFigures {
        spec_cost: Some(started.elapsed() / (rounds * events.len()) as u32),
        ..DispatchFigures::default()
    };
    let specs = Arc::new(specs);
    let limits = Limits {
        timeout: hook.timeout,
        kill_after: hook.kill_after,
    };

    // Warm-up, then ceiling and dispatch alternately.
    let warm = (m / 10).clamp(1, 200);
    spawn_ceiling(&specs, limits, warm, p).await;
    dispatch_once(settings, &hook, &events, warm).await?;
    for _ in 0..opts.reps {
        let ceiling = spawn_ceiling(&specs, limits, m, p).await;
        let dispatch = dispatch_once(settings, &hook, &events, m).await?;
        fig.ceiling.push(ceiling);
        fig.dispatch.push(dispatch);
        fig.ratio.push(dispatch / ceiling);
    }

    // 3a. Through the service: arrival = the end of the connection's read.
    let runner = Runner::start(dir, "lat", &trivial_hook_config(dir, "lat", p, 10_000)).await?;
    let templates = templates(&runner.master, tlms);
    let supervisor = runner.handle.supervisor.clone();
    let backlog = AtomicU64::new(0);
    let base = NEXT_ID.fetch_add(opts.latency as u64 + 10, Ordering::Relaxed);
    // A few unrecorded runs first.
    for (i, template) in templates.iter().take(3).enumerate() {
        let before = supervisor.stats().started;
        send(&runner.socket, &template.message(base + i as u64), &backlog).await;
        wait_count(
            || supervisor.stats().started,
            before + 1,
            Duration::from_secs(5),
        )
        .await;
        supervisor.wait_idle().await;
    }
    supervisor.record_spawn_latency();
    let base = NEXT_ID.fetch_add(opts.latency as u64 + 1, Ordering::Relaxed);
    for i in 0..opts.latency {
        let bytes = templates[i % templates.len()].message(base + i as u64);
        let before = supervisor.stats().started;
        send(&runner.socket, &bytes, &backlog).await;
        let started = wait_count(
            || supervisor.stats().started,
            before + 1,
            Duration::from_secs(5),
        )
        .await;
        if started.is_none() {
            return Err("latency: a hook run did not start within 5 s".into());
        }
        supervisor.wait_idle().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (fig.service_p50, fig.service_p99, fig.service_max) =
        sorted_latencies(supervisor.take_spawn_latency());
    runner.stop().await;

    // 3b. Straight into a supervisor: submit_at(now).
    let supervisor = Supervisor::new(settings);
    supervisor.record_spawn_latency();
    let user: Arc<str> = "1".into();
    for i in 0..opts.latency {
        let event = events[i % events.len()].clone();
        supervisor
            .submit_at(hook.clone(), event, user.clone(), Instant::now())
            .map_err(|e| e.to_string())?;
        supervisor.wait_idle().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (fig.direct_p50, fig.direct_p99, fig.direct_max) =
        sorted_latencies(supervisor.take_spawn_latency());
    Ok(fig)
}

// ---------------------------------------------------------------------------
// 4. The real binary as a child process: memory, and its receive path.

#[derive(Default)]
struct ChildFigures {
    rss_idle: Option<u64>,
    hwm_idle: Option<u64>,
    hwm_after_receive: Option<u64>,
    hwm_peak: Option<u64>,
    rss_after: Option<u64>,
    eps: Vec<f64>,
    cpu_per_event: Vec<Duration>,
    sentinel: Option<Duration>,
    dispatch: Option<f64>,
    backlog_full: u64,
    note: String,
}

/// Counts the lines of a growing log file that hold all the texts of a needle.
struct LogTail {
    file: std::fs::File,
    partial: Vec<u8>,
    needles: Vec<(&'static str, &'static [&'static str])>,
    counts: HashMap<&'static str, u64>,
}

const SENTINEL_DONE: (&str, &[&str]) = ("sentinel", &["run finished", "hook=sentinel "]);
const BENCH_DONE: (&str, &[&str]) = ("bench", &["hook=bench "]);
const RUN_FAILED: (&str, &[&str]) = ("failed", &["run failed"]);

impl LogTail {
    fn new(
        path: &Path,
        needles: &[(&'static str, &'static [&'static str])],
    ) -> std::io::Result<LogTail> {
        Ok(LogTail {
            file: std::fs::File::open(path)?,
            partial: Vec::new(),
            needles: needles.to_vec(),
            counts: HashMap::new(),
        })
    }

    fn count(&mut self, key: &str) -> u64 {
        let mut chunk = Vec::new();
        let _ = self.file.read_to_end(&mut chunk);
        self.partial.extend_from_slice(&chunk);
        if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
            let lines: Vec<u8> = self.partial.drain(..=end).collect();
            for line in lines.split(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(line);
                for (name, parts) in &self.needles {
                    if parts.iter().all(|p| line.contains(p)) {
                        *self.counts.entry(name).or_default() += 1;
                    }
                }
            }
        }
        self.counts.get(key).copied().unwrap_or(0)
    }
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

/// The runner binary of this build profile, built if needed.
fn runner_binary(opts: &Opts) -> Result<PathBuf, String> {
    if let Some(bin) = &opts.bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let bin = profile.join("tracim-hooks");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--bin", "tracim-hooks"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    match build.status() {
        Ok(status) if status.success() => Ok(bin),
        _ if bin.exists() => {
            eprintln!(
                "bench: building tracim-hooks failed; using the existing {} (may be stale)",
                bin.display()
            );
            Ok(bin)
        }
        _ => Err("cannot build the tracim-hooks binary (pass --bin PATH)".into()),
    }
}

/// The real binary, `tracim-hooks run`, at its default log level (info), with
/// three hooks: one no event matches, one for dispatch, and a sentinel whose
/// "run finished" line tells that everything sent before it was read.
async fn bench_child(
    opts: &Opts,
    tlms: &[String],
    extra_tlm: &str,
    dir: &Path,
) -> Result<ChildFigures, String> {
    let bin = runner_binary(opts)?;
    let text = format!(
        "{}[defaults]\nmax_parallel = {}\n\n\
         [[hook]]\nname = \"never\"\non = \"nomatch.never\"\nexec = [\"true\"]\n\n\
         [[hook]]\nname = \"bench\"\non = \"bench.dispatch\"\nexec = [\"true\"]\n\n\
         [[hook]]\nname = \"sentinel\"\non = \"bench.sentinel\"\nexec = [\"true\"]\n",
        daemon_table(dir, "child"),
        opts.parallel
    );
    let config_path = dir.join("child.toml");
    std::fs::write(&config_path, &text).map_err(|e| e.to_string())?;
    let parsed = Config::parse(&config_path, &text).map_err(|e| e.to_string())?;
    let (master, socket) = (parsed.daemon.master_socket, parsed.daemon.socket);
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
    let mut fig = ChildFigures::default();
    let result = async {
        if !sim.wait_for_client(&socket, Duration::from_secs(10)).await {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("the runner did not register; its log:\n{log}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut idle = Vec::new();
        for _ in 0..5 {
            idle.extend(proc_status(Some(pid), "VmRSS"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        idle.sort_unstable();
        fig.rss_idle = idle.get(idle.len() / 2).copied();
        fig.hwm_idle = proc_status(Some(pid), "VmHWM");

        let mut tail = LogTail::new(&log_path, &[SENTINEL_DONE, BENCH_DONE, RUN_FAILED])
            .map_err(|e| e.to_string())?;
        let sentinel = templates_from(&master, &retyped(extra_tlm, "bench.sentinel"));
        let backlog = AtomicU64::new(0);
        let mut sentinels = 0;
        // The sentinel alone, runner idle: its own time, taken off each run below.
        let mut alone = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            send(&socket, &sentinel[0].message(id), &backlog).await;
            sentinels += 1;
            let seen = wait_count(
                || tail.count("sentinel"),
                sentinels,
                Duration::from_secs(10),
            )
            .await
            .ok_or("the sentinel hook did not run")?;
            alone.push(seen - t0);
        }
        fig.sentinel = median_duration(&alone);
        let offset = fig.sentinel.unwrap_or_default();

        let templates = templates(&master, tlms);
        let warmup = opts.events.min(2_000);
        for (rep, n) in std::iter::once(warmup)
            .chain(std::iter::repeat_n(opts.events, opts.reps))
            .enumerate()
        {
            let base = NEXT_ID.fetch_add(n as u64 + 1, Ordering::Relaxed);
            let cpu0 = cpu_time(pid);
            let blast = blast(&socket, &templates, base, n, opts.senders).await;
            send(&socket, &sentinel[0].message(base + n as u64), &backlog).await;
            sentinels += 1;
            let timeout = Duration::from_secs(20) + Duration::from_millis(n as u64);
            let seen = wait_count(|| tail.count("sentinel"), sentinels, timeout)
                .await
                .ok_or("the sentinel hook did not run after the events")?;
            let cpu1 = cpu_time(pid);
            if rep == 0 {
                continue;
            }
            fig.backlog_full += blast.backlog_full;
            let elapsed = seen.duration_since(blast.started).saturating_sub(offset);
            fig.eps.push(n as f64 / elapsed.as_secs_f64());
            if let (Some(a), Some(b)) = (cpu0, cpu1) {
                fig.cpu_per_event.push(b.saturating_sub(a) / n as u32);
            }
        }
        fig.hwm_after_receive = proc_status(Some(pid), "VmHWM");

        // Hook runs through the child: socket -> match -> spawn -> "run finished".
        let m = opts.dispatch;
        let dispatch = templates_from(&master, &retyped(extra_tlm, "bench.dispatch"));
        let base = NEXT_ID.fetch_add(m as u64 + 1, Ordering::Relaxed);
        let runs = tail.count("bench");
        let blast = blast(&socket, &dispatch, base, m, opts.senders).await;
        let timeout = Duration::from_secs(30) + Duration::from_millis(20 * m as u64);
        let seen = wait_count(|| tail.count("bench"), runs + m as u64, timeout).await;
        fig.dispatch = seen.map(|s| m as f64 / s.duration_since(blast.started).as_secs_f64());
        let failed = tail.count("failed");
        if failed > 0 {
            fig.note = format!("{failed} hook runs failed in the child");
        }
        fig.hwm_peak = proc_status(Some(pid), "VmHWM");
        tokio::time::sleep(Duration::from_millis(500)).await;
        fig.rss_after = proc_status(Some(pid), "VmRSS");
        Ok(())
    }
    .await;
    // SAFETY: kill on our own child's pid.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(5)
        .collect();
    if !warnings.is_empty() {
        eprintln!(
            "bench: the child runner logged warnings:\n  {}",
            warnings.join("\n  ")
        );
    }
    result.map(|()| fig)
}

fn templates_from(master: &Path, tlm: &str) -> Arc<Vec<Template>> {
    templates(master, &[tlm.to_owned()])
}

// ---------------------------------------------------------------------------
// 5. Matching

const ENTITIES: [&str; 10] = [
    "user",
    "workspace",
    "workspace_member",
    "content",
    "mention",
    "reaction",
    "workspace_subscription",
    "tag",
    "content_tag",
    "user_call",
];
const OPERATIONS: [&str; 6] = [
    "created",
    "modified",
    "deleted",
    "undeleted",
    "moved",
    "copied",
];
const SUBTYPES: [&str; 7] = [
    "html-document",
    "file",
    "folder",
    "thread",
    "comment",
    "kanban",
    "todo",
];

/// `n` hooks: five hand-written ones that real events take, then a mix of exact
/// types, `content.*`-style prefixes, `{a,b}` alternations, inner `*`, character
/// classes and exclusions, of which one in a hundred takes real events (and then
/// fails a `where` condition, as per-workspace hooks do).
fn matching_toml(dir: &Path, n: usize) -> String {
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
    let mut text = daemon_table(dir, "match");
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
    let e = ENTITIES[i % ENTITIES.len()];
    let e2 = ENTITIES[(i + 3) % ENTITIES.len()];
    let o = OPERATIONS[(i / 10) % OPERATIONS.len()];
    let s = SUBTYPES[(i / 60) % SUBTYPES.len()];
    if i % 100 == 0 {
        let r = i / 100;
        let e = ENTITIES[r % ENTITIES.len()];
        let o = OPERATIONS[(r / ENTITIES.len()) % OPERATIONS.len()];
        return (
            format!("\"{e}.{o}*\""),
            format!("where = {{ \"fields.workspace.label\" = \"Team {i}\" }}"),
        );
    }
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

struct MatchFigure {
    hooks: usize,
    parse: Duration,
    per_event: Vec<Duration>,
    selected: f64,
}

fn bench_matching(opts: &Opts, tlms: &[String], dir: &Path) -> Result<Vec<MatchFigure>, String> {
    let events: Vec<Event> = tlms
        .iter()
        .map(|t| Event::from_text(t.as_str()).expect("fixture decodes"))
        .collect();
    let mut out = Vec::new();
    for &n in &opts.hooks {
        let text = matching_toml(dir, n);
        let started = Instant::now();
        let config = Config::parse(&dir.join(format!("match{n}.toml")), &text)
            .map_err(|e| format!("{n} hooks: {e}"))?;
        let parse = started.elapsed();
        let matcher = &config.matcher;
        let selected = events
            .iter()
            .map(|e| matcher.select(e, "").len())
            .sum::<usize>() as f64
            / events.len() as f64;
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
        out.push(MatchFigure {
            hooks: n,
            parse,
            per_event,
            selected,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// The report

struct Row {
    figure: String,
    value: String,
    target: String,
    met: Option<bool>,
}

fn row(figure: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        figure: figure.into(),
        value: value.into(),
        target: String::new(),
        met: None,
    }
}

fn target(mut r: Row, target: &str, met: Option<bool>) -> Row {
    r.target = target.to_owned();
    r.met = met;
    r
}

fn print_table(rows: &[Row]) {
    let w0 = rows
        .iter()
        .map(|r| r.figure.chars().count())
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.value.chars().count())
        .max()
        .unwrap_or(0);
    let w2 = rows
        .iter()
        .map(|r| r.target.chars().count())
        .max()
        .unwrap_or(0);
    let line = "-".repeat(w0 + w1 + w2 + 14);
    println!("{line}");
    println!("{:w0$}  {:>w1$}  {:w2$}  met", "figure", "value", "target");
    println!("{line}");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None if r.target.is_empty() => "",
            None => "n/a",
        };
        let pad0 = w0 - r.figure.chars().count();
        let pad1 = w1 - r.value.chars().count();
        let pad2 = w2 - r.target.chars().count();
        println!(
            "{}{}  {}{}  {}{}  {met}",
            r.figure,
            " ".repeat(pad0),
            " ".repeat(pad1),
            r.value,
            r.target,
            " ".repeat(pad2)
        );
    }
    println!("{line}");
}

async fn run(opts: Opts) -> Result<(), String> {
    let temp = tempfile::Builder::new()
        .prefix("thb")
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?;
    let dir = temp.path().to_path_buf();
    let fixtures = fixtures()?;
    let tlms: Vec<String> = fixtures.iter().map(|f| f.text.clone()).collect();
    let extra_tlm = &fixtures
        .iter()
        .find(|f| f.name == "mention.created")
        .unwrap_or(&fixtures[0])
        .text;
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
        fixtures.len(),
        if opts.quick { " (--quick)" } else { "" }
    );
    let _ = std::io::stdout().flush();

    let clock = Instant::now();
    let phase = |name: &str| eprintln!("bench: [{:6.1?}] {name}", clock.elapsed());
    let recv = if opts.runs("receive") {
        phase("1 receive path, runner in this process");
        Some(bench_receive(&opts, &tlms, &dir).await?)
    } else {
        None
    };
    let disp = if opts.runs("dispatch") {
        phase("2-3 dispatch, spawn ceiling, arrival -> spawn");
        Some(bench_dispatch(&opts, &tlms, &dir).await?)
    } else {
        None
    };
    let inproc_hwm = proc_status(None, "VmHWM");
    let child = if opts.child && opts.runs("child") {
        phase("4 tracim-hooks run as a child process: memory, receive, dispatch");
        match bench_child(&opts, &tlms, extra_tlm, &dir).await {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("bench: child process measurements skipped: {e}");
                None
            }
        }
    } else {
        None
    };
    let matching = if opts.runs("matching") {
        phase("5 matching");
        bench_matching(&opts, &tlms, &dir)?
    } else {
        Vec::new()
    };
    phase("done");

    let mut rows = Vec::new();
    if let Some(recv) = &recv {
        let eps = median(&recv.eps);
        let lost = if recv.lost > 0 {
            format!(" ({} LOST)", recv.lost)
        } else {
            String::new()
        };
        rows.push(target(
            row(
                format!(
                    "1 receive, no hook matches, in-process (ev/s; {} B avg)",
                    recv.mean_bytes
                ),
                format!("{}{lost}", thousands(eps)),
            ),
            ">= 50,000 ev/s",
            Some(eps >= TARGET_RECEIVE_EPS && recv.lost == 0),
        ));
        rows.push(row(
            "  connect -> match decided, one at a time, p50 / p99",
            format!("{} / {}", dur(recv.idle_p50), dur(recv.idle_p99)),
        ));
        rows.push(row(
            "  connect -> match decided during the blast, p50 / p99",
            format!(
                "{} / {}",
                dur(median_duration(&recv.p50)),
                dur(median_duration(&recv.p99))
            ),
        ));
    }
    if let Some(c) = &child {
        let eps = median(&c.eps);
        rows.push(target(
            row(
                "  receive, child process `tracim-hooks run` (ev/s)",
                thousands(eps),
            ),
            ">= 50,000 ev/s",
            Some(eps >= TARGET_RECEIVE_EPS),
        ));
        rows.push(row(
            "  runner CPU time per event, child process",
            dur(median_duration(&c.cpu_per_event)),
        ));
    }
    if let Some(disp) = &disp {
        let ratio = median(&disp.ratio);
        rows.push(row(
            format!(
                "2 dispatch, exec = [\"true\"], P={} (runs/s)",
                opts.parallel
            ),
            thousands(median(&disp.dispatch)),
        ));
        rows.push(row(
            format!("  spawn ceiling, exec::spawn P={} (runs/s)", opts.parallel),
            thousands(median(&disp.ceiling)),
        ));
        rows.push(target(
            row("  dispatch / ceiling", format!("{ratio:.2}")),
            ">= 0.90",
            Some(ratio >= TARGET_DISPATCH_RATIO),
        ));
    }
    if let Some(c) = &child {
        rows.push(row(
            "  dispatch through the child, socket -> run finished",
            c.dispatch.map_or("n/a".into(), thousands),
        ));
    }
    if let Some(disp) = &disp {
        rows.push(target(
            row(
                "3 arrival -> hook started, via the service, p50 / p99",
                format!("{} / {}", dur(disp.service_p50), dur(disp.service_p99)),
            ),
            "p99 < 2 ms",
            disp.service_p99.map(|p| p < TARGET_SPAWN_P99),
        ));
        rows.push(row(
            "  submit_at -> hook started, supervisor alone, p50 / p99",
            format!("{} / {}", dur(disp.direct_p50), dur(disp.direct_p99)),
        ));
    }
    match &child {
        Some(c) => {
            rows.push(target(
                row("4 RSS idle after start, child process", mib(c.rss_idle)),
                "< 8 MiB",
                c.rss_idle.map(|k| k < TARGET_IDLE_RSS_KIB),
            ));
            rows.push(row(
                "  peak RSS (VmHWM): after receive / after dispatch",
                format!("{} / {}", mib(c.hwm_after_receive), mib(c.hwm_peak)),
            ));
            rows.push(row("  RSS after the runs, child", mib(c.rss_after)));
        }
        None => rows.push(target(
            row("4 RSS idle after start, child process", "skipped"),
            "< 8 MiB",
            None,
        )),
    }
    if let Some(recv) = &recv {
        rows.push(row(
            "  in-process, bench included: RSS idle / VmHWM",
            format!("{} / {}", mib(recv.rss_idle), mib(inproc_hwm)),
        ));
    }
    for (i, m) in matching.iter().enumerate() {
        let per = median_duration(&m.per_event);
        let label = format!(
            "{} match, {} hooks (per event; {:.1} hooks selected)",
            if i == 0 { "5" } else { " " },
            thousands(m.hooks as f64),
            m.selected
        );
        let r = row(label, dur(per));
        rows.push(if m.hooks == 10_000 {
            target(r, "< 5 µs", per.map(|p| p < TARGET_MATCH_10K))
        } else {
            r
        });
    }
    println!();
    print_table(&rows);

    println!("details:");
    if let Some(recv) = &recv {
        println!(
            "  receive in-process per rep: {} ev/s; blast p50 {}; p99 {}",
            list(&recv.eps, |x| thousands(*x)),
            list(&recv.p50, |d| dur(Some(*d))),
            list(&recv.p99, |d| dur(Some(*d)))
        );
        println!(
            "  receive in-process: connect failed on a full backlog {} times (retried); \
             match times from the {}",
            recv.backlog_full, recv.latency_source
        );
    }
    if let Some(c) = &child {
        println!(
            "  receive child per rep: {} ev/s; CPU per event {}; backlog full {} times (retried); \
             sentinel alone {} (subtracted)",
            list(&c.eps, |x| thousands(*x)),
            list(&c.cpu_per_event, |d| dur(Some(*d))),
            c.backlog_full,
            dur(c.sentinel)
        );
        println!(
            "  child memory: RSS idle {} (VmHWM {}), VmHWM after receive {}, after dispatch {}",
            mib(c.rss_idle),
            mib(c.hwm_idle),
            mib(c.hwm_after_receive),
            mib(c.hwm_peak)
        );
        if !c.note.is_empty() {
            println!("  child: {}", c.note);
        }
    }
    if let Some(disp) = &disp {
        println!(
            "  dispatch per rep: {} runs/s; ceiling {} runs/s; ratio {}",
            list(&disp.dispatch, |x| thousands(*x)),
            list(&disp.ceiling, |x| thousands(*x)),
            list(&disp.ratio, |x| format!("{x:.2}"))
        );
        println!(
            "  exec::hook_spec (a run's environment) {} per run; arrival -> started max: \
             service {}, supervisor {}",
            dur(disp.spec_cost),
            dur(disp.service_max),
            dur(disp.direct_max)
        );
    }
    for m in &matching {
        println!(
            "  match {} hooks per rep: {}; Config::parse {}",
            m.hooks,
            list(&m.per_event, |d| dur(Some(*d))),
            dur(Some(m.parse))
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    install_tracing(opts.events.max(opts.latency).max(opts.dispatch) + 16);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
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
