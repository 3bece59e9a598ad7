//! Reading the config file safely: one open file is checked (a regular file, its
//! owner and mode) and read, so it cannot be swapped in between; and never more
//! of it than a config can be.

use std::path::Path;

use super::ConfigError;
use crate::paths::OpenError;

/// The largest config read: far past any hand-written file (200,000 hooks take
/// about 20 MiB), and a bound on what a wrong path can make the runner read.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// Opens, checks and reads the file at `path`.
pub(super) fn read_checked(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let unsafe_file = |message: String| ConfigError::Unsafe {
        path: path.to_path_buf(),
        message,
    };
    let (file, meta) = crate::paths::open_regular(path).map_err(|e| match e {
        OpenError::Io(source) => read_error(source),
        OpenError::NotRegular(what) => unsafe_file(format!(
            "is {what}, not a regular file: give the path of a hooks.toml"
        )),
    })?;
    check_file_safety(path, &meta)?;
    let too_large = || {
        unsafe_file(format!(
            "is {} bytes; a config may be at most {} MiB",
            meta.len(),
            MAX_CONFIG_BYTES / (1024 * 1024)
        ))
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    let text = crate::paths::read_at_most(file, MAX_CONFIG_BYTES)
        .map_err(read_error)?
        .ok_or_else(too_large)?;
    Ok(text)
}

/// Refuses a config that someone other than this user (or root) could have written.
fn check_file_safety(path: &Path, meta: &std::fs::Metadata) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
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
