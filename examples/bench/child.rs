//! Figure 4 (and the child's receive and dispatch): the real binary as a child
//! process.

use crate::*;

#[derive(Default)]
pub(crate) struct ChildProcess {
    pub(crate) rss_idle: Option<u64>,
    /// Where the idle RSS is, by mapping kind (KiB), taken after the samples.
    pub(crate) rss_idle_by_mapping: Vec<(String, u64)>,
    /// Wake-ups per second of the registered idle runner (voluntary context
    /// switches of all its threads over the idle window).
    pub(crate) idle_wakeups: Option<f64>,
    /// RSS 10 s after a 15 MiB event's run ended, and its peak meanwhile (KiB).
    pub(crate) rss_after_huge: Option<u64>,
    pub(crate) hwm_after_receive: Option<u64>,
    pub(crate) hwm_peak: Option<u64>,
    pub(crate) rss_after: Option<u64>,
    pub(crate) eps: Vec<f64>,
    pub(crate) cpu_per_event: Vec<Duration>,
    pub(crate) sender_cpu_per_event: Vec<Duration>,
    /// The sentinel's own time, runner idle; taken off each receive run.
    pub(crate) sentinel: Option<Duration>,
    pub(crate) dispatch: Option<f64>,
    pub(crate) backlog_full: u64,
    pub(crate) failed_runs: u64,
}

/// Counts the lines of a growing log file that hold all the parts of a pattern.
pub(crate) struct LogTail {
    pub(crate) file: std::fs::File,
    pub(crate) partial: Vec<u8>,
    pub(crate) counts: [u64; 3],
}

pub(crate) const SENTINEL_DONE: usize = 0;
pub(crate) const BENCH_DONE: usize = 1;
pub(crate) const RUN_FAILED: usize = 2;
pub(crate) const PATTERNS: [&[&str]; 3] = [
    &["run finished", "hook=sentinel "],
    &["run finished", "hook=bench "],
    &["run failed"],
];

impl LogTail {
    pub(crate) fn new(path: &Path) -> Result<LogTail, String> {
        Ok(LogTail {
            file: std::fs::File::open(path).map_err(|e| e.to_string())?,
            partial: Vec::new(),
            counts: [0; 3],
        })
    }

    pub(crate) fn count(&mut self, pattern: usize) -> u64 {
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
pub(crate) fn runner_binary(opts: &Opts) -> Result<PathBuf, String> {
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
    // The profile this benchmark was built with (`debug` is cargo's `dev`).
    let profile = profile_dir
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .unwrap_or("debug")
        .to_owned();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--bin", "tracim-hooks", "--target-dir"])
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile != "debug" {
        build.args(["--profile", &profile]);
    }
    eprintln!(
        "bench: building tracim-hooks into {} (a while the first time)",
        target.display()
    );
    let status = build.status().map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err("cannot build the tracim-hooks binary (pass --bin PATH)".into());
    }
    Ok(target.join(&profile).join("tracim-hooks"))
}

/// The real binary, `tracim-hooks run` at its default log level (info), with
/// three hooks: one no event matches, one for dispatch, and a sentinel whose
/// "run finished" line tells that everything sent before it was read.
pub(crate) async fn bench_child(
    opts: &Opts,
    tlms: &[String],
    dir: &Path,
) -> Result<ChildProcess, String> {
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
        fig.rss_idle_by_mapping = rss_by_mapping(pid);
        // Wake-ups while idle (the daemon's ping every 30 s included, as a user has it).
        let window = if opts.quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(20)
        };
        let before = voluntary_switches(pid);
        tokio::time::sleep(window).await;
        let after = voluntary_switches(pid);
        fig.idle_wakeups = (!after.is_empty())
            .then(|| wakeups_between(&before, &after) as f64 / window.as_secs_f64());

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
            // The journal's upkeep at the lull after the blast, before the next one.
            settle(pid, WRITER).await;
            settle(pid, CHECKPOINTER).await;
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

        // A 15 MiB note through the dispatch hook, then 10 s for the memory to go.
        let body = "y".repeat(15 * 1024 * 1024);
        let huge = serde_json::json!({
            "event_id": fresh_ids(1),
            "event_type": "bench.dispatch",
            "fields": {"content": {"raw_content": body}},
        })
        .to_string();
        let done = tail.count(BENCH_DONE);
        sim.send_event(&huge).await;
        wait_until(|| tail.count(BENCH_DONE) > done, Duration::from_secs(60))
            .await
            .ok_or("the 15 MiB event's run did not finish")?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        fig.rss_after_huge = proc_status(pid, "VmRSS");
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

pub(crate) fn templates_of(master: &Path, tlm: &str) -> Arc<Vec<Template>> {
    templates(master, &[tlm])
}
