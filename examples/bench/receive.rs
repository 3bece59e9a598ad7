//! Figure 1: the receive path, runner in this process.

use crate::*;

#[derive(Default)]
pub(crate) struct Receive {
    pub(crate) eps: Vec<f64>,
    /// The same blasts to a runner with `[journal] enabled = false`, alternated
    /// with the others so that a drift of the machine weighs on both alike.
    pub(crate) eps_no_journal: Vec<f64>,
    /// Connect to hooks decided, during each blast.
    pub(crate) during: Vec<Spread>,
    /// Connect to hooks decided, one event at a time.
    pub(crate) alone: Spread,
    /// This process's CPU time per event during the blasts: runner and senders.
    pub(crate) cpu_per_event: Vec<Duration>,
    /// Of it, the journal's writer thread's.
    pub(crate) journal_cpu_per_event: Vec<Duration>,
    /// The journal's upkeep after the blast, at the lull (waited for, so that it
    /// does not slow the next blast down): the writer's pruning, and the
    /// checkpoints of the blast (in it or after it).
    pub(crate) upkeep_cpu_per_event: Vec<(Duration, Duration)>,
    pub(crate) lost: usize,
    pub(crate) backlog_full: u64,
    pub(crate) mean_bytes: usize,
    /// `Envelope::decode` of one message of the mix, one thread.
    pub(crate) decode: Option<Duration>,
}

/// Mean `Envelope::decode` (and drop) time per message of the mix.
pub(crate) fn decode_cost(templates: &[Template], budget: Duration) -> Duration {
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

pub(crate) async fn bench_receive(
    opts: &Opts,
    tlms: &[String],
    dir: &Path,
) -> Result<Receive, String> {
    let runner = Runner::start(dir, "recv", NEVER_HOOK).await?;
    let bare = Runner::start_journal(dir, "recv-nj", NEVER_HOOK, false).await?;
    let bare_templates = templates(&bare.master, tlms);
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
        let journal0 = thread_cpu(WRITER);
        let checkpoint0 = thread_cpu(CHECKPOINTER);
        let blast = blast(&runner.socket, &templates, base, n, opts.senders).await?;
        let timeout = Duration::from_secs(20) + Duration::from_millis(n as u64);
        let decided = runner.decisions(base..base + n as u64, timeout).await;
        // The journal's last commits of them too (the rates use the decision times).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let cpu1 = cpu_time(me);
        let journal1 = thread_cpu(WRITER);
        let pruning = settle(me, WRITER).await;
        settle(me, CHECKPOINTER).await;
        let checkpoint1 = thread_cpu(CHECKPOINTER);
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
        fig.journal_cpu_per_event
            .extend(cpu_per(Some(journal0), Some(journal1), n));
        fig.upkeep_cpu_per_event.push((
            pruning / n as u32,
            checkpoint1.saturating_sub(checkpoint0) / n as u32,
        ));

        let base = fresh_ids(n);
        let sent = crate::blast(&bare.socket, &bare_templates, base, n, opts.senders).await?;
        let decided = bare.decisions(base..base + n as u64, timeout).await;
        let last = decided
            .iter()
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(sent.started);
        fig.lost += n - decided.len();
        fig.eps_no_journal
            .push(decided.len() as f64 / last.duration_since(sent.started).as_secs_f64());
    }
    bare.stop().await?;

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
