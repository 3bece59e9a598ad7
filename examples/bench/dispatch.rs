//! Figures 2 and 3: dispatch against the spawn ceiling, and arrival to spawn
//! (both measured in one phase, on the same runs).

use crate::*;

/// Dispatch against its ceiling for one hook as a user configures it.
pub(crate) struct Shape {
    /// What the hook is, for the report.
    pub(crate) label: String,
    pub(crate) dispatch: Vec<f64>,
    pub(crate) ceiling: Vec<f64>,
    pub(crate) ratio: Vec<f64>,
    /// CPU time of this process (the runner's threads, not the hooks) per run:
    /// (dispatch, ceiling) per rep.
    pub(crate) cpu_per_run: Vec<(Duration, Duration)>,
    /// Of the dispatch's CPU per run: the simulated daemon's thread sending the
    /// events, and the journal's writer thread, per rep.
    pub(crate) daemon_and_journal: Vec<(Duration, Duration)>,
    /// The journal's checkpoints per run, in the rounds or at the lulls after them
    /// (waited for, so that they do not slow the ceiling's rounds down).
    pub(crate) checkpoint_per_run: Vec<Duration>,
}

#[derive(Default)]
pub(crate) struct Dispatch {
    /// The hooks as users configure them: a `sh -c` script appending to a file,
    /// output logged, the event on stdin and in the environment; P = 4 and 8.
    pub(crate) shapes: Vec<Shape>,
    pub(crate) dispatch: Vec<f64>,
    pub(crate) ceiling: Vec<f64>,
    pub(crate) ratio: Vec<f64>,
    /// Runs going on at once, on average: (dispatch, ceiling) per rep.
    pub(crate) in_flight: Vec<(f64, f64)>,
    /// `hook_spec`, building one run's environment.
    pub(crate) spec_cost: Option<Duration>,
    /// Arrival (end of the connection's read) to process started, via the service.
    pub(crate) service: Spread,
    /// `submit_at(now)` to process started, the supervisor alone.
    pub(crate) supervisor: Spread,
}

/// Runs made, the wall time they took, and the sum of their own durations
/// (spawn to group gone).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Throughput {
    pub(crate) runs: usize,
    pub(crate) wall: Duration,
    pub(crate) busy: Duration,
}

impl Throughput {
    pub(crate) fn new(wall: Duration, runs: &[Duration]) -> Throughput {
        Throughput {
            runs: runs.len(),
            wall,
            busy: runs.iter().sum(),
        }
    }

    pub(crate) fn add(&mut self, other: Throughput) {
        self.runs += other.runs;
        self.wall += other.wall;
        self.busy += other.busy;
    }

    pub(crate) fn rate(&self) -> f64 {
        self.runs as f64 / self.wall.as_secs_f64()
    }

    /// Runs going on at once, on average.
    pub(crate) fn in_flight(&self) -> f64 {
        self.busy.as_secs_f64() / self.wall.as_secs_f64()
    }
}

