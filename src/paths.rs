//! Where things live by default, `~`/`$VAR` expansion in configured paths, and
//! opening the files the user points at (the config, secrets) safely.
//!
//! Only paths are expanded: commands are handed to the shell as written, and
//! expanding there is the shell's job.

use std::path::PathBuf;

/// The user's home directory.
fn home() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf())
}

/// `~/.config/tracim-hooks` on Linux (honouring `XDG_CONFIG_HOME`).
pub fn config_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "tracim-hooks")
        .map(|d| d.config_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".config/tracim-hooks"))
}

/// The upstream daemon's default: `$XDG_CONFIG_HOME/TracimDaemon/master.sock`.
pub fn default_master_socket() -> PathBuf {
    directories::BaseDirs::new()
        .map(|d| d.config_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("/.config"))
        .join("TracimDaemon")
        .join("master.sock")
}

/// `$XDG_RUNTIME_DIR/tracim-hooks.sock`, or in the config dir when that is unset.
pub fn default_client_socket() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("tracim-hooks.sock"),
        None => config_dir().join("tracim-hooks.sock"),
    }
}

/// Why a configured path could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `~` with no home directory to put there.
    #[error("cannot expand `~`: no home directory")]
    NoHome,
    /// `${` without its `}`.
    #[error("unclosed `${{` in `{0}`")]
    Unclosed(String),
    /// A variable the path names is not set.
    #[error("environment variable `{name}` is not set (in `{text}`)")]
    Unset {
        /// The variable.
        name: String,
        /// The path as written.
        text: String,
    },
}

/// Expands a leading `~` (or `~/`) and every `$VAR` or `${VAR}`. An unset variable
/// is an error rather than an empty string, so a typo cannot point a socket at `/`.
pub fn expand(text: &str) -> Result<PathBuf, ExpandError> {
    let mut out = String::new();
    let rest = if text == "~" || text.starts_with("~/") {
        let home = home().ok_or(ExpandError::NoHome)?;
        out.push_str(&home.to_string_lossy());
        &text[1..]
    } else {
        text
    };
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let (name, braced) = if rest[i + 1..].starts_with('{') {
            let Some(end) = rest[i + 2..].find('}') else {
                return Err(ExpandError::Unclosed(text.to_owned()));
            };
            (&rest[i + 2..i + 2 + end], true)
        } else {
            let len = rest[i + 1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - i - 1);
            (&rest[i + 1..i + 1 + len], false)
        };
        if name.is_empty() {
            out.push('$');
            continue;
        }
        let value = std::env::var(name).map_err(|_| ExpandError::Unset {
            name: name.to_owned(),
            text: text.to_owned(),
        })?;
        out.push_str(&value);
        let skip = name.chars().count() + usize::from(braced) * 2;
        for _ in 0..skip {
            chars.next();
        }
    }
    Ok(PathBuf::from(out))
}

/// Why a file the user named could not be opened as a regular file.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The system refused (missing, permissions…).
    Io(std::io::Error),
    /// It is something else: "a directory", "a FIFO"…
    NotRegular(&'static str),
}

/// Opens `path` for reading, only if it is a regular file. Opening never blocks:
/// a FIFO with no writer (O_NONBLOCK) or a terminal (O_NOCTTY) given by mistake
/// is refused at once. The checks are on the open file, so it cannot be swapped
/// between them and the read.
pub(crate) fn open_regular(
    path: &std::path::Path,
) -> Result<(std::fs::File, std::fs::Metadata), OpenError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(OpenError::Io)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotRegular(describe(&meta.file_type())));
    }
    Ok((file, meta))
}

/// Reads the whole file as text, `None` when it holds more than `max` bytes (a
/// file that grows while it is read is still cut at the bound).
pub(crate) fn read_at_most(file: std::fs::File, max: u64) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text)?;
    Ok((text.len() as u64 <= max).then_some(text))
}

/// "a directory", "a FIFO"…: what a path that is not a regular file is.
pub(crate) fn describe(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_home_and_variables() {
        let home = home().unwrap();
        assert_eq!(expand("~/x").unwrap(), home.join("x"));
        assert_eq!(expand("~").unwrap(), home);
        // PATH is set in any test environment.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            expand("$PATH/a").unwrap(),
            PathBuf::from(format!("{path}/a"))
        );
        assert_eq!(
            expand("/${PATH}b").unwrap(),
            PathBuf::from(format!("/{path}b"))
        );
        assert_eq!(expand("/a/b$").unwrap(), PathBuf::from("/a/b$"));
        assert_eq!(expand("/a~b").unwrap(), PathBuf::from("/a~b"));
        // A name of several bytes per character skips exactly itself.
        assert!(matches!(
            expand("/x/${NAMÉ}/y").unwrap_err(),
            ExpandError::Unset { name, .. } if name == "NAMÉ"
        ));
        assert_eq!(
            expand("/${PATH}é").unwrap(),
            PathBuf::from(format!("/{path}é"))
        );
    }

    #[test]
    fn unset_variables_are_errors() {
        let err = expand("$TRACIM_HOOKS_SURELY_UNSET_VAR/x").unwrap_err();
        assert!(
            err.to_string().contains("TRACIM_HOOKS_SURELY_UNSET_VAR"),
            "{err}"
        );
        assert_eq!(
            expand("${UNCLOSED"),
            Err(ExpandError::Unclosed("${UNCLOSED".into()))
        );
    }
}
