//! Figure 5: matching one event against 1, 100 and 10,000 hooks.

use crate::*;

/// `n` hooks: five hand-written ones that real events take, then a mix of exact
/// types, `content.*`-style prefixes, `{a,b}` alternations, inner `*`, character
/// classes and exclusions, of which one in a hundred takes real events (and then
/// fails a `where` condition, as per-workspace hooks do).
pub(crate) fn matching_hooks(n: usize) -> String {
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

pub(crate) fn synthetic_pattern(i: usize) -> (String, String) {
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

pub(crate) struct Matching {
    pub(crate) hooks: usize,
    pub(crate) parse: Duration,
    pub(crate) per_event: Vec<Duration>,
    pub(crate) selected: f64,
}

pub(crate) fn bench_matching(
    opts: &Opts,
    tlms: &[String],
    dir: &Path,
) -> Result<Vec<Matching>, String> {
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

/// The configs `check` is timed on: what their `on` patterns are.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CheckKind {
    /// [`matching_hooks`]: mostly distinct globs, as in figure 5.
    Globs,
    /// Event types without glob syntax, each a type Tracim sends.
    Types,
    /// Distinct globs whose literal beginning and end some type has, so that
    /// each needs its regex to tell (half of them match a type).
    RegexGlobs,
}

impl CheckKind {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            CheckKind::Globs => "distinct globs",
            CheckKind::Types => "plain event types",
            CheckKind::RegexGlobs => "globs that each need their regex",
        }
    }

    fn hooks(self, n: usize) -> String {
        let types = known_event_types();
        let mut text = match self {
            CheckKind::Globs => return matching_hooks(n),
            _ => String::new(),
        };
        for i in 0..n {
            let on = match self {
                CheckKind::Types => types[i % types.len()].clone(),
                _ => match i % 4 {
                    0 => format!("content.{{created,modified{i}}}.file"),
                    1 => format!("{{user,tag}}.created{i}*"),
                    2 => format!("*.{{deleted,x{i}}}"),
                    _ => format!("content.*{i}*.file"),
                },
            };
            let _ = writeln!(
                text,
                "[[hook]]\nname = \"h{i}\"\non = \"{on}\"\nexec = [\"true\"]\n"
            );
        }
        text
    }
}

/// `tracim-hooks check` on configs of `n` hooks (the real binary, as a user
/// runs it): the median wall time of `reps` runs, for each kind and `n`.
pub(crate) fn bench_check(
    opts: &Opts,
    dir: &Path,
) -> Result<Vec<(CheckKind, usize, Duration)>, String> {
    let bin = runner_binary(opts)?;
    let big = if opts.quick { 10_000 } else { 200_000 };
    let runs = [
        (CheckKind::Globs, if opts.quick { 1_000 } else { 10_000 }),
        (CheckKind::Globs, big),
        (CheckKind::Types, big),
        (CheckKind::RegexGlobs, big),
    ];
    let mut out = Vec::new();
    for (kind, n) in runs {
        let path = dir.join(format!("check-{kind:?}-{n}.toml"));
        std::fs::write(&path, config_text(dir, "check", &kind.hooks(n)))
            .map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        for _ in 0..opts.reps.max(1) {
            let started = Instant::now();
            let status = Command::new(&bin)
                .args(["--config", &path.to_string_lossy(), "check"])
                .stdout(Stdio::null())
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("check on {n} hooks ({}) failed", kind.describe()));
            }
            times.push(started.elapsed());
        }
        out.extend(median_duration(&times).map(|t| (kind, n, t)));
    }
    Ok(out)
}