/// The ceiling: `m` runs of ready-made specs, `p` at a time, each `exec::spawn`
/// on a blocking thread as the supervisor does it, without the supervisor's
/// queue, environment building and bookkeeping.
pub(crate) async fn spawn_ceiling(
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
                        return Err(format!("the ceiling's run failed: {outcome:?}"));
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
pub(crate) async fn supervisor_dispatch(
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

/// `m` events sent to a runner back to back, each matching its one hook; runs
/// per second from the first send until every run has ended.
pub(crate) async fn service_dispatch(
    runner: &Runner,
    templates: &Arc<Vec<Template>>,
    m: usize,
) -> Result<Throughput, String> {
    let supervisor = &runner.handle.supervisor;
    let before = supervisor.stats();
    let base = fresh_ids(m);
    let started = Instant::now();
    blast(&runner.socket, templates, base, m, 1).await?;
    let ended = |s: &tracim_hooks::supervisor::Stats| s.succeeded + s.failed;
    let all_ended = || ended(&supervisor.stats()) >= ended(&before) + m as u64;
    if wait_until(
        all_ended,
        Duration::from_secs(60) + Duration::from_millis(20 * m as u64),
    )
    .await
    .is_none()
    {
        return Err(format!(
            "dispatch via the service: {:?} for {m} runs",
            supervisor.stats()
        ));
    }
    let wall = started.elapsed();
    let stats = supervisor.stats();
    if stats.succeeded != before.succeeded + m as u64 {
        return Err(format!("dispatch via the service: {stats:?} for {m} runs"));
    }
    // The runs' own durations are not reported by the service: `busy` stays 0.
    Ok(Throughput {
        runs: m,
        wall,
        busy: Duration::ZERO,
    })
}

pub(crate) async fn bench_dispatch(
    opts: &Opts,
    tlms: &[String],
    dir: &Path,
) -> Result<Dispatch, String> {
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

    // The same comparison for hooks as users write them, through the service as
    // `tracim-hooks run` has it: events sent by the daemon, each recorded in the
    // journal (on, the default) with its run, which is started and ended there too.
    let file = dir.join("dispatch-user.out");
    for p in [4, 8] {
        let text = format!(
            "[defaults]\nmax_parallel = {p}\nqueue_limit = 100000\n\n\
             [[hook]]\nname = \"user\"\non = \"*\"\n\
             exec = [\"/bin/sh\", \"-c\", \"echo x >> {}\"]\n",
            file.display()
        );
        let tag = format!("user{p}");
        let config = Config::parse(
            &dir.join("dispatch-user.toml"),
            &config_text(dir, &tag, &text),
        )
        .map_err(|e| e.to_string())?;
        let hook = config.hooks[0].clone();
        let specs: Arc<Vec<Spec>> = Arc::new(
            events
                .iter()
                .map(|e| hook_spec(&hook, e, "1", settings.env_budget, &inherited))
                .collect(),
        );
        let runner = Runner::start(dir, &tag, &text).await?;
        let templates = templates(&runner.master, tlms);
        spawn_ceiling(&specs, limits, round, p).await?;
        service_dispatch(&runner, &templates, round).await?;
        let mut shape = Shape {
            label: format!(
                "sh -c 'echo x >> FILE', output = \"log\", P={p}, via the service, journal on"
            ),
            dispatch: Vec::new(),
            ceiling: Vec::new(),
            ratio: Vec::new(),
            cpu_per_run: Vec::new(),
            daemon_and_journal: Vec::new(),
            checkpoint_per_run: Vec::new(),
        };
        for _ in 0..opts.reps {
            let (mut ceiling, mut dispatch) = (Throughput::default(), Throughput::default());
            let (mut cpu_ceiling, mut cpu_dispatch) = (Duration::ZERO, Duration::ZERO);
            let (mut cpu_daemon, mut cpu_journal) = (Duration::ZERO, Duration::ZERO);
            let mut cpu_checkpoint = Duration::ZERO;
            for _ in 0..10 {
                let t0 = self_cpu();
                ceiling.add(spawn_ceiling(&specs, limits, round, p).await?);
                let t1 = self_cpu();
                let (d1, j1) = (thread_cpu("daemon-side"), thread_cpu(WRITER));
                let c1 = thread_cpu(CHECKPOINTER);
                dispatch.add(service_dispatch(&runner, &templates, round).await?);
                cpu_ceiling += t1.saturating_sub(t0);
                cpu_dispatch += self_cpu().saturating_sub(t1);
                cpu_daemon += thread_cpu("daemon-side").saturating_sub(d1);
                cpu_journal += thread_cpu(WRITER).saturating_sub(j1);
                settle(std::process::id(), CHECKPOINTER).await;
                cpu_checkpoint += thread_cpu(CHECKPOINTER).saturating_sub(c1);
            }
            shape.ceiling.push(ceiling.rate());
            shape.dispatch.push(dispatch.rate());
            shape.ratio.push(dispatch.rate() / ceiling.rate());
            shape.cpu_per_run.push((
                cpu_dispatch / dispatch.runs.max(1) as u32,
                cpu_ceiling / ceiling.runs.max(1) as u32,
            ));
            let runs = dispatch.runs.max(1) as u32;
            shape
                .daemon_and_journal
                .push((cpu_daemon / runs, cpu_journal / runs));
            shape.checkpoint_per_run.push(cpu_checkpoint / runs);
        }
        runner.stop().await?;
        fig.shapes.push(shape);
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
