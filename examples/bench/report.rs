//! The report: the table of figures against their targets, and the phases'
//! progress on stderr.

use crate::*;

/// A line of the table: figure, value, and the target with whether it is met.
pub(crate) struct Row(String, String, Option<(&'static str, Option<bool>)>);

pub(crate) fn print_table(rows: &[Row]) {
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

pub(crate) fn report(
    opts: &Opts,
    receive: Option<&Receive>,
    dispatch: Option<&Dispatch>,
    child: Option<&ChildProcess>,
    matching: &[Matching],
    checks: &[(CheckKind, usize, Duration)],
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
        let bare = median(&r.eps_no_journal);
        add(
            "  same, [journal] enabled = false (ev/s)".into(),
            thousands(bare),
            None,
        );
        add(
            "  journal on / off".into(),
            format!("{:.2}", eps / bare),
            Some((">= 0.90", Some(eps / bare >= TARGET_JOURNAL_RATIO))),
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
        for shape in &d.shapes {
            let ratio = median(&shape.ratio);
            add(
                format!("  {}: dispatch / ceiling (runs/s)", shape.label),
                format!(
                    "{} / {}",
                    thousands(median(&shape.dispatch)),
                    thousands(median(&shape.ceiling))
                ),
                None,
            );
            add(
                "    ratio".into(),
                format!("{ratio:.2}"),
                Some((">= 0.90", Some(ratio >= TARGET_DISPATCH_RATIO))),
            );
        }
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
        add(
            "  RSS 10 s after a 15 MiB event's run".into(),
            mib(c.rss_after_huge),
            Some((
                "< 16 MiB",
                c.rss_after_huge.map(|k| k < TARGET_AFTER_HUGE_KIB),
            )),
        );
        add(
            "  idle wake-ups per second, registered (all threads)".into(),
            c.idle_wakeups.map_or("n/a".into(), |w| format!("{w:.2}")),
            Some(("< 1", c.idle_wakeups.map(|w| w < TARGET_IDLE_WAKEUPS))),
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
    for &(kind, n, took) in checks {
        add(
            format!(
                "  `tracim-hooks check`, {} hooks, {}",
                thousands(n as f64),
                kind.describe()
            ),
            dur(Some(took)),
            (n == 200_000).then_some(("< 5 s", Some(took < TARGET_CHECK_200K))),
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
            "  receive in-process: CPU per event (runner + senders) {}, of it the journal's \
             thread {}; the journal's upkeep at the lull after the blast, pruning / \
             checkpoints (these in the blast too) {}; \
             Envelope::decode {} per message, one thread; listen backlog full {} times{queued}",
            list(&r.cpu_per_event, |d| dur(Some(*d))),
            list(&r.journal_cpu_per_event, |d| dur(Some(*d))),
            list(&r.upkeep_cpu_per_event, |(p, c)| format!(
                "{} / {}",
                dur(Some(*p)),
                dur(Some(*c))
            )),
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
        if !c.rss_idle_by_mapping.is_empty() {
            println!(
                "  child: RSS idle by mapping (KiB): {}",
                list(&c.rss_idle_by_mapping, |(kind, kib)| format!(
                    "{kind} {kib}"
                ))
            );
        }
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
        for shape in &d.shapes {
            println!(
                "  {}: runner CPU per run (its threads, not the hook), dispatch / ceiling: {}; \
                 of the dispatch's, the simulated daemon sending / the journal's thread: {}; \
                 the journal's checkpoints, in the rounds or at the lulls after them: {}",
                shape.label,
                list(&shape.cpu_per_run, |(a, b)| format!(
                    "{} / {}",
                    dur(Some(*a)),
                    dur(Some(*b))
                )),
                list(&shape.daemon_and_journal, |(a, b)| format!(
                    "{} / {}",
                    dur(Some(*a)),
                    dur(Some(*b))
                )),
                list(&shape.checkpoint_per_run, |d| dur(Some(*d)))
            );
        }
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
pub(crate) struct Phases {
    pub(crate) clock: Instant,
    pub(crate) current: Option<(&'static str, Option<(u64, u64)>)>,
    pub(crate) steal: Vec<(&'static str, Option<f64>)>,
}

impl Phases {
    pub(crate) fn new() -> Phases {
        Phases {
            clock: Instant::now(),
            current: None,
            steal: Vec::new(),
        }
    }

    pub(crate) fn start(&mut self, name: &'static str, description: &str) {
        self.end();
        let (at, load) = (self.clock.elapsed(), load_average());
        eprintln!("bench: [{at:6.1?}] load {load} | {description}");
        self.current = Some((name, steal_ticks()));
    }

    pub(crate) fn end(&mut self) {
        if let Some((name, before)) = self.current.take() {
            let share = before
                .zip(steal_ticks())
                .map(|((s0, t0), (s1, t1))| (s1 - s0) as f64 / (t1 - t0).max(1) as f64);
            self.steal.push((name, share));
        }
    }
}
