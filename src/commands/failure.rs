//! What a failed command hands `main`: the lines to print before exiting 1.

use crate::config::ConfigError;

/// Why a command failed: lines for stderr.
#[derive(Debug)]
pub struct Failure {
    /// What to print, one line each.
    pub lines: Vec<String>,
}

impl Failure {
    pub(crate) fn new(line: impl Into<String>) -> Self {
        Failure {
            lines: vec![line.into()],
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        let mut lines = e.lines();
        if let ConfigError::Read { source, .. } = &e
            && source.kind() == std::io::ErrorKind::NotFound
        {
            lines.push("No config yet? `tracim-hooks init` writes a commented one there.".into());
        }
        Failure { lines }
    }
}
