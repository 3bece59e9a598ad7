//! The user unit `service install` writes: the reference unit
//! (`systemd/tracim-hooks.service`) with `ExecStart` pointing at this binary, under
//! a header holding a checksum of what was written, so that a unit the user
//! edited since is told apart from one this command may replace.

use std::fmt::Write as _;
use std::path::Path;

/// The reference unit, as shipped in the repository.
pub(super) const REFERENCE: &str = include_str!("../../systemd/tracim-hooks.service");

/// The unit's file name.
pub(super) const UNIT_NAME: &str = "tracim-hooks.service";

const CHECKSUM: &str = "# checksum: ";

/// Why the unit cannot be written for a path.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum UnitError {
    /// systemd reads unit files as UTF-8.
    #[error("{0} is not valid UTF-8: a unit file cannot name it")]
    NotUtf8(String),
    /// A line break would end the `ExecStart=` line.
    #[error("{0:?} holds a control character: a unit file cannot name it")]
    Control(String),
    /// The reference unit has no `ExecStart=` line to replace.
    #[error("the reference unit has no ExecStart= line")]
    NoExecStart,
}

/// The unit running `exe run`, with `--config config` when given.
pub(super) fn render(exe: &Path, config: Option<&Path>) -> Result<String, UnitError> {
    let mut command = quote(exe)?;
    if let Some(config) = config {
        command.push_str(" --config ");
        command.push_str(&quote(config)?);
    }
    command.push_str(" run");
    let start = REFERENCE.find("\n[Unit]").map_or(0, |i| i + 1);
    let mut body = String::new();
    let mut replaced = false;
    for line in REFERENCE[start..].lines() {
        if line.starts_with("ExecStart=") {
            let _ = writeln!(body, "ExecStart={command}");
            replaced = true;
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    if !replaced {
        return Err(UnitError::NoExecStart);
    }
    Ok(format!(
        "# tracim-hooks as a systemd user service, written by `tracim-hooks service install`.\n\
         # To change it, prefer a drop-in (`systemctl --user edit tracim-hooks`): `service\n\
         # install` and `service uninstall` leave an edited file alone unless --force.\n\
         {CHECKSUM}{:016x}\n{body}",
        fnv1a(body.as_bytes())
    ))
}

/// Whether `text` is a unit this command wrote and nobody changed since.
pub(super) fn is_pristine(text: &str) -> bool {
    let Some(at) = text.find(CHECKSUM) else {
        return false;
    };
    let rest = &text[at + CHECKSUM.len()..];
    let Some((sum, body)) = rest.split_once('\n') else {
        return false;
    };
    u64::from_str_radix(sum.trim(), 16).is_ok_and(|sum| sum == fnv1a(body.as_bytes()))
}

/// A path as one `ExecStart=` word: `%` and `$` doubled (systemd's specifiers and
/// variables), and in double quotes with `\` and `"` escaped when it holds
/// anything but the usual path characters.
fn quote(path: &Path) -> Result<String, UnitError> {
    let text = path
        .to_str()
        .ok_or_else(|| UnitError::NotUtf8(path.display().to_string()))?;
    if text.chars().any(char::is_control) {
        return Err(UnitError::Control(text.to_owned()));
    }
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@:,=%$".contains(c));
    let mut out = String::with_capacity(text.len() + 2);
    if !plain {
        out.push('"');
    }
    for c in text.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\\' | '"' if !plain => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    if !plain {
        out.push('"');
    }
    Ok(out)
}

/// FNV-1a, 64 bits. Hand-written (a few lines) because the checksum must stay the
/// same across Rust versions, which std's hashers do not promise; it guards
/// against edits, not against an adversary.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_names_this_binary_and_the_config() {
        let unit = render(
            Path::new("/opt/bin/tracim-hooks"),
            Some(Path::new("/home/me/hooks.toml")),
        )
        .unwrap();
        let exec: Vec<&str> = unit
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect();
        assert_eq!(
            exec,
            ["ExecStart=/opt/bin/tracim-hooks --config /home/me/hooks.toml run"]
        );
        // Everything else is the reference's.
        for line in REFERENCE
            .lines()
            .filter(|l| l.starts_with(char::is_uppercase))
        {
            if !line.starts_with("ExecStart=") {
                assert!(unit.lines().any(|l| l == line), "lost {line}");
            }
        }
        assert!(
            !unit.contains("cp systemd/"),
            "the reference's install comment stays out"
        );
        assert!(is_pristine(&unit));
    }

    #[test]
    fn odd_paths_are_quoted_for_systemd() {
        let unit = render(Path::new("/home/a b/100%/$x/q\"s\\/t"), None).unwrap();
        assert!(
            unit.contains("ExecStart=\"/home/a b/100%%/$$x/q\\\"s\\\\/t\" run\n"),
            "{unit}"
        );
        assert_eq!(
            render(Path::new("/a\nb"), None),
            Err(UnitError::Control("/a\nb".into()))
        );
    }

    #[test]
    fn an_edit_anywhere_is_seen() {
        let unit = render(Path::new("/usr/bin/tracim-hooks"), None).unwrap();
        assert!(is_pristine(&unit));
        assert!(!is_pristine(
            &unit.replace("RestartSec=2s", "RestartSec=5s")
        ));
        assert!(!is_pristine(&format!("{unit}Environment=A=1\n")));
        // The reference as copied by hand has no checksum: it is the user's.
        assert!(!is_pristine(REFERENCE));
        // The header's comment lines are free to change.
        assert!(is_pristine(&unit.replacen("written by", "made by", 1)));
    }
}
