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
    after_help = "Start with `tracim-hooks demo`, then `tracim-hooks init`. The hooks.toml reference is in the README."
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
    Check,
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
    Demo,
    /// Write the commented example config to the config location
    /// (~/.config/tracim-hooks/hooks.toml, or --config / $TRACIM_HOOKS_CONFIG)
    Init {
        /// Overwrite an existing file
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
