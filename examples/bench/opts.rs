//! The command line: which phases, how many events, runs and repetitions.

use crate::*;

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) events: usize,
    pub(crate) dispatch: usize,
    pub(crate) parallel: usize,
    pub(crate) latency: usize,
    pub(crate) reps: usize,
    pub(crate) senders: usize,
    pub(crate) hooks: Vec<usize>,
    pub(crate) match_time: Duration,
    pub(crate) child: bool,
    pub(crate) bin: Option<PathBuf>,
    pub(crate) quick: bool,
    pub(crate) only: Vec<String>,
}

pub(crate) const PHASES: [&str; 5] = ["receive", "dispatch", "child", "matching", "tracim"];

pub(crate) const USAGE: &str = "usage: cargo run --release --example bench -- [--quick] [--events N] \
[--dispatch N] [--parallel P] [--latency N] [--reps R] [--senders S] [--hooks 1,100,10000] \
[--match-ms MS] [--bin PATH] [--no-child] [--only receive,dispatch,child,matching,tracim]";

impl Opts {
    /// The options, or `None` when only the usage was asked for.
    pub(crate) fn parse() -> Result<Option<Opts>, String> {
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

    pub(crate) fn runs(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }
}
