//! Statistics, formatting, and what /proc tells of the machine and a process.

use crate::*;

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(crate) fn median_duration(values: &[Duration]) -> Option<Duration> {
    let m = median(&values.iter().map(Duration::as_secs_f64).collect::<Vec<_>>());
    m.is_finite().then(|| Duration::from_secs_f64(m))
}

/// p50, p99 and the maximum of a set of samples (nearest rank).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spread {
    pub(crate) p50: Option<Duration>,
    pub(crate) p99: Option<Duration>,
    pub(crate) max: Option<Duration>,
}

pub(crate) fn spread(mut samples: Vec<Duration>) -> Spread {
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
pub(crate) fn median_spread(reps: &[Spread]) -> Spread {
    let of = |f: fn(&Spread) -> Option<Duration>| {
        median_duration(&reps.iter().filter_map(f).collect::<Vec<_>>())
    };
    Spread {
        p50: of(|s| s.p50),
        p99: of(|s| s.p99),
        max: of(|s| s.max),
    }
}

pub(crate) fn thousands(x: f64) -> String {
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

pub(crate) fn dur(d: Option<Duration>) -> String {
    match d {
        None => "n/a".into(),
        Some(d) if d < Duration::from_micros(10) => format!("{:.2} µs", d.as_secs_f64() * 1e6),
        Some(d) if d < Duration::from_millis(1) => format!("{:.0} µs", d.as_secs_f64() * 1e6),
        Some(d) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
    }
}

pub(crate) fn p50_p99(s: Spread) -> String {
    format!("{} / {}", dur(s.p50), dur(s.p99))
}

pub(crate) fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

pub(crate) fn list<T>(values: &[T], show: impl Fn(&T) -> String) -> String {
    values.iter().map(show).collect::<Vec<_>>().join(", ")
}

/// A `VmRSS`/`VmHWM` line of a process's status, in KiB.
pub(crate) fn proc_status(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Voluntary context switches of each thread of a process, by thread id: each
/// is a thread going to sleep, so their growth over a quiet window is how often
/// the process woke.
pub(crate) fn voluntary_switches(pid: u32) -> std::collections::HashMap<String, u64> {
    let mut counts = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return counts;
    };
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        if let Some(n) = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            counts.insert(task.file_name().to_string_lossy().into_owned(), n);
        }
    }
    counts
}

/// Wake-ups between two samples of [`voluntary_switches`]: a thread that came
/// meanwhile counts from zero, one that went counts no more.
pub(crate) fn wakeups_between(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
) -> u64 {
    after
        .iter()
        .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// User + system CPU time of a process.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu(&stat).map(|(_, cpu)| cpu)
}

/// The command name and user + system CPU time in a `/proc/…/stat` line.
fn stat_cpu(stat: &str) -> Option<(&str, Duration)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15, the 12th and 13th after the comm.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((comm, Duration::from_secs_f64(ticks as f64 / hz as f64)))
}

/// CPU time of this process's own threads so far (not of its children).
pub(crate) fn self_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// CPU time so far of this process's threads named `name` (a thread that ended
/// no longer counts: read around work its threads outlive).
pub(crate) fn thread_cpu(name: &str) -> Duration {
    threads_cpu(std::process::id(), name)
}

/// The same, of process `pid`'s threads.
fn threads_cpu(pid: u32, name: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| match stat_cpu(&stat) {
            Some((comm, cpu)) if comm == name => Some(cpu),
            _ => None,
        })
        .sum()
}

/// The journal's writer thread, and its checkpoint thread (see the runner's
/// journal/writer.rs and journal/checkpoint.rs).
pub(crate) const WRITER: &str = "journal-writer";
pub(crate) const CHECKPOINTER: &str = "journal-ckpt";

/// Waits until process `pid`'s threads named `name` have used no CPU for 300 ms
/// (20 s at most), and gives the CPU they used meanwhile: what a phase left to do
/// after it (the journal's upkeep at the lull after a burst: its log copied into
/// its file, pruning) is done before the next phase is timed, instead of slowing
/// that one down.
pub(crate) async fn settle(pid: u32, name: &str) -> Duration {
    let quiet = Duration::from_millis(300);
    let first = threads_cpu(pid, name);
    let (mut last, mut since, started) = (first, Instant::now(), Instant::now());
    while since.elapsed() < quiet && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = threads_cpu(pid, name);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last.saturating_sub(first)
}

/// CPU time used between two readings, per event.
pub(crate) fn cpu_per(
    before: Option<Duration>,
    after: Option<Duration>,
    n: usize,
) -> Option<Duration> {
    Some(after?.saturating_sub(before?) / n.max(1) as u32)
}

/// CPU time stolen by the hypervisor, and all CPU time, in ticks since boot.
pub(crate) fn steal_ticks() -> Option<(u64, u64)> {
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

pub(crate) fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU".into(), |(_, m)| m.trim().to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {}", kernel.trim())
}
