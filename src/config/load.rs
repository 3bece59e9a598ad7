//! Reading the config file safely: one open file is checked (owner, mode) and
//! read, so it cannot be swapped in between.

use std::io::Read;
use std::path::Path;

use super::ConfigError;

/// Opens, checks and reads the file at `path`.
pub(super) fn read_checked(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    check_file_safety(path, &file.metadata().map_err(read_error)?)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_error)?;
    Ok(text)
}

/// Refuses a config that someone other than this user (or root) could have written.
fn check_file_safety(path: &Path, meta: &std::fs::Metadata) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(ConfigError::Unsafe {
            path: path.to_path_buf(),
            message: format!(
                "owned by uid {}, not by you (uid {me}); whoever owns it decides what runs as you. \
                 Fix: chown {me} '{}'",
                meta.uid(),
                path.display()
            ),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(ConfigError::Unsafe {
            path: path.to_path_buf(),
            message: format!(
                "writable by {} (mode {:o}); whoever can write it decides what runs as you. \
                 Fix: chmod go-w '{}'",
                if meta.mode() & 0o002 != 0 {
                    "others"
                } else {
                    "group"
                },
                meta.mode() & 0o7777,
                path.display()
            ),
        });
    }
    Ok(())
}
