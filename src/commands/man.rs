//! `man`: the manual page in roff, from the clap definition (clap_mangen) plus the
//! hooks.toml reference taken from the README, so that neither can drift.

use std::io::Write;

use clap::CommandFactory;

use super::Failure;
use super::man_reference;
use crate::cli::Cli;

/// Writes the page to stdout.
pub(super) fn man() -> Result<(), Failure> {
    print(&page().map_err(|e| Failure::new(format!("man: {e}")))?)
}

/// The whole page: the usual sections, then HOOKS.TOML, FILES and the rest.
pub(crate) fn page() -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(Cli::command());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    man_reference::hooks_toml().to_writer(&mut out)?;
    man_reference::files().to_writer(&mut out)?;
    man.render_extra_section(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// Writes bytes to stdout; a closed pipe (`| head`) is not an error.
pub(super) fn print(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(format!("cannot write to stdout: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_the_commands_and_the_reference() {
        let page = String::from_utf8(page().unwrap()).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{}", &page[..200]);
        assert!(page.contains(".TH tracim-hooks 1"), "{page}");
        for section in [".SH NAME", ".SH SUBCOMMANDS", ".SH HOOKS.TOML", ".SH FILES"] {
            assert!(page.contains(section), "no {section}");
        }
        for command in ["tracim\\-hooks\\-service(1)", "tracim\\-hooks\\-man(1)"] {
            assert!(page.contains(command), "no {command}:\n{page}");
        }
        // The reference's tables, key by key.
        for key in [
            "master_socket",
            "shutdown_grace",
            "rerun_interrupted",
            "retention",
        ] {
            assert!(page.contains(&format!("\\fB{key}\\fR")), "no {key}");
        }
    }
}
