//! `tracim-hooks`: parse the command line, set up logging, run the command, and
//! turn its result into an exit code.

use std::process::ExitCode;

use clap::Parser;
use tracim_hooks::cli::Cli;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod no_libm;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracim_hooks::logging::init(cli.verbosity());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tracim-hooks: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tracim_hooks::commands::execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            for line in failure.lines {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}
