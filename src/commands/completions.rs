//! `completions SHELL`: the shell's completion script for the whole command line,
//! generated from its clap definition so that it never falls behind.

use clap::CommandFactory;

use super::Failure;
use crate::cli::{Cli, Shell};

/// Writes the completion script for `shell` to stdout.
pub(super) fn completions(shell: Shell) -> Result<(), Failure> {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(generator, &mut Cli::command(), "tracim-hooks", &mut out);
    super::man::print(&out)
}
