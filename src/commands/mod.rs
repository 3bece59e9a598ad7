//! The subcommands, one module each: `run`, `check`, `test`, `init`, `demo`,
//! `status`, `history`, `replay`, `service`, `completions`, `man`.
//!
//! Each returns `Ok(())` or a [`Failure`] whose lines `main` prints before exiting 1.

mod check;
mod completions;
mod demo;
mod explain;
mod failure;
mod history;
mod init;
mod inputs;
mod man;
mod man_reference;
mod replay;
mod run;
mod service;
mod service_unit;
mod status;
mod test;

use crate::cli::{Cli, Command};
use crate::config::{self, Config};

pub use failure::Failure;

/// Runs the command the command line asks for.
pub async fn execute(cli: Cli) -> Result<(), Failure> {
    let path = config::locate(cli.config.as_deref());
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run::run(path).await,
        Command::Check { online } => check::check(&path, online).await,
        Command::Test(args) => test::test(&path, args).await,
        Command::Demo { source } => {
            let config = match cli.config {
                Some(path) => Some(Config::load(&path)?),
                None => None,
            };
            demo::demo(config, source == "tracim").await
        }
        Command::Init { force } => init::init(&path, force),
        Command::Status { json } => status::status(&path, json).await,
        Command::History(args) => history::history(&path, args).await,
        Command::Replay(args) => replay::replay(&path, args).await,
        Command::Service(command) => service::service(command, cli.config.as_deref()),
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => man::man(),
    }
}
