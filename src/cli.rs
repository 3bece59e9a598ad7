//! The command line: `tracim-hooks [--config FILE] [-v|-q] <COMMAND>`.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

/// Run commands on Tracim events: a TracimDaemon client configured by hooks.toml.
#[derive(Debug, Parser)]
#[command(
    name = "tracim-hooks",
    version,
    about,
    long_about = None,
    after_help = "Start with `tracim-hooks demo`, then `tracim-hooks init`. The hooks.toml reference is in the README and `tracim-hooks man`."
)]
pub struct Cli {
    /// The config file [default: $TRACIM_HOOKS_CONFIG, else
    /// ~/.config/tracim-hooks/hooks.toml; `demo` runs its bundled example
    /// unless given one]
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output (-q warnings, -qq errors only)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub quiet: u8,

    /// What to do [default: run]
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// `-v` count minus `-q` count.
    pub fn verbosity(&self) -> i8 {
        let v = i8::try_from(self.verbose).unwrap_or(i8::MAX);
        let q = i8::try_from(self.quiet).unwrap_or(i8::MAX);
        v.saturating_sub(q)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register with the TracimDaemon and run hooks for its events (the service).
    ///
    /// Waits for the daemon if it is not there yet and registers again after it
    /// restarts. SIGHUP reloads hooks.toml (a broken file is refused and the
    /// running hooks kept); SIGTERM or SIGINT unregisters, lets running hooks
    /// finish for up to `shutdown_grace`, and exits 0.
    Run,
    /// Check the config and list its hooks; exit 1 with every mistake as
    /// file:line:col
    Check {
        /// Also log in to Tracim (`[tracim]`) and say as whom, and its newest event id
        #[arg(long)]
        online: bool,
    },
    /// Show which hooks events would run and why the others would not; `--run`
    /// runs them.
    ///
    /// An event is a Tracim Live Message (TLM): a JSON object with `event_id`,
    /// `event_type` and `fields`, as the daemon delivers it. A file may hold one
    /// TLM, JSON lines of TLMs, or a whole `daemon_tracim_event` message. Exit 1
    /// if an input cannot be read or (with --run) a hook fails.
    Test(TestArgs),
    /// Run hooks on one sample event per Tracim entity type, through a
    /// simulated daemon (the bundled example config unless --config is given)
    Demo {
        /// Where the events come from: a simulated TracimDaemon, or a simulated
        /// Tracim's own event stream (`source = "tracim"`)
        #[arg(long, default_value = "daemon", value_parser = ["daemon", "tracim"])]
        source: String,
    },
    /// Is the service running, and how did each hook's runs of the last 24 h go
    ///
    /// Read from the journal, so it works whether or not the service runs; the
    /// live details (registration, runs going on, the journal's health) come from
    /// the running service.
    Status {
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// The runs on record, newest first: time, hook, event, type, attempt,
    /// duration, result
    History(HistoryArgs),
    /// Run a stored event's hooks again, with TRACIM_REPLAY=1
    ///
    /// Through the running service when there is one (its limits apply), else in
    /// the foreground like `test --run`. Prints what it queued.
    Replay(ReplayArgs),
    /// Write the commented example config to the config location
    /// (~/.config/tracim-hooks/hooks.toml, or --config / $TRACIM_HOOKS_CONFIG)
    Init {
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Install or remove the systemd user service
    /// (~/.config/systemd/user/tracim-hooks.service)
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Print a shell completion script
    ///
    /// bash: `tracim-hooks completions bash > ~/.local/share/bash-completion/completions/tracim-hooks`;
    /// zsh: into a directory of your `$fpath` as `_tracim-hooks`;
    /// fish: `tracim-hooks completions fish > ~/.config/fish/completions/tracim-hooks.fish`
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff), with the hooks.toml reference:
    /// `tracim-hooks man | man -l -`
    Man,
}

/// The shells `completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// The subcommands of `service`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write the user unit, running this binary (with --config when given), and
    /// reload systemd; --now also enables and starts it
    Install {
        /// Also enable it (start at login) and (re)start it now
        #[arg(long)]
        now: bool,
        /// Overwrite a unit that was edited since it was installed
        #[arg(long)]
        force: bool,
    },
    /// Stop and disable the service, remove its unit, and reload systemd
    Uninstall {
        /// Remove a unit that was edited since it was installed
        #[arg(long)]
        force: bool,
    },
}

/// The arguments of `test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Run the matching hooks for real, as the service would, and report how
    /// each ended
    #[arg(long)]
    pub run: bool,
    /// The daemon account's user id, as `skip_own` and TRACIM_DAEMON_USER_ID
    /// see it [default: none]
    #[arg(long, value_name = "ID")]
    pub user_id: Option<String>,
    /// A bundled sample event of this type (`mention.created`, ... or `all`);
    /// may be repeated
    #[arg(long, value_name = "TYPE")]
    pub sample: Vec<String>,
    /// Files of events; `-` is stdin, which is read when neither files nor
    /// --sample are given
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// The arguments of `history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only this hook's runs
    #[arg(long, value_name = "NAME")]
    pub hook: Option<String>,
    /// Only this event's runs, with their output and the event itself
    #[arg(long, value_name = "ID")]
    pub event: Option<u64>,
    /// Only failed attempts
    #[arg(long)]
    pub failed: bool,
    /// Only runs queued this recently (`30m`, `24h`, `7d`)
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// At most this many runs
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `replay`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["event_id", "failed"])))]
pub struct ReplayArgs {
    /// The event to run again (by default with the hooks that ran for it)
    #[arg(value_name = "EVENT_ID")]
    pub event_id: Option<u64>,
    /// Only this hook (it need not have run for the event before)
    #[arg(long, value_name = "NAME", conflicts_with = "failed")]
    pub hook: Option<String>,
    /// Every run that failed for good (or was interrupted) recently, again
    #[arg(long)]
    pub failed: bool,
    /// With --failed: how far back [default: 24h]
    #[arg(long, value_name = "DURATION", requires = "failed")]
    pub since: Option<String>,
}
