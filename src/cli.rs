//! The command line: `tracim-hooks [--config FILE] [-v|-q] <COMMAND>`.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

/// Run commands on Tracim events: a TracimDaemon client configured by hooks.toml.
#[derive(Debug, Parser)]
#[command(name = "tracim-hooks", version, about, long_about = None)]
pub struct Cli {
    /// The config file [default: $TRACIM_HOOKS_CONFIG, else ~/.config/tracim-hooks/hooks.toml]
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
    /// Register with the TracimDaemon and run hooks for its events (the service)
    Run,
    /// Check the config and list its hooks
    Check,
    /// Show which hooks events would run, and with what; `--run` runs them
    Test {
        /// Run the matching hooks for real and report their exit status
        #[arg(long)]
        run: bool,
        /// The daemon account's user id, as `skip_own` and TRACIM_DAEMON_USER_ID see it
        #[arg(long, value_name = "ID", default_value = "")]
        user_id: String,
        /// Files holding a TLM, JSON lines of TLMs, or a daemon_tracim_event
        /// message; none or `-` reads stdin
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Run the hooks on bundled sample events through a simulated daemon
    Demo,
    /// Write the commented example config to the config location
    Init {
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
}
