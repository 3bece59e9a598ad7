//! `service install [--now] [--force]` and `service uninstall [--force]`: the
//! systemd user unit written, enabled and started (or stopped, disabled and
//! removed) with `systemctl --user`, each step said as it is done.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Failure;
use super::service_unit::{self, UNIT_NAME};
use crate::cli::ServiceCommand;
use crate::config::{self, Config};

/// Runs `service install` or `service uninstall`; `config` is `--config`.
pub(super) fn service(command: ServiceCommand, config: Option<&Path>) -> Result<(), Failure> {
    let path = unit_path()?;
    match command {
        ServiceCommand::Install { now, force } => install(&path, config, now, force),
        ServiceCommand::Uninstall { force } => uninstall(&path, force),
    }
}

/// `$XDG_CONFIG_HOME/systemd/user/tracim-hooks.service`, where the user manager
/// looks for the user's own units.
fn unit_path() -> Result<PathBuf, Failure> {
    directories::BaseDirs::new()
        .map(|d| d.config_dir().join("systemd/user").join(UNIT_NAME))
        .ok_or_else(|| Failure::new("service: no home directory to install the unit in"))
}

fn install(path: &Path, config: Option<&Path>, now: bool, force: bool) -> Result<(), Failure> {
    let exe = std::env::current_exe().map_err(|e| {
        Failure::new(format!(
            "service install: cannot tell this binary's path: {e}"
        ))
    })?;
    // A config named by $TRACIM_HOOKS_CONFIG is passed on too: the service does
    // not see this shell's variables.
    let named = config.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(config::CONFIG_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    let config = match named {
        Some(config) => Some(absolute(&config)?),
        None => None,
    };
    // A service whose config does not load only fails to start: say so now.
    let located = config::locate(config.as_deref());
    if let Err(e) = Config::load(&located) {
        let mut failure = Failure::from(e);
        failure.lines.insert(
            0,
            "service install: the service would not start with this config:".into(),
        );
        return Err(failure);
    }
    let unit = service_unit::render(&exe, config.as_deref())
        .map_err(|e| Failure::new(format!("service install: {e}")))?;
    let existing = read_existing(path)?;
    let changed = existing.as_deref() != Some(unit.as_str());
    if changed {
        if let Some(existing) = &existing
            && !force
            && !service_unit::is_pristine(existing)
        {
            return Err(edited(path, "overwrite", "service install --force"));
        }
        write_unit(path, &unit)?;
        let verb = if existing.is_some() {
            "Replaced"
        } else {
            "Wrote"
        };
        println!("{verb} {}", path.display());
    } else {
        println!("{} is up to date", path.display());
    }
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap_or_default();
    println!("  {exec}");
    if changed {
        systemctl(&["daemon-reload"])?;
    }
    if now {
        systemctl(&["enable", UNIT_NAME])?;
        // A running service keeps its old command line until restarted.
        systemctl(&[if changed { "restart" } else { "start" }, UNIT_NAME])?;
        println!("Follow it: journalctl --user -u tracim-hooks -f");
        println!("Its state: systemctl --user status tracim-hooks");
    } else {
        println!("Start it now and at every login: systemctl --user enable --now tracim-hooks");
        println!("(or run `tracim-hooks service install --now`)");
    }
    Ok(())
}

fn uninstall(path: &Path, force: bool) -> Result<(), Failure> {
    let Some(existing) = read_existing(path)? else {
        println!("Nothing to remove: {} does not exist", path.display());
        return Ok(());
    };
    if !force && !service_unit::is_pristine(&existing) {
        return Err(edited(path, "remove", "service uninstall --force"));
    }
    systemctl(&["disable", "--now", UNIT_NAME])?;
    std::fs::remove_file(path)
        .map_err(|e| Failure::new(format!("cannot remove {}: {e}", path.display())))?;
    println!("Removed {}", path.display());
    systemctl(&["daemon-reload"])?;
    Ok(())
}

fn edited(path: &Path, what: &str, forced: &str) -> Failure {
    Failure {
        lines: vec![
            format!(
                "{} was changed since `tracim-hooks service install` wrote it (or was not written by it): not going to {what} it.",
                path.display()
            ),
            "Keep changes in a drop-in instead (`systemctl --user edit tracim-hooks`),".into(),
            format!("or {what} it anyway with `tracim-hooks {forced}`."),
        ],
    }
}

fn read_existing(path: &Path) -> Result<Option<String>, Failure> {
    match std::fs::read(path) {
        // Not UTF-8: certainly not ours, so only --force replaces it.
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::new(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Writes the unit through a temporary file and a rename, so that systemd never
/// reads half a unit.
fn write_unit(path: &Path, unit: &str) -> Result<(), Failure> {
    let fail = |what: &Path, e: std::io::Error| {
        Failure::new(format!("cannot write {}: {e}", what.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let tmp = dir.join(format!(".{UNIT_NAME}.{}", std::process::id()));
    std::fs::write(&tmp, unit).map_err(|e| fail(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(path, e)
    })
}

/// `--config` as an absolute path: the service does not start where we are.
fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path)
        .map_err(|e| Failure::new(format!("cannot make {} absolute: {e}", path.display())))
}

/// Runs `systemctl --user ARGS`, its own messages going to our stderr, and says so.
fn systemctl(args: &[&str]) -> Result<(), Failure> {
    let line = format!("systemctl --user {}", args.join(" "));
    let status = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .status()
        .map_err(|e| Failure::new(format!("cannot run {line}: {e}")))?;
    if status.success() {
        println!("Ran {line}");
        Ok(())
    } else {
        Err(Failure::new(format!("{line} failed ({status})")))
    }
}
